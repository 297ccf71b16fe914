// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/stores/postgres_store.hpp>

// main(): skips (exit 77) without a server; must precede every other Catch2 include (v2).
#include "support/server_main.hpp"

#include "support/catch.hpp"

#include <idempotency/testing/conformance.hpp>

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using idempotency::ClaimResult;
using idempotency::ClaimStatus;
using idempotency::PostgresError;
using idempotency::PostgresStore;
using idempotency::PostgresStoreOptions;
using idempotency::StoreError;
using idempotency::Token;

namespace {

std::string read_conninfo() {
  const char* file = std::getenv("IDEMPOTENCY_PG_CONNINFO_FILE");
  if (file == nullptr) return {};
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

const std::string& conninfo() {
  static const std::string c = read_conninfo();
  return c;
}

std::string unique(std::string_view prefix) {
  return std::string(prefix) + "_" + Token::random().to_hex().substr(0, 10);
}

PostgresStoreOptions options(std::string table, std::size_t pool = 4) {
  PostgresStoreOptions o;
  o.connection = conninfo();
  o.table = std::move(table);
  o.pool_size = pool;
  return o;
}

/// A plain libpq connection for checks behind the store's back.
class Raw {
 public:
  Raw() : c_(PQconnectdb(conninfo().c_str())) {
    if (PQstatus(c_) != CONNECTION_OK) throw std::runtime_error(PQerrorMessage(c_));
    PQsetNoticeProcessor(
        c_, [](void*, const char*) {}, nullptr);
  }
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;
  ~Raw() { PQfinish(c_); }
  /// The first field of the first row ("" if none); throws on error.
  std::string one(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    const auto st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      std::string msg = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error(msg);
    }
    std::string v = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    PQclear(r);
    return v;
  }

 private:
  PGconn* c_;
};

/// The conformance harness: the server's clock, so `advance` sleeps.
struct PgHarness {
  using store_type = PostgresStore;
  PostgresStore store_{options("conformance", 8)};
  PostgresStore& store() { return store_; }
  [[nodiscard]] std::chrono::milliseconds unit() const { return 200ms; }
  void advance(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }
};

/// Runs the fixture's generated ctl.sh (stop|start|restart).
void server_ctl(const char* what) {
  const char* ctl = std::getenv("IDEMPOTENCY_PG_CTL");
  if (ctl == nullptr) throw std::runtime_error("IDEMPOTENCY_PG_CTL not set");
  const std::string cmd = std::string("bash '") + ctl + "' " + what;
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
}

/// One caller of the exactly-once tests: claim; the acquirer "executes" (counted) and
/// completes; everyone else polls until the result is there. Returns the value it got.
std::string run_once(PostgresStore& s, const std::string& key, const std::string& mine,
                     std::atomic<int>& executions, std::atomic<int>& errors) {
  for (int i = 0; i < 100'000; ++i) {
    const auto r = s.claim(key, "fp", 30s);
    switch (r.status) {
      case ClaimStatus::acquired:
        executions.fetch_add(1);
        if (!s.complete(key, r.token, mine, 1h)) errors.fetch_add(1);
        return mine;
      case ClaimStatus::completed: return r.payload;
      case ClaimStatus::failed: errors.fetch_add(1); return {};
      case ClaimStatus::in_progress: std::this_thread::sleep_for(200us); break;
    }
  }
  errors.fetch_add(1);
  return {};
}

} // namespace

bool idempotency_test_server_available(std::string& why) {
  if (std::getenv("IDEMPOTENCY_PG_CONNINFO_FILE") == nullptr) {
    why = "PostgreSQL tests need the ctest fixture (IDEMPOTENCY_PG_CONNINFO_FILE is not set)";
    return false;
  }
  if (conninfo().empty()) {
    why = "no PostgreSQL server: the fixture wrote no connection string (is PostgreSQL installed?)";
    return false;
  }
  if (PQping(conninfo().c_str()) != PQPING_OK) {
    why = "PostgreSQL at '" + conninfo() + "' does not answer";
    return false;
  }
  return true;
}

IDEMPOTENCY_STORE_CONFORMANCE("PostgresStore", PgHarness)

