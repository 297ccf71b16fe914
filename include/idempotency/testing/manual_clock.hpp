// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <atomic>
#include <chrono>

namespace idempotency::testing {

/// A clock that moves only when told to, so tests of leases and TTLs never sleep.
/// Thread-safe. Pass `clock.source()` as a store's clock.
///
/// Example:
///
///     idempotency::testing::ManualClock clock;
///     idempotency::InMemoryStore store{{.clock = clock.source()}};
///     clock.advance(std::chrono::minutes(2));   // every lease of 60 s has now passed
class ManualClock {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  ManualClock() = default;
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  [[nodiscard]] time_point now() const noexcept {
    return time_point(std::chrono::steady_clock::duration(ticks_.load(std::memory_order_acquire)));
  }

  void advance(std::chrono::steady_clock::duration d) noexcept {
    ticks_.fetch_add(d.count(), std::memory_order_acq_rel);
  }

  /// A callable returning `now()`; the clock must outlive whoever holds it.
  [[nodiscard]] auto source() const noexcept {
    return [this] { return now(); };
  }

  /// The same clock as `std::chrono::system_clock` time (for stores that take a wall clock,
  /// e.g. `SqliteStoreOptions::clock`): it reads 2026-01-01T00:00:00Z at construction and
  /// moves exactly as `advance` says, like `source()`.
  [[nodiscard]] std::chrono::system_clock::time_point system_now() const noexcept {
    using namespace std::chrono;
    return system_clock::time_point(seconds(1'767'225'600)) +
           duration_cast<system_clock::duration>(now().time_since_epoch() - start);
  }

  /// A callable returning `system_now()`; the clock must outlive whoever holds it.
  [[nodiscard]] auto system_source() const noexcept {
    return [this] { return system_now(); };
  }

 private:
  // starts far from zero so "now - lease" never underflows
  static constexpr std::chrono::steady_clock::duration start =
      std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::hours(24 * 365));
  std::atomic<std::chrono::steady_clock::duration::rep> ticks_{start.count()};
};

} // namespace idempotency::testing
