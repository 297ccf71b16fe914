// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// A deterministic scheduler for real threads: n logical callers run on n threads, but only
// one at a time; control passes only at `yield()`, to a caller chosen by the seeded generator.
// Same seed, same code path between yields: the same interleaving, every time.

#include <idempotency/testing/history.hpp>

#include <cstdint>
#include <memory>
#include <random>
#include <semaphore>
#include <thread>
#include <vector>

namespace idempotency::sim {

class Scheduler {
 public:
  explicit Scheduler(std::uint64_t seed) : rng_(seed) {}

  /// Runs `body(i)` for every caller i in [0, n) until all return. `this_caller()` is i.
  template <class F>
  void run(int n, F&& body) {
    slots_.clear();
    for (int i = 0; i < n; ++i) slots_.push_back(std::make_unique<Slot>());
    std::vector<std::thread> threads;
    threads.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i)
      threads.emplace_back([this, i, &body] {
        slots_[static_cast<std::size_t>(i)]->go.acquire();
        testing::this_caller() = i;
        body(i);
        slots_[static_cast<std::size_t>(i)]->done = true;
        const int next = pick();
        if (next < 0)
          all_done_.release();
        else
          slots_[static_cast<std::size_t>(next)]->go.release();
      });
    slots_[static_cast<std::size_t>(pick())]->go.release();
    all_done_.acquire();
    for (auto& t : threads) t.join();
  }

  /// Called by the running caller: maybe hands control to another (or itself).
  void yield() {
    const int me = testing::this_caller();
    const int next = pick();
    if (next == me) return;
    slots_[static_cast<std::size_t>(next)]->go.release();
    slots_[static_cast<std::size_t>(me)]->go.acquire();
  }

  /// The schedule's generator: only the running caller may draw from it.
  std::mt19937_64& rng() noexcept { return rng_; }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  long long uniform(long long lo, long long hi) {
    return std::uniform_int_distribution<long long>(lo, hi)(rng_);
  }

 private:
  struct Slot {
    std::binary_semaphore go{0};
    bool done = false;
  };

  int pick() {
    std::vector<int> alive;
    for (std::size_t i = 0; i < slots_.size(); ++i)
      if (!slots_[i]->done) alive.push_back(static_cast<int>(i));
    if (alive.empty()) return -1;
    return alive[static_cast<std::size_t>(uniform(0, static_cast<long long>(alive.size()) - 1))];
  }

  std::mt19937_64 rng_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::binary_semaphore all_done_{0};
};

} // namespace idempotency::sim
