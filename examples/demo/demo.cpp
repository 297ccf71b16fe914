// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// The idempotency demo: a payment service over a lossy network.
//
// Several client processes send charges to a payment "service". The network drops responses
// at random AFTER the service ran, so a client cannot tell "never arrived" from "done, reply
// lost" and retries with the same idempotency key. Run once with the library (the service wraps
// the charge in IdempotencyExecutor over one SQLite file that every process shares) and once
// without it. Every charge appends a row to the `ledger` table in that same file; the table is
// counted at the end, so executions and duplicates are measured, not assumed.
//
//   idempotency_demo [--clients N] [--requests N] [--loss P] [--seed S] [--transactional]
#include <idempotency/idempotency.hpp>
#include <idempotency/stores/sqlite_store.hpp>

#include <sqlite3.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

struct Config {
  int clients = 4;
  int requests = 250;
  double loss = 0.3;
  std::uint64_t seed = 2026;
  bool transactional = false;
};

// What one client process saw, sent back to the parent through a pipe.
struct ClientCounts {
  long requests = 0;
  long attempts = 0;
  long lost_responses = 0;
  long replays = 0;
  long failures = 0;
};

struct RunResult {
  ClientCounts clients;
  long executions = 0;       // ledger rows
  long duplicates = 0;       // ledger rows beyond one per request
  long double_charged = 0;   // cents charged more than once
  long distinct_charged = 0; // requests with at least one ledger row
};

[[noreturn]] void usage(const char* argv0, const std::string& problem) {
  std::fprintf(stderr,
               "%s\nusage: %s [--clients N (1..64)] [--requests N (1..100000)] [--loss P (0..1)]"
               " [--seed S] [--transactional]\n",
               problem.c_str(), argv0);
  std::exit(2);
}

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(argv[0], "missing value after " + std::string(a));
      return argv[++i];
    };
    try {
      if (a == "--clients")
        c.clients = std::stoi(value());
      else if (a == "--requests")
        c.requests = std::stoi(value());
      else if (a == "--loss")
        c.loss = std::stod(value());
      else if (a == "--seed")
        c.seed = std::stoull(value());
      else if (a == "--transactional")
        c.transactional = true;
      else if (a == "--help" || a == "-h")
        usage(argv[0], "idempotency demo");
      else
        usage(argv[0], "unknown option " + std::string(a));
    } catch (const std::logic_error&) {
      usage(argv[0], "bad value for " + std::string(a));
    }
  }
  if (c.clients < 1 || c.clients > 64) usage(argv[0], "--clients must be 1..64");
  if (c.requests < 1 || c.requests > 100000) usage(argv[0], "--requests must be 1..100000");
  if (!(c.loss >= 0.0 && c.loss <= 1.0)) usage(argv[0], "--loss must be within 0..1");
  if (c.loss > 0.95) usage(argv[0], "--loss above 0.95 would retry almost forever");
  return c;
}

// A plain connection to the shared file (the ledger side of the service, and the counting).
class Db {
 public:
  explicit Db(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
        SQLITE_OK)
      throw std::runtime_error("cannot open " + path);
    sqlite3_busy_timeout(db_, 30'000);
    // the store's own durability default; FULL would add an fsync per ledger row
    sqlite3_exec(db_, "PRAGMA synchronous = NORMAL", nullptr, nullptr, nullptr);
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db() { sqlite3_close_v2(db_); }
  [[nodiscard]] sqlite3* get() const noexcept { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

void exec(sqlite3* db, const std::string& sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
    const std::string m = msg != nullptr ? msg : "unknown error";
    sqlite3_free(msg);
    throw std::runtime_error(m);
  }
}

long query_long(sqlite3* db, const char* sql) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
    throw std::runtime_error(sqlite3_errmsg(db));
  long v = 0;
  if (sqlite3_step(s) == SQLITE_ROW) v = static_cast<long>(sqlite3_column_int64(s, 0));
  sqlite3_finalize(s);
  return v;
}

// The charge itself: one ledger row. Returns the receipt.
std::string charge(sqlite3* db, const std::string& request_id, int client, long cents) {
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db, "INSERT INTO ledger(request_id, client, cents) VALUES (?1, ?2, ?3)",
                         -1, &s, nullptr) != SQLITE_OK)
    throw std::runtime_error(sqlite3_errmsg(db));
  sqlite3_bind_text(s, 1, request_id.c_str(), -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(s, 2, client);
  sqlite3_bind_int64(s, 3, cents);
  const int rc = sqlite3_step(s);
  sqlite3_finalize(s);
  if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(db));
  return "receipt #" + std::to_string(sqlite3_last_insert_rowid(db)) + " for " +
         std::to_string(cents) + " cents";
}

