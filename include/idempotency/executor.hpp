// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/codec.hpp>
#include <idempotency/detail/backoff.hpp>
#include <idempotency/detail/lease_renewer.hpp>
#include <idempotency/detail/single_flight.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/fingerprint.hpp>
#include <idempotency/key.hpp>
#include <idempotency/observer.hpp>
#include <idempotency/store.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
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

/// What happens to a value the operation returned (see `Options::classify_result`).
enum class OnResult : std::uint8_t {
  record,  ///< store it as the key's result: every retry replays it (e.g. an HTTP 4xx response)
  release, ///< return it to this caller only and release the claim: a retry runs again (5xx)
};

/// How `complete` is retried when the store throws `StoreError` after the operation succeeded.
/// Retries stop at `max_attempts` or when the next pause would pass the lease, whichever is
/// first; then the call throws `ResultNotRecordedError` carrying the value.
struct CompletionRetry {
  /// Calls to `complete` in all, the first one included (1 = no retry).
  int max_attempts = 4;
  /// Cap of the first pause; doubles per retry (full jitter: the pause is uniform in [0, cap]).
  std::chrono::milliseconds initial_backoff = std::chrono::milliseconds(50);
  /// Largest cap of one pause.
  std::chrono::milliseconds max_backoff = std::chrono::seconds(2);
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
  /// Renew the lease at about `lease / 3` while the operation runs (one timer thread per
  /// executor). An operation taking a `std::stop_token` first is told when the lease is lost.
  bool renew_lease = false;
  /// Per returned value: `record` it (the default when unset) or `release` the key. It sees
  /// the value as it would be stored (its JSON), so one classifier serves every result type.
  std::function<OnResult(const nlohmann::json&)> classify_result{};
  /// How `complete` is retried when the store fails after the operation succeeded.
  CompletionRetry completion_retry{};
  /// Told of every state change; null (the default) costs nothing. Must outlive the executor.
  Observer* observer = nullptr;
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

namespace detail {
/// What an executor shares with its guards and its calls: the flights of this process and
/// the renewal timer. Behind a pointer, so the executor stays movable.
struct ExecutorState {
  FlightTable flights;
  LeaseRenewer renewer;
};
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
        claimed_at_(other.claimed_at_) {}
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
  [[nodiscard]] std::stop_token stop_token() const noexcept {
    return renewal_ ? renewal_->stop.get_token() : std::stop_token{};
  }

  /// True once the renewal timer found the claim taken over or gone.
  [[nodiscard]] bool lease_lost() const noexcept {
    return renewal_ && renewal_->lost.load(std::memory_order_acquire);
  }

