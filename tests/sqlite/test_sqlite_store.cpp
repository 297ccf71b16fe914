// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/stores/sqlite_store.hpp> // first: the header is self-contained

#include <idempotency/testing/conformance.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if __has_include(<idempotency/executor.hpp>)
#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#define IDEMPOTENCY_TEST_HAVE_EXECUTOR 1
#endif

namespace {

using namespace std::chrono_literals;
using idempotency::ClaimStatus;
using idempotency::SqliteStore;
using idempotency::SqliteStoreOptions;
namespace fs = std::filesystem;

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "idempotency-sqlite-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] std::string file(const std::string& name) const { return (path_ / name).string(); }
  [[nodiscard]] const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The manual clock as the store's wall clock (one manual clock serves both clock kinds).
std::function<std::chrono::system_clock::time_point()> wall(
    const idempotency::testing::ManualClock& c) {
  return c.system_source();
}

// A plain connection for looking at the file from the outside.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK)
      throw std::runtime_error("cannot open " + path);
    sqlite3_busy_timeout(db_, 20'000);
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  ~RawDb() { sqlite3_close_v2(db_); }
  void exec(const std::string& sql) {
    char* msg = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      const std::string m = msg != nullptr ? msg : "?";
      sqlite3_free(msg);
      throw std::runtime_error(sql + ": " + m);
    }
  }
  // every row, columns joined by '|'
  std::vector<std::string> rows(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr) != SQLITE_OK)
      throw std::runtime_error(sql + ": " + sqlite3_errmsg(db_));
    std::vector<std::string> out;
    int rc = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(s); ++i) {
        if (i > 0) row += '|';
        const unsigned char* t = sqlite3_column_text(s, i);
        row += t != nullptr ? reinterpret_cast<const char*>(t) : "NULL";
      }
      out.push_back(row);
    }
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) throw std::runtime_error(sql + ": step failed");
    return out;
  }
  std::string one(const std::string& sql) {
    auto r = rows(sql);
    return r.empty() ? std::string("<no row>") : r.front();
  }

 private:
  sqlite3* db_ = nullptr;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A child process running sqlite_worker with its stdout on a pipe.
class Child {
 public:
  explicit Child(const std::vector<std::string>& args, bool as_nobody = false,
                 std::string program = IDEMPOTENCY_SQLITE_WORKER) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    int in_fds[2];
    if (::pipe(in_fds) != 0) {
      ::close(fds[0]);
      ::close(fds[1]);
      throw std::runtime_error("pipe failed");
    }
    std::vector<std::string> argv_s;
    argv_s.emplace_back(std::move(program));
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // only async-signal-safe calls until exec
      ::dup2(fds[1], 1);
      ::dup2(in_fds[0], 0);
      ::close(fds[0]);
      ::close(fds[1]);
      ::close(in_fds[0]);
      ::close(in_fds[1]);
      if (as_nobody && (::setgid(65534) != 0 || ::setuid(65534) != 0)) ::_exit(126);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(fds[1]);
    ::close(in_fds[0]);
    out_ = fds[0];
    in_ = in_fds[1];
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL); // also ends a SIGSTOPped child
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
    if (in_ >= 0) ::close(in_);
  }

  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  // Writes one line to the child's stdin.
  void write_line(const std::string& line) {
    // a child that died already must fail the test, not kill it with SIGPIPE
    static const bool sigpipe_ignored = ::signal(SIGPIPE, SIG_IGN) != SIG_ERR;
    (void)sigpipe_ignored;
    const std::string text = line + "\n";
    std::size_t done = 0;
    while (done < text.size()) {
      const ssize_t n = ::write(in_, text.data() + done, text.size() - done);
      if (n <= 0) throw std::runtime_error("cannot write to the child");
      done += static_cast<std::size_t>(n);
    }
  }

  // One line of the child's stdout, or "" on EOF / timeout.
  std::string read_line(std::chrono::milliseconds timeout = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return {};
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return {};
      char chunk[256];
      const ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return {};
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  void kill9() { ::kill(pid_, SIGKILL); }

  // The raw wait status.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return status;
  }
  // The exit code, or -signal.
  int wait_exit_code() { return exit_code_of(wait()); }
  // The same, but a child still running after `timeout` is SIGKILLed (then -SIGKILL).
  int wait_exit_code_within(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    reaped_ = true;
    return exit_code_of(status);
  }
  static int exit_code_of(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return -1000;
  }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  int in_ = -1;
  bool reaped_ = false;
  std::string buffer_;
};

// ---------------------------------------------------------------------------------------------
// The conformance suite, with a manual clock (no sleeping).

struct SqliteHarness {
  using store_type = SqliteStore;
  TempDir dir_;
  idempotency::testing::ManualClock clock_;
  SqliteStore store_{dir_.file("conformance.db"), SqliteStoreOptions{.clock = wall(clock_)}};
  SqliteStore& store() { return store_; }
  [[nodiscard]] std::chrono::milliseconds unit() const { return 10ms; }
  void advance(std::chrono::milliseconds d) { clock_.advance(d); }
};

} // namespace

IDEMPOTENCY_STORE_CONFORMANCE("SqliteStore", SqliteHarness)

namespace {
int count_rows(RawDb& db, const std::string& table) {
  return std::stoi(db.one("SELECT count(*) FROM " + table));
}
} // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("SqliteStore: schema is created once, versioned, and survives reopening", "[sqlite]") {
  TempDir dir;
  const auto path = dir.file("schema.db");
  idempotency::testing::ManualClock clock;
  {
    SqliteStore store{path, {.clock = wall(clock)}};
    const auto c = store.claim("k", "fp", 10s);
    REQUIRE(c.acquired());
    REQUIRE(store.complete("k", c.token, "value", 1h));
  }
  RawDb raw(path);
  CHECK(raw.one("PRAGMA user_version") == std::to_string(SqliteStore::schema_version));
  CHECK(raw.one("PRAGMA journal_mode") == "wal");
  SqliteStore again{path, {.clock = wall(clock)}}; // reopening keeps the records
  const auto r = again.claim("k", "other", 10s);
  CHECK(r.status == ClaimStatus::completed);
  CHECK(r.payload == "value");
  CHECK(r.fingerprint == "fp");
}

TEST_CASE("SqliteStore: durability sets PRAGMA synchronous on every connection", "[sqlite]") {
  TempDir dir;
  const auto path = dir.file("durability.db");
  auto synchronous_of = [&](idempotency::SqliteDurability d) {
    SqliteStore store{path, {.durability = d}};
    const auto c = store.claim("k-" + std::to_string(static_cast<int>(d)), "", 10s);
    REQUIRE(c.acquired());
    std::string seen;
    REQUIRE(store.complete_in_transaction(
        "k-" + std::to_string(static_cast<int>(d)), c.token, 1h, [&](SqliteStore::transaction& tx) {
          sqlite3_stmt* s = nullptr;
          sqlite3_prepare_v2(tx.db(), "PRAGMA synchronous", -1, &s, nullptr);
          if (sqlite3_step(s) == SQLITE_ROW) seen = std::to_string(sqlite3_column_int(s, 0));
          sqlite3_finalize(s);
          return std::string("ok");
        }));
    return seen;
  };
  CHECK(synchronous_of(idempotency::SqliteDurability::normal) == "1");
  CHECK(synchronous_of(idempotency::SqliteDurability::full) == "2");
}

