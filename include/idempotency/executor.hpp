// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/codec.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/fingerprint.hpp>
#include <idempotency/key.hpp>
#include <idempotency/store.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

namespace idempotency {

/// What a caller meets when another caller holds the key.
enum class InProgressPolicy : std::uint8_t {
  reject, ///< `InProgressError` at once (HTTP 409)
  wait,   ///< wait until the holder finishes or `wait_deadline` passes, then `InProgressError`
};

/// What happens to the claim when the operation throws.
enum class OnException : std::uint8_t {
  release,  ///< delete the claim and rethrow: a retry runs the operation again
  remember, ///< store the failure and rethrow: every retry gets `ReplayedFailureError`
};

/// The executor's policies (design §4). Defaults follow common practice.
struct Options {
  /// How long a completed or failed record is replayed.
  std::chrono::milliseconds result_ttl = std::chrono::hours(1);
  /// How long an in-progress claim blocks others before a retry may take it over.
  std::chrono::milliseconds lease = std::chrono::seconds(60);
  /// What a caller meets while another caller holds the key.
  InProgressPolicy in_progress = InProgressPolicy::reject;
  /// With `InProgressPolicy::wait`: the longest a caller waits.
  std::chrono::milliseconds wait_deadline = std::chrono::seconds(30);
  /// What happens to the claim when the operation throws.
  OnException on_exception = OnException::release;
  /// Per-exception choice, overriding `on_exception` when set.
  std::function<OnException(const std::exception&)> classify{};
  /// Prefix of every storage key (tenant / operation / version).
  Scope scope{};
  /// Largest encoded result; a larger one throws `PayloadTooLargeError` and is stored nowhere.
  std::size_t max_payload = default_max_payload;
};

/// A result and whether it was replayed from the store rather than computed by this call.
template <class T>
struct Outcome {
  T value;
  bool replayed = false;
};

template <>
struct Outcome<void> {
  bool replayed = false;
};

template <class S>
class IdempotencyExecutor;

/// Proof of holding a key: commit a value, remember a failure, or release. Destroyed while
/// still holding the key, it releases it (so a retry may run again). Move-only.
template <class S, class T>
class OwnerGuard {
 public:
  OwnerGuard(OwnerGuard&& other) noexcept
      : store_(other.store_), options_(other.options_), key_(std::move(other.key_)),
        token_(other.token_), holding_(std::exchange(other.holding_, false)) {}
  OwnerGuard& operator=(OwnerGuard&&) = delete;
  OwnerGuard(const OwnerGuard&) = delete;
  OwnerGuard& operator=(const OwnerGuard&) = delete;

  ~OwnerGuard() {
    if (!holding_) return;
    try {
      store_->release(key_, token_);
    } catch (...) { // a store that is down: the lease expires instead
    }
  }

  /// The storage key (scope prefix + key).
  [[nodiscard]] const std::string& storage_key() const noexcept { return key_; }
  [[nodiscard]] const Token& token() const noexcept { return token_; }
  /// False once committed, failed, released, or found lost.
  [[nodiscard]] bool holding() const noexcept { return holding_; }

  /// Records `value` as the key's result. Throws `PayloadTooLargeError` (the claim is
  /// released, nothing stored) or `LeaseLostError` (the key was taken over; nothing stored).
  template <class U = T>
    requires(!std::is_void_v<U>)
  void commit(const U& value) {
    std::string payload;
    try {
      payload = codec::encode(value, options_->max_payload);
    } catch (...) {
      release();
      throw;
    }
    commit_encoded(payload);
  }

  /// Records completion of a void operation.
  template <class U = T>
    requires std::is_void_v<U>
  void commit() {
    commit_encoded(codec::encode_void());
  }

  /// Remembers a failure: every retry until `result_ttl` passes gets `ReplayedFailureError`.
  void fail(std::string_view kind, std::string_view message) {
    ensure_holding("fail");
    holding_ = false;
    if (!store_->fail(key_, token_,
                      codec::encode_failure(kind, message, options_->max_payload),
                      options_->result_ttl))
      lost("fail");
  }

  /// Gives the key back: the next claim acquires it. Returns false if it was already lost.
  bool release() {
    if (!holding_) return false;
    holding_ = false;
    return store_->release(key_, token_);
  }

