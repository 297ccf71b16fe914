// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And
// Jitter"): the pause before retry n is uniform in [0, min(cap, base * 2^n)].

#include <idempotency/detail/random.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace idempotency::detail {

/// A per-thread generator, so no lock is taken. (A jitter needs no reseed after `fork()`: a
/// child pausing like its parent harms nobody.)
inline Xoshiro256& jitter_engine() noexcept {
  thread_local Xoshiro256 gen{};
  return gen;
}

/// `min(cap, initial * multiplier^retry)`, computed without overflow.
inline std::chrono::milliseconds exponential_backoff(std::chrono::milliseconds initial,
                                                     std::chrono::milliseconds cap, int retry,
                                                     double multiplier = 2.0) {
  if (initial.count() <= 0) return std::chrono::milliseconds(0);
  double d = static_cast<double>(initial.count());
  const double c = static_cast<double>(cap.count());
  for (int i = 0; i < retry && d < c; ++i) d *= multiplier;
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(std::min(d, c)));
}

/// Full jitter: uniform in [0, cap].
inline std::chrono::milliseconds full_jitter(std::chrono::milliseconds cap) noexcept {
  if (cap.count() <= 0) return std::chrono::milliseconds(0);
  const auto drawn = jitter_engine().uniform(static_cast<std::uint64_t>(cap.count()));
  return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(drawn));
}

} // namespace idempotency::detail