TEST_CASE("SqliteStore: purge_expired deletes expired records up to the limit", "[sqlite]") {
  TempDir dir;
  const auto path = dir.file("purge.db");
  idempotency::testing::ManualClock clock;
  SqliteStore store{path, {.clock = wall(clock), .purge_in_progress_after = 10min}};
  RawDb raw(path);
  for (int i = 0; i < 5; ++i) {
    const auto k = "done-" + std::to_string(i);
    const auto c = store.claim(k, "fp", 1min);
    REQUIRE(c.acquired());
    REQUIRE(store.complete(k, c.token, "v", 1s));
  }
  const auto live = store.claim("live", "fp", 1min);
  REQUIRE(live.acquired());
  REQUIRE(store.complete("live", live.token, "v", 1h));
  const auto held = store.claim("held", "fp", 1s);
  REQUIRE(held.acquired());

  CHECK(store.purge_expired(100) == 0); // nothing expired yet
  clock.advance(2s);
  CHECK(store.purge_expired(2) == 2); // the limit holds
  CHECK(store.purge_expired(100) == 3);
  CHECK(count_rows(raw, "idempotency_records") == 2); // "live" and "held" (lease passed, grace not)
  CHECK(store.complete("held", held.token, "late", 1s)); // a slow holder still records
  clock.advance(2s);
  CHECK(store.purge_expired(100) == 1);
  const auto stale = store.claim("stale", "fp", 1s);
  REQUIRE(stale.acquired());
  clock.advance(5min);
  CHECK(store.purge_expired(100) == 0); // in progress: kept during the grace period
  clock.advance(6min);
  CHECK(store.purge_expired(100) == 1);
  CHECK(raw.one("SELECT group_concat(CAST(key AS TEXT)) FROM idempotency_records") == "live");
  CHECK(store.purge_expired(0) == 0);
}

TEST_CASE("SqliteStore: transactional mode commits the operation's writes with the record",
          "[sqlite][transactional]") {
  TempDir dir;
  const auto path = dir.file("tx.db");
  idempotency::testing::ManualClock clock;
  SqliteStore store{path, {.clock = wall(clock)}};
  RawDb raw(path);
  raw.exec("CREATE TABLE ledger(key TEXT NOT NULL, amount INTEGER NOT NULL)");

  SECTION("an exception between the write and the commit leaves neither") {
    const auto c = store.claim("pay-1", "fp", 10s);
    REQUIRE(c.acquired());
    bool wrote = false;
    CHECK_THROWS_AS(
        store.complete_in_transaction("pay-1", c.token, 1h,
                                      [&](SqliteStore::transaction& tx) -> std::string {
                                        tx.exec("INSERT INTO ledger VALUES ('pay-1', 100)");
                                        wrote = tx.changes() == 1;
                                        throw std::runtime_error("card declined");
                                      }),
        std::runtime_error);
    CHECK(wrote); // the write really happened inside the transaction
    CHECK(count_rows(raw, "ledger") == 0);
    CHECK(store.claim("pay-1", "fp", 10s).status == ClaimStatus::in_progress);
    // the holder can still finish it, and then both are there
    CHECK(store.complete_in_transaction("pay-1", c.token, 1h, [](SqliteStore::transaction& tx) {
      tx.exec("INSERT INTO ledger VALUES ('pay-1', 100)");
      return std::string("receipt-1");
    }));
    CHECK(count_rows(raw, "ledger") == 1);
    const auto r = store.claim("pay-1", "fp", 10s);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "receipt-1");
  }

  SECTION("a stale token: the body is not run, nothing is written, the result is false") {
    const auto stale = store.claim("pay-2", "fp", 1s);
    REQUIRE(stale.acquired());
    clock.advance(2s);
    const auto fresh = store.claim("pay-2", "fp", 10s);
    REQUIRE(fresh.acquired());
    REQUIRE(fresh.took_over);
    int calls = 0;
    CHECK_FALSE(
        store.complete_in_transaction("pay-2", stale.token, 1h, [&](SqliteStore::transaction& tx) {
          ++calls;
          tx.exec("INSERT INTO ledger VALUES ('pay-2', 1)");
          return std::string("stale");
        }));
    CHECK(calls == 0);
    CHECK(count_rows(raw, "ledger") == 0);
    CHECK(store.claim("pay-2", "fp", 10s).status == ClaimStatus::in_progress);
  }

  SECTION("a body that ends the transaction itself is refused") {
    const auto c = store.claim("pay-3", "fp", 10s);
    REQUIRE(c.acquired());
    CHECK_THROWS_AS(store.complete_in_transaction("pay-3", c.token, 1h,
                                                  [](SqliteStore::transaction& tx) {
                                                    tx.exec("COMMIT");
                                                    return std::string("x");
                                                  }),
                    idempotency::StoreError);
    CHECK(store.claim("pay-3", "fp", 10s).status == ClaimStatus::in_progress);
    // the store is still usable afterwards
    CHECK(store.complete("pay-3", c.token, "done", 1h));
  }

  SECTION("a body that deletes its own record gets false and everything rolls back") {
    const auto c = store.claim("pay-4", "fp", 10s);
    REQUIRE(c.acquired());
    CHECK_FALSE(
        store.complete_in_transaction("pay-4", c.token, 1h, [](SqliteStore::transaction& tx) {
          tx.exec("INSERT INTO ledger VALUES ('pay-4', 1)");
          tx.exec("DELETE FROM idempotency_records WHERE CAST(key AS TEXT) = 'pay-4'");
          return std::string("x");
        }));
    CHECK(count_rows(raw, "ledger") == 0);
    CHECK(store.claim("pay-4", "fp", 10s).status == ClaimStatus::in_progress);
  }
}