  /// Extends the lease to `lease` from now (the executor's lease by default). False: lost.
  bool renew(std::optional<std::chrono::milliseconds> lease = std::nullopt) {
    if (!holding_) return false;
    const bool ok = store_->renew(key_, token_, lease.value_or(options_->lease));
    if (!ok) holding_ = false;
    return ok;
  }

 private:
  friend class IdempotencyExecutor<S>;

  OwnerGuard(S& store, const Options& options, std::string key, Token token)
      : store_(&store), options_(&options), key_(std::move(key)), token_(token), holding_(true) {}

  void ensure_holding(std::string_view what) const {
    if (!holding_)
      detail::raise<LeaseLostError>("cannot " + std::string(what) + " key '" + key_ +
                                    "': this guard no longer holds it");
  }

  [[noreturn]] void lost(std::string_view what) const {
    detail::raise<LeaseLostError>(
        std::string(what) + " of key '" + key_ +
        "' was refused: the claim was taken over or is gone; the result was not recorded");
  }

  void commit_encoded(const std::string& payload) {
    ensure_holding("commit");
    holding_ = false;
    bool done = false;
    try {
      done = store_->complete(key_, token_, payload, options_->result_ttl);
    } catch (...) {
      holding_ = true; // still ours as far as we know: the destructor releases it
      throw;
    }
    if (!done) lost("complete");
  }

  void disarm() noexcept { holding_ = false; }

  S* store_;
  const Options* options_;
  std::string key_;
  Token token_;
  bool holding_;
};

/// The result of `begin`: either a replayed value or an `OwnerGuard` to run the operation.
template <class S, class T>
class Attempt {
 public:
  using value_type = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

  /// True if the key already has a result; `value()` is it.
  [[nodiscard]] bool replayed() const noexcept { return state_.index() == 0; }

  /// The replayed value (requires `replayed()`).
  [[nodiscard]] value_type& value() { return std::get<0>(state_); }

  /// The owner guard (requires `!replayed()`).
  [[nodiscard]] OwnerGuard<S, T>& guard() { return std::get<1>(state_); }

 private:
  friend class IdempotencyExecutor<S>;
  explicit Attempt(value_type v) : state_(std::in_place_index<0>, std::move(v)) {}
  explicit Attempt(OwnerGuard<S, T>&& g) : state_(std::in_place_index<1>, std::move(g)) {}

  std::variant<value_type, OwnerGuard<S, T>> state_;
};

namespace detail {
template <class F, class... Args>
using result_of_t = std::remove_cvref_t<std::invoke_result_t<F, Args...>>;

// `S::transaction`, made dependent on `F` so it is only looked up when a transactional member
// is used (S itself may have no transaction type).
template <class S, class F>
struct transaction_of {
  using type = typename S::transaction;
};
template <class S, class F>
using transaction_t = typename transaction_of<S, F>::type;
} // namespace detail

/// Runs operations at most once per idempotency key and replays the recorded result to
/// every retry. Thread-safe: one executor serves all threads. Works over any `Store`.
///
/// Example:
///
///     idempotency::InMemoryStore store;
///     idempotency::IdempotencyExecutor exec{store, {.result_ttl = 1h, .lease = 60s}};
///     Receipt r = exec.execute(request_id, [&] { return payments.charge(order); });
template <class S>
class IdempotencyExecutor {
  static_assert(HasAtomicClaim<S>,
                "idempotency: this store has no atomic claim. A Store must provide "
                "`ClaimResult claim(std::string_view key, std::string_view fingerprint, "
                "std::chrono::milliseconds lease)` that checks and claims in ONE atomic step "
                "(see the Store concept in idempotency/store.hpp)");
  static_assert(HasFencedTransitions<S>,
                "idempotency: this store lacks the token-checked transitions. A Store must "
                "provide `bool complete(key, const Token&, payload, ttl)`, `bool fail(key, "
                "const Token&, payload, ttl)`, `bool release(key, const Token&)` and `bool "
                "renew(key, const Token&, lease)` (see idempotency/store.hpp)");
  static_assert(HasStoreName<S>,
                "idempotency: a Store must provide `std::string_view name() const`");

 public:
  using store_type = S;

  explicit IdempotencyExecutor(S& store, Options options = {})
      : store_(&store), options_(std::move(options)) {
    options_.scope.validate();
    prefix_ = options_.scope.prefix();
  }

  [[nodiscard]] const Options& options() const noexcept { return options_; }
  [[nodiscard]] S& store() const noexcept { return *store_; }

