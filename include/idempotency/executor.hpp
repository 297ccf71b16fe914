// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/attempt.hpp>
#include <idempotency/codec.hpp>
#include <idempotency/detail/backoff.hpp>
#include <idempotency/detail/lease_renewer.hpp>
#include <idempotency/detail/single_flight.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/fingerprint.hpp>
#include <idempotency/key.hpp>
#include <idempotency/observer.hpp>
#include <idempotency/options.hpp>
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
#include <vector>

namespace idempotency {

namespace detail {
/// Thrown out of a transaction body to roll it back when the result classifier says release.
struct NotRecorded {};

template <class F, class... Args>
using result_of_t = std::remove_cvref_t<std::invoke_result_t<F, Args...>>;

/// An operation that takes a `std::stop_token` first (and cannot be called without it).
template <class F, class... Args>
concept StopTokenOperation =
    std::invocable<F&, std::stop_token, Args...> && !std::invocable<F&, Args...>;

/// What `execute` accepts: `fn(args...)` or `fn(stop_token, args...)`.
template <class F, class... Args>
concept Operation = std::invocable<F&, Args...> || std::invocable<F&, std::stop_token, Args...>;

// No `type` unless F is an operation, so a non-operation fails softly (overload resolution).
template <class F, class... Args>
struct operation_result {};
template <class F, class... Args>
  requires std::invocable<F&, Args...>
struct operation_result<F, Args...> {
  using type = result_of_t<F&, Args...>;
};
template <class F, class... Args>
  requires StopTokenOperation<F, Args...>
struct operation_result<F, Args...> {
  using type = result_of_t<F&, std::stop_token, Args...>;
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
&, Args... > ;
} // namespace detail

/// Runs operations at most once per idempotency key and replays the recorded result to
/// every retry. Thread-safe: one executor serves all threads. Works over any `Store`.
/// It must outlive its guards and the calls running on it, and must not be moved, copied or
/// assigned while any of them is live.
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
    validate(options_);
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

  /// For operators, not the normal flow: deletes the record of `key` (scope applied) in any
  /// state, so the next call runs the operation again (a customer asks for a re-run). A
  /// holder still running it can no longer record its result. Needs a `ForgettableStore`.
  bool forget(std::string_view key) requires ForgettableStore<S> {
    return store_->forget(storage_key(key));
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
    return unwrap(execute_outcome(key, Fingerprint{}, fn, std::forward<Args>(args)...));
  }

  /// As `execute`, and the same key with another fingerprint is a `FingerprintMismatchError`.
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute(std::string_view key, const Fingerprint& fingerprint, F&& fn, Args&&... args)
      -> detail::operation_result_t<F, Args...> {
    return unwrap(execute_outcome(key, fingerprint, fn, std::forward<Args>(args)...));
  }

  /// As `execute`, also saying whether the value was replayed.
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute_outcome(std::string_view key, F&& fn, Args&&... args)
      -> Outcome<detail::operation_result_t<F, Args...>> {
    return execute_outcome(key, Fingerprint{}, fn, std::forward<Args>(args)...);
  }

