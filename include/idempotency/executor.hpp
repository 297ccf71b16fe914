// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/attempt.hpp>
#include <idempotency/codec.hpp>
#include <idempotency/detail/backoff.hpp>
#include <idempotency/detail/guarded_run.hpp>
#include <idempotency/detail/lease_renewer.hpp>
#include <idempotency/detail/operation.hpp>
#include <idempotency/detail/result_encoding.hpp>
#include <idempotency/detail/single_flight.hpp>
#include <idempotency/detail/storage_key.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/fingerprint.hpp>
#include <idempotency/key.hpp>
#include <idempotency/observer.hpp>
#include <idempotency/options.hpp>
#include <idempotency/stop_token.hpp>
#include <idempotency/store.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <variant>
#include <vector>

namespace idempotency {

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
    return std::string(scoped(key).view());
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
  /// `fn` may take an `idempotency::stop_token` first: with lease renewal it is stopped when the
  /// lease is lost (when `fn` can be called both ways, it is called without). That is
  /// `std::stop_token` where the standard library has one; write `idempotency::stop_token` to
  /// build on libc++ before 17 as well (<idempotency/stop_token.hpp>).
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute(std::string_view key, F&& fn, Args&&... args)
      -> detail::operation_result_t<F, Args...> {
    return run<false>(key, Fingerprint{}, fn, std::forward<Args>(args)...);
  }

  /// As `execute`, and the same key with another fingerprint is a `FingerprintMismatchError`.
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute(std::string_view key, const Fingerprint& fingerprint, F&& fn, Args&&... args)
      -> detail::operation_result_t<F, Args...> {
    return run<false>(key, fingerprint, fn, std::forward<Args>(args)...);
  }

  /// As `execute`, also saying whether the value was replayed.
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute_outcome(std::string_view key, F&& fn, Args&&... args)
      -> Outcome<detail::operation_result_t<F, Args...>> {
    return run<true>(key, Fingerprint{}, fn, std::forward<Args>(args)...);
  }

