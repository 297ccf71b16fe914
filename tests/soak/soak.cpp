// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// Soak with history checking: real threads call the real executor on a real store (memory,
// sqlite, redis or postgres) behind a FaultInjectingStore that loses ~1% of requests and of
// replies and duplicates ~1%, with tiny leases (2 ms in memory, 10 ms on the others; some
// operations take up to two leases, so keys are taken over while their holders still run)
// and short TTLs (results expire, keys start new lives). Calls go in rounds of fresh keys;
// every round's history is checked (idempotency/testing/history_checker.hpp): P1-P3, L, T
// and R must hold. (P4 may not: operations outlive their leases on purpose.)
//
// Usage: soak --store memory|sqlite|redis|postgres --calls N [--threads T] [--transactional]
// --transactional (sqlite, postgres): execute_in_transaction with a ledger row as the effect;
// every key must hold at most one row, and the row of the result callers were given.
// Redis and PostgreSQL come from the ctest fixtures (IDEMPOTENCY_REDIS_URL_FILE,
// IDEMPOTENCY_PG_CONNINFO_FILE); without them the run is skipped (exit 77), or fails under
// IDEMPOTENCY_REQUIRE_SERVERS=1.

#include <idempotency/idempotency.hpp>
#include <idempotency/testing/fault_injecting_store.hpp>
#include <idempotency/testing/history_checker.hpp>

#if defined(IDEMPOTENCY_SOAK_SQLITE)
#include <idempotency/stores/sqlite_store.hpp>
#endif
#if defined(IDEMPOTENCY_SOAK_REDIS)
#include <idempotency/stores/redis_store.hpp>
#endif
#if defined(IDEMPOTENCY_SOAK_POSTGRES)
#include <idempotency/stores/postgres_store.hpp>
#endif

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace t = idempotency::testing;

// Per store: the in-memory store shares the recorder's clock (no slack) and answers in
// microseconds, so its leases can be 2 ms; a server's clock counts whole milliseconds.
struct Profile {
  std::chrono::milliseconds lease;
  std::chrono::milliseconds ttl;
  std::chrono::milliseconds margin; // the store's clock vs the recorder's steady_clock
  unsigned slow_percent;            // runs that take 0..2 leases (and are taken over)
};
constexpr Profile kMemory{2ms, 20ms, 0ms, 10};
constexpr Profile kServer{10ms, 100ms, 3ms, 4};

struct Totals {
  std::size_t calls = 0, store_calls = 0, effects = 0, violations = 0, rounds = 0;
  std::size_t told[16] = {};
};

