// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// IdempotencyExecutor replay against what it cannot avoid: the store's claim (which finds the
// completed record) plus decoding the stored result. Also counts heap allocations per call of
// each side (outside the timed runs).
#include "common.hpp"

#include <idempotency/codec.hpp>
#include <idempotency/executor.hpp>
#include <idempotency/stores/in_memory_store.hpp>
#if __has_include(<idempotency/json_codec.hpp>)
#include <idempotency/json_codec.hpp> // Codec<T> for types with to_json / from_json
#endif

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>

namespace bench_types {
struct Receipt {
  std::int64_t id = 0;
  std::string status;
  std::int64_t amount_cents = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Receipt, id, status, amount_cents)
};
} // namespace bench_types

namespace bench {

void bench_executor(const Config& cfg) {
  using bench_types::Receipt;
  constexpr double kTarget = 1.15;
  const std::size_t n = 10'000;
  const std::size_t ops = cfg.quick ? 20'000 : 200'000;
  const auto keys = make_keys(n, 16);
  idempotency::InMemoryStore store;
  idempotency::IdempotencyExecutor exec{store};
  std::size_t runs = 0;
  for (std::size_t i = 0; i < n; ++i)
    (void)exec.execute(keys[i], [&] {
      ++runs;
      return Receipt{static_cast<std::int64_t>(i), "captured", 12'345};
    });
  const auto lease = exec.options().lease;
  auto replay = [&](std::size_t i) {
    const Receipt r = exec.execute(keys[i % n], [&] {
      ++runs;
      return Receipt{};
    });
    return r.status.size();
  };
  auto floor = [&](std::size_t i) {
    const auto c = store.claim(keys[i % n], kNoFingerprint, lease);
    const Receipt r = idempotency::codec::decode<Receipt>(c.payload, keys[i % n]);
    return r.status.size();
  };
  auto timed = [&](auto& op) {
    return [&]() -> std::pair<double, double> {
      const auto t0 = Clock::now();
      std::size_t acc = 0;
      for (std::size_t i = 0; i < ops; ++i) acc += op(i);
      sink(acc);
      return {elapsed_ns(t0), static_cast<double>(ops)};
    };
  };
  const auto p = measure_pair(cfg.reps, timed(replay), timed(floor));
  const double allocs = allocations_per_op(1000, [&](std::size_t i) { sink(replay(i)); });
  const double base_allocs = allocations_per_op(1000, [&](std::size_t i) { sink(floor(i)); });
  if (runs != n) std::abort(); // a replay must never run the operation
  Row r = pair_row("executor.replay Receipt{int,string,int}", "store.claim + codec::decode", p);
  r.extra["allocs_per_op"] = allocs;
  r.extra["baseline_allocs_per_op"] = base_allocs;
  r.target = "<= " + fmt_num(kTarget) + "x";
  r.met = *r.ratio <= kTarget;
  add(std::move(r));
}

} // namespace bench
