// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The library's random numbers (fencing tokens, backoff jitter): xoshiro256** (Blackman and
// Vigna, 2018; 256 bits of state, period 2^256 - 1), seeded from the operating system.
// Not <random>: its engines and distributions cost every translation unit ~0.17 s to parse,
// and nothing here needs more than a good 64-bit generator.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <thread>

#if __has_include(<unistd.h>)
#include <unistd.h> // getentropy (glibc >= 2.25, musl, the BSDs), getpid
#define IDEMPOTENCY_HAS_GETENTROPY 1
#if __has_include(<sys/random.h>)
#include <sys/random.h> // getentropy on macOS
#endif
#else
#define IDEMPOTENCY_HAS_GETENTROPY 0
#endif

namespace idempotency::detail {

/// SplitMix64 (Steele, Lea and Flood): spreads one 64-bit value over the seed words.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15U);
  z = (z ^ (z >> 30U)) * 0xBF58476D1CE4E5B9U;
  z = (z ^ (z >> 27U)) * 0x94D049BB133111EBU;
  return z ^ (z >> 31U);
}

/// xoshiro256**: not for secrets (a token fences a stale holder; it is not a credential).
class Xoshiro256 {
 public:
  /// Seeded from the OS (`getentropy`); should that fail, from the clock, the thread and the
  /// process, mixed (never the same state twice in one process: a counter goes in too).
  Xoshiro256() noexcept { reseed(); }

  /// A fixed sequence, for tests.
  explicit Xoshiro256(std::uint64_t seed) noexcept {
    for (std::uint64_t& w : s_) w = splitmix64(seed);
  }

  /// A given state (not all zero), for tests against the reference implementation.
  Xoshiro256(std::uint64_t a, std::uint64_t b, std::uint64_t c, std::uint64_t d) noexcept
      : s_{a, b, c, d} {}

  void reseed() noexcept {
    bool seeded = false;
#if IDEMPOTENCY_HAS_GETENTROPY
    seeded = ::getentropy(s_, sizeof s_) == 0;
#endif
    if (!seeded) {
      static std::atomic<std::uint64_t> counter{0};
      std::uint64_t mix =
          static_cast<std::uint64_t>(
              std::chrono::high_resolution_clock::now().time_since_epoch().count()) ^
          (static_cast<std::uint64_t>(std::hash<std::thread::id>{}(std::this_thread::get_id()))
           << 1U) ^
          static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(&mix)) ^
          (counter.fetch_add(1, std::memory_order_relaxed) << 32U);
#if IDEMPOTENCY_HAS_GETENTROPY
      mix ^= static_cast<std::uint64_t>(::getpid()) << 16U;
#endif
      for (std::uint64_t& w : s_) w = splitmix64(mix);
    }
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1; // the one state it must not have
  }

  std::uint64_t operator()() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5U, 7) * 9U;
    const std::uint64_t t = s_[1] << 17U;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [0, bound]: draws below 2^64 mod (bound + 1) are rejected, so there is no
  /// modulo bias.
  std::uint64_t uniform(std::uint64_t bound) noexcept {
    if (bound == ~std::uint64_t{0}) return (*this)();
    const std::uint64_t range = bound + 1;
    const std::uint64_t threshold = (0 - range) % range;
    for (;;) {
      const std::uint64_t x = (*this)();
      if (x >= threshold) return x % range;
    }
  }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
  }

  std::uint64_t s_[4]{};
};

} // namespace idempotency::detail
