// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// InMemoryStore against its floor: a std::unordered_map<std::string, std::string> behind one
// std::mutex, with the same keys and payloads. Replay = a claim that finds a completed record
// (floor: locked find + payload copy); first execution = claim + complete of a new key
// (floor: locked insert).
#include "common.hpp"

#include <idempotency/stores/in_memory_store.hpp>

#include <fmt/format.h>

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>

namespace bench {

namespace {

using namespace std::chrono_literals;

constexpr double kReplayTarget = 1.3;
constexpr double kFirstTarget = 2.0;

struct LockedMap {
  std::mutex mutex;
  std::unordered_map<std::string, std::string> map;
};

/// {wall ns, ops} of `per_thread` calls of `op(thread, i)` on each of `threads` threads.
template <class Op>
std::pair<double, double> fixed_ops(int threads, std::size_t per_thread, Op&& op) {
  const double ns = run_threads(threads, [&](int t) { op(t, per_thread); });
  return {ns, static_cast<double>(per_thread * static_cast<std::size_t>(threads))};
}

void replay_case(const Config& cfg, const std::string& label, const std::vector<std::string>& keys,
                 const std::string& payload, int threads) {
  const std::size_t prefill = keys.size();
  const std::size_t replay_ops = cfg.quick ? 50'000 : 200'000;
  idempotency::InMemoryStore store;
  LockedMap floor;
  for (const auto& k : keys) {
    auto c = store.claim(k, kNoFingerprint, 60s);
    if (!store.complete(k, c.token, payload, 1h)) std::abort();
    floor.map.emplace(k, payload);
  }
  const std::size_t per_thread = replay_ops / static_cast<std::size_t>(threads);
  auto subject = [&] {
    return fixed_ops(threads, per_thread, [&](int t, std::size_t n) {
      std::size_t j = static_cast<std::size_t>(t) * 7919, acc = 0;
      for (std::size_t i = 0; i < n; ++i, ++j)
        acc += store.claim(keys[j % prefill], kNoFingerprint, 60s).payload.size();
      sink(acc);
    });
  };
  auto baseline = [&] {
    return fixed_ops(threads, per_thread, [&](int t, std::size_t n) {
      std::size_t j = static_cast<std::size_t>(t) * 7919, acc = 0;
      for (std::size_t i = 0; i < n; ++i, ++j) {
        std::string out;
        {
          std::lock_guard lock(floor.mutex);
          auto it = floor.map.find(keys[j % prefill]);
          if (it != floor.map.end()) out = it->second;
        }
        acc += out.size();
      }
      sink(acc);
    });
  };
  const auto p = measure_pair(cfg.reps, subject, baseline);
  Row r = pair_row("inmemory.replay " + label, "unordered_map+mutex find+copy", p);
  r.target = "<= " + fmt_num(kReplayTarget, 1) + "x";
  r.met = *r.ratio <= kReplayTarget;
  add(std::move(r));
}

void first_case(const Config& cfg, const std::string& label,
                const std::vector<std::string>& fresh_keys, const std::string& payload,
                int threads) {
  const std::size_t per_thread = fresh_keys.size() / static_cast<std::size_t>(threads);
  // a fresh store and map per repetition (untimed construction, timed inserts)
  auto subject = [&] {
    idempotency::InMemoryStore store;
    return fixed_ops(threads, per_thread, [&](int t, std::size_t n) {
      const std::size_t base = static_cast<std::size_t>(t) * per_thread;
      for (std::size_t i = 0; i < n; ++i) {
        const std::string& k = fresh_keys[base + i];
        const auto c = store.claim(k, kNoFingerprint, 60s);
        if (!store.complete(k, c.token, payload, 1h)) std::abort();
      }
    });
  };
  auto baseline = [&] {
    LockedMap floor;
    return fixed_ops(threads, per_thread, [&](int t, std::size_t n) {
      const std::size_t base = static_cast<std::size_t>(t) * per_thread;
      for (std::size_t i = 0; i < n; ++i) {
        std::lock_guard lock(floor.mutex);
        floor.map.emplace(fresh_keys[base + i], payload);
      }
    });
  };
  const auto p = measure_pair(cfg.reps, subject, baseline);
  Row r = pair_row("inmemory.first " + label, "unordered_map+mutex insert", p);
  r.target = "<= " + fmt_num(kFirstTarget, 1) + "x";
  r.met = *r.ratio <= kFirstTarget;
  r.note = "claim+complete = 2 locked lookups + token";
  add(std::move(r));
}

} // namespace

void bench_in_memory(const Config& cfg) {
  const std::size_t prefill = cfg.quick ? 10'000 : 100'000;
  for (std::size_t key_len : {16u, 64u}) {
    const auto keys = make_keys(prefill, key_len);
    for (std::size_t payload_len : {64u, 4096u}) {
      const std::string payload(payload_len, 'p');
      // first executions: keep the 4 KiB runs under ~100 MB
      const std::size_t first_ops =
          payload_len > 1000 ? (cfg.quick ? 4'000 : 10'000) : (cfg.quick ? 20'000 : 50'000);
      const auto fresh_keys = make_keys(first_ops, key_len, 'n');
      for (int threads : {1, 2}) {
        const std::string label =
            fmt::format("k{}/p{}/t{}", key_len, payload_len == 4096 ? "4K" : "64", threads);
        replay_case(cfg, label, keys, payload, threads);
        first_case(cfg, label, fresh_keys, payload, threads);
      }
    }
  }
}

} // namespace bench