std::string read_line(const char* env) {
  const char* file = std::getenv(env);
  if (file == nullptr) return {};
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct NoLedger {};

// One round: `threads` callers make `calls` calls over fresh keys, and the history is checked.
// Transactional mode (SQL stores, `Rows` given): the effect is a ledger row written in the
// store's own transaction, and `rows(prefix)` reads the ledger back (key -> values). With a TTL
// longer than the run (one record life per key) every key must hold at most one row, and the
// row of a key whose result callers were given must be that result: exactly once.
template <class S, class Rows>
void round(S& inner, const Profile& p, const std::string& prefix, std::size_t calls, int threads,
           std::uint64_t seed, Totals& totals, Rows& rows) {
  constexpr bool transactional = !std::is_same_v<Rows, NoLedger>;
  t::History history;
  t::FaultOptions fo;
  fo.seed = seed;
  fo.error_before = 0.01;
  fo.error_after = 0.01;
  fo.duplicate = transactional ? 0.0 : 0.01;
  fo.history = &history;
  t::FaultInjectingStore store(inner, fo);
  idempotency::Options o;
  o.lease = p.lease;
  o.result_ttl = transactional ? std::chrono::milliseconds(std::chrono::hours(1)) : p.ttl;
  o.completion_retry.max_attempts = 2;
  o.completion_retry.initial_backoff = 1ms;
  o.completion_retry.max_backoff = 2ms;
  idempotency::IdempotencyExecutor exec(store, o);
  const std::size_t keys = std::max<std::size_t>(calls / 6, 1);
  std::atomic<std::size_t> next{0};
  std::vector<std::thread> pool;
  for (int c = 0; c < threads; ++c)
    pool.emplace_back([&, c] {
      t::this_caller() = c;
      std::mt19937_64 rng(seed * 131 + static_cast<std::uint64_t>(c));
      int n = 0;
      while (next.fetch_add(1) < calls) {
        const std::string key = prefix + std::to_string(rng() % keys);
        std::string produced;
        const auto span = static_cast<std::uint64_t>(2 * p.lease / 1us);
        const auto pause = rng() % 100 < p.slow_percent
                               ? std::chrono::microseconds(static_cast<long long>(rng() % span))
                               : 0us;
        const auto run =
            [&]() -> std::string { // the effect (transactional: the row's value), logged
          const std::string v = "c" + std::to_string(c) + "-" + std::to_string(n++);
          history.effect(key, v);
          produced = v;
          if (pause > 0us) std::this_thread::sleep_for(pause);
          return v;
        };
        if constexpr (transactional) {
          auto op = [&](typename S::transaction& tx) -> std::string {
            // the row is part of the transaction: it commits with the result or not at all
            const std::string v = run();
            tx.exec("INSERT INTO soak_ledger (key, value) VALUES ('" + key + "', '" + v + "')");
            return v;
          };
          history.add(t::record_call(history, key, produced, [&] {
            return exec.execute_in_transaction_outcome(key, {}, op);
          }));
        } else {
          const bool throws = rng() % 20 == 0;
          auto op = [&]() -> std::string {
            if (throws) { // after its pause: a stale holder's release must not delete anything
              if (pause > 0us) std::this_thread::sleep_for(pause);
              throw Failure("the operation failed before its effect");
            }
            return run();
          };
          history.add(t::record_call(history, key, produced,
                                     [&] { return exec.execute_outcome(key, op); }));
        }
      }
    });
  for (auto& th : pool) th.join();

  t::CheckOptions co;
  co.ttl = o.result_ttl;
  co.margin = p.margin;
  auto violations = t::check_history(history, co);
  std::size_t effects = history.effects().size();
  if constexpr (transactional) {
    const std::map<std::string, std::vector<std::string>> ledger = rows(prefix);
    std::map<std::string, std::string> given; // key -> a value some caller was given
    for (const auto& c : history.calls())
      if (c.told == t::Told::recorded || c.told == t::Told::replayed) given[c.key] = c.value;
    effects = 0;
    for (const auto& [key, values] : ledger) {
      effects += values.size();
      if (values.size() > 1)
        violations.push_back({"X", key,
                              std::to_string(values.size()) +
                                  " ledger rows: the transactional effect committed more than "
                                  "once"});
    }
    for (const auto& [key, value] : given) {
      const auto it = ledger.find(key);
      if (it == ledger.end() || it->second.empty() || it->second.front() != value)
        violations.push_back(
            {"X", key, "callers were given '" + value + "' but the ledger does not hold that row"});
    }
  }
  const auto all = history.calls();
  totals.calls += all.size();
  for (const auto& c : all) ++totals.told[static_cast<std::size_t>(c.told)];
  totals.store_calls += history.store_calls().size();
  totals.effects += effects;
  totals.violations += violations.size();
  ++totals.rounds;
  if (!violations.empty())
    std::printf("round %zu (seed %llu): %zu violation(s)\n%s", totals.rounds,
                static_cast<unsigned long long>(seed), violations.size(),
                t::describe(violations, 10).c_str());
}

template <class S, class Rows = NoLedger>
int soak(S& store, const Profile& p, const std::string& name, std::size_t calls, int threads,
         Rows rows = {}) {
  constexpr bool transactional = !std::is_same_v<Rows, NoLedger>;
  Totals totals;
  const auto t0 = std::chrono::steady_clock::now();
  constexpr std::size_t per_round = 20'000;
  const std::string run = idempotency::Token::random().to_hex().substr(0, 8);
  for (std::size_t done = 0, r = 0; done < calls; done += per_round, ++r) {
    const std::string prefix = "soak:" + run + ":" + std::to_string(r) + ":";
    const std::size_t n = std::min(per_round, calls - done);
    round(store, p, prefix, n, threads, 1000 + r, totals, rows);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "soak %s%s: %zu calls in %zu rounds, %d threads, %.1f s: %zu store calls, %zu "
      "%s checked; told:",
      name.c_str(), transactional ? " (transactional)" : "", totals.calls, totals.rounds, threads,
      secs, totals.store_calls, totals.effects, transactional ? "ledger rows" : "effects");
  for (std::size_t i = 0; i < 16; ++i)
    if (totals.told[i] != 0)
      std::printf(" %s %zu", std::string(t::to_string(static_cast<t::Told>(i))).c_str(),
                  totals.told[i]);
  std::printf("; %zu violation(s)\n", totals.violations);
  return totals.violations == 0 ? 0 : 1;
}

int skip(const char* why) {
  const char* required = std::getenv("IDEMPOTENCY_REQUIRE_SERVERS");
  if (required != nullptr && *required != '\0' && std::string(required) != "0") {
    std::fprintf(stderr, "FAILED: server required (IDEMPOTENCY_REQUIRE_SERVERS) but %s\n", why);
    return 1;
  }
  std::fprintf(stderr, "SKIPPED: %s (set IDEMPOTENCY_REQUIRE_SERVERS=1 to make this a failure)\n",
               why);
  return 77;
}

} // namespace