TEST_CASE("exactly once: 8 threads x 1,000 keys", "[postgres][concurrency]") {
  constexpr int kThreads = 8;
  constexpr int kKeys = 1000;
  PostgresStore s{options(unique("eo_threads"), kThreads)};
  s.ensure_schema();
  std::vector<std::atomic<int>> executions(kKeys);
  std::vector<std::vector<std::string>> got(kThreads, std::vector<std::string>(kKeys));
  std::atomic<int> errors{0};
  std::atomic<int> exceptions{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      try {
        for (int k = 0; k < kKeys; ++k) {
          got[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)] =
              run_once(s, "key/" + std::to_string(k), "value of thread " + std::to_string(t),
                       executions[static_cast<std::size_t>(k)], errors);
        }
      } catch (...) {
        exceptions.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  REQUIRE(exceptions.load() == 0);
  REQUIRE(errors.load() == 0);
  int wrong_count = 0;
  int disagreements = 0;
  for (std::size_t k = 0; k < kKeys; ++k) {
    if (executions[k].load() != 1) ++wrong_count;
    for (std::size_t t = 1; t < kThreads; ++t) {
      if (got[t][k] != got[0][k] || got[t][k].empty()) ++disagreements;
    }
  }
  CHECK(wrong_count == 0);
  CHECK(disagreements == 0);
}

TEST_CASE("exactly once: 2 processes share 400 keys", "[postgres][concurrency]") {
  constexpr int kKeys = 400;
  const std::string table = unique("eo_procs");
  {
    PostgresStore s{options(table, 1)};
    s.ensure_schema(); // no connection is held across fork: the store is gone before it
  }
  int go[2];
  REQUIRE(pipe(go) == 0);
  std::vector<pid_t> pids;
  std::vector<int> outs;
  for (int p = 0; p < 2; ++p) {
    int out[2];
    REQUIRE(pipe(out) == 0);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      // child: wait for the start signal, run every key, report "key acquired value" lines
      close(go[1]);
      close(out[0]);
      char byte = 0;
      if (read(go[0], &byte, 1) != 1) _exit(3);
      int status = 0;
      {
        std::string report;
        try {
          PostgresStore s{options(table, 1)};
          std::atomic<int> errors{0};
          for (int k = 0; k < kKeys; ++k) {
            std::atomic<int> executed{0};
            const std::string v = run_once(s, "key/" + std::to_string(k),
                                           "process " + std::to_string(p), executed, errors);
            report += std::to_string(k) + " " + std::to_string(executed.load()) + " " + v + "\n";
          }
          if (errors.load() != 0) status = 2;
        } catch (...) {
          status = 4;
        }
        std::size_t off = 0;
        while (off < report.size()) {
          const auto n = write(out[1], report.data() + off, report.size() - off);
          if (n <= 0) break;
          off += static_cast<std::size_t>(n);
        }
      }
      close(out[1]);
      _exit(status);
    }
    close(out[1]);
    pids.push_back(pid);
    outs.push_back(out[0]);
  }
  close(go[0]);
  const char start[2] = {'g', 'g'};
  REQUIRE(write(go[1], start, 2) == 2);
  close(go[1]);
  std::vector<std::string> reports(2);
  // each report is far below a pipe's capacity, so reading one after the other cannot block
  for (std::size_t p = 0; p < 2; ++p) {
    char buf[4096];
    ssize_t n = 0;
    while ((n = read(outs[p], buf, sizeof buf)) > 0)
      reports[p].append(buf, static_cast<std::size_t>(n));
    close(outs[p]);
  }
  std::vector<int> statuses;
  for (const pid_t pid : pids) {
    int st = 0;
    waitpid(pid, &st, 0);
    statuses.push_back(WIFEXITED(st) ? WEXITSTATUS(st) : 100 + WTERMSIG(st));
  }
  CHECK(statuses == std::vector<int>{0, 0});
  std::map<int, int> executions;
  std::map<int, std::vector<std::string>> values;
  for (const auto& rep : reports) {
    std::istringstream in(rep);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      int k = 0;
      int executed = 0;
      ls >> k >> executed;
      std::string v;
      std::getline(ls >> std::ws, v);
      executions[k] += executed;
      values[k].push_back(v);
    }
  }
  REQUIRE(executions.size() == static_cast<std::size_t>(kKeys));
  int wrong = 0;
  int disagreements = 0;
  int by_each[2] = {0, 0};
  for (const auto& [k, n] : executions) {
    if (n != 1) ++wrong;
    const auto& v = values[k];
    if (v.size() != 2 || v[0] != v[1] || v[0].empty()) ++disagreements;
    if (!v.empty() && v[0] == "process 0") ++by_each[0];
    if (!v.empty() && v[0] == "process 1") ++by_each[1];
  }
  CHECK(wrong == 0);
  CHECK(disagreements == 0);
  CHECK(by_each[0] + by_each[1] == kKeys);
}