TEST_CASE("SqliteStore: a SIGKILLed transaction leaves neither the write nor the record",
          "[sqlite][transactional][process]") {
  TempDir dir;
  const auto path = dir.file("tx-crash.db");
  SqliteStore store{path}; // real clock: the child uses it too
  RawDb raw(path);
  raw.exec("CREATE TABLE ledger(key TEXT NOT NULL, amount INTEGER NOT NULL)");

  constexpr auto lease = 1500ms;
  Child child({"tx-crash", path, "charge-7", std::to_string(lease.count())});
  const std::string line = child.read_line();
  REQUIRE(line.rfind("written ", 0) == 0);
  const auto stale = idempotency::Token::from_hex(line.substr(8));
  REQUIRE(stale.has_value());
  child.kill9();
  CHECK(child.wait_exit_code() == -SIGKILL);

  CHECK(count_rows(raw, "ledger") == 0);
  const auto seen = store.claim("charge-7", "fp", 10s);
  CHECK(seen.status != ClaimStatus::completed); // no record of a result either
  // after the lease a retry takes over and commits both
  auto deadline = std::chrono::steady_clock::now() + 20s;
  idempotency::ClaimResult mine = seen;
  while (!mine.acquired() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    mine = store.claim("charge-7", "fp", 10s);
  }
  REQUIRE(mine.acquired());
  CHECK(mine.took_over);
  CHECK_FALSE(store.complete("charge-7", *stale, "stale", 1h));
  CHECK(store.complete_in_transaction("charge-7", mine.token, 1h, [](SqliteStore::transaction& tx) {
    tx.exec("INSERT INTO ledger VALUES ('charge-7', 100)");
    return std::string("receipt-7");
  }));
  CHECK(count_rows(raw, "ledger") == 1);
  CHECK(store.claim("charge-7", "fp", 10s).payload == "receipt-7");
  CHECK(raw.one("PRAGMA integrity_check") == "ok");
}

TEST_CASE("SqliteStore: a process SIGKILLed while holding a claim is taken over after its lease",
          "[sqlite][process]") {
  TempDir dir;
  const auto path = dir.file("kill.db");
  SqliteStore store{path};
  constexpr auto lease = 2000ms;
  Child child({"hold", path, "job-1", std::to_string(lease.count())});
  const std::string line = child.read_line();
  REQUIRE(line.rfind("claimed ", 0) == 0);
  const auto stale = idempotency::Token::from_hex(line.substr(8));
  REQUIRE(stale.has_value());
  std::this_thread::sleep_for(100ms); // let it write other keys: the kill lands mid-work
  child.kill9();
  CHECK(child.wait_exit_code() == -SIGKILL);

  const auto during = store.claim("job-1", "fp", 10s);
  const auto killed_at = std::chrono::steady_clock::now();
  // still the dead holder's (its lease has not passed yet), unless the machine was very slow
  if (during.acquired())
    WARN("the lease had already passed when the parent looked");
  else
    CHECK(during.status == ClaimStatus::in_progress);
  idempotency::ClaimResult mine = during;
  while (!mine.acquired() && std::chrono::steady_clock::now() < killed_at + 20s) {
    std::this_thread::sleep_for(50ms);
    mine = store.claim("job-1", "fp", 10s);
  }
  REQUIRE(mine.acquired());
  CHECK(mine.took_over);
  CHECK(mine.token != *stale);
  CHECK_FALSE(store.complete("job-1", *stale, "from the dead", 1h));
  CHECK(store.complete("job-1", mine.token, "from the survivor", 1h));
  CHECK(store.claim("job-1", "fp", 10s).payload == "from the survivor");
  RawDb raw(path);
  CHECK(raw.one("PRAGMA integrity_check") == "ok");
}

TEST_CASE("SqliteStore: exactly once across 4 processes x 2 threads x 1,000 keys",
          "[sqlite][process]") {
  constexpr int processes = 4;
  constexpr int threads = 2;
  constexpr int keys = 1000;
  TempDir dir;
  const auto path = dir.file("shared.db");
  SqliteStore store{path}; // creates the schema before the children race
  RawDb raw(path);
  raw.exec("CREATE TABLE executions(key TEXT NOT NULL, value TEXT NOT NULL)");

  std::vector<std::unique_ptr<Child>> children;
  std::vector<std::string> outs;
  for (int p = 0; p < processes; ++p) {
    outs.push_back(dir.file("out-" + std::to_string(p) + ".txt"));
    children.push_back(std::make_unique<Child>(
        std::vector<std::string>{"exactly-once", path, std::to_string(keys),
                                 std::to_string(threads), std::to_string(p), outs.back()}));
  }
  std::vector<int> codes;
  for (auto& c : children) codes.push_back(c->wait_exit_code());
  for (int code : codes) REQUIRE(code == 0);

  // executions per key, from the side table the executing caller wrote
  std::map<std::string, std::vector<std::string>> executed;
  for (const auto& row : raw.rows("SELECT key, value FROM executions")) {
    const auto bar = row.find('|');
    executed[row.substr(0, bar)].push_back(row.substr(bar + 1));
  }
  CHECK(executed.size() == static_cast<std::size_t>(keys));
  int more_than_once = 0;
  for (const auto& [key, values] : executed)
    if (values.size() != 1) ++more_than_once;
  CHECK(more_than_once == 0);

  // every caller got the value of the one execution
  std::size_t answers = 0;
  int wrong = 0;
  std::map<std::string, std::set<std::string>> executors_seen;
  for (const auto& out : outs) {
    std::ifstream in(out);
    std::string idx;
    std::string value;
    while (in >> idx >> value) {
      ++answers;
      const auto it = executed.find("key-" + idx);
      if (it == executed.end() || it->second.front() != value) ++wrong;
    }
  }
  CHECK(answers == static_cast<std::size_t>(processes * threads * keys));
  CHECK(wrong == 0);
  // and the store replays exactly that value
  int replay_mismatch = 0;
  for (const auto& [key, values] : executed) {
    const auto r = store.claim(key, "fp", 10s);
    if (r.status != ClaimStatus::completed || r.payload != values.front()) ++replay_mismatch;
  }
  CHECK(replay_mismatch == 0);
  CHECK(raw.one("PRAGMA integrity_check") == "ok");
}