  /// The storage key for `key` (validated, scope prefix added).
  [[nodiscard]] std::string storage_key(std::string_view key) const {
    validate_key(key);
    std::string k;
    k.reserve(prefix_.size() + key.size());
    k += prefix_;
    k += key;
    return k;
  }

  /// Runs `fn(args...)` once per key and returns its result; retries get the stored result.
  template <class F, class... Args>
    requires std::invocable<F&, Args&...>
  auto execute(std::string_view key, F&& fn, Args&&... args)
      -> detail::result_of_t<F&, Args&...> {
    return unwrap(execute_outcome(key, Fingerprint{}, fn, args...));
  }

  /// As `execute`, and the same key with another fingerprint is a `FingerprintMismatchError`.
  template <class F, class... Args>
    requires std::invocable<F&, Args&...>
  auto execute(std::string_view key, const Fingerprint& fingerprint, F&& fn, Args&&... args)
      -> detail::result_of_t<F&, Args&...> {
    return unwrap(execute_outcome(key, fingerprint, fn, args...));
  }

  /// As `execute`, also saying whether the value was replayed.
  template <class F, class... Args>
    requires std::invocable<F&, Args&...>
  auto execute_outcome(std::string_view key, F&& fn, Args&&... args)
      -> Outcome<detail::result_of_t<F&, Args&...>> {
    return execute_outcome(key, Fingerprint{}, fn, args...);
  }

  /// As `execute`, with a fingerprint, also saying whether the value was replayed.
  template <class F, class... Args>
    requires std::invocable<F&, Args&...>
  auto execute_outcome(std::string_view key, const Fingerprint& fingerprint, F&& fn,
                       Args&&... args) -> Outcome<detail::result_of_t<F&, Args&...>> {
    using R = detail::result_of_t<F&, Args&...>;
    Attempt<S, R> attempt = begin<R>(key, fingerprint);
    if (attempt.replayed()) {
      if constexpr (std::is_void_v<R>) {
        return Outcome<void>{true};
      } else {
        return Outcome<R>{std::move(attempt.value()), true};
      }
    }
    OwnerGuard<S, R>& guard = attempt.guard();
    if constexpr (std::is_void_v<R>) {
      run_guarded(guard, fn, args...);
      guard.commit();
      return Outcome<void>{false};
    } else {
      R value = run_guarded(guard, fn, args...);
      guard.commit(value);
      return Outcome<R>{std::move(value), false};
    }
  }

  /// Two-phase form: claims `key`, or returns its recorded result. The caller runs the
  /// operation and calls `guard().commit(value)`; a guard destroyed uncommitted releases.
  /// Throws as `execute` does for in-progress keys, mismatches and recorded failures.
  ///
  /// Example:
  ///
  ///     auto a = exec.begin<Receipt>(key);
  ///     if (a.replayed()) return a.value();
  ///     Receipt r = charge();
  ///     a.guard().commit(r);
  template <class T>
  [[nodiscard]] Attempt<S, T> begin(std::string_view key, const Fingerprint& fingerprint = {}) {
    std::string skey = storage_key(key);
    const auto deadline = std::chrono::steady_clock::now() + options_.wait_deadline;
    auto backoff = std::chrono::milliseconds(2);
    for (;;) {
      ClaimResult r = store_->claim(skey, fingerprint.hex(), options_.lease);
      if (r.acquired()) return Attempt<S, T>(OwnerGuard<S, T>(*store_, options_, skey, r.token));
      if (r.fingerprint != fingerprint.hex())
        detail::raise<FingerprintMismatchError>(
            "key '" + std::string(key) +
            "' was first used with a different request; it is neither replayed nor run");
      switch (r.status) {
        case ClaimStatus::completed:
          if constexpr (std::is_void_v<T>) {
            codec::decode<void>(r.payload, skey);
            return Attempt<S, T>(std::monostate{});
          } else {
            return Attempt<S, T>(codec::decode<T>(r.payload, skey));
          }
        case ClaimStatus::failed: codec::rethrow_failure(r.payload, skey);
        case ClaimStatus::in_progress: break;
        case ClaimStatus::acquired: break; // handled above
      }
      const auto now = std::chrono::steady_clock::now();
      if (options_.in_progress == InProgressPolicy::reject || now >= deadline)
        detail::raise<InProgressError>("key '" + std::string(key) +
                                           "' is being processed by another caller",
                                       r.remaining);
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      const auto pause = std::min({backoff, r.remaining + std::chrono::milliseconds(1), left});
      if constexpr (WaitableStore<S>) {
        store_->wait_for_change(skey, std::min(r.remaining + std::chrono::milliseconds(1), left));
      } else {
        std::this_thread::sleep_for(jitter(pause));
        backoff = std::min(backoff * 2, std::chrono::milliseconds(500));
      }
    }
  }