TEST_CASE("a replay hit assigns no transaction id and is one round trip; a first execution two",
          "[postgres][round-trips]") {
  PostgresStore s{options(unique("trips"), 1)};
  // warm the single connection: schema, session setup, every statement prepared once
  const auto w = s.claim("warm", "fp", 10s);
  REQUIRE(w.acquired());
  REQUIRE(s.complete("warm", w.token, "warm value", 1h));
  Raw raw;
  const auto xid = [&] { return std::stoull(raw.one("SELECT pg_current_xact_id()::text")); };

  // first execution: claim + complete, two round trips, two writing transactions
  const auto x0 = xid();
  const auto rt0 = s.round_trips();
  const auto c = s.claim("first", "fp", 10s);
  REQUIRE(c.acquired());
  REQUIRE(s.complete("first", c.token, "the result", 1h));
  CHECK(s.round_trips() - rt0 == 2);
  const auto x1 = xid();
  CHECK(x1 - x0 == 3); // claim, complete, and the xid query itself: the counter sees writes

  // 100 replays: one round trip each, and not a single transaction id assigned
  const auto rt1 = s.round_trips();
  int wrong_payload = 0;
  for (int i = 0; i < 100; ++i) {
    const auto r = s.claim("first", "fp", 10s);
    if (r.status != ClaimStatus::completed || r.payload != "the result") ++wrong_payload;
  }
  CHECK(wrong_payload == 0);
  CHECK(s.round_trips() - rt1 == 100);
  // an in-progress hit does not write either
  const auto held = s.claim("held", "fp", 10s);
  REQUIRE(held.acquired());
  const auto x2 = xid();
  for (int i = 0; i < 20; ++i) CHECK(s.claim("held", "fp", 10s).status == ClaimStatus::in_progress);
  const auto x3 = xid();
  CHECK(x3 - x2 == 1);
  for (int i = 0; i < 20; ++i) CHECK(s.claim("first", "fp", 10s).payload == "the result");
  CHECK(xid() - x3 == 1);
  CHECK(s.connections_opened() == 1);
}

TEST_CASE("the server restarted mid-run: typed errors while down, recovery, no duplicate",
          "[postgres][restart]") {
  PostgresStore s{options(unique("restart"), 4)};
  const auto c = s.claim("stored", "fp", 10s);
  REQUIRE(c.acquired());
  REQUIRE(s.complete("stored", c.token, "receipt #1", 1h));
  const auto held = s.claim("held over the restart", "fp", 30s);
  REQUIRE(held.acquired());

  server_ctl("stop");
  bool down_typed = true;
  int down_errors = 0;
  try {
    for (int i = 0; i < 3; ++i) {
      try {
        (void)s.claim("stored", "fp", 10s);
        down_typed = false; // no exception while the server is down
      } catch (const PostgresError& e) {
        ++down_errors;
        if (!e.connection_lost() || e.sqlstate().empty() || e.server_message().empty()) {
          down_typed = false;
        }
      }
    }
    try {
      (void)s.complete("held over the restart", held.token, "x", 1h);
      down_typed = false;
    } catch (const StoreError& e) {
      ++down_errors;
      if (e.code() != idempotency::errc::store_failure) down_typed = false;
    }
  } catch (...) {
    server_ctl("start");
    throw;
  }
  server_ctl("start");
  CHECK(down_typed);
  CHECK(down_errors == 4);

  // recovery: the stored result replays (no second execution), the held claim still holds
  const auto r = s.claim("stored", "fp", 10s);
  CHECK(r.status == ClaimStatus::completed);
  CHECK(r.payload == "receipt #1");
  CHECK(s.claim("held over the restart", "fp", 30s).status == ClaimStatus::in_progress);
  CHECK(s.complete("held over the restart", held.token, "done after restart", 1h));

  // restart with idle pooled connections and no call in between: the first call succeeds
  for (int i = 0; i < 4; ++i) (void)s.claim("stored", "fp", 10s); // fill the pool
  const auto opened = s.connections_opened();
  server_ctl("restart");
  const auto again = s.claim("stored", "fp", 10s);
  CHECK(again.status == ClaimStatus::completed);
  CHECK(again.payload == "receipt #1");
  CHECK(s.connections_opened() > opened);
  CHECK(s.claim("held over the restart", "fp", 1s).payload == "done after restart");
  const auto fresh = s.claim("after", "fp", 10s);
  CHECK(fresh.acquired());
  CHECK(s.complete("after", fresh.token, "ok", 1h));
}