TEST_CASE("SqliteStore: bad input is a typed error and the file is left untouched",
          "[sqlite][bad-input]") {
  TempDir dir;

  SECTION("a file that is not a database") {
    const auto path = dir.file("notes.txt");
    std::string text;
    for (int i = 0; i < 200; ++i)
      text += "this is not an SQLite database, line " + std::to_string(i) + "\n";
    std::ofstream(path, std::ios::binary) << text;
    try {
      SqliteStore store{path};
      FAIL("opened a text file as a database");
    } catch (const idempotency::StoreError& e) {
      CHECK(e.code() == idempotency::errc::store_failure);
      CHECK(e.operation() == "open");
      CHECK(e.cause().find("not a database") != std::string::npos);
    }
    CHECK(read_file(path) == text);
  }

  SECTION("a schema from a newer version") {
    const auto path = dir.file("newer.db");
    {
      RawDb raw(path);
      raw.exec(
          "CREATE TABLE idempotency_records(key BLOB PRIMARY KEY, future_column TEXT);"
          "INSERT INTO idempotency_records VALUES (x'01', 'kept');"
          "PRAGMA user_version = 2;");
    }
    const std::string before = read_file(path);
    try {
      SqliteStore store{path};
      FAIL("opened a newer schema");
    } catch (const idempotency::StoreError& e) {
      CHECK(e.cause().find("newer") != std::string::npos);
    }
    CHECK(read_file(path) == before); // not even switched to WAL
    RawDb raw(path);
    CHECK(raw.one("PRAGMA user_version") == "2");
    CHECK(raw.one("SELECT future_column FROM idempotency_records") == "kept");
  }

  SECTION("a database whose user_version belongs to another application") {
    const auto path = dir.file("foreign.db");
    {
      RawDb raw(path);
      raw.exec("CREATE TABLE app(x); PRAGMA user_version = 1;");
    }
    const std::string before = read_file(path);
    CHECK_THROWS_AS(SqliteStore(path), idempotency::StoreError);
    CHECK(read_file(path) == before);
  }

  SECTION("an in-memory database is refused (every pooled connection would see another one)") {
    CHECK_THROWS_AS(SqliteStore(":memory:"), idempotency::StoreError);
  }

  SECTION("a read-only file") {
    const auto path = dir.file("readonly.db");
    {
      SqliteStore store{path};
      const auto c = store.claim("kept", "fp", 10s);
      REQUIRE(c.acquired());
      REQUIRE(store.complete("kept", c.token, "value", 1h));
    }
    REQUIRE_FALSE(fs::exists(path + "-wal")); // checkpointed on close
    const std::string before = read_file(path);
    ::chmod(path.c_str(), 0444);
    ::chmod(dir.path().c_str(), 0755);
    // root ignores file modes: open it as "nobody" in a child process then, running a copy of
    // the worker that "nobody" can reach (the build tree may sit below a directory it cannot
    // enter, such as /root)
    const bool as_nobody = ::geteuid() == 0;
    std::string program = IDEMPOTENCY_SQLITE_WORKER;
    if (as_nobody) {
      program = dir.file("sqlite_worker");
      fs::copy_file(IDEMPOTENCY_SQLITE_WORKER, program);
      fs::permissions(program, fs::perms::owner_all | fs::perms::group_read |
                                   fs::perms::group_exec | fs::perms::others_read |
                                   fs::perms::others_exec);
    }
    Child child({"open", path}, as_nobody, program);
    const std::string message = child.read_line();
    CHECK(child.wait_exit_code() == 0); // 0: StoreError, 3: it opened
    CHECK(message.find("read-only") != std::string::npos);
    CHECK(read_file(path) == before);
    ::chmod(path.c_str(), 0644);
    SqliteStore store{path};
    CHECK(store.claim("kept", "fp", 10s).payload == "value");
  }
}

#if defined(IDEMPOTENCY_TEST_HAVE_EXECUTOR)
TEST_CASE("SqliteStore: the executor's transactional form runs once and replays",
          "[sqlite][executor]") {
  TempDir dir;
  const auto path = dir.file("executor.db");
  SqliteStore store{path};
  RawDb raw(path);
  raw.exec("CREATE TABLE ledger(key TEXT NOT NULL, amount INTEGER NOT NULL)");
  idempotency::IdempotencyExecutor exec{store, {.result_ttl = 1h, .lease = 60s}};

  int runs = 0;
  auto charge = [&](SqliteStore::transaction& tx) {
    ++runs;
    tx.exec("INSERT INTO ledger VALUES ('order-1', 250)");
    return std::string("receipt-for-order-1");
  };
  const auto first = exec.execute_in_transaction_outcome("order-1", {}, charge);
  const auto second = exec.execute_in_transaction_outcome("order-1", {}, charge);
  CHECK_FALSE(first.replayed);
  CHECK(second.replayed);
  CHECK(first.value == "receipt-for-order-1");
  CHECK(second.value == first.value);
  CHECK(runs == 1);
  CHECK(count_rows(raw, "ledger") == 1);

  // an exception rolls the write back and releases the key: the retry runs again
  int attempts = 0;
  auto flaky = [&](SqliteStore::transaction& tx) -> int {
    tx.exec("INSERT INTO ledger VALUES ('order-2', 99)");
    if (++attempts == 1) throw std::runtime_error("network blip");
    return 42;
  };
  CHECK_THROWS_AS(exec.execute_in_transaction("order-2", flaky), std::runtime_error);
  CHECK(raw.one("SELECT count(*) FROM ledger WHERE key = 'order-2'") == "0");
  CHECK(exec.execute_in_transaction("order-2", flaky) == 42);
  CHECK(exec.execute_in_transaction("order-2", flaky) == 42);
  CHECK(attempts == 2);
  CHECK(raw.one("SELECT count(*) FROM ledger WHERE key = 'order-2'") == "1");
}
#endif

// ---------------------------------------------------------------------------------------------
// Transitions are idempotent per token (design §2): a complete / fail re-sent after its reply
// was lost answers true, and changes nothing.

namespace {
// state | token | payload | expires_at of `key`, as stored
std::string stored_record(RawDb& raw, const std::string& key) {
  return raw.one(
      "SELECT quote(state), lower(hex(token)), quote(payload), quote(expires_at)"
      " FROM idempotency_records"
      " WHERE CAST(key AS TEXT) = '" +
      key + "'");
}
} // namespace

TEST_CASE("SqliteStore: complete and fail are idempotent per token", "[sqlite][transitions]") {
  TempDir dir;
  const auto path = dir.file("idempotent.db");
  idempotency::testing::ManualClock clock;
  SqliteStore store{path, {.clock = wall(clock)}};
  RawDb raw(path);

  SECTION("complete re-sent with the same token: true, payload and expiry stay as first written") {
    const auto c = store.claim("k", "fp", 10s);
    REQUIRE(c.acquired());
    REQUIRE(store.complete("k", c.token, "first", 1h));
    const std::string first = stored_record(raw, "k");
    CHECK(first.rfind("1|" + c.token.to_hex() + "|", 0) == 0); // the finisher's token is kept
    clock.advance(5s);
    CHECK(store.complete("k", c.token, "second", 2h));
    CHECK(stored_record(raw, "k") == first);
    const auto r = store.claim("k", "fp", 10s);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "first");
    // the other transition with the same token, and every transition of another token: false
    CHECK_FALSE(store.fail("k", c.token, "error", 1h));
    CHECK_FALSE(store.release("k", c.token));
    CHECK_FALSE(store.renew("k", c.token, 10s));
    CHECK_FALSE(store.complete("k", idempotency::Token::random(), "other", 1h));
    CHECK_FALSE(store.fail("k", idempotency::Token::random(), "other", 1h));
    CHECK(stored_record(raw, "k") == first);
    // the transactional form still needs the record in progress: the body is not run
    int calls = 0;
    CHECK_FALSE(store.complete_in_transaction("k", c.token, 1h, [&](SqliteStore::transaction&) {
      ++calls;
      return std::string("tx");
    }));
    CHECK(calls == 0);
    CHECK(stored_record(raw, "k") == first);
  }

  SECTION("fail re-sent with the same token: true, the error and expiry stay as first written") {
    const auto c = store.claim("f", "fp", 10s);
    REQUIRE(c.acquired());
    REQUIRE(store.fail("f", c.token, "boom", 1h));
    const std::string first = stored_record(raw, "f");
    CHECK(first.rfind("2|" + c.token.to_hex() + "|", 0) == 0);
    clock.advance(5s);
    CHECK(store.fail("f", c.token, "boom again", 2h));
    CHECK(stored_record(raw, "f") == first);
    CHECK_FALSE(store.complete("f", c.token, "value", 1h));
    CHECK_FALSE(store.fail("f", idempotency::Token::random(), "other", 1h));
    CHECK(stored_record(raw, "f") == first);
    const auto r = store.claim("f", "fp", 10s);
    CHECK(r.status == ClaimStatus::failed);
    CHECK(r.payload == "boom");
  }

  SECTION("a token whose record was taken over and finished by another stays lost") {
    const auto stale = store.claim("t", "fp", 1s);
    REQUIRE(stale.acquired());
    clock.advance(2s);
    const auto fresh = store.claim("t", "fp", 10s);
    REQUIRE(fresh.acquired());
    REQUIRE(store.complete("t", fresh.token, "fresh", 1h));
    CHECK_FALSE(store.complete("t", stale.token, "stale", 1h));
    CHECK_FALSE(store.fail("t", stale.token, "stale", 1h));
    CHECK(store.complete("t", fresh.token, "fresh again", 1h));
    CHECK(store.claim("t", "fp", 10s).payload == "fresh");
  }
}