  /// As `execute`, with a fingerprint, also saying whether the value was replayed (a value a
  /// waiter got from another caller's execution counts as replayed).
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute_outcome(std::string_view key, const Fingerprint& fingerprint, F&& fn, Args&&... args)
      -> Outcome<detail::operation_result_t<F, Args...>> {
    using R = detail::operation_result_t<F, Args...>;
    if constexpr (!codec::Storable<R>) {
      static_assert(codec::Storable<R>,
                    "idempotency: the operation's result type cannot be stored. Give it `void "
                    "to_json(nlohmann::json&, const T&)` and `void from_json(const "
                    "nlohmann::json&, T&)` in its own namespace (or an nlohmann::adl_serializer<T> "
                    "specialization); the type is named in the 'required from' lines below");
      return {};
    } else {
      Attempt<S, R> attempt = begin<R>(key, fingerprint);
      if (attempt.replayed()) return replayed_outcome(attempt);
      OwnerGuard<S, R>& guard = attempt.guard();
      if constexpr (std::is_void_v<R>) {
        run_guarded(guard, fn, std::forward<Args>(args)...);
        guard.commit();
        return Outcome<void>{false, options_.result_ttl};
      } else {
        R value = run_guarded(guard, fn, std::forward<Args>(args)...);
        std::optional<std::string> payload;
        try {
          payload = encode_result(value);
        } catch (const PayloadTooLargeError&) {
          guard.release(); // stored nowhere: a retry may run again
          throw;
        } catch (const ResultNotRecordedError& e) {
          guard.keep_unrecorded(e); // the operation ran: the claim is kept
        }
        if (!payload) {
          guard.release(); // the classifier said: do not record this one
        } else {
          guard.commit_encoded(std::move(*payload));
          return Outcome<R>{std::move(value), false, options_.result_ttl};
        }
        return Outcome<R>{std::move(value), false};
      }
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
    static_assert(codec::Storable<T>,
                  "idempotency: the operation's result type cannot be stored. Give it `void "
                  "to_json(nlohmann::json&, const T&)` and `void from_json(const nlohmann::json&, "
                  "T&)` in its own namespace (or an nlohmann::adl_serializer<T> specialization); "
                  "the type is named in the 'required from' lines below");
    return begin_impl<T>(key, fingerprint, options_.renew_lease);
  }

  /// Transactional form (stores with `TransactionalStore`): `fn(tx, args...)` does its writes
  /// through the store's open transaction, and they commit together with the recorded result,
  /// or not at all. The only mode that is exactly-once for side effects in that database.
  /// (Lease renewal does not apply here: a renewal would contend with the open transaction.)
  template <class F, class... Args>
    requires detail::TransactionOperation<S, F, Args...>
  auto execute_in_transaction(std::string_view key, F&& fn, Args&&... args)
      -> detail::result_of_t<F&, detail::transaction_t<S, F>&, Args...> {
    return unwrap(
        execute_in_transaction_outcome(key, Fingerprint{}, fn, std::forward<Args>(args)...));
  }

  /// Transactional form with a fingerprint, also saying whether the value was replayed.
  template <class F, class... Args>
    requires detail::TransactionOperation<S, F, Args...>
  auto execute_in_transaction_outcome(std::string_view key, const Fingerprint& fingerprint, F&& fn,
                                      Args&&... args)
      -> Outcome<detail::result_of_t<F&, detail::transaction_t<S, F>&, Args...>> {
    using R = detail::result_of_t<F&, detail::transaction_t<S, F>&, Args...>;
    static_assert(codec::Storable<R>,
                  "idempotency: the operation's result type cannot be stored. Give it `void "
                  "to_json(nlohmann::json&, const T&)` and `void from_json(const nlohmann::json&, "
                  "T&)` in its own namespace (or an nlohmann::adl_serializer<T> specialization); "
                  "the type is named in the 'required from' lines below");
    Attempt<S, R> attempt = begin_impl<R>(key, fingerprint, false);
    if (attempt.replayed()) return replayed_outcome(attempt);
    OwnerGuard<S, R>& guard = attempt.guard();
    std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> result;
    std::string encoded;
    // where an exception came from: only one thrown by the body itself is the operation's
    enum class Stage : std::uint8_t { store, body, encoding } stage = Stage::store;
    bool recorded = false;
    try {
      recorded = store_->complete_in_transaction(
          guard.storage_key(), guard.token(), options_.result_ttl,
          [&](detail::transaction_t<S, F>& tx) -> std::string {
            stage = Stage::body;
            if constexpr (std::is_void_v<R>) {
              std::invoke(fn, tx, std::forward<Args>(args)...);
              result.emplace();
              encoded = codec::encode_void();
            } else {
              result.emplace(std::invoke(fn, tx, std::forward<Args>(args)...));
              stage = Stage::encoding;
              std::optional<std::string> payload = encode_result(*result);
              if (!payload) throw detail::NotRecorded{}; // the classifier: roll back, release
              encoded = std::move(*payload);
            }
            stage = Stage::store;
            return encoded;
          });
    } catch (const detail::NotRecorded&) {
      // rolled back with the body's writes: as if it never ran, and the caller gets the value
      guard.release();
      if constexpr (std::is_void_v<R>) {
        return Outcome<void>{false}; // not reached: a void result is never classified
      } else {
        return Outcome<R>{std::move(*result), false};
      }
    } catch (const ResultNotRecordedError& e) {
      if (stage != Stage::encoding) {
        if (stage == Stage::body) apply_exception_policy(guard, &e);
        throw;
      }
      guard.release(); // the transaction rolled back: nothing was written, a retry may run
      detail::raise<ResultNotRecordedError>(
          std::string(e.what()) +
              " -- in execute_in_transaction the transaction was rolled back and the claim "
              "released instead: nothing was written, and a retry runs the operation again",
          std::string());
    } catch (const PayloadTooLargeError& e) {
      if (stage == Stage::body) {
        apply_exception_policy(guard, &e); // the body's own
      } else {
        guard.release(); // rolled back, stored nowhere
      }
      throw;
    } catch (const std::exception& e) {
      if (stage == Stage::body) {
        apply_exception_policy(guard, &e);
      } else { // the store failed outside the body: not the operation's failure
        release_after_store_failure(guard);
      }
      throw;
    } catch (...) {
      if (stage == Stage::body) {
        apply_exception_policy(guard, nullptr);
      } else {
        release_after_store_failure(guard);
      }
      throw;
    }
    guard.finish_external(recorded, std::move(encoded));
    if (!recorded)
      detail::raise<LeaseLostError>(
          "key '" + std::string(key) +
          "' was taken over before its transaction committed; the transaction was rolled back");
    if constexpr (std::is_void_v<R>) {
      return Outcome<void>{false, options_.result_ttl};
    } else {
      return Outcome<R>{std::move(*result), false, options_.result_ttl};
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
    auto replay = [&](const std::string& payload,
                      std::optional<std::chrono::milliseconds> expires_in) -> Attempt<S, T> {
      if constexpr (std::is_void_v<T>) {
        codec::decode<void>(payload, skey);
        return Attempt<S, T>(std::monostate{}, expires_in);
      } else {
        return Attempt<S, T>(codec::decode<T>(payload, skey), expires_in);
      }
    };
    auto in_progress = [&](std::chrono::milliseconds retry_after) {
      report(Event::rejected_in_progress);
      detail::raise<InProgressError>(
          "key '" + std::string(key) + "' is being processed by another caller", retry_after);
    };

    // 1. single-flight: one caller per key and process goes to the store, the others wait
    detail::FlightHandle flight;
    if (options_.in_progress == InProgressPolicy::wait && running_here(skey)) {
      // called from inside this key's own operation: waiting would wait for itself
      report(Event::rejected_in_progress);
      detail::raise<InProgressError>("key '" + std::string(key) +
                                         "' is being processed by this very call chain: a "
                                         "re-entrant call from inside its own operation would "
                                         "wait for itself",
                                     options_.lease);
    }
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
          case detail::Flight::State::value:
            report(Event::coalesced);
            return replay(f.payload, std::nullopt);
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
      if (r.acquired() && r.token.empty()) {
        // a store that broke its contract: running now could never be recorded
        if (obs != nullptr) detail::notify(*obs, Event::store_error, skey, t0);
        detail::raise<StoreError>(std::string(store_->name()), "claim",
                                  "the store answered acquired without a token (a Store "
                                  "must hand out a fresh non-empty token); nothing was run");
      }
      // a store's odd clock, or another writer's "forever": keep the time arithmetic in range
      r.remaining = std::clamp(r.remaining, std::chrono::milliseconds(0), max_option_duration);
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
          Attempt<S, T> a = replay(r.payload, r.remaining);
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

  // The payload to record for `value` (Options::classify_result applied), or nullopt when the
  // classifier says release. Throws ResultNotRecordedError (cannot be encoded exactly) or
  // PayloadTooLargeError; the caller decides what becomes of the claim.
  template <class R>
  std::optional<std::string> encode_result(const R& value) const {
    if (!options_.classify_result) return codec::encode(value, options_.max_payload);
    const nlohmann::json j = codec::to_json_checked(value);
    OnResult what = OnResult::record;
    try {
      what = options_.classify_result(j);
    } catch (const std::exception& e) { // the operation ran: never a reason to run it again
      detail::raise<ResultNotRecordedError>(
          std::string("classify_result threw: ") + e.what() +
              "; the result was not recorded and the claim is kept until its lease passes",
          codec::dump_checked(j, options_.max_payload));
    } catch (...) {
      detail::raise<ResultNotRecordedError>(
          "classify_result threw a non-standard exception; the result was not recorded and the "
          "claim is kept until its lease passes",
          codec::dump_checked(j, options_.max_payload));
    }
    if (what == OnResult::release) return std::nullopt;
    return codec::dump_checked(j, options_.max_payload);
  }

  // The store failed around a transaction (before the body ran, or at the commit): the
  // transaction rolled back or its outcome is unknown. Releasing is safe either way (it is
  // token-checked in state InProgress: a record that did commit is never deleted); a release
  // that fails leaves the key to its lease. The store's exception is what the caller gets.
  template <class R>
  static void release_after_store_failure(OwnerGuard<S, R>& guard) noexcept {
    try {
      guard.release();
    } catch (...) {
    }
  }

  template <class R>
  static Outcome<R> replayed_outcome(Attempt<S, R>& attempt) {
    if constexpr (std::is_void_v<R>) {
      return Outcome<void>{true, attempt.expires_in()};
    } else {
      return Outcome<R>{std::move(attempt.value()), true, attempt.expires_in()};
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

  // The (executor, storage key) pairs whose operation runs on this thread right now, so a
  // re-entrant call from inside one is refused instead of waiting for itself.
  struct Running {
    const void* executor;
    std::string_view key;
  };
  static std::vector<Running>& running_here() {
    thread_local std::vector<Running> running;
    return running;
  }
  [[nodiscard]] bool running_here(std::string_view skey) const {
    for (const Running& r : running_here())
      if (r.executor == state_.get() && r.key == skey) return true;
    return false;
  }

  template <class R, class F, class... Args>
  decltype(auto) run_guarded(OwnerGuard<S, R>& guard, F& fn, Args&&... args) {
    struct Mark { // pushed while the operation runs (exception-safe)
      explicit Mark(Running r) { running_here().push_back(r); }
      Mark(const Mark&) = delete;
      Mark& operator=(const Mark&) = delete;
      ~Mark() { running_here().pop_back(); }
    };
    const Mark mark(Running{state_.get(), guard.storage_key()});
    try {
      if constexpr (detail::StopTokenOperation<F, Args...>) {
        return std::invoke(fn, guard.stop_token(), std::forward<Args>(args)...);
      } else {
        return std::invoke(fn, std::forward<Args>(args)...);
      }
    } catch (const std::exception& e) {
      apply_exception_policy(guard, &e);
      throw;
    } catch (...) {
      apply_exception_policy(guard, nullptr);
      throw;
    }
  }

  // Called inside the handler of the operation's own exception (`e`, or null for one that is
  // not a std::exception): remember or release as the policy says. If the store fails at
  // that, the caller gets that `StoreError` with the operation's exception nested in it
  // (`std::rethrow_if_nested`), never just the operation's exception: the key is then left
  // to its lease.
  template <class R>
  void apply_exception_policy(OwnerGuard<S, R>& guard, const std::exception* e) {
    if (!guard.holding()) return;
    const std::exception_ptr original = std::current_exception();
    const OnException what = e == nullptr        ? OnException::release
                             : options_.classify ? options_.classify(*e)
                                                 : options_.on_exception;
    try {
      if (what == OnException::remember) {
        guard.fail(codec::exception_kind(*e), e->what());
      } else {
        guard.release();
      }
    } catch (const StoreError& failed) {
      StoreError outer(failed.store(), failed.operation(),
                       failed.cause() +
                           " (after the operation threw; its exception is nested, and the key "
                           "stays in progress until its lease passes)");
      try {
        std::rethrow_exception(original);
      } catch (...) {
        std::throw_with_nested(outer);
      }
    } catch (...) { // lease lost while remembering: the operation's exception matters more
    }
  }

  S* store_;
  Options options_;
  std::string prefix_;
  std::unique_ptr<detail::ExecutorState> state_;
};

} // namespace idempotency
