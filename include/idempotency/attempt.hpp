// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The two-phase form: `Attempt` (a replayed value or an owner guard) and `OwnerGuard` (commit,
// fail, release, renew), as `IdempotencyExecutor::begin` hands them out.

#include <idempotency/codec.hpp>
#include <idempotency/detail/backoff.hpp>
#include <idempotency/detail/lease_renewer.hpp>
#include <idempotency/detail/single_flight.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/observer.hpp>
#include <idempotency/options.hpp>
#include <idempotency/stop_token.hpp>
#include <idempotency/store.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

namespace idempotency {

template <class S>
class IdempotencyExecutor;

namespace detail {
/// What an executor shares with its guards and its calls: the flights of this process and
/// the renewal threads. Behind a pointer, so the executor can be moved while no call or guard
/// of it is live (guards point into the executor: moving it under them is not allowed).
/// (A template only so that it is compiled where an executor is.)
template <class Unused = void>
struct BasicExecutorState {
  FlightTable flights;
  LeaseRenewer renewer;
};
using ExecutorState = BasicExecutorState<>;
} // namespace detail

/// Proof of holding a key: commit a value, remember a failure, or release. Destroyed while
/// still holding the key, it releases it (so a retry may run again). Move-only. It must not
/// outlive the executor that made it.
template <class S, class T>
class OwnerGuard {
 public:
  OwnerGuard(OwnerGuard&& other) noexcept
      : store_(other.store_),
        options_(other.options_),
        key_(std::move(other.key_)),
        token_(other.token_),
        holding_(std::exchange(other.holding_, false)),
        state_(other.state_),
        flight_(std::move(other.flight_)),
        renewal_(std::move(other.renewal_)),
        claimed_at_(other.claimed_at_),
        ended_(other.ended_) {}
  OwnerGuard& operator=(OwnerGuard&&) = delete;
  OwnerGuard(const OwnerGuard&) = delete;
  OwnerGuard& operator=(const OwnerGuard&) = delete;

  ~OwnerGuard() {
    stop_renewal();
    if (!holding_) return;
    try {
      if (store_->release(key_, token_)) notify(Event::released);
    } catch (const StoreError&) { // a store that is down: the lease expires instead
      notify(Event::store_error);
    } catch (...) {
    }
    // flight_ publishes "retry" as it goes: waiters in this process claim again
  }

  /// The storage key (scope prefix + key).
  [[nodiscard]] const std::string& storage_key() const noexcept { return key_; }
  [[nodiscard]] const Token& token() const noexcept { return token_; }
  /// False once committed, failed, released, or found lost.
  [[nodiscard]] bool holding() const noexcept { return holding_; }

  /// With lease renewal: requested when the renewal timer finds the claim lost (the operation
  /// should stop; its result will not be recorded). Without renewal it is never requested.
  [[nodiscard]] idempotency::stop_token stop_token() const noexcept {
    return renewal_ ? renewal_->stop.get_token() : idempotency::stop_token{};
  }

  /// True once the renewal timer found the claim taken over or gone.
  [[nodiscard]] bool lease_lost() const noexcept {
    return renewal_ && renewal_->lost.load(std::memory_order_acquire);
  }

  /// Records `value` as the key's result. Throws `PayloadTooLargeError` (the claim is
  /// released, nothing stored), `LeaseLostError` (the key was taken over; nothing stored) or
  /// `ResultNotRecordedError` (the store stayed down through `Options::completion_retry`, or
  /// the value cannot be encoded exactly: NaN, invalid UTF-8, a throwing `to_json`; the claim
  /// is left to its lease, see docs/policies.md). `value` is converted to `T` first.
  template <class U = T>
    requires(!std::is_void_v<U>)
  void commit(const std::type_identity_t<U>& value) { // a T, converted here: replays decode a T
    ensure_holding("commit");
    std::string payload;
    try {
      payload = codec::encode(value, options_->max_payload);
    } catch (const PayloadTooLargeError&) {
      release(); // stored nowhere: a retry may run again
      throw;
    } catch (const ResultNotRecordedError& e) {
      keep_unrecorded(e); // the operation ran: the claim is kept
    }
    commit_encoded(std::move(payload));
  }

  /// Records completion of a void operation.
  template <class U = T>
    requires std::is_void_v<U>
  void commit() { commit_encoded(codec::encode_void()); }

