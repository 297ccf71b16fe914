// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// Fresh idempotency keys: UUIDv7 (RFC 9562 §5.7: time-ordered, so the rows of a SQL index stay
// local) and UUIDv4 (RFC 9562 §5.4, the format of RFC 4122). The first rule of the pattern is a
// unique key per logical request, made once by the client and sent again with every retry.

#include <idempotency/detail/random.hpp>
#include <idempotency/store.hpp> // detail::fork_generation, detail::thread_engine

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <utility>

namespace idempotency {

namespace detail {

struct uuid_v7_test_access; // tests: sets the state to reach the carry paths

/// `8-4-4-4-12` lower-case hex digits of the 128 bits `hi:lo` (36 characters).
inline std::string uuid_text(std::uint64_t hi, std::uint64_t lo) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(36, '-');
  std::size_t at = 0;
  const auto put = [&](std::uint64_t word, int nibbles_from, int nibbles_to) {
    for (int n = nibbles_from; n < nibbles_to; ++n) {
      if (at == 8 || at == 13 || at == 18 || at == 23) ++at;
      out[at++] = digits[(word >> (60 - 4 * n)) & 0xFU];
    }
  };
  put(hi, 0, 16);
  put(lo, 0, 16);
  return out;
}

} // namespace detail

/// A UUIDv7 generator (RFC 9562 §5.7, with the monotonic random method of §6.2, "Method 2").
///
/// Layout: 48 bits of Unix time in milliseconds, version 7, 12 bits `rand_a`, variant `10`,
/// 62 bits `rand_b`. The 74 bits `rand_a:rand_b` are random for the first key of a
/// millisecond; each further key within the same millisecond adds a random increment of
/// 1..2^32 to them, so the keys one generator returns are strictly increasing (as text too:
/// fixed width, lower-case hex) and still unguessable in their low bits. Should the 74 bits
/// overflow, or the clock step back, the timestamp is carried forward by one millisecond
/// instead (§6.2, "Monotonic Error Checking"), so the order never breaks.
///
/// One object may be used from any number of threads (a mutex around 3 words of state).
/// After `fork()` the child starts a fresh random sequence (the state it copied from the
/// parent is discarded), so parent and child never share a sequence.
///
/// The bits come from xoshiro256** seeded by the OS (`detail/random.hpp`): unique, but not a
/// secret. A key is an identifier, not a credential.
class UuidV7Generator {
 public:
  /// Milliseconds since the Unix epoch.
  using Clock = std::function<std::uint64_t()>;

  /// The system clock.
  UuidV7Generator() = default;

  /// A clock and a fixed random sequence of one's own (tests).
  UuidV7Generator(Clock clock, std::uint64_t seed)
      : clock_(std::move(clock)),
        engine_(seed),
        seeded_(true),
        generation_(detail::fork_generation()) {}

  /// The next key: 36 characters, `xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx`.
  [[nodiscard]] std::string next() {
    std::uint64_t hi = 0;
    std::uint64_t lo = 0;
    {
      const std::lock_guard lock(mutex_);
      advance();
      hi = (ms_ << 16U) | 0x7000U | rand_a_;
      lo = (std::uint64_t{0x2} << 62U) | rand_b_;
    }
    return detail::uuid_text(hi, lo);
  }

 private:
  friend struct detail::uuid_v7_test_access;

  static constexpr std::uint64_t rand_b_mask = (std::uint64_t{1} << 62U) - 1U;
  static constexpr std::uint64_t max_ms = (std::uint64_t{1} << 48U) - 1U;

  static std::uint64_t system_ms() {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                          std::chrono::system_clock::now().time_since_epoch())
                                          .count());
  }

  void fresh_bits() noexcept {
    rand_a_ = engine_() >> 52U; // 12 bits
    rand_b_ = engine_() & rand_b_mask;
  }

  // Under mutex_: the state of the next key.
  void advance() {
    bool forked = false;
    if (const std::uint64_t g = detail::fork_generation(); !seeded_ || generation_ != g) {
      // first use, or a child of fork(): a random sequence of its own
      forked = seeded_;
      engine_.reseed();
      generation_ = g;
      seeded_ = true;
    }
    const std::uint64_t now = (clock_ ? clock_() : system_ms()) & max_ms;
    if (now > ms_ || forked) {
      // a child never counts on from the parent's last key (the parent may do the same):
      // fresh bits, past every key it inherited
      ms_ = now > ms_ ? now : (ms_ + 1U) & max_ms;
      fresh_bits();
      return;
    }
    // the same millisecond, or the clock stepped back: count on from the last key
    const std::uint64_t step = (engine_() >> 32U) + 1U; // 1 .. 2^32
    const std::uint64_t b = rand_b_ + step;
    if (b <= rand_b_mask) {
      rand_b_ = b;
      return;
    }
    rand_b_ = b & rand_b_mask; // carry into rand_a
    if (rand_a_ < 0xFFFU) {
      ++rand_a_;
      return;
    }
    ms_ = (ms_ + 1U) & max_ms; // the 74 bits are used up: the next millisecond, fresh bits
    fresh_bits();
  }

  Clock clock_{};
  std::mutex mutex_{};
  detail::Xoshiro256 engine_{std::uint64_t{0}};
  bool seeded_ = false;
  std::uint64_t generation_ = 0;
  std::uint64_t ms_ = 0;
  std::uint64_t rand_a_ = 0; // 12 bits
  std::uint64_t rand_b_ = 0; // 62 bits
};

/// A fresh idempotency key: a UUIDv7 (RFC 9562), e.g. `01932c07-a5f4-7b6e-9c1d-3f4a5b6c7d8e`.
/// Time-ordered (strictly increasing within this process), 74 random bits, safe from any
/// thread and after `fork()`. It satisfies the key rules (36 bytes of visible ASCII).
///
/// Example:
///
///     const std::string key = idempotency::new_key(); // once per logical request
///     for (int attempt = 0; attempt < 3; ++attempt) {
///       try { return client.charge(key, order); } catch (const Timeout&) {} // same key again
///     }
[[nodiscard]] inline std::string new_key() {
  static UuidV7Generator generator;
  return generator.next();
}

/// A fresh UUIDv4 (RFC 9562 §5.4; the format of RFC 4122): 122 random bits, no order. For
/// those whose peers expect v4; `new_key()` is the better key for SQL-backed stores.
[[nodiscard]] inline std::string new_key_v4() {
  detail::Xoshiro256& engine = detail::thread_engine(); // reseeded after fork()
  const std::uint64_t hi = (engine() & ~std::uint64_t{0xF000}) | 0x4000U;
  const std::uint64_t lo = (engine() >> 2U) | (std::uint64_t{0x2} << 62U);
  return detail::uuid_text(hi, lo);
}

} // namespace idempotency
