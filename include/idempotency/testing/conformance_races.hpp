// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The conformance suite's races (real threads), part of `run_store_conformance`, and the
// helpers the suite shares (included by idempotency/testing/conformance.hpp). Needs Catch2.

#include <idempotency/store.hpp>
#include <idempotency/testing/fault_injecting_store.hpp>
#include <idempotency/testing/history_checker.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(IDEMPOTENCY_CATCH2_V3)
#include <catch2/catch_test_macros.hpp>
#elif defined(IDEMPOTENCY_CATCH2_V2)
#include <catch2/catch.hpp>
#elif __has_include(<catch2/catch_test_macros.hpp>)
#include <catch2/catch_test_macros.hpp>
#else
#include <catch2/catch.hpp>
#endif

namespace idempotency::testing {

namespace conformance_detail {
inline std::string run_prefix() {
  static const std::string prefix = "conformance/" + Token::random().to_hex().substr(0, 12) + "/";
  return prefix;
}
inline std::string fresh_key(std::string_view name) {
  static std::atomic<unsigned> counter{0};
  return run_prefix() + std::string(name) + "/" + std::to_string(counter.fetch_add(1));
}
inline std::string binary_payload() {
  std::string p;
  for (int i = 0; i < 256; ++i) p.push_back(static_cast<char>(i));
  p += std::string("\0tail", 5);
  return p;
}
} // namespace conformance_detail

template <class Harness, class S>
void run_race_sections(Harness& h, S& s, std::chrono::milliseconds lease,
                       std::chrono::milliseconds ttl, std::chrono::milliseconds u) {
  using conformance_detail::fresh_key;

  SECTION("concurrent claims of one key: exactly one acquires") {
    constexpr int kThreads = 8;
    constexpr int kKeys = 25;
    for (int round = 0; round < kKeys; ++round) {
      const auto k = fresh_key("race");
      std::atomic<int> ready{0};
      std::atomic<int> acquired{0};
      std::atomic<int> in_progress{0};
      std::atomic<int> errors{0};
      std::vector<std::thread> threads;
      for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&] {
          ready.fetch_add(1);
          while (ready.load() < kThreads) std::this_thread::yield();
          try {
            const ClaimResult r = s.claim(k, "fp", lease);
            if (r.acquired())
              acquired.fetch_add(1);
            else if (r.status == ClaimStatus::in_progress)
              in_progress.fetch_add(1);
          } catch (...) {
            errors.fetch_add(1);
          }
        });
      }
      for (auto& th : threads) th.join();
      REQUIRE(errors.load() == 0);
      REQUIRE(acquired.load() == 1);
      REQUIRE(in_progress.load() == kThreads - 1);
    }
  }

  SECTION("concurrent takeover of an expired lease: exactly one acquires") {
    constexpr int kThreads = 8;
    const auto k = fresh_key("race-takeover");
    const ClaimResult first = s.claim(k, "fp", lease);
    REQUIRE(first.acquired());
    h.advance(lease + u);
    std::atomic<int> ready{0};
    std::atomic<int> acquired{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        try {
          if (s.claim(k, "fp", lease).acquired()) acquired.fetch_add(1);
        } catch (...) {
          errors.fetch_add(1);
        }
      });
    }
    for (auto& th : threads) th.join();
    REQUIRE(errors.load() == 0);
    CHECK(acquired.load() == 1);
    CHECK_FALSE(s.complete(k, first.token, "stale", ttl));
  }

  SECTION("racing transitions on shared keys: the recorded history is consistent") {
    // 8 threads claim 16 keys, hold them a moment and finish them in every way (complete,
    // fail, release, renew then complete); a thread that finds a key taken tries another
    // thread's token on it (complete, release or renew: only the holder's may succeed). Every call
    // is logged by a FaultInjectingStore (no faults) and the history checked: one result per key,
    // replays equal to it, no success with a token that is not the holder's, no double acquisition.
    constexpr int kThreads = 8;
    constexpr int kRounds = 40;
    History history;
    FaultInjectingStore<S> rec(s, FaultOptions{.history = &history});
    std::vector<std::string> keys;
    for (int k = 0; k < 16; ++k) keys.push_back(fresh_key("history"));
    std::mutex seen_mutex;
    std::vector<Token> seen;
    std::atomic<int> errors{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        this_caller() = t;
        std::mt19937 rng(static_cast<unsigned>(t) + 1);
        try {
          for (int i = 0; i < kRounds; ++i) {
            const std::string& k = keys[rng() % keys.size()];
            const ClaimResult r = rec.claim(k, "fp", lease);
            if (!r.acquired()) {
              Token other{};
              {
                const std::lock_guard lock(seen_mutex);
                if (!seen.empty()) other = seen[rng() % seen.size()];
              }
              if (other.empty()) continue;
              switch (rng() % 3) {
                case 0: (void)rec.complete(k, other, "x" + std::to_string(t), ttl); break;
                case 1: (void)rec.release(k, other); break;
                default: (void)rec.renew(k, other, lease);
              }
              continue;
            }
            {
              const std::lock_guard lock(seen_mutex);
              seen.push_back(r.token);
            }
            const std::string payload = "c" + std::to_string(t) + "-" + std::to_string(i);
            std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200)); // others try
            switch (rng() % 4) {
              case 0: (void)rec.complete(k, r.token, payload, ttl); break;
              case 1: (void)rec.fail(k, r.token, payload, ttl); break;
              case 2: (void)rec.release(k, r.token); break;
              default:
                (void)rec.renew(k, r.token, lease);
                (void)rec.complete(k, r.token, payload, ttl);
            }
          }
        } catch (...) {
          errors.fetch_add(1);
        }
      });
    for (auto& th : threads) th.join();
    REQUIRE(errors.load() == 0);
    const auto violations = check_history(history, CheckOptions{.ttl = ttl});
    INFO(describe(violations));
    CHECK(violations.empty());
    CHECK(history.store_calls().size() >= static_cast<std::size_t>(kThreads * kRounds));
  }
}

} // namespace idempotency::testing