TEST_CASE("transactional mode: the app's rows and the record commit together or not at all",
          "[postgres][transaction]") {
  PostgresStore s{options(unique("tx"), 2)};
  Raw raw;
  const std::string orders = unique("orders");
  raw.one("CREATE TABLE " + orders + " (id text PRIMARY KEY, amount integer NOT NULL)");
  const auto rows = [&] { return raw.one("SELECT count(*) FROM " + orders); };

  SECTION("an exception after the app's insert leaves neither row") {
    const auto c = s.claim("order-1", "fp", 10s);
    REQUIRE(c.acquired());
    CHECK_THROWS_AS(s.complete_in_transaction(
                        "order-1", c.token, 1h,
                        [&](PostgresStore::transaction& tx) -> std::string {
                          tx.exec("INSERT INTO " + orders + " VALUES ($1, $2)", "order-1", 1999);
                          throw std::runtime_error("card declined");
                        }),
                    std::runtime_error);
    CHECK(rows() == "0");
    // no completed record either: the claim is still the caller's, in progress
    CHECK(s.claim("order-1", "fp", 10s).status == ClaimStatus::in_progress);
    CHECK(s.release("order-1", c.token));
  }

  SECTION("success leaves both rows") {
    const auto c = s.claim("order-2", "fp", 10s);
    REQUIRE(c.acquired());
    const bool ok = s.complete_in_transaction(
        "order-2", c.token, 1h, [&](PostgresStore::transaction& tx) -> std::string {
          const auto r = tx.exec("INSERT INTO " + orders + " VALUES ($1, $2) RETURNING id",
                                 std::string("order-2"), 2500);
          REQUIRE(PQtransactionStatus(tx.conn()) == PQTRANS_INTRANS);
          return "receipt for " + std::string(r.get(0, 0));
        });
    CHECK(ok);
    CHECK(rows() == "1");
    const auto r = s.claim("order-2", "fp", 10s);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "receipt for order-2");
    // a resent complete by the same token is acknowledged and changes nothing
    CHECK(s.complete("order-2", c.token, "again", 1h));
    CHECK(s.claim("order-2", "fp", 10s).payload == "receipt for order-2");
  }

  SECTION("a taken-over claim rolls back and returns false; the body does not run") {
    const auto stale = s.claim("order-3", "fp", 100ms);
    REQUIRE(stale.acquired());
    std::this_thread::sleep_for(300ms);
    const auto fresh = s.claim("order-3", "fp", 10s);
    REQUIRE(fresh.acquired());
    bool ran = false;
    CHECK_FALSE(s.complete_in_transaction("order-3", stale.token, 1h,
                                          [&](PostgresStore::transaction& tx) -> std::string {
                                            ran = true;
                                            tx.exec("INSERT INTO " + orders + " VALUES ('x', 1)");
                                            return "stale";
                                          }));
    CHECK_FALSE(ran);
    CHECK(rows() == "0");
    CHECK(s.claim("order-3", "fp", 10s).status == ClaimStatus::in_progress);
  }

  SECTION("an SQL error in the body is a typed PostgresError and rolls everything back") {
    const auto c = s.claim("order-4", "fp", 10s);
    REQUIRE(c.acquired());
    std::string state;
    try {
      (void)s.complete_in_transaction("order-4", c.token, 1h,
                                      [&](PostgresStore::transaction& tx) -> std::string {
                                        tx.exec("INSERT INTO " + orders + " VALUES ('y', 1)");
                                        tx.exec("INSERT INTO " + orders + " VALUES ('y', 2)");
                                        return "never";
                                      });
    } catch (const PostgresError& e) {
      state = e.sqlstate();
      CHECK(e.server_message().find("duplicate key") != std::string::npos);
    }
    CHECK(state == "23505");
    CHECK(rows() == "0");
    // the connection went back to the pool usable
    CHECK(s.complete("order-4", c.token, "plain", 1h));
  }

  SECTION(
      "the locked claim cannot be taken over while the body runs: a claimer waits, then replays") {
    const auto c = s.claim("order-5", "fp", 200ms);
    REQUIRE(c.acquired());
    std::atomic<bool> in_body{false};
    ClaimResult other;
    std::thread claimer;
    const bool ok = s.complete_in_transaction(
        "order-5", c.token, 1h, [&](PostgresStore::transaction& tx) -> std::string {
          tx.exec("INSERT INTO " + orders + " VALUES ('order-5', 5)");
          std::this_thread::sleep_for(400ms); // the lease passes while the body runs
          claimer = std::thread([&] { other = s.claim("order-5", "fp", 10s); });
          std::this_thread::sleep_for(200ms);
          in_body = true;
          return "slow but exactly once";
        });
    claimer.join();
    CHECK(ok);
    CHECK(in_body.load());
    CHECK(other.status == ClaimStatus::completed);
    CHECK(other.payload == "slow but exactly once");
    CHECK(rows() == "1");
  }
  raw.one("DROP TABLE " + orders);
}