  /// As `execute`, with a fingerprint, also saying whether the value was replayed (a value a
  /// waiter got from another caller's execution counts as replayed).
  template <class F, class... Args>
    requires detail::Operation<F, Args...>
  auto execute_outcome(std::string_view key, const Fingerprint& fingerprint, F&& fn, Args&&... args)
      -> Outcome<detail::operation_result_t<F, Args...>> {
    return run<true>(key, fingerprint, fn, std::forward<Args>(args)...);
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
    if constexpr (!Storable<T>) {
      detail::assert_storable<T>();
      std::terminate(); // not reached: the program does not compile
    } else {
      return begin_attempt<T>(key, fingerprint, options_.renew_lease);
    }
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
    detail::assert_storable<R>();
    detail::check_classifiable<R>(options_);
    Attempt<S, R> attempt = begin_attempt<R>(key, fingerprint, false);
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
              std::optional<std::string> payload = detail::encode_result(*result, options_);
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
        if (stage == Stage::body) detail::apply_exception_policy(options_, guard, &e);
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
        detail::apply_exception_policy(options_, guard, &e); // the body's own
      } else {
        guard.release(); // rolled back, stored nowhere
      }
      throw;
    } catch (const std::exception& e) {
      if (stage == Stage::body) {
        detail::apply_exception_policy(options_, guard, &e);
      } else { // the store failed outside the body: not the operation's failure
        detail::release_after_store_failure(guard);
      }
      throw;
    } catch (...) {
      if (stage == Stage::body) {
        detail::apply_exception_policy(options_, guard, nullptr);
      } else {
        detail::release_after_store_failure(guard);
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

  // `execute` (WithOutcome = false) and `execute_outcome` (true).
  template <bool WithOutcome, class F, class... Args,
            class R = detail::operation_result_t<F, Args...>,
            class Result = std::conditional_t<WithOutcome, Outcome<R>, R>>
  Result run(std::string_view key, const Fingerprint& fingerprint, F& fn, Args&&... args) {
    if constexpr (!Storable<R>) {
      detail::assert_storable<R>();
      std::terminate(); // not reached: the program does not compile
    } else {
      detail::check_classifiable<R>(options_);
      auto owned = [&](OwnerGuard<S, R>& guard) -> Result {
        if constexpr (WithOutcome) {
          return run_owned(guard, fn, std::forward<Args>(args)...);
        } else {
          return unwrap(run_owned(guard, fn, std::forward<Args>(args)...));
        }
      };
      return begin_impl<R, Result>(key, fingerprint, options_.renew_lease, owned);
    }
  }

  // The operation's run once this call holds the key: record its result (or not).
  template <class R, class F, class... Args>
  Outcome<R> run_owned(OwnerGuard<S, R>& guard, F& fn, Args&&... args) {
    if constexpr (std::is_void_v<R>) {
      detail::run_guarded(state_.get(), options_, guard, fn, std::forward<Args>(args)...);
      guard.commit();
      return Outcome<void>{false, options_.result_ttl};
    } else {
      R value = detail::run_guarded(state_.get(), options_, guard, fn, std::forward<Args>(args)...);
      std::optional<std::string> payload;
      try {
        payload = detail::encode_result(value, options_);
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

  // `begin`: an Attempt holding the replayed value or the guard.
  template <class T>
  Attempt<S, T> begin_attempt(std::string_view key, const Fingerprint& fingerprint, bool renew) {
    auto owned = [](OwnerGuard<S, T>& guard) { return Attempt<S, T>(std::move(guard)); };
    return begin_impl<T, Attempt<S, T>>(key, fingerprint, renew, owned);
  }

  // What a replay returns as `Result` (T, Outcome<T> or Attempt<S, T>), decoded right where
  // the caller receives it: the value is neither moved nor copied on the way.
  template <class T, class Result>
  static Result replayed(const std::string& payload, std::string_view skey,
                         std::optional<std::chrono::milliseconds> expires_in) {
    if constexpr (std::is_same_v<Result, Attempt<S, T>>) {
      if constexpr (std::is_void_v<T>) {
        codec::decode<void>(payload, skey);
        return Attempt<S, T>(std::monostate{}, expires_in);
      } else {
        return Attempt<S, T>(codec::decode<T>(payload, skey), expires_in);
      }
    } else if constexpr (std::is_same_v<Result, Outcome<T>>) {
      if constexpr (std::is_void_v<T>) {
        codec::decode<void>(payload, skey);
        return Outcome<void>{true, expires_in};
      } else {
        return Outcome<T>{codec::decode<T>(payload, skey), true, expires_in};
      }
    } else {
      static_assert(std::is_same_v<Result, T>);
      return codec::decode<T>(payload, skey);
    }
  }

  // Claims `key` or finds its record: a recorded value becomes `replayed<T, Result>(…)`, and
  // when this call holds the key the result is `on_claim(guard)`; a recorded failure, a
  // mismatch or "in progress" throw. Compiled once per result type and form, not per
  // operation (`on_claim` is passed by reference, not as a template argument).
  template <class T, class Result>
  Result begin_impl(std::string_view key, const Fingerprint& fingerprint, bool renew,
                    detail::FunctionRef<Result(OwnerGuard<S, T>&)> on_claim) {
    // Nothing on the way to a replay allocates (the store's answer and the decoded value
    // aside): the storage key is on the stack, and the clock is read only when needed.
    const detail::StorageKey scoped_key = scoped(key);
    const std::string_view skey = scoped_key.view();
    const std::string& fp = fingerprint.hex();
    Observer* const obs = options_.observer;
    const bool wait = options_.in_progress == InProgressPolicy::wait;
    const auto started = obs != nullptr || wait ? clock::now() : clock::time_point{};
    const auto deadline = started + options_.wait_deadline;
    auto report = [&](Event e) {
      if (obs != nullptr) detail::notify(*obs, e, skey, started);
    };
    auto in_progress = [&](std::chrono::milliseconds retry_after) {
      report(Event::rejected_in_progress);
      detail::raise<InProgressError>(
          "key '" + std::string(key) + "' is being processed by another caller", retry_after);
    };

    // 1. single-flight: one caller per key and process goes to the store, the others wait
    detail::FlightHandle flight;
    if (wait && detail::running_here(state_.get(), skey)) {
      // called from inside this key's own operation: waiting would wait for itself
      report(Event::rejected_in_progress);
      detail::raise<InProgressError>("key '" + std::string(key) +
                                         "' is being processed by this very call chain: a "
                                         "re-entrant call from inside its own operation would "
                                         "wait for itself",
                                     options_.lease);
    }
    if (wait) {
      const std::string flight_key(skey);
      for (;;) {
        auto joined = state_->flights.join(flight_key, fp);
        if (joined.leader) {
          flight = detail::FlightHandle(state_->flights, flight_key, std::move(joined.flight));
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
            return replayed<T, Result>(f.payload, skey, std::nullopt);
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
      const auto t0 = obs != nullptr ? clock::now() : clock::time_point{};
      ClaimResult r = [&] { // initialized in place (no move of the store's answer)
        try {
          return store_->claim(skey, fp, options_.lease);
        } catch (const StoreError&) {
          if (obs != nullptr) detail::notify(*obs, Event::store_error, skey, t0);
          throw;
        }
      }();
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
        OwnerGuard<S, T> guard(*store_, options_, std::string(skey), r.token, state_.get(),
                               std::move(flight), now);
        if (renew) guard.start_renewal();
        report(Event::claimed);
        return on_claim(guard);
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
          if (!flight) return replayed<T, Result>(r.payload, skey, r.remaining);
          // the waiters of this process get the value once it decoded
          if constexpr (std::is_void_v<Result>) {
            replayed<T, Result>(r.payload, skey, r.remaining);
            flight.publish(detail::Flight::State::value, std::move(r.payload));
            return;
          } else {
            Result result = replayed<T, Result>(r.payload, skey, r.remaining);
            flight.publish(detail::Flight::State::value, std::move(r.payload));
            return result;
          }
        }
        case ClaimStatus::failed:
          if (waited) report(Event::waited);
          report(Event::replayed);
          if (flight) flight.publish(detail::Flight::State::failure, r.payload);
          codec::rethrow_failure(r.payload, skey);
        case ClaimStatus::in_progress: break;
        case ClaimStatus::acquired: break; // handled above
      }
      if (!wait) in_progress(r.remaining);
      const auto now = clock::now();
      if (now >= deadline) in_progress(r.remaining);
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

  // The storage key of `key` (validated, scope prefix added), on the stack.
  [[nodiscard]] detail::StorageKey scoped(std::string_view key) const {
    if (!detail::valid_key(key)) validate_key(key); // throws, saying what is wrong
    return detail::StorageKey(prefix_, key);
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

  S* store_;
  Options options_;
  std::string prefix_;
  std::unique_ptr<detail::ExecutorState> state_;
};

} // namespace idempotency