  /// Transactional form (stores with `TransactionalStore`): `fn(tx, args...)` does its writes
  /// through the store's open transaction, and they commit together with the recorded result,
  /// or not at all. The only mode that is exactly-once for side effects in that database.
  template <class F, class... Args>
    requires TransactionalStore<S> && std::invocable<F&, detail::transaction_t<S, F>&, Args&...>
  auto execute_in_transaction(std::string_view key, F&& fn, Args&&... args)
      -> detail::result_of_t<F&, detail::transaction_t<S, F>&, Args&...> {
    return unwrap(execute_in_transaction_outcome(key, Fingerprint{}, fn, args...));
  }

  /// Transactional form with a fingerprint, also saying whether the value was replayed.
  template <class F, class... Args>
    requires TransactionalStore<S> && std::invocable<F&, detail::transaction_t<S, F>&, Args&...>
  auto execute_in_transaction_outcome(std::string_view key, const Fingerprint& fingerprint,
                                      F&& fn, Args&&... args)
      -> Outcome<detail::result_of_t<F&, detail::transaction_t<S, F>&, Args&...>> {
    using R = detail::result_of_t<F&, detail::transaction_t<S, F>&, Args&...>;
    Attempt<S, R> attempt = begin<R>(key, fingerprint);
    if (attempt.replayed()) {
      if constexpr (std::is_void_v<R>) {
        return Outcome<void>{true};
      } else {
        return Outcome<R>{std::move(attempt.value()), true};
      }
    }
    OwnerGuard<S, R>& guard = attempt.guard();
    std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> result;
    bool recorded = false;
    try {
      recorded = store_->complete_in_transaction(
          guard.storage_key(), guard.token(), options_.result_ttl,
          [&](detail::transaction_t<S, F>& tx) -> std::string {
            if constexpr (std::is_void_v<R>) {
              std::invoke(fn, tx, args...);
              result.emplace();
              return codec::encode_void();
            } else {
              result.emplace(std::invoke(fn, tx, args...));
              return codec::encode(*result, options_.max_payload);
            }
          });
    } catch (const std::exception& e) {
      apply_exception_policy(guard, e);
      throw;
    } catch (...) {
      guard.release();
      throw;
    }
    guard.disarm();
    if (!recorded)
      detail::raise<LeaseLostError>(
          "key '" + std::string(key) +
          "' was taken over before its transaction committed; the transaction was rolled back");
    if constexpr (std::is_void_v<R>) {
      return Outcome<void>{false};
    } else {
      return Outcome<R>{std::move(*result), false};
    }
  }

 private:
  template <class T>
  static auto unwrap(Outcome<T>&& o) {
    if constexpr (std::is_void_v<T>) {
      return;
    } else {
      return std::move(o.value);
    }
  }

  template <class R, class F, class... Args>
  decltype(auto) run_guarded(OwnerGuard<S, R>& guard, F& fn, Args&... args) {
    try {
      return std::invoke(fn, args...);
    } catch (const std::exception& e) {
      apply_exception_policy(guard, e);
      throw;
    } catch (...) {
      guard.release();
      throw;
    }
  }

  template <class R>
  void apply_exception_policy(OwnerGuard<S, R>& guard, const std::exception& e) {
    if (!guard.holding()) return;
    const OnException what = options_.classify ? options_.classify(e) : options_.on_exception;
    try {
      if (what == OnException::remember) {
        guard.fail(codec::exception_kind(e), e.what());
      } else {
        guard.release();
      }
    } catch (...) { // the original exception matters more; the lease covers a store failure
    }
  }

  static std::chrono::milliseconds jitter(std::chrono::milliseconds d) {
    thread_local std::minstd_rand gen{std::random_device{}()};
    if (d.count() <= 1) return d;
    std::uniform_int_distribution<std::chrono::milliseconds::rep> dist(d.count() / 2, d.count());
    return std::chrono::milliseconds(dist(gen));
  }

  S* store_;
  Options options_;
  std::string prefix_;
};

} // namespace idempotency