  /// Remembers a failure: every retry until `result_ttl` passes gets `ReplayedFailureError`.
  void fail(std::string_view kind, std::string_view message) {
    ensure_holding("fail");
    const bool was_lost = stop_renewal();
    holding_ = false;
    ended_ = "remembered a failure";
    if (was_lost) lost("fail");
    std::string payload = codec::encode_failure(kind, message, options_->max_payload);
    bool ok = false;
    try {
      ok = store_->fail(key_, token_, payload, options_->result_ttl);
    } catch (const StoreError&) {
      notify(Event::store_error);
      throw;
    }
    if (!ok) lost("fail");
    notify(Event::failure_remembered);
    flight_.publish(detail::Flight::State::failure, std::move(payload));
  }

  /// Gives the key back: the next claim acquires it. Returns false if it was already lost.
  bool release() {
    stop_renewal();
    if (!holding_) return false;
    holding_ = false;
    ended_ = "released the key";
    bool ok = false;
    try {
      ok = store_->release(key_, token_);
    } catch (const StoreError&) {
      notify(Event::store_error);
      flight_.publish(detail::Flight::State::retry);
      throw;
    }
    notify(ok ? Event::released : Event::lease_lost);
    flight_.publish(detail::Flight::State::retry);
    return ok;
  }

  /// Extends the lease to `lease` from now (the executor's lease by default). False: lost.
  bool renew(std::optional<std::chrono::milliseconds> lease = std::nullopt) {
    if (!holding_) return false;
    const auto t0 = std::chrono::steady_clock::now();
    bool ok = false;
    try {
      ok = store_->renew(key_, token_, lease.value_or(options_->lease));
    } catch (const StoreError&) {
      notify(Event::store_error);
      throw;
    }
    if (options_->observer != nullptr)
      detail::notify(*options_->observer, ok ? Event::lease_renewed : Event::lease_lost, key_, t0);
    if (!ok) {
      holding_ = false;
      flight_.publish(detail::Flight::State::retry);
    } else {
      claimed_at_ = t0; // the lease now runs from here (for the completion-retry budget)
    }
    return ok;
  }

 private:
  friend class IdempotencyExecutor<S>;

  OwnerGuard(S& store, const Options& options, std::string key, Token token,
             detail::ExecutorState* state, detail::FlightHandle flight,
             std::chrono::steady_clock::time_point claimed_at)
      : store_(&store),
        options_(&options),
        key_(std::move(key)),
        token_(token),
        holding_(true),
        state_(state),
        flight_(std::move(flight)),
        claimed_at_(claimed_at) {}

  void ensure_holding(std::string_view what) const {
    if (holding_) return;
    if (ended_ != nullptr)
      detail::raise<LeaseLostError>("cannot " + std::string(what) + " key '" + key_ +
                                    "': this guard already " + ended_ +
                                    " (a guard commits, fails or releases once; a second call "
                                    "is a programming mistake)");
    detail::raise<LeaseLostError>("cannot " + std::string(what) + " key '" + key_ +
                                  "': this guard no longer holds it");
  }

  [[noreturn]] void lost(std::string_view what) {
    notify(Event::lease_lost);
    flight_.publish(detail::Flight::State::retry);
    detail::raise<LeaseLostError>(
        std::string(what) + " of key '" + key_ +
        "' was refused: the claim was taken over or is gone; the result was not recorded");
  }

  void notify(Event e) const noexcept {
    if (options_->observer != nullptr) detail::notify(*options_->observer, e, key_, claimed_at_);
  }

  // Stops renewing (waiting out a renewal in progress); true if renewal found the lease lost.
  bool stop_renewal() noexcept {
    if (!renewal_) return false;
    try {
      const auto last = state_->renewer.remove(renewal_);
      if (last > claimed_at_) claimed_at_ = last;
    } catch (...) { // std::mutex failing: the entry stays registered, its renewals are harmless
    }
    const bool was_lost = renewal_->lost.load(std::memory_order_acquire);
    return was_lost;
  }

  void start_renewal() {
    S* store = store_;
    auto renew = [store, key = key_, token = token_, lease = options_->lease] {
      return store->renew(key, token, lease);
    };
    renewal_ = state_->renewer.add(std::move(renew), options_->lease / 3, key_, options_->observer,
                                   claimed_at_);
  }

