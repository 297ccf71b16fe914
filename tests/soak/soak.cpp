// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// Soak with history checking: real threads call the real executor on a real store (memory,
// sqlite, redis or postgres) behind a FaultInjectingStore that loses ~1% of requests and of
// replies and duplicates ~1%, with tiny leases (some operations outlive theirs, so keys are
// taken over) and short TTLs (results expire, keys start new lives). Calls go in rounds of
// fresh keys; every round's history is checked (idempotency/testing/history_checker.hpp):
// P1-P3, L, T and R must hold. (P4 may not: operations outlive their leases on purpose.)
//
// Usage: soak --store memory|sqlite|redis|postgres --calls N [--threads T]
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
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
namespace t = idempotency::testing;

constexpr auto kLease = 40ms;
constexpr auto kTtl = 150ms;
constexpr auto kMargin = 3ms; // the store's clock (a server's, in whole ms) vs steady_clock

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

// One round: `threads` callers make `calls` calls over `keys` fresh keys.
template <class S>
void round(S& inner, const std::string& prefix, std::size_t calls, int threads, std::uint64_t seed,
           Totals& totals) {
  t::History history;
  t::FaultOptions fo;
  fo.seed = seed;
  fo.error_before = 0.01;
  fo.error_after = 0.01;
  fo.duplicate = 0.01;
  fo.history = &history;
  t::FaultInjectingStore store(inner, fo);
  idempotency::Options o;
  o.lease = kLease;
  o.result_ttl = kTtl;
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
        const bool slow = rng() % 400 == 0; // outlives its lease: the key may be taken over
        const bool throws = rng() % 50 == 0;
        auto op = [&]() -> std::string {
          if (throws) throw Failure("the operation failed before its effect");
          const std::string v = "c" + std::to_string(c) + "-" + std::to_string(n++);
          history.effect(key, v);
          produced = v;
          if (slow) std::this_thread::sleep_for(kLease + 10ms);
          return v;
        };
        history.add(
            t::record_call(history, key, produced, [&] { return exec.execute_outcome(key, op); }));
      }
    });
  for (auto& th : pool) th.join();

  t::CheckOptions co;
  co.ttl = kTtl;
  co.margin = kMargin;
  const auto violations = t::check_history(history, co);
  const auto all = history.calls();
  totals.calls += all.size();
  for (const auto& c : all) ++totals.told[static_cast<std::size_t>(c.told)];
  totals.store_calls += history.store_calls().size();
  totals.effects += history.effects().size();
  totals.violations += violations.size();
  ++totals.rounds;
  if (!violations.empty())
    std::printf("round %zu (seed %llu): %zu violation(s)\n%s", totals.rounds,
                static_cast<unsigned long long>(seed), violations.size(),
                t::describe(violations, 10).c_str());
}

template <class S>
int soak(S& store, const std::string& name, std::size_t calls, int threads) {
  Totals totals;
  const auto t0 = std::chrono::steady_clock::now();
  constexpr std::size_t per_round = 20'000;
  const std::string run = idempotency::Token::random().to_hex().substr(0, 8);
  for (std::size_t done = 0, r = 0; done < calls; done += per_round, ++r)
    round(store, "soak:" + run + ":" + std::to_string(r) + ":", std::min(per_round, calls - done),
          threads, 1000 + r, totals);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "soak %s: %zu calls in %zu rounds, %d threads, %.1f s: %zu store calls, %zu effects "
      "checked; told:",
      name.c_str(), totals.calls, totals.rounds, threads, secs, totals.store_calls, totals.effects);
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
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--store") == 0)
      which = argv[i + 1];
    else if (std::strcmp(argv[i], "--calls") == 0)
      calls = std::strtoull(argv[i + 1], nullptr, 10);
    else if (std::strcmp(argv[i], "--threads") == 0)
      threads = std::atoi(argv[i + 1]);
  }
  if (which == "memory") {
    idempotency::InMemoryStore store;
    return soak(store, which, calls, threads);
  }
#if defined(IDEMPOTENCY_SOAK_SQLITE)
  if (which == "sqlite") {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("idempotency-soak-" + idempotency::Token::random().to_hex().substr(0, 8));
    std::filesystem::create_directories(dir);
    int rc = 0;
    {
      idempotency::SqliteStore store{(dir / "soak.db").string()};
      rc = soak(store, which, calls, threads);
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
    return soak(store, which, calls, threads);
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
    return soak(store, which, calls, threads);
  }
#endif
  std::fprintf(stderr, "usage: %s --store memory|sqlite|redis|postgres --calls N [--threads T]\n",
               argv[0]);
  return 2;
}