// ---------------------------------------------------------------------------------------------
// Faults. Each is a typed error, nothing acknowledged is lost, and every call ends in bounded
// time.

namespace {

// "operation: cause" of the StoreError that `f` threw, or what happened instead.
template <class F>
std::string store_error_of(F&& f) {
  try {
    f();
  } catch (const idempotency::StoreError& e) {
    return e.operation() + ": " + e.cause();
  } catch (const std::exception& e) {
    return std::string("not a StoreError: ") + e.what();
  }
  return "no exception";
}

// what() of the CorruptRecordError that `f` threw, or what happened instead.
template <class F>
std::string corrupt_error_of(F&& f) {
  try {
    f();
  } catch (const idempotency::CorruptRecordError& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("not a CorruptRecordError: ") + e.what();
  }
  return "no exception";
}

// A closed store database at `path` holding one completed record, `key`.
void make_store_file(const std::string& path, const std::string& key) {
  SqliteStore other{path};
  const auto c = other.claim(key, "fp", 10s);
  REQUIRE(c.acquired());
  REQUIRE(other.complete(key, c.token, "from the other file", 1h));
}

} // namespace

// EXPR must throw StoreError of operation OP saying that the file was deleted or replaced.
#define CHECK_MOVED(op, expr)                                                                  \
  do {                                                                                         \
    const std::string moved_error_ = store_error_of([&] { (void)(expr); });                    \
    INFO(#expr << " -> " << moved_error_);                                                     \
    CHECK(moved_error_.rfind(std::string(op) + ": ", 0) == 0);                                 \
    CHECK(moved_error_.find("deleted or replaced under the open store") != std::string::npos); \
  } while (false)

TEST_CASE("SqliteStore: a database file deleted under the open store is never served",
          "[sqlite][moved]") {
  TempDir dir;
  const auto path = dir.file("deleted.db");
  std::size_t idle = 16;
  SECTION("pooled connections") {}
  SECTION("a new connection for every call") { idle = 0; }

  SqliteStore a{path, {.max_idle_connections = idle}};
  const auto before = a.claim("before", "fp", 10s);
  REQUIRE(before.acquired());
  REQUIRE(a.complete("before", before.token, "acknowledged", 1h));
  const auto pending = a.claim("pending", "fp", 10s);
  REQUIRE(pending.acquired());

  REQUIRE(::unlink(path.c_str()) == 0); // `rm deleted.db` while the store runs

  CHECK_MOVED("claim", a.claim("after", "fp", 10s));
  CHECK_MOVED("complete", a.complete("pending", pending.token, "late", 1h));
  CHECK_MOVED("fail", a.fail("pending", pending.token, "late", 1h));
  CHECK_MOVED("release", a.release("pending", pending.token));
  CHECK_MOVED("renew", a.renew("pending", pending.token, 10s));
  CHECK_MOVED("claim", a.claim("before", "fp", 10s)); // not even a replay
  CHECK_MOVED("purge_expired", a.purge_expired(10));
  CHECK_MOVED("complete_in_transaction",
              a.complete_in_transaction("pending", pending.token, 1h,
                                        [](SqliteStore::transaction&) { return std::string(); }));
  CHECK_FALSE(fs::exists(path)); // and no connection created a new file on the path

  // A store opened on the path afterwards starts a new file: none of the claims the first store
  // was asked for after the unlink is there as completed (none was acknowledged either), and
  // the first store keeps refusing: it never reopens on its own.
  SqliteStore b{path};
  const auto again = b.claim("after", "fp", 10s);
  CHECK(again.acquired());
  CHECK(b.complete("after", again.token, "from b", 1h));
  CHECK_MOVED("claim", a.claim("after", "fp", 10s));
  CHECK(b.claim("after", "fp", 10s).payload == "from b");
}

TEST_CASE("SqliteStore: a database file replaced under the open store is never served",
          "[sqlite][moved]") {
  TempDir dir;
  const auto path = dir.file("replaced.db");
  std::size_t idle = 16;
  SECTION("pooled connections") {}
  SECTION("a new connection for every call (it would open the new file)") { idle = 0; }

  SqliteStore a{path, {.max_idle_connections = idle}};
  const auto c = a.claim("k", "fp", 10s);
  REQUIRE(c.acquired());
  const auto replacement = dir.file("replacement.db");
  make_store_file(replacement, "other"); // a valid store file with a record of its own
  REQUIRE(::rename(replacement.c_str(), path.c_str()) == 0);

  CHECK_MOVED("complete", a.complete("k", c.token, "v", 1h));
  CHECK_MOVED("claim", a.claim("other", "fp", 10s)); // the new file's records are not served
  CHECK_MOVED("claim", a.claim("k", "fp", 10s));
}

TEST_CASE("SqliteStore: once its file was moved the store stays failed even when it comes back",
          "[sqlite][moved]") {
  TempDir dir;
  const auto path = dir.file("moved.db");
  const auto away = dir.file("moved-away.db");
  SqliteStore a{path};
  const auto kept = a.claim("kept", "fp", 10s);
  REQUIRE(kept.acquired());
  REQUIRE(a.complete("kept", kept.token, "acknowledged", 1h));
  const auto pending = a.claim("pending", "fp", 10s);
  REQUIRE(pending.acquired());

  REQUIRE(::rename(path.c_str(), away.c_str()) == 0);
  CHECK_MOVED("claim", a.claim("x", "fp", 10s));
  REQUIRE(::rename(away.c_str(), path.c_str()) == 0); // the very same file is back
  CHECK_MOVED("claim", a.claim("x", "fp", 10s));
  CHECK_MOVED("complete", a.complete("pending", pending.token, "late", 1h));

  // a new store on the file has everything that was acknowledged, and nothing else
  SqliteStore b{path};
  const auto r = b.claim("kept", "fp", 10s);
  CHECK(r.status == ClaimStatus::completed);
  CHECK(r.payload == "acknowledged");
  CHECK(b.claim("pending", "fp", 10s).status == ClaimStatus::in_progress);
  CHECK(b.claim("x", "fp", 10s).acquired());
  RawDb raw(path);
  CHECK(raw.one("PRAGMA integrity_check") == "ok");
}

TEST_CASE("SqliteStore: a write whose file is replaced after the checkout is not acknowledged",
          "[sqlite][moved]") {
  // The store reads its clock after the connection was checked out (and checked) and before the
  // statement runs. A clock that renames another file over the path on its armed call puts the
  // move exactly between the checkout check and the write: the write lands in the replaced file
  // and only the check after the write can catch it.
  TempDir dir;
  const auto path = dir.file("race.db");
  const auto replacement = dir.file("replacement.db");
  make_store_file(replacement, "other");
  std::atomic<bool> armed{false};
  std::atomic<bool> move_failed{false};
  auto clock = [&] {
    if (armed.exchange(false) && ::rename(replacement.c_str(), path.c_str()) != 0)
      move_failed = true;
    return std::chrono::system_clock::now();
  };
  SqliteStore a{path, {.clock = clock}};

  SECTION("complete") {
    const auto c = a.claim("k", "fp", 10s);
    REQUIRE(c.acquired());
    armed = true;
    CHECK_MOVED("complete", a.complete("k", c.token, "v", 1h));
  }
  SECTION("fail") {
    const auto c = a.claim("k", "fp", 10s);
    REQUIRE(c.acquired());
    armed = true;
    CHECK_MOVED("fail", a.fail("k", c.token, "error", 1h));
  }
  SECTION("claim") {
    armed = true;
    CHECK_MOVED("claim", a.claim("k", "fp", 10s));
  }
  CHECK_FALSE(armed); // the clock was read, so the file moved inside the call
  CHECK_FALSE(move_failed);
  CHECK_MOVED("claim", a.claim("k2", "fp", 10s));
}

TEST_CASE("SqliteStore: a file made read-only under a running store",
          "[sqlite][process][readonly]") {
  TempDir dir;
  const auto path = dir.file("readonly.db");
  // root ignores file modes: run the stores as "nobody" then, in a directory it owns, with a
  // copy of the worker it can reach (as the "a read-only file" section above does)
  const bool as_nobody = ::geteuid() == 0;
  std::string program = IDEMPOTENCY_SQLITE_WORKER;
  if (as_nobody) {
    program = dir.file("sqlite_worker");
    fs::copy_file(IDEMPOTENCY_SQLITE_WORKER, program);
    fs::permissions(program, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                                 fs::perms::others_read | fs::perms::others_exec);
    REQUIRE(::chown(dir.path().c_str(), 65534, 65534) == 0);
  }
  Child child({"readonly-midway", path}, as_nobody, program);
  std::vector<std::string> acked;
  std::vector<std::string> store_errors;
  std::vector<std::string> other;
  auto take = [&](const std::string& line) {
    if (line.rfind("acked ", 0) == 0)
      acked.push_back(line.substr(6));
    else if (line.rfind("store-error ", 0) == 0)
      store_errors.push_back(line.substr(12));
    else
      other.push_back(line);
  };
  std::string line;
  while (!(line = child.read_line()).empty() && line != "ready") take(line);
  REQUIRE(line == "ready");
  for (const char* suffix : {"", "-wal", "-shm"})
    if (fs::exists(path + suffix)) REQUIRE(::chmod((path + suffix).c_str(), 0444) == 0);
  child.write_line("go");
  while (!(line = child.read_line()).empty() && line != "done") take(line);
  CHECK(line == "done");
  CHECK(child.wait_exit_code_within(30s) == 0);

  std::string reported;
  for (const auto& l : other) reported += l + "\n";
  for (const auto& l : store_errors) reported += "store-error " + l + "\n";
  INFO("the child reported:\n" << reported);
  CHECK(other.empty());
  REQUIRE(store_errors.size() == 2);
  CHECK(store_errors[0].rfind("claim: ", 0) == 0);
  CHECK(store_errors[1].rfind("complete: ", 0) == 0);
  // the store's own check of a new connection ("… read-only for this process …"), or SQLite's
  // "attempt to write a readonly database" when only the -wal the connection opens is read-only
  for (const auto& e : store_errors)
    CHECK((e.find("read-only") != std::string::npos || e.find("readonly") != std::string::npos));
  CHECK(acked == std::vector<std::string>{"pooled-before", "fresh-before", "pooled-after"});

  // nothing acknowledged is lost; what was refused is not there
  for (const char* suffix : {"", "-wal", "-shm"})
    if (fs::exists(path + suffix)) ::chmod((path + suffix).c_str(), 0644);
  SqliteStore store{path};
  for (const auto& key : acked) {
    INFO(key);
    const auto r = store.claim(key, "fp", 10s);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "value-" + key);
  }
  CHECK(store.claim("pending", "fp", 10s).status == ClaimStatus::in_progress);
  CHECK(store.claim("fresh-after", "fp", 10s).acquired());
  RawDb raw(path);
  CHECK(raw.one("PRAGMA integrity_check") == "ok");
}