  void commit_encoded(std::string payload) {
    ensure_holding("commit");
    if (stop_renewal()) {
      holding_ = false;
      lost("complete");
    }
    holding_ = false;
    ended_ = "committed";
    const CompletionRetry& policy = options_->completion_retry;
    const auto lease_end = claimed_at_ + options_->lease;
    bool done = false;
    int attempt = 1;
    for (;; ++attempt) {
      try {
        done = store_->complete(key_, token_, payload, options_->result_ttl);
        break;
      } catch (const StoreError& e) {
        notify(Event::store_error);
        const auto pause = std::max(detail::full_jitter(detail::exponential_backoff(
                                        policy.initial_backoff, policy.max_backoff, attempt - 1)),
                                    std::chrono::milliseconds(1));
        if (attempt >= policy.max_attempts || std::chrono::steady_clock::now() + pause >= lease_end)
          not_recorded(std::move(payload), e, attempt);
        std::this_thread::sleep_for(pause);
      } catch (const std::exception& e) { // not a StoreError: the outcome is unknown as well
        not_recorded(std::move(payload), e, attempt); // never released: it may have landed
      } catch (...) {
        const std::runtime_error unknown("the store threw a non-standard exception");
        not_recorded(std::move(payload), unknown, attempt);
      }
    }
    if (!done && attempt > 1) {
      // an earlier attempt may have landed (its reply was lost) and its record may since have
      // expired or been forgotten and the key claimed again: in doubt, never "lost"
      const std::runtime_error refused(
          "a resend of complete was refused after an earlier attempt's reply was lost: the "
          "result may have been recorded and since expired, or the key was taken over");
      not_recorded(std::move(payload), refused, attempt);
    }
    if (!done) lost("complete");
    notify(Event::completed);
    flight_.publish(detail::Flight::State::value, std::move(payload));
  }

  // The claim is NOT released: a retry within the lease meets "in progress" instead of
  // running the operation a second time at once.
  [[noreturn]] void not_recorded(std::string payload, const std::exception& cause, int attempts) {
    ResultNotRecordedError err("the operation for key '" + key_ +
                                   "' succeeded but its result could not be recorded after " +
                                   std::to_string(attempts) + " attempt(s): " + cause.what(),
                               std::move(payload));
    flight_.publish(detail::Flight::State::error, {}, std::make_exception_ptr(err));
    throw err;
  }

  // The operation ran, but its result cannot be encoded (NaN, invalid UTF-8, a throwing
  // to_json): treated like a result the store could not record. The claim is NOT released.
  [[noreturn]] void keep_unrecorded(const ResultNotRecordedError& e) {
    stop_renewal();
    holding_ = false;
    ended_ = "could not record its result";
    flight_.publish(detail::Flight::State::error, {}, std::make_exception_ptr(e));
    throw e;
  }

  // The result was recorded (or not) by other means (the transactional path).
  void finish_external(bool recorded, std::string payload) {
    stop_renewal();
    holding_ = false;
    if (!recorded) {
      notify(Event::lease_lost);
      flight_.publish(detail::Flight::State::retry);
      return;
    }
    notify(Event::completed);
    flight_.publish(detail::Flight::State::value, std::move(payload));
  }

  S* store_;
  const Options* options_;
  std::string key_;
  Token token_;
  bool holding_;
  detail::ExecutorState* state_ = nullptr;
  detail::FlightHandle flight_{};
  std::shared_ptr<detail::LeaseEntry> renewal_{};
  std::chrono::steady_clock::time_point claimed_at_{};
  const char* ended_ = nullptr; // how this guard let go of the key, for a second call's message
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

  /// With `replayed()`: how long the store still replays the result, where known.
  [[nodiscard]] std::optional<std::chrono::milliseconds> expires_in() const noexcept {
    return expires_in_;
  }

 private:
  friend class IdempotencyExecutor<S>;
  Attempt(value_type v, std::optional<std::chrono::milliseconds> expires_in)
      : state_(std::in_place_index<0>, std::move(v)), expires_in_(expires_in) {}
  explicit Attempt(OwnerGuard<S, T>&& g) : state_(std::in_place_index<1>, std::move(g)) {}

  std::variant<value_type, OwnerGuard<S, T>> state_;
  std::optional<std::chrono::milliseconds> expires_in_{};
};

/// Decodes the value a `ResultNotRecordedError` carries (the operation's result, computed
/// but not recorded; only when `e.has_value()`). Throws `CorruptRecordError` if it does not
/// decode as `T` (or there is no value: the result could not be encoded).
///
/// Example:
///
///     try { r = exec.execute(key, charge); }
///     catch (const idempotency::ResultNotRecordedError& e) {
///       if (!e.has_value()) throw;
///       r = idempotency::unrecorded_value<Receipt>(e);   // the charge DID happen
///     }
template <class T>
[[nodiscard]] T unrecorded_value(const ResultNotRecordedError& e) {
  return codec::decode<T>(e.encoded_value(), "(result not recorded)");
}

} // namespace idempotency
