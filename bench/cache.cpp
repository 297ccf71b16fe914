// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// CachingStore<S>: a replay served from the in-process replay cache, against the same replay
// from the wrapped store itself (an InMemoryStore; a RedisStore behind the delay proxy).
#include "common.hpp"

#if __has_include(<idempotency/stores/caching_store.hpp>)
#include "delay_proxy.hpp"

#include <idempotency/stores/caching_store.hpp>
#include <idempotency/stores/in_memory_store.hpp>

#if defined(IDEMPOTENCY_BENCH_HAVE_REDIS) && __has_include(<idempotency/stores/redis_store.hpp>)
#include <idempotency/stores/redis_store.hpp>
#define IDEMPOTENCY_BENCH_CACHE_REDIS 1
#endif

#include <unistd.h>

#include <cstdlib>
#include <memory>

namespace bench {

namespace {

using namespace std::chrono_literals;

constexpr double kInMemoryTarget = 1.2; ///< cached replay vs InMemoryStore replay
constexpr double kRedisSpeedup = 50;    ///< RedisStore replay / cached replay, at ~1 ms RTT
constexpr int kRedisTargetRttUs = 1000;

/// Fills `keys` as completed records through `store` and checks that a replay through `cached`
/// returns them (which also loads the cache).
template <class S, class C>
void prefill(S& store, C& cached, const std::vector<std::string>& keys,
             const std::string& payload) {
  for (const auto& k : keys) {
    const auto c = store.claim(k, kNoFingerprint, 60s);
    if (c.acquired() && !store.complete(k, c.token, payload, 1h)) std::abort();
  }
  for (const auto& k : keys) {
    const auto r = cached.claim(k, kNoFingerprint, 60s);
    if (r.status != idempotency::ClaimStatus::completed || r.payload != payload) std::abort();
  }
}

/// Adds the cache's hit/miss counters over the measurement, when it has them.
template <class C>
void add_stats(Row& r, const C& cached, std::uint64_t hits0, std::uint64_t misses0) {
  if constexpr (requires { cached.stats().hits; }) {
    const auto s = cached.stats();
    r.extra["cache_hits"] = s.hits - hits0;
    r.extra["cache_misses"] = s.misses - misses0;
  }
}

template <class C>
std::pair<std::uint64_t, std::uint64_t> counters(const C& cached) {
  if constexpr (requires { cached.stats().hits; })
    return {cached.stats().hits, cached.stats().misses};
  return {0, 0};
}

void in_memory_case(const Config& cfg) {
  const std::size_t n = 1000; // well inside the default cache capacity
  const std::size_t ops = cfg.quick ? 50'000 : 500'000;
  const auto keys = make_keys(n, 16);
  const std::string payload(64, 'p');
  idempotency::InMemoryStore inner;
  idempotency::CachingStore<idempotency::InMemoryStore> cached{inner};
  prefill(inner, cached, keys, payload);
  auto loop = [&](auto& store) {
    return [&]() -> std::pair<double, double> {
      const auto t0 = Clock::now();
      std::size_t acc = 0;
      for (std::size_t i = 0; i < ops; ++i)
        acc += store.claim(keys[i % n], kNoFingerprint, 60s).payload.size();
      sink(acc);
      return {elapsed_ns(t0), static_cast<double>(ops)};
    };
  };
  const auto [h0, m0] = counters(cached);
  Row r = pair_row("cache.replay k16/p64/t1", "InMemoryStore replay (no cache)",
                   measure_pair(cfg.reps, loop(cached), loop(inner)));
  add_stats(r, cached, h0, m0);
  r.target = "<= " + fmt_num(kInMemoryTarget, 1) + "x";
  r.met = *r.ratio <= kInMemoryTarget;
  add(std::move(r));
}

#if defined(IDEMPOTENCY_BENCH_CACHE_REDIS)
void redis_case(const Config& cfg, int rtt_us) {
  const std::string where = rtt_label(rtt_us);
  const std::string prefix = "idempotency-bench-cache:" + std::to_string(getpid()) + ":";
  const std::size_t n = 100;
  const auto keys = make_keys(n, 16);
  const std::string payload(64, 'p');
  std::unique_ptr<DelayProxy> proxy;
  std::string url = cfg.redis_url;
  if (rtt_us > 0) {
    const auto [host, port] = redis_url_endpoint(url);
    proxy = std::make_unique<DelayProxy>(host, port, std::chrono::microseconds(rtt_us / 2));
    url = redis_url_via(cfg.redis_url, proxy->port());
  }
  {
    idempotency::RedisStore redis{
        idempotency::RedisStoreOptions{.url = url, .key_prefix = prefix, .pool_size = 1}};
    idempotency::CachingStore<idempotency::RedisStore> cached{redis};
    prefill(redis, cached, keys, payload);
    const double secs = cfg.network_seconds_per_rep;
    auto side = [&](auto& store) {
      return threaded_side(1, secs, [&](int, std::size_t i) {
        sink(store.claim(keys[i % n], kNoFingerprint, 60s).payload.size());
      });
    };
    const auto [h0, m0] = counters(cached);
    const auto p = measure_pair(cfg.reps, side(cached), side(redis));
    Row r =
        speedup_row("cache.replay_vs_redis " + where, "RedisStore replay (no cache), same proxy", p,
                    "RedisStore ns/op / cached ns/op (times faster)");
    add_stats(r, cached, h0, m0);
    if (rtt_us >= kRedisTargetRttUs) {
      r.target = "cached >= " + fmt_num(kRedisSpeedup, 0) + "x faster than RedisStore";
      r.met = *r.ratio >= kRedisSpeedup;
    } else {
      r.note = "report only: the target applies at ~1 ms round trip";
    }
    add(std::move(r));
    for (const auto& k : keys) redis.forget(k);
  }
}
#endif

} // namespace

void bench_cache(const Config& cfg) {
  in_memory_case(cfg);
#if defined(IDEMPOTENCY_BENCH_CACHE_REDIS)
  if (cfg.redis_url.empty()) {
    skip("cache.replay_vs_redis", "no Redis server given (--redis URL or IDEMPOTENCY_BENCH_REDIS)");
    return;
  }
  for (const int rtt : cfg.rtts_us()) redis_case(cfg, rtt);
#else
  skip("cache.replay_vs_redis", "RedisStore not built (hiredis not found)");
#endif
}

} // namespace bench

#else
namespace bench {
void bench_cache(const Config&) {
  skip("cache", "<idempotency/stores/caching_store.hpp> not present");
}
} // namespace bench
#endif