// One client process: sends its charges, retrying each until a response arrives.
ClientCounts run_client(const Config& cfg, const std::string& path, int client, bool with_library) {
  ClientCounts n;
  std::mt19937_64 rng(cfg.seed * 1'000'003U + static_cast<std::uint64_t>(client) * 7919U +
                      (with_library ? 1U : 0U));
  std::bernoulli_distribution lost(cfg.loss);
  std::uniform_int_distribution<long> amount(100, 99'999);

  Db ledger(path);
  idempotency::SqliteStore store{path};
  idempotency::IdempotencyExecutor service{
      store, {.result_ttl = 1h, .lease = 30s, .in_progress = idempotency::InProgressPolicy::wait}};

  for (int i = 0; i < cfg.requests; ++i) {
    const std::string request_id =
        "client-" + std::to_string(client) + "-charge-" + std::to_string(i);
    const long cents = amount(rng);
    ++n.requests;
    for (;;) { // the client's retry loop: same request, same idempotency key
      ++n.attempts;
      std::string receipt;
      if (with_library) {
        if (cfg.transactional) {
          auto o = service.execute_in_transaction_outcome(
              request_id, {}, [&](idempotency::SqliteStore::transaction& tx) {
                return charge(tx.db(), request_id, client, cents);
              });
          receipt = o.value;
          if (o.replayed) ++n.replays;
        } else {
          auto o = service.execute_outcome(
              request_id, [&] { return charge(ledger.get(), request_id, client, cents); });
          receipt = o.value;
          if (o.replayed) ++n.replays;
        }
      } else {
        receipt = charge(ledger.get(), request_id, client, cents); // no protection
      }
      if (lost(rng)) { // the service ran, but the response never reached the client
        ++n.lost_responses;
        continue;
      }
      break;
    }
  }
  return n;
}

RunResult run(const Config& cfg, const fs::path& dir, bool with_library) {
  const std::string path =
      (dir / (with_library ? "payments-with.db" : "payments-without.db")).string();
  {
    idempotency::SqliteStore schema{path}; // creates the store's schema before the clients race
    Db db(path);
    exec(db.get(),
         "CREATE TABLE ledger(id INTEGER PRIMARY KEY, request_id TEXT NOT NULL,"
         " client INTEGER NOT NULL, cents INTEGER NOT NULL)");
  } // nothing stays open across fork()

  std::vector<pid_t> pids;
  std::vector<int> pipes;
  for (int c = 0; c < cfg.clients; ++c) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(fds[0]);
      int code = 0;
      ClientCounts n;
      try {
        n = run_client(cfg, path, c, with_library);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "client %d: %s\n", c, e.what());
        code = 1;
      }
      const auto written = ::write(fds[1], &n, sizeof n);
      ::close(fds[1]);
      ::_exit(written == static_cast<ssize_t>(sizeof n) ? code : 1);
    }
    ::close(fds[1]);
    pids.push_back(pid);
    pipes.push_back(fds[0]);
  }

  RunResult r;
  bool ok = true;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    ClientCounts n;
    if (::read(pipes[i], &n, sizeof n) != static_cast<ssize_t>(sizeof n)) ok = false;
    ::close(pipes[i]);
    int status = 0;
    ::waitpid(pids[i], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ok = false;
    r.clients.requests += n.requests;
    r.clients.attempts += n.attempts;
    r.clients.lost_responses += n.lost_responses;
    r.clients.replays += n.replays;
  }
  if (!ok) throw std::runtime_error("a client process failed");

  Db db(path);
  r.executions = query_long(db.get(), "SELECT count(*) FROM ledger");
  r.distinct_charged = query_long(db.get(), "SELECT count(DISTINCT request_id) FROM ledger");
  r.duplicates = r.executions - r.distinct_charged;
  r.double_charged = query_long(db.get(),
                                "SELECT coalesce(sum(cents), 0) FROM ledger WHERE id NOT IN"
                                " (SELECT min(id) FROM ledger GROUP BY request_id)");
  return r;
}

std::string dollars(long cents) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%ld.%02ld", cents / 100, cents % 100);
  return buf;
}

} // namespace

int main(int argc, char** argv) {
  const Config cfg = parse(argc, argv);
  std::string pattern = (fs::temp_directory_path() / "idempotency-demo-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const fs::path dir = pattern;
  int code = 0;
  try {
    std::printf(
        "idempotency demo: %d client processes x %d charges, %.0f%% of responses lost, "
        "seed %llu%s\n",
        cfg.clients, cfg.requests, cfg.loss * 100.0, static_cast<unsigned long long>(cfg.seed),
        cfg.transactional ? ", transactional mode" : "");
    std::printf(
        "each lost response makes the client retry with the same idempotency key;\n"
        "the service is IdempotencyExecutor over one SQLite file shared by all processes\n\n");
    std::fflush(stdout);
    const auto t0 = std::chrono::steady_clock::now();
    const RunResult with = run(cfg, dir, true);
    const auto t1 = std::chrono::steady_clock::now();
    const RunResult without = run(cfg, dir, false);
    const auto t2 = std::chrono::steady_clock::now();
    auto ms = [](auto d) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
    };

    std::printf("%-34s %18s %18s\n", "", "with idempotency", "without");
    auto row = [](const char* label, const std::string& a, const std::string& b) {
      std::printf("%-34s %18s %18s\n", label, a.c_str(), b.c_str());
    };
    auto num = [](long v) { return std::to_string(v); };
    row("requests (distinct charges)", num(with.clients.requests), num(without.clients.requests));
    row("retries (after a lost response)", num(with.clients.attempts - with.clients.requests),
        num(without.clients.attempts - without.clients.requests));
    row("executions (rows in the ledger)", num(with.executions), num(without.executions));
    row("replays (stored receipt returned)", num(with.clients.replays),
        num(without.clients.replays));
    row("duplicates (charged more than once)", num(with.duplicates), num(without.duplicates));
    row("money charged twice ($)", dollars(with.double_charged), dollars(without.double_charged));
    row("wall time (ms)", num(static_cast<long>(ms(t1 - t0))), num(static_cast<long>(ms(t2 - t1))));
    std::printf("\n");

    if (with.duplicates != 0 || with.distinct_charged != with.clients.requests) {
      std::printf("FAILED: the library let a charge run twice or not at all\n");
      code = 1;
    } else if (cfg.loss > 0.0 && without.duplicates == 0) {
      std::printf("(no response was lost this time; raise --loss or --requests)\n");
    } else {
      std::printf(
          "with idempotency every charge ran exactly once and every retry got the same "
          "receipt;\nwithout it, %ld charges ran twice or more.\n",
          without.duplicates);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "demo failed: %s\n", e.what());
    code = 1;
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return code;
}