int main(int argc, char** argv) {
  std::string which;
  std::size_t calls = 100'000;
  int threads = 4;
  bool transactional = false;
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--transactional") == 0) transactional = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--transactional") == 0) {
      --i;
      continue;
    }
    if (std::strcmp(argv[i], "--store") == 0)
      which = argv[i + 1];
    else if (std::strcmp(argv[i], "--calls") == 0)
      calls = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--threads") == 0)
      threads = std::atoi(argv[i + 1]);
  }
  if (which == "memory") {
    idempotency::InMemoryStore store;
    return soak(store, kMemory, which, calls, threads);
  }
#if defined(IDEMPOTENCY_SOAK_SQLITE)
  if (which == "sqlite") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("idempotency-soak-" + idempotency::Token::random().to_hex().substr(0, 8));
    std::filesystem::create_directories(dir);
    int rc = 0;
    {
      const std::string path = (dir / "soak.db").string();
      idempotency::SqliteStore store{path};
      if (!transactional) {
        rc = soak(store, kServer, which, calls, threads);
      } else {
        sqlite3* raw = nullptr;
        if (sqlite3_open(path.c_str(), &raw) != SQLITE_OK) return 1;
        sqlite3_busy_timeout(raw, 10'000);
        sqlite3_exec(raw, "CREATE TABLE soak_ledger (key TEXT NOT NULL, value TEXT NOT NULL)",
                     nullptr, nullptr, nullptr);
        auto rows = [raw](const std::string& prefix) {
          std::map<std::string, std::vector<std::string>> out;
          sqlite3_stmt* st = nullptr;
          sqlite3_prepare_v2(raw,
                             "SELECT key, value FROM soak_ledger WHERE substr(key, 1, ?1) = ?2", -1,
                             &st, nullptr);
          sqlite3_bind_int(st, 1, static_cast<int>(prefix.size()));
          sqlite3_bind_text(st, 2, prefix.c_str(), -1, SQLITE_TRANSIENT);
          while (sqlite3_step(st) == SQLITE_ROW)
            out[reinterpret_cast<const char*>(sqlite3_column_text(st, 0))].emplace_back(
                reinterpret_cast<const char*>(sqlite3_column_text(st, 1)));
          sqlite3_finalize(st);
          return out;
        };
        rc = soak(store, kServer, which, calls, threads, rows);
        sqlite3_close(raw);
      }
    }
    std::filesystem::remove_all(dir);
    return rc;
  }
#endif
#if defined(IDEMPOTENCY_SOAK_REDIS)
  if (which == "redis") {
    const std::string url = read_line("IDEMPOTENCY_REDIS_URL_FILE");
    if (url.empty())
      return skip("the Redis soak needs the ctest fixture (IDEMPOTENCY_REDIS_URL_FILE)");
    idempotency::RedisStoreOptions o;
    o.url = url;
    o.key_prefix = "soak:";
    idempotency::RedisStore store{o};
    return soak(store, kServer, which, calls, threads);
  }
#endif
#if defined(IDEMPOTENCY_SOAK_POSTGRES)
  if (which == "postgres") {
    const std::string conninfo = read_line("IDEMPOTENCY_PG_CONNINFO_FILE");
    if (conninfo.empty())
      return skip("the PostgreSQL soak needs the ctest fixture (IDEMPOTENCY_PG_CONNINFO_FILE)");
    idempotency::PostgresStoreOptions o;
    o.connection = conninfo;
    o.table = "soak_" + idempotency::Token::random().to_hex().substr(0, 8);
    o.pool_size = static_cast<std::size_t>(threads);
    idempotency::PostgresStore store{o};
    if (!transactional) return soak(store, kServer, which, calls, threads);
    PGconn* raw = PQconnectdb(conninfo.c_str());
    if (PQstatus(raw) != CONNECTION_OK) return skip(PQerrorMessage(raw));
    PQclear(PQexec(raw,
                   "CREATE TABLE IF NOT EXISTS soak_ledger (key text NOT NULL, value text "
                   "NOT NULL)"));
    auto rows = [raw](const std::string& prefix) {
      std::map<std::string, std::vector<std::string>> out;
      const char* params[] = {prefix.c_str()};
      PGresult* r = PQexecParams(raw,
                                 "SELECT key, value FROM soak_ledger WHERE left(key, "
                                 "length($1)) = $1",
                                 1, nullptr, params, nullptr, nullptr, 0);
      for (int i = 0; i < PQntuples(r); ++i)
        out[PQgetvalue(r, i, 0)].emplace_back(PQgetvalue(r, i, 1));
      PQclear(r);
      return out;
    };
    const int rc = soak(store, kServer, which, calls, threads, rows);
    PQfinish(raw);
    return rc;
  }
#endif
  std::fprintf(stderr,
               "usage: %s --store memory|sqlite|redis|postgres --calls N [--threads T] "
               "[--transactional]\n",
               argv[0]);
  return 2;
}