namespace {

std::string full_disk_payload(int i) {
  std::string p(64 * 1024, static_cast<char>('a' + i % 26));
  const std::string tag = "payload-" + std::to_string(i) + "-";
  p.replace(0, tag.size(), tag);
  return p;
}

void write_all(int fd, const std::string& text) {
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

// The forked child of the disk-full test: runs in the test's process image, reports through
// `out`, never returns.
[[noreturn]] void disk_full_child(const std::string& path, std::uintmax_t limit, int out) {
  auto put = [out](const std::string& line) { write_all(out, line + "\n"); };
  ::signal(SIGXFSZ, SIG_IGN); // writes past the limit fail with EFBIG instead of killing us
  const rlimit rl{static_cast<rlim_t>(limit), static_cast<rlim_t>(limit)};
  if (::setrlimit(RLIMIT_FSIZE, &rl) != 0) {
    put("other setrlimit failed");
    ::_exit(3);
  }
  try {
    SqliteStore store{path};
    int store_errors = 0;
    for (int i = 0; i < 2000 && store_errors < 3; ++i) {
      const std::string key = "full-" + std::to_string(i);
      try {
        const auto c = store.claim(key, "fp", 1h);
        if (!c.acquired()) {
          put("other the claim of " + key + " was not acquired");
          break;
        }
        if (!store.complete(key, c.token, full_disk_payload(i), 1h)) {
          put("other complete of " + key + " returned false");
          break;
        }
        put("ack " + std::to_string(i));
      } catch (const idempotency::StoreError& e) {
        ++store_errors;
        put("store-error " + e.operation() + ": " + e.cause());
      }
    }
  } catch (const idempotency::StoreError& e) { // opening or closing
    put("store-error " + e.operation() + ": " + e.cause());
  } catch (const std::exception& e) {
    put(std::string("other ") + e.what());
  } catch (...) {
    put("other: an exception of unknown type");
  }
  put("end");
  ::_exit(0);
}

} // namespace

TEST_CASE("SqliteStore: a full disk is a StoreError and every acknowledged result survives",
          "[sqlite][process][disk-full]") {
  TempDir dir;
  const auto path = dir.file("full.db");
  {
    SqliteStore seed{path};
    const auto c = seed.claim("seed", "fp", 1h);
    REQUIRE(c.acquired());
    REQUIRE(seed.complete("seed", c.token, full_disk_payload(1000), 1h));
  }
  auto size_of = [](const std::string& p) -> std::uintmax_t {
    std::error_code ec;
    const auto n = fs::file_size(p, ec);
    return ec ? 0 : n;
  };
  // room for a few 64 KiB results, then every write past it fails (EFBIG, as on a full disk)
  const std::uintmax_t limit = size_of(path) + size_of(path + "-wal") + 384 * 1024;

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    disk_full_child(path, limit, fds[1]);
  }
  ::close(fds[1]);
  // killed and reaped whatever happens below
  struct Reaper {
    pid_t pid;
    int fd;
    bool reaped = false;
    ~Reaper() {
      ::close(fd);
      if (!reaped) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
    }
  } reaper{pid, fds[0]};

  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + 120s;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left <= 0ms) break;
    pollfd p{fds[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) break;
    char chunk[4096];
    const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n <= 0) break; // EOF: the child is gone
    text.append(chunk, static_cast<std::size_t>(n));
  }
  int status = 0;
  ::kill(pid, SIGKILL); // no-op when it exited; ends it when the deadline passed
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  reaper.reaped = true;
  CHECK(Child::exit_code_of(status) == 0); // exited normally: no crash

  std::vector<int> acked;
  std::vector<std::string> store_errors;
  std::vector<std::string> other;
  bool ended = false;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("ack ", 0) == 0)
      acked.push_back(std::stoi(line.substr(4)));
    else if (line.rfind("store-error ", 0) == 0)
      store_errors.push_back(line.substr(12));
    else if (line == "end")
      ended = true;
    else
      other.push_back(line);
  }
  INFO("the child reported:\n" << text);
  CHECK(ended);
  CHECK(other.empty()); // nothing but StoreError was thrown
  CHECK_FALSE(store_errors.empty());
  CHECK_FALSE(acked.empty()); // the limit left room for some

  SqliteStore store{path};
  int replayed = 0;
  for (const int i : acked) {
    const auto r = store.claim("full-" + std::to_string(i), "fp", 1h);
    if (r.status == ClaimStatus::completed && r.payload == full_disk_payload(i)) ++replayed;
  }
  CHECK(replayed == static_cast<int>(acked.size()));
  const auto seed = store.claim("seed", "fp", 1h);
  CHECK(seed.payload == full_disk_payload(1000));
  RawDb raw(path);
  CHECK(raw.one("PRAGMA integrity_check") == "ok");
}

