// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/detail/random.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#if __has_include(<pthread.h>)
#include <pthread.h>
#define IDEMPOTENCY_HAS_PTHREAD_ATFORK 1
#else
#define IDEMPOTENCY_HAS_PTHREAD_ATFORK 0
#endif

namespace idempotency {

namespace detail {
/// Counts the `fork()`s this process descends from (a `pthread_atfork` child handler bumps it),
/// so per-thread generators notice that they were copied into a child and reseed.
inline std::uint64_t fork_generation() noexcept {
  static std::atomic<std::uint64_t> generation{0};
#if IDEMPOTENCY_HAS_PTHREAD_ATFORK
  static const bool registered = [] {
    return ::pthread_atfork(nullptr, nullptr,
                            [] { generation.fetch_add(1, std::memory_order_relaxed); }) == 0;
  }();
  (void)registered;
#endif
  return generation.load(std::memory_order_relaxed);
}

/// This thread's generator (xoshiro256**, seeded from the OS), reseeded before its first use
/// in a child of `fork()`: a generator copied from the parent would repeat the parent's
/// numbers. No lock is taken. Fencing tokens and UUIDv4 keys come from here.
inline Xoshiro256& thread_engine() noexcept {
  struct Generator {
    Xoshiro256 engine{};
    std::uint64_t generation = 0;
  };
  thread_local Generator gen{Xoshiro256{}, fork_generation()};
  if (const std::uint64_t now = fork_generation(); gen.generation != now) {
    gen.engine.reseed();
    gen.generation = now;
  }
  return gen.engine;
}
} // namespace detail

/// A fencing token: 128 random bits, fresh for every successful claim, never reused for a key
/// (also across store restarts, since it is not a counter). All-zero is "no token".
struct Token {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;

  [[nodiscard]] constexpr bool empty() const noexcept { return hi == 0 && lo == 0; }
  friend constexpr bool operator==(const Token&, const Token&) = default;

  /// 32 lower-case hex digits.
  [[nodiscard]] std::string to_hex() const {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out(32, '0');
    for (int i = 0; i < 16; ++i) {
      out[static_cast<std::size_t>(15 - i)] = digits[(hi >> (4 * i)) & 0xF];
      out[static_cast<std::size_t>(31 - i)] = digits[(lo >> (4 * i)) & 0xF];
    }
    return out;
  }

  /// Parses what `to_hex()` wrote; anything else is `std::nullopt`.
  [[nodiscard]] static std::optional<Token> from_hex(std::string_view text) noexcept {
    if (text.size() != 32) return std::nullopt;
    Token t;
    for (std::size_t i = 0; i < 32; ++i) {
      const char c = text[i];
      std::uint64_t v = 0;
      if (c >= '0' && c <= '9')
        v = static_cast<std::uint64_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v = static_cast<std::uint64_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v = static_cast<std::uint64_t>(c - 'A' + 10);
      else
        return std::nullopt;
      std::uint64_t& half = i < 16 ? t.hi : t.lo;
      half = (half << 4) | v;
    }
    return t;
  }

  /// A fresh random token (never all-zero). Each thread has its own generator (xoshiro256**,
  /// `detail/random.hpp`), seeded from the OS, so no lock is taken. A child process made by
  /// `fork()` reseeds before its first token (a generator copied from the parent would repeat its
  /// tokens).
  [[nodiscard]] static Token random() {
    detail::Xoshiro256& engine = detail::thread_engine();
    Token t;
    do {
      t.hi = engine();
      t.lo = engine();
    } while (t.empty());
    return t;
  }
};

/// What a claim found.
enum class ClaimStatus : std::uint8_t {
  acquired,    ///< no live record existed: the caller now holds the key with `token`
  in_progress, ///< another holder's lease is live; `remaining` is what is left of it
  completed,   ///< a result is recorded; `payload` holds it, `remaining` is its TTL left
  failed,      ///< a failure is recorded; `payload` holds it, `remaining` is its TTL left
};

/// The answer of `Store::claim`: either "acquired(token)" or the live record as it is.
struct ClaimResult {
  ClaimStatus status = ClaimStatus::acquired;
  /// The fresh fencing token when `status == acquired`; empty otherwise.
  Token token{};
  /// The fingerprint stored with the live record (when not acquired), byte for byte as given
  /// to the claim that created it.
  std::string fingerprint{};
  /// The result (completed) or the error (failed) bytes, exactly as stored.
  std::string payload{};
  /// in_progress: lease left; completed / failed: TTL left; acquired: zero.
  std::chrono::milliseconds remaining{0};
  /// acquired by taking over an in-progress record whose lease had passed.
  bool took_over = false;