TEST_CASE("hostile keys and hostile table names are data", "[postgres][hostile]") {
  PostgresStoreOptions o = options("idem'; DROP TABLE x; --\"quoted\\", 2);
  o.schema = "sch \"ema";
  PostgresStore s{o};
  const std::vector<std::string> keys = {
      "'",
      "''",
      "\\",
      "\\'",
      "'; DROP TABLE idempotency_keys; --",
      "\"; DROP SCHEMA public; --",
      "$1",
      "%s%n",
      "key with a NUL \0 byte",
      "\xff\xfe binary",
      "\xc3\xa9t\xc3\xa9",
  };
  std::vector<std::string> with_nul = keys;
  with_nul[8] = std::string("key with a NUL \0 byte", 21);
  for (const auto& k : with_nul) {
    const auto c = s.claim(k, k, 10s);
    REQUIRE(c.acquired());
    REQUIRE(s.complete(k, c.token, "value of " + k, 1h));
  }
  for (const auto& k : with_nul) {
    const auto r = s.claim(k, "", 10s);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "value of " + k);
    CHECK(r.fingerprint == k);
  }
  Raw raw;
  CHECK(raw.one("SELECT count(*) FROM " + s.qualified_table()) == std::to_string(with_nul.size()));
  CHECK(raw.one("SELECT to_regclass('public.idempotency_keys') IS NULL") == "t");
  CHECK(raw.one("SELECT count(*) FROM pg_namespace WHERE nspname = 'public'") == "1");
  raw.one("DROP SCHEMA \"sch \"\"ema\" CASCADE");
}

TEST_CASE("schema: created on first use, versioned, configurable", "[postgres][schema]") {
  Raw raw;
  const std::string table = unique("schema");
  PostgresStoreOptions o = options(table, 2);
  o.schema = unique("idem");
  SECTION("concurrent first uses create it once and record version 1") {
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
      threads.emplace_back([&] {
        try {
          PostgresStore s{o};
          const auto c = s.claim("k" + Token::random().to_hex(), "fp", 10s);
          if (!c.acquired()) failures.fetch_add(1);
        } catch (...) {
          failures.fetch_add(1);
        }
      });
    }
    for (auto& t : threads) t.join();
    CHECK(failures.load() == 0);
    CHECK(raw.one("SELECT string_agg(version::text, ',') FROM " + o.schema + "." + table +
                  "_migrations") == "1");
    CHECK(raw.one("SELECT count(*) FROM " + o.schema + "." + table) == "4");
    CHECK(PostgresStore::schema_version == 1);
  }
  SECTION("create_schema = false on a missing table is a typed error (42P01)") {
    o.create_schema = false;
    PostgresStore s{o};
    std::string state;
    try {
      (void)s.claim("k", "fp", 10s);
    } catch (const PostgresError& e) {
      state = e.sqlstate();
    }
    CHECK(state == "42P01");
  }
  SECTION("a URI connection string works too") {
    const auto& ci = conninfo();
    const auto p = ci.find("port=");
    REQUIRE(p != std::string::npos);
    const std::string port = ci.substr(p + 5, ci.find(' ', p) - p - 5);
    o.connection = "postgresql://postgres@127.0.0.1:" + port + "/postgres?connect_timeout=5";
    PostgresStore s{o};
    CHECK(s.claim("uri", "fp", 10s).acquired());
  }
  SECTION("an unreachable server is a typed error at the first call, not at construction") {
    o.connection = "host=127.0.0.1 port=1 connect_timeout=2";
    PostgresStore s{o};
    std::string state;
    try {
      (void)s.claim("k", "fp", 10s);
    } catch (const PostgresError& e) {
      state = e.sqlstate();
      CHECK(e.connection_lost());
    }
    CHECK(state == "08001");
  }
  raw.one("DROP SCHEMA IF EXISTS " + o.schema + " CASCADE");
}