TEST_CASE("SqliteStore: a lock held by a stopped process is a StoreError after busy_timeout",
          "[sqlite][process][bounded]") {
  TempDir dir;
  const auto path = dir.file("stopped.db");
  constexpr auto busy = 300ms;
  SqliteStore store{path, {.busy_timeout = busy}};
  const auto held = store.claim("held", "fp", 1h);
  REQUIRE(held.acquired());

  Child holder({"lock", path}); // its destructor SIGKILLs (also when stopped) and reaps it
  REQUIRE(holder.read_line() == "locked");
  REQUIRE(::kill(holder.pid(), SIGSTOP) == 0);
  int status = 0;
  REQUIRE(::waitpid(holder.pid(), &status, WUNTRACED) == holder.pid());
  REQUIRE(WIFSTOPPED(status));

  auto timed_error = [&](auto&& call) {
    const auto start = std::chrono::steady_clock::now();
    std::string error = store_error_of(call);
    return std::make_pair(std::move(error), std::chrono::steady_clock::now() - start);
  };
  const auto [claim_error, claim_took] = timed_error([&] { (void)store.claim("k", "fp", 10s); });
  INFO("claim -> " << claim_error);
  CHECK(claim_error.rfind("claim: ", 0) == 0);
  CHECK(claim_error.find("locked") != std::string::npos);
  CHECK(claim_took >= busy - 50ms); // it waited for the lock (the busy timeout) …
  CHECK(claim_took < busy + 2s);    // … and no longer
  const auto [complete_error, complete_took] =
      timed_error([&] { (void)store.complete("held", held.token, "done", 1h); });
  INFO("complete -> " << complete_error);
  CHECK(complete_error.rfind("complete: ", 0) == 0);
  CHECK(complete_error.find("locked") != std::string::npos);
  CHECK(complete_took < busy + 2s);

  // the lock goes with the holder: the same calls work again
  REQUIRE(::kill(holder.pid(), SIGCONT) == 0);
  holder.kill9();
  CHECK(holder.wait_exit_code_within(30s) == -SIGKILL);
  CHECK(store.claim("k", "fp", 10s).acquired());
  CHECK(store.complete("held", held.token, "done", 1h));
  CHECK(store.claim("held", "fp", 10s).payload == "done");
}

TEST_CASE("SqliteStore: a record with a garbage state or expiry is CorruptRecordError",
          "[sqlite][corrupt]") {
  TempDir dir;
  const auto path = dir.file("garbage.db");
  idempotency::testing::ManualClock clock;
  SqliteStore store{path, {.clock = wall(clock)}};
  RawDb raw(path);
  struct Variant {
    const char* name;
    const char* set; // the raw UPDATE's SET clause
    bool finished;   // completed before the damage
    bool state;      // the state is damaged (else the expiry)
  };
  const std::vector<Variant> variants{
      {"text state, in progress", "state = 'garbage'", false, true},
      {"text state, completed", "state = 'garbage'", true, true},
      {"real state", "state = 1.5", true, true},
      {"blob state", "state = x'00'", false, true},
      {"out-of-range state", "state = 7", false, true},
      {"negative state", "state = -1", true, true},
      {"text expires_at, in progress", "expires_at = 'garbage'", false, false},
      {"text expires_at, completed", "expires_at = 'garbage'", true, false},
      {"real expires_at", "expires_at = expires_at + 0.5", true, false},
      {"blob expires_at", "expires_at = x'01'", false, false},
  };
  int n = 0;
  for (const auto& v : variants) {
    const std::string key = "garbage-" + std::to_string(n++);
    INFO(v.name << " (" << key << ")");
    const auto c = store.claim(key, "fp", 10s);
    REQUIRE(c.acquired());
    if (v.finished) REQUIRE(store.complete(key, c.token, "payload", 1h));
    raw.exec(std::string("UPDATE idempotency_records SET ") + v.set +
             " WHERE CAST(key AS TEXT) = '" + key + "'");
    const std::string damaged = stored_record(raw, key);
    for (int attempt = 0; attempt < 2; ++attempt) { // a retry gets the same answer
      const std::string error = corrupt_error_of([&] { (void)store.claim(key, "fp", 10s); });
      INFO(error);
      CHECK(error.rfind("[idempotency.corrupt_record]", 0) == 0);
      CHECK(error.find("'" + key + "'") != std::string::npos);
    }
    CHECK(stored_record(raw, key) == damaged); // nothing overwritten
    // no transition applies to a damaged state, not even with the token that wrote the record
    // (the holder of an in-progress record with a damaged expiry may still finish it: that
    // writes a valid expiry)
    if (v.state) {
      CHECK_FALSE(store.complete(key, c.token, "over the garbage", 1h));
      CHECK_FALSE(store.fail(key, c.token, "over the garbage", 1h));
      CHECK(stored_record(raw, key) == damaged);
    }
  }
}

