// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// RedisStore on a Redis Cluster against RedisStore on a single node, same run, loopback:
// replay latency and first-execution latency (1 thread). What the cluster adds is the slot
// lookup and routing on the client; the round trips stay 1 and 2.
#include "common.hpp"

#if defined(IDEMPOTENCY_BENCH_HAVE_REDIS) && __has_include(<idempotency/stores/redis_store.hpp>)
#include <idempotency/stores/redis_store.hpp>

#include <unistd.h>

#include <atomic>
#include <memory>

namespace bench {

namespace {

using namespace std::chrono_literals;

std::unique_ptr<idempotency::RedisStore> open(const std::string& url, const std::string& prefix) {
  return std::make_unique<idempotency::RedisStore>(
      idempotency::RedisStoreOptions{.url = url, .key_prefix = prefix});
}

} // namespace

void bench_redis_cluster(const Config& cfg) {
  if (cfg.redis_url.empty() || cfg.redis_cluster_url.empty()) {
    skip("redis_cluster",
         "needs --redis URL and --redis-cluster URL (or IDEMPOTENCY_BENCH_REDIS "
         "and IDEMPOTENCY_BENCH_REDIS_CLUSTER)");
    return;
  }
  const std::string prefix = "idempotency-bench-cluster:" + std::to_string(getpid()) + ":";
  std::unique_ptr<idempotency::RedisStore> single, cluster;
  try {
    single = open(cfg.redis_url, prefix);
    cluster = open(cfg.redis_cluster_url, prefix);
  } catch (const std::exception& e) {
    skip("redis_cluster", std::string("not reachable: ") + e.what());
    return;
  }
  const std::string payload(64, 'p');
  const std::vector<std::string> keys = make_keys(1000, 16);
  for (auto* s : {single.get(), cluster.get()}) {
    for (const auto& k : keys) {
      const auto c = s->claim(k, kNoFingerprint, 60s);
      if (c.acquired() && !s->complete(k, c.token, payload, 1h)) std::abort();
    }
  }
  const double secs = cfg.seconds_per_rep;
  std::atomic<std::size_t> serial{0};
  auto side = [&](const std::function<void(std::size_t)>& op) -> Side {
    return [&, op]() -> std::pair<double, double> {
      const auto t0 = Clock::now();
      const double ops = timed_loop(secs, op);
      return {elapsed_ns(t0), ops};
    };
  };
  auto replay = [&](idempotency::RedisStore& s) {
    return [&s, &keys](std::size_t i) {
      sink(s.claim(keys[i % keys.size()], kNoFingerprint, 60s).payload.size());
    };
  };
  auto first = [&](idempotency::RedisStore& s) {
    return [&s, &serial, &payload](std::size_t) {
      const std::string k = make_key(++serial, 16, 'f');
      const auto c = s.claim(k, kNoFingerprint, 60s);
      if (!c.acquired() || !s.complete(k, c.token, payload, 1h)) std::abort();
    };
  };
  {
    Row r = pair_row("redis_cluster.replay vs single node", "RedisStore replay on one node",
                     measure_pair(cfg.reps, side(replay(*cluster)), side(replay(*single))));
    r.note = "3 masters + 3 replicas on the same host; 1 thread, loopback";
    add(std::move(r));
  }
  {
    Row r = pair_row("redis_cluster.first vs single node", "RedisStore first execution on one node",
                     measure_pair(cfg.reps, side(first(*cluster)), side(first(*single))));
    r.extra["moved"] = static_cast<double>(cluster->stats().moved);
    r.note = "claim + complete; 1 thread, loopback";
    add(std::move(r));
  }
  for (std::size_t i = 1; i <= serial; ++i) {
    for (auto* s : {single.get(), cluster.get()}) (void)s->forget(make_key(i, 16, 'f'));
  }
  for (const auto& k : keys) {
    for (auto* s : {single.get(), cluster.get()}) (void)s->forget(k);
  }
}

} // namespace bench

#else
namespace bench {
void bench_redis_cluster(const Config&) {
  skip("redis_cluster", "RedisStore not built (hiredis not found, or redis_store.hpp missing)");
}
} // namespace bench
#endif