  [[nodiscard]] bool acquired() const noexcept { return status == ClaimStatus::acquired; }
};

/// # The Store concept
///
/// Stores see bytes (storage key, fingerprint, payload); encoding is the executor's job.
/// Concretely, a type `S` satisfies `Store` if, for `S& s`, keys `k`, bytes `fp` and `p`,
/// a `Token t` and a duration `d` (`std::chrono::milliseconds`):
///
/// 1. `s.claim(k, fp, d)` returns a `ClaimResult` and is ONE atomic step: if `k` has no live
///    record (absent, a completed/failed record past its TTL, or an in-progress record past
///    its lease) it creates `InProgress(fresh token, lease d, fingerprint fp)` and returns
///    `acquired` with the token; otherwise it returns the live record unchanged. Never
///    "check, then set".
/// 2. `s.complete(k, t, p, d)` returns `bool`: atomically, if `k` is `InProgress` holding `t`
///    (even past its lease, as long as no claim took it over) it becomes `Completed(p)` for
///    TTL `d` and the call returns true; otherwise nothing changes and it returns false.
/// 3. `s.fail(k, t, p, d)` returns `bool`: the same compare-and-set to `Failed(p)` for TTL `d`.
/// 4. `s.release(k, t)` returns `bool`: the same compare-and-set, deleting the record.
/// 5. `s.renew(k, t, d)` returns `bool`: the same compare-and-set, setting the lease to `d`
///    from now.
/// 6. `s.name()` names the store for error messages.
///
/// Time is the store's own clock (a server's where there is one). A token is never reused for
/// a key. A store that cannot do an operation because of an infrastructure fault throws
/// `StoreError` (never returns false for that). Every record eventually expires and its
/// memory is freed. The conformance suite (`idempotency/testing/conformance.hpp`) checks all
/// of this. Stores do their own locking; the executor calls them from many threads.
template <class S>
concept HasAtomicClaim = requires(S& s, std::string_view key, std::string_view fingerprint,
                                  std::chrono::milliseconds d) {
  { s.claim(key, fingerprint, d) } -> std::same_as<ClaimResult>;
};

template <class S>
concept HasFencedTransitions = requires(S& s, std::string_view key, std::string_view payload,
                                        const Token& t, std::chrono::milliseconds d) {
  { s.complete(key, t, payload, d) } -> std::same_as<bool>;
  { s.fail(key, t, payload, d) } -> std::same_as<bool>;
  { s.release(key, t) } -> std::same_as<bool>;
  { s.renew(key, t, d) } -> std::same_as<bool>;
};

template <class S>
concept HasStoreName = requires(const S& s) {
  { s.name() } -> std::convertible_to<std::string_view>;
};

template <class S>
concept Store = HasAtomicClaim<S> && HasFencedTransitions<S> && HasStoreName<S>;

/// Optional capability: block until the record of `key` may have changed, or `timeout` passed.
/// Spurious returns are allowed. The executor uses it instead of polling when waiting.
template <class S>
concept WaitableStore = Store<S> &&
    requires(S& s, std::string_view key, std::chrono::milliseconds d) {
  s.wait_for_change(key, d);
};

/// Optional capability: delete up to `limit` expired records now; returns how many went.
template <class S>
concept PurgeableStore = Store<S> && requires(S& s, std::size_t limit) {
  { s.purge_expired(limit) } -> std::convertible_to<std::size_t>;
};

/// Optional capability, for operators (not the normal flow): `s.forget(k)` deletes the record
/// of `k` whatever its state (a customer asks for a re-run), returning whether there was one.
/// A holder of a forgotten in-progress claim can no longer complete it (its token is gone).
template <class S>
concept ForgettableStore = Store<S> && requires(S& s, std::string_view key) {
  { s.forget(key) } -> std::same_as<bool>;
};

/// Optional capability: complete a claim in the store's own transaction together with the
/// operation's writes. `s.complete_in_transaction(k, t, d, body)` opens a transaction, calls
/// `body(tx)` (which does the application's writes through `tx` and returns the encoded
/// result), writes `Completed(result)` if and only if `k` is still `InProgress` holding `t`,
/// and commits both; if the token check fails it rolls everything back and returns false; if
/// `body` throws it rolls back and rethrows.
template <class S>
concept TransactionalStore = Store<S> && requires {
  typename S::transaction;
} && requires(S& s, std::string_view key, const Token& t, std::chrono::milliseconds d,
              std::function<std::string(typename S::transaction&)> body) {
  { s.complete_in_transaction(key, t, d, body) } -> std::same_as<bool>;
};

} // namespace idempotency