TEST_CASE("SqliteStore: a NULL state or expiry (a table made without NOT NULL) is corrupt",
          "[sqlite][corrupt]") {
  TempDir dir;
  const auto path = dir.file("nulls.db");
  {
    // the same schema, minus the NOT NULL constraints (another tool's doing)
    RawDb raw(path);
    raw.exec(
        "CREATE TABLE idempotency_records (key BLOB PRIMARY KEY NOT NULL, state INTEGER,"
        " token BLOB, fingerprint BLOB NOT NULL, payload BLOB, expires_at INTEGER,"
        " prev_state INTEGER) WITHOUT ROWID;"
        "CREATE INDEX idempotency_records_expires ON idempotency_records(expires_at);"
        "PRAGMA user_version = 1;");
  }
  idempotency::testing::ManualClock clock;
  SqliteStore store{path, {.clock = wall(clock)}};
  RawDb raw(path);
  for (const char* column : {"state", "expires_at"}) {
    const std::string key = std::string("null-") + column;
    INFO(key);
    const auto c = store.claim(key, "fp", 10s);
    REQUIRE(c.acquired());
    raw.exec(std::string("UPDATE idempotency_records SET ") + column +
             " = NULL WHERE CAST(key AS TEXT) = '" + key + "'");
    const std::string error = corrupt_error_of([&] { (void)store.claim(key, "fp", 10s); });
    INFO(error);
    CHECK(error.rfind("[idempotency.corrupt_record]", 0) == 0);
    CHECK(error.find("'" + key + "'") != std::string::npos);
  }
}

TEST_CASE("SqliteStore: 'forever' durations saturate instead of wrapping into the past",
          "[sqlite]") {
  // before: now + Ms::max() overflowed, so a "forever" lease or TTL was already expired
  TempDir dir;
  SqliteStore store{dir.file("forever.db")};
  const auto forever = std::chrono::milliseconds::max();
  const auto c = store.claim("lease", "fp", forever);
  REQUIRE(c.acquired());
  CHECK(store.claim("lease", "fp", 1s).status == ClaimStatus::in_progress);
  CHECK(store.renew("lease", c.token, forever));
  CHECK(store.claim("lease", "fp", 1s).status == ClaimStatus::in_progress);
  CHECK(store.complete("lease", c.token, "v", forever));
  const auto r = store.claim("lease", "fp", 1s);
  CHECK(r.status == ClaimStatus::completed);
  CHECK(r.payload == "v");
  CHECK(store.purge_expired(100) == 0);
}

TEST_CASE("SqliteStore: execute_in_transaction applies the same policies as execute",
          "[sqlite][executor]") {
  TempDir dir;
  const auto path = dir.file("policies.db");
  SqliteStore store{path, {.busy_timeout = 200ms}};
  RawDb raw(path);
  raw.exec("CREATE TABLE ledger(key TEXT NOT NULL, amount INTEGER NOT NULL)");
  using idempotency::OnException;
  using idempotency::OnResult;

  SECTION(
      "classify_result release: the writes roll back, the key is released, the caller "
      "gets the value") {
    idempotency::IdempotencyExecutor exec{store, {.classify_result = [](const nlohmann::json& j) {
                                            return j.get<int>() >= 500 ? OnResult::release
                                                                       : OnResult::record;
                                          }}};
    int runs = 0;
    auto op = [&](SqliteStore::transaction& tx) {
      ++runs;
      tx.exec("INSERT INTO ledger VALUES ('k', 1)");
      return runs == 1 ? 503 : 201;
    };
    CHECK(exec.execute_in_transaction("k", op) == 503);
    CHECK(count_rows(raw, "ledger") == 0);
    const auto second = exec.execute_in_transaction_outcome("k", {}, op);
    CHECK_FALSE(second.replayed); // before: the 503 was recorded and replayed
    CHECK(second.value == 201);
    CHECK(runs == 2);
    CHECK(count_rows(raw, "ledger") == 1);
  }

  SECTION("remember: a result over max_payload is not remembered as the operation's failure") {
    idempotency::IdempotencyExecutor exec{
        store, {.on_exception = OnException::remember, .max_payload = 16}};
    int runs = 0;
    auto op = [&](SqliteStore::transaction& tx) {
      tx.exec("INSERT INTO ledger VALUES ('big', 1)");
      return std::string(++runs == 1 ? 64 : 4, 'x');
    };
    CHECK_THROWS_AS(exec.execute_in_transaction("big", op), idempotency::PayloadTooLargeError);
    CHECK(count_rows(raw, "ledger") == 0);
    // before: ReplayedFailureError for an hour
    CHECK(exec.execute_in_transaction("big", op) == "xxxx");
    CHECK(runs == 2);
  }

  SECTION("remember: a store failure before the body ran is not the operation's failure") {
    // once the claim is made, another connection takes the write lock: the transaction's
    // BEGIN IMMEDIATE then times out before the body runs
    struct LockAfterClaim final : idempotency::Observer {
      RawDb* holder = nullptr;
      bool armed = true;
      void on_event(const idempotency::ObserverEvent& e) override {
        if (armed && e.event == idempotency::Event::claimed) {
          armed = false;
          holder->exec("BEGIN IMMEDIATE");
        }
      }
    };
    RawDb holder(path);
    LockAfterClaim lock;
    lock.holder = &holder;
    idempotency::testing::ManualClock clock;
    SqliteStore clocked{path, {.busy_timeout = 200ms, .clock = wall(clock)}};
    idempotency::IdempotencyExecutor exec{
        clocked, {.lease = 10s, .on_exception = OnException::remember, .observer = &lock}};
    int runs = 0;
    auto op = [&](SqliteStore::transaction& tx) {
      ++runs;
      tx.exec("INSERT INTO ledger VALUES ('locked', 1)");
      return 7;
    };
    CHECK_THROWS_AS(exec.execute_in_transaction("locked", op), idempotency::StoreError);
    CHECK(runs == 0);
    holder.exec("ROLLBACK");
    // the release met the same lock, so the key waits out its lease (never a remembered
    // failure: before, retries got ReplayedFailureError for an hour)
    try {
      (void)exec.execute_in_transaction("locked", op);
    } catch (const idempotency::InProgressError&) {
      clock.advance(11s);
    }
    CHECK(exec.execute_in_transaction("locked", op) == 7);
    CHECK(runs == 1);
    CHECK(count_rows(raw, "ledger") == 1);
  }
}