TEST_CASE("purge_expired deletes expired rows in batches and keeps live ones",
          "[postgres][purge]") {
  PostgresStoreOptions o = options(unique("purge"), 2);
  o.purge_batch = 4;
  o.abandoned_retention = 0ms;
  PostgresStore s{o};
  for (int i = 0; i < 20; ++i) {
    const std::string k = "done/" + std::to_string(i);
    const auto c = s.claim(k, "fp", 10s);
    REQUIRE(c.acquired());
    REQUIRE(s.complete(k, c.token, "v", 50ms));
  }
  for (int i = 0; i < 5; ++i)
    REQUIRE(s.claim("abandoned/" + std::to_string(i), "fp", 50ms).acquired());
  const auto live = s.claim("live", "fp", 10s);
  REQUIRE(live.acquired());
  REQUIRE(s.complete("live", live.token, "kept", 1h));
  REQUIRE(s.claim("held", "fp", 1h).acquired());
  CHECK(s.purge_expired(1) == 0); // nothing expired yet; prepares the statement
  std::this_thread::sleep_for(250ms);
  const auto rt = s.round_trips();
  CHECK(s.purge_expired(10) == 10);
  CHECK(s.round_trips() - rt == 3); // batches of 4, 4, 2
  CHECK(s.purge_expired(1000) == 15);
  CHECK(s.purge_expired(1000) == 0);
  CHECK(s.claim("live", "fp", 10s).payload == "kept");
  CHECK(s.claim("held", "fp", 10s).status == ClaimStatus::in_progress);
  Raw raw;
  CHECK(raw.one("SELECT count(*) FROM " + s.qualified_table()) == "2");
}

#if __has_include(<idempotency/executor.hpp>)
#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>

TEST_CASE("through IdempotencyExecutor: execute and execute_in_transaction",
          "[postgres][executor]") {
  PostgresStore s{options(unique("exec"), 4)};
  idempotency::IdempotencyExecutor exec{s, {.result_ttl = 1h, .lease = 10s}};
  Raw raw;
  const std::string orders = unique("exec_orders");
  raw.one("CREATE TABLE " + orders + " (id text PRIMARY KEY)");

  int runs = 0;
  const std::string key = "charge-" + Token::random().to_hex();
  const int first = exec.execute(key, [&] {
    ++runs;
    return 42;
  });
  const auto again = exec.execute_outcome(key, [&] {
    ++runs;
    return 7;
  });
  CHECK(first == 42);
  CHECK(again.value == 42);
  CHECK(again.replayed);
  CHECK(runs == 1);

  const std::string order = "order-" + Token::random().to_hex();
  int tx_runs = 0;
  bool fail_once = true;
  const auto body = [&](PostgresStore::transaction& tx) {
    ++tx_runs;
    tx.exec("INSERT INTO " + orders + " (id) VALUES ($1)", order);
    if (fail_once) {
      fail_once = false;
      throw std::runtime_error("payment gateway timeout");
    }
    return std::string("receipt for ") + order;
  };
  CHECK_THROWS_AS(exec.execute_in_transaction(order, body), std::runtime_error);
  CHECK(raw.one("SELECT count(*) FROM " + orders) == "0");
  CHECK(exec.execute_in_transaction(order, body) == "receipt for " + order);
  const auto replay = exec.execute_in_transaction_outcome(order, idempotency::Fingerprint{}, body);
  CHECK(replay.replayed);
  CHECK(replay.value == "receipt for " + order);
  CHECK(tx_runs == 2);
  CHECK(raw.one("SELECT count(*) FROM " + orders) == "1");
  raw.one("DROP TABLE " + orders);
}
#endif