  /// Records `value` as the key's result. Throws `PayloadTooLargeError` (the claim is
  /// released, nothing stored), `LeaseLostError` (the key was taken over; nothing stored) or
  /// `ResultNotRecordedError` (the store stayed down through `Options::completion_retry`;
  /// the claim is left to its lease, see docs/policies.md).
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
    if (!holding_)
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
    const CompletionRetry& policy = options_->completion_retry;
    const auto lease_end = claimed_at_ + options_->lease;
    bool done = false;
    for (int attempt = 1;; ++attempt) {
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
      } catch (...) {
        holding_ = true; // still ours as far as we know: the destructor releases it
        throw;
      }
    }
    if (!done) lost("complete");
    notify(Event::completed);
    flight_.publish(detail::Flight::State::value, std::move(payload));
  }

  // The claim is NOT released: a retry within the lease meets "in progress" instead of
  // running the operation a second time at once.
  [[noreturn]] void not_recorded(std::string payload, const StoreError& cause, int attempts) {
    ResultNotRecordedError err("the operation for key '" + key_ +
                                   "' succeeded but its result could not be recorded after " +
                                   std::to_string(attempts) + " attempt(s): " + cause.what(),
                               std::move(payload));
    flight_.publish(detail::Flight::State::error, {}, std::make_exception_ptr(err));
    throw err;
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

/// Decodes the value a `ResultNotRecordedError` carries (the operation's result, computed
/// but not recorded). Throws `CorruptRecordError` if it does not decode as `T`.
///
/// Example:
///
///     try { r = exec.execute(key, charge); }
///     catch (const idempotency::ResultNotRecordedError& e) {
///       r = idempotency::unrecorded_value<Receipt>(e);   // the charge DID happen
///     }
template <class T>
[[nodiscard]] T unrecorded_value(const ResultNotRecordedError& e) {
  return codec::decode<T>(e.encoded_value(), "(result not recorded)");
}

namespace detail {
template <class F, class... Args>
using result_of_t = std::remove_cvref_t<std::invoke_result_t<F, Args...>>;

/// An operation that takes a `std::stop_token` first (and cannot be called without it).
template <class F, class... Args>
concept StopTokenOperation =
    std::invocable<F&, std::stop_token, Args&...> && !std::invocable<F&, Args&...>;

/// What `execute` accepts: `fn(args...)` or `fn(stop_token, args...)`.
template <class F, class... Args>
concept Operation = std::invocable<F&, Args&...> || std::invocable<F&, std::stop_token, Args&...>;

// No `type` unless F is an operation, so a non-operation fails softly (overload resolution).
template <class F, class... Args>
struct operation_result {};
template <class F, class... Args>
  requires std::invocable<F&, Args&...>
struct operation_result<F, Args...> {
  using type = result_of_t<F&, Args&...>;
};
template <class F, class... Args>
  requires StopTokenOperation<F, Args...>
struct operation_result<F, Args...> {
  using type = result_of_t<F&, std::stop_token, Args&...>;
};
template <class F, class... Args>
using operation_result_t = typename operation_result<F, Args...>::type;

// `S::transaction`, made dependent on `F` so it is only looked up when a transactional member
// is used (S itself may have no transaction type).
template <class S, class F>
struct transaction_of {
  using type = typename S::transaction;
};
template <class S, class F>
using transaction_t = typename transaction_of<S, F>::type;

/// What `execute_in_transaction` accepts: `fn(tx, args...)` on a transactional store.
template <class S, class F, class... Args>
concept TransactionOperation = TransactionalStore<S> && std::invocable < F&,
        transaction_t<S, F>
&, Args&... > ;
} // namespace detail

/// Runs operations at most once per idempotency key and replays the recorded result to
/// every retry. Thread-safe: one executor serves all threads. Works over any `Store`.
/// It must outlive its guards and the calls running on it.
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
      : store_(&store),
        options_(std::move(options)),
        state_(std::make_unique<detail::ExecutorState>()) {
    options_.scope.validate();
    prefix_ = options_.scope.prefix();
  }

  /// A copy shares the store and the options, not the flights nor the renewal timer.
  IdempotencyExecutor(const IdempotencyExecutor& other)
      : store_(other.store_),
        options_(other.options_),
        prefix_(other.prefix_),
        state_(std::make_unique<detail::ExecutorState>()) {}
  IdempotencyExecutor& operator=(const IdempotencyExecutor& other) {
    if (this != &other) {
      store_ = other.store_;
      options_ = other.options_;
      prefix_ = other.prefix_;
      state_ = std::make_unique<detail::ExecutorState>();
    }
    return *this;
  }
  IdempotencyExecutor(IdempotencyExecutor&&) noexcept = default;
  IdempotencyExecutor& operator=(IdempotencyExecutor&&) noexcept = default;
  ~IdempotencyExecutor() = default;

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

  /// Callers of this process waiting now for the in-process leader of `key` (wait policy).
  [[nodiscard]] std::size_t coalesced_waiters(std::string_view key) const {
    return state_->flights.waiters(storage_key(key));
  }

  /// Runs `fn(args...)` once per key and returns its result; retries get the stored result.
  /// `fn` may take a `std::stop_token` first: with lease renewal it is stopped when the lease
  /// is lost (when `fn` can be called both ways, it is called without).
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute(std::string_view key, F&& fn, Args&&... args)
      -> detail::operation_result_t<F, Args...> {
    return unwrap(execute_outcome(key, Fingerprint{}, fn, args...));
  }

  /// As `execute`, and the same key with another fingerprint is a `FingerprintMismatchError`.
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute(std::string_view key, const Fingerprint& fingerprint, F&& fn, Args&&... args)
      -> detail::operation_result_t<F, Args...> {
    return unwrap(execute_outcome(key, fingerprint, fn, args...));
  }

  /// As `execute`, also saying whether the value was replayed.
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute_outcome(std::string_view key, F&& fn, Args&&... args)
      -> Outcome<detail::operation_result_t<F, Args...>> {
    return execute_outcome(key, Fingerprint{}, fn, args...);
  }

  /// As `execute`, with a fingerprint, also saying whether the value was replayed (a value a
  /// waiter got from another caller's execution counts as replayed).
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute_outcome(std::string_view key, const Fingerprint& fingerprint, F&& fn, Args&&... args)
      -> Outcome<detail::operation_result_t<F, Args...>> {
    using R = detail::operation_result_t<F, Args...>;
    Attempt<S, R> attempt = begin<R>(key, fingerprint);
    if (attempt.replayed()) return replayed_outcome(attempt);
    OwnerGuard<S, R>& guard = attempt.guard();
    if constexpr (std::is_void_v<R>) {
      run_guarded(guard, fn, args...);
      guard.commit();
      return Outcome<void>{false};
    } else {
      R value = run_guarded(guard, fn, args...);
      if (options_.classify_result) {
        const nlohmann::json j(value);
        if (options_.classify_result(j) == OnResult::release) {
          guard.release();
          return Outcome<R>{std::move(value), false};
        }
        std::string payload = j.dump();
        if (payload.size() > options_.max_payload) {
          guard.release();
          detail::raise<PayloadTooLargeError>(payload.size(), options_.max_payload);
        }
        guard.commit_encoded(std::move(payload));
      } else {
        guard.commit(value);
      }
      return Outcome<R>{std::move(value), false};
    }
  }

  /// Two-phase form: claims `key`, or returns its recorded result. The caller runs the
  /// operation and calls `guard().commit(value)`; a guard destroyed uncommitted releases.
  /// Throws as `execute` does for in-progress keys, mismatches and recorded failures. With
  /// `renew_lease` the lease is renewed until the guard commits, fails, releases or goes.
  ///
  /// Example:
  ///
  ///     auto a = exec.begin<Receipt>(key);
  ///     if (a.replayed()) return a.value();
  ///     Receipt r = charge();
  ///     a.guard().commit(r);
  template <class T>
  [[nodiscard]] Attempt<S, T> begin(std::string_view key, const Fingerprint& fingerprint = {}) {
    return begin_impl<T>(key, fingerprint, options_.renew_lease);
  }

  /// Transactional form (stores with `TransactionalStore`): `fn(tx, args...)` does its writes
  /// through the store's open transaction, and they commit together with the recorded result,
  /// or not at all. The only mode that is exactly-once for side effects in that database.
  /// (Lease renewal does not apply here: a renewal would contend with the open transaction.)
  template <class F, class... Args>
    requires detail::TransactionOperation<S, F, Args...>
  auto execute_in_transaction(std::string_view key, F&& fn, Args&&... args)
      -> detail::result_of_t<F&, detail::transaction_t<S, F>&, Args&...> {
    return unwrap(execute_in_transaction_outcome(key, Fingerprint{}, fn, args...));
  }

  /// Transactional form with a fingerprint, also saying whether the value was replayed.
  template <class F, class... Args>
    requires detail::TransactionOperation<S, F, Args...>
  auto execute_in_transaction_outcome(std::string_view key, const Fingerprint& fingerprint, F&& fn,
                                      Args&&... args)
      -> Outcome<detail::result_of_t<F&, detail::transaction_t<S, F>&, Args&...>> {
    using R = detail::result_of_t<F&, detail::transaction_t<S, F>&, Args&...>;
    Attempt<S, R> attempt = begin_impl<R>(key, fingerprint, false);
    if (attempt.replayed()) return replayed_outcome(attempt);
    OwnerGuard<S, R>& guard = attempt.guard();
    std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> result;
    std::string encoded;
    bool recorded = false;
    try {
      recorded = store_->complete_in_transaction(
          guard.storage_key(), guard.token(), options_.result_ttl,
          [&](detail::transaction_t<S, F>& tx) -> std::string {
            if constexpr (std::is_void_v<R>) {
              std::invoke(fn, tx, args...);
              result.emplace();
              encoded = codec::encode_void();
            } else {
              result.emplace(std::invoke(fn, tx, args...));
              encoded = codec::encode(*result, options_.max_payload);
            }
            return encoded;
          });
    } catch (const std::exception& e) {
      apply_exception_policy(guard, e);
      throw;
    } catch (...) {
      guard.release();
      throw;
    }
    guard.finish_external(recorded, std::move(encoded));
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
  using clock = std::chrono::steady_clock;

  template <class T>
  Attempt<S, T> begin_impl(std::string_view key, const Fingerprint& fingerprint, bool renew) {
    std::string skey = storage_key(key);
    const std::string& fp = fingerprint.hex();
    Observer* const obs = options_.observer;
    const auto started = clock::now();
    const auto deadline = started + options_.wait_deadline;
    auto report = [&](Event e) {
      if (obs != nullptr) detail::notify(*obs, e, skey, started);
    };
    auto replay = [&](const std::string& payload) -> Attempt<S, T> {
      if constexpr (std::is_void_v<T>) {
        codec::decode<void>(payload, skey);
        return Attempt<S, T>(std::monostate{});
      } else {
        return Attempt<S, T>(codec::decode<T>(payload, skey));
      }
    };
    auto in_progress = [&](std::chrono::milliseconds retry_after) {
      report(Event::rejected_in_progress);
      detail::raise<InProgressError>(
          "key '" + std::string(key) + "' is being processed by another caller", retry_after);
    };

    // 1. single-flight: one caller per key and process goes to the store, the others wait
    detail::FlightHandle flight;
    if (options_.in_progress == InProgressPolicy::wait) {
      for (;;) {
        auto joined = state_->flights.join(skey, fp);
        if (joined.leader) {
          flight = detail::FlightHandle(state_->flights, skey, std::move(joined.flight));
          break;
        }
        if (!joined.flight) break; // a flight of another request: let the store judge
        detail::Flight& f = *joined.flight;
        if (!state_->flights.wait(f, deadline)) {
          const auto left = state_->flights.busy_until(f) - clock::now();
          in_progress(std::max(std::chrono::ceil<std::chrono::milliseconds>(left),
                               std::chrono::milliseconds(0)));
        }
        switch (f.state) {
          case detail::Flight::State::value: report(Event::coalesced); return replay(f.payload);
          case detail::Flight::State::failure:
            report(Event::coalesced);
            codec::rethrow_failure(f.payload, skey);
          case detail::Flight::State::error:
            report(Event::coalesced);
            std::rethrow_exception(f.error);
          case detail::Flight::State::retry:
          case detail::Flight::State::pending: break; // claim again (maybe as the leader)
        }
      }
    }

    // 2. the store: claim, or wait (woken or polling) for another process's holder
    bool waited = false;
    int polls = 0;
    for (;;) {
      ClaimResult r;
      const auto t0 = obs != nullptr ? clock::now() : clock::time_point{};
      try {
        r = store_->claim(skey, fp, options_.lease);
      } catch (const StoreError&) {
        if (obs != nullptr) detail::notify(*obs, Event::store_error, skey, t0);
        throw;
      }
      if (r.acquired()) {
        if (waited) report(Event::waited);
        const auto now = clock::now();
        flight.set_busy_until(now + options_.lease);
        OwnerGuard<S, T> guard(*store_, options_, skey, r.token, state_.get(), std::move(flight),
                               now);
        if (renew) guard.start_renewal();
        report(Event::claimed);
        return Attempt<S, T>(std::move(guard));
      }
      if (r.fingerprint != fp) {
        report(Event::mismatch);
        detail::raise<FingerprintMismatchError>(
            "key '" + std::string(key) +
            "' was first used with a different request; it is neither replayed nor run");
      }
      switch (r.status) {
        case ClaimStatus::completed: {
          if (waited) report(Event::waited);
          report(Event::replayed);
          Attempt<S, T> a = replay(r.payload);
          flight.publish(detail::Flight::State::value, std::move(r.payload));
          return a;
        }
        case ClaimStatus::failed:
          if (waited) report(Event::waited);
          report(Event::replayed);
          flight.publish(detail::Flight::State::failure, r.payload);
          codec::rethrow_failure(r.payload, skey);
        case ClaimStatus::in_progress: break;
        case ClaimStatus::acquired: break; // handled above
      }
      const auto now = clock::now();
      if (options_.in_progress == InProgressPolicy::reject || now >= deadline)
        in_progress(r.remaining);
      flight.set_busy_until(now + r.remaining);
      waited = true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      const auto until_free = r.remaining + std::chrono::milliseconds(1);
      if constexpr (WaitableStore<S>) {
        store_->wait_for_change(skey, std::min(until_free, left));
      } else {
        // exponential backoff with full jitter, never past the lease nor the deadline
        const auto cap = detail::exponential_backoff(std::chrono::milliseconds(2),
                                                     std::chrono::milliseconds(500), polls++);
        const auto pause = std::max(detail::full_jitter(cap), std::chrono::milliseconds(1));
        std::this_thread::sleep_for(std::min({pause, until_free, left}));
      }
    }
  }

  template <class R>
  static Outcome<R> replayed_outcome(Attempt<S, R>& attempt) {
    if constexpr (std::is_void_v<R>) {
      return Outcome<void>{true};
    } else {
      return Outcome<R>{std::move(attempt.value()), true};
    }
  }

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
      if constexpr (detail::StopTokenOperation<F, Args...>) {
        return std::invoke(fn, guard.stop_token(), args...);
      } else {
        return std::invoke(fn, args...);
      }
    } catch (const std::exception& e) {
      apply_exception_policy(guard, e);
      throw;
    } catch (...) {
      try {
        guard.release();
      } catch (...) { // the original exception matters more
      }
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

  S* store_;
  Options options_;
  std::string prefix_;
  std::unique_ptr<detail::ExecutorState> state_;
};

} // namespace idempotency
