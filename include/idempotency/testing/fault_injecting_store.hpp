// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// `FaultInjectingStore<S>`: a decorator that puts seeded faults between the executor and any
// store (yours too), and can log every call to a `History` for the history checker.
//
//     idempotency::testing::SimClock clock;
//     idempotency::InMemoryStore inner{{.clock = clock.source()}};
//     idempotency::testing::FaultInjectingStore store{inner, {.seed = 7, .error_after = 0.05}};
//     idempotency::IdempotencyExecutor exec{store, options};   // now ~5% of replies are "lost"

#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>
#include <idempotency/testing/history.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

namespace idempotency::testing {

/// The simulation's clock: a `ManualClock` (it moves only when told to).
using SimClock = ManualClock;

/// What `FaultInjectingStore` does to one call.
enum class Fault : std::uint8_t {
  none,
  error_before, ///< `StoreError`; the request never reached the store
  error_after,  ///< the request landed, its reply was lost: `StoreError` after the change
  delay,        ///< the store answers late: a random pause (up to `max_delay`) first
  duplicate,    ///< the request reaches the store twice (a resend); the second reply returns
                ///< (never for `complete_in_transaction`: a network does not re-send a transaction)
};

struct FaultOptions {
  /// Seeds the fault choices: the same seed and the same calls in the same order give the
  /// same faults.
  std::uint64_t seed = 1;
  /// Probability per call of each fault (checked in this order; the rest is `none`).
  double error_before = 0.0;
  double error_after = 0.0;
  double delay = 0.0;
  double duplicate = 0.0;
  std::chrono::milliseconds max_delay{20};
  /// How a delay passes: empty = `sleep_for`; a simulation advances its `SimClock`.
  std::function<void(std::chrono::milliseconds)> wait{};
  /// Called in the calling thread before each call (`after == false`) and after it lands
  /// (`after == true`): a simulation's scheduling point. It may throw `StoreError` (a caller
  /// that "died": its request never arrives, or its reply is never seen).
  std::function<void(StoreOp, std::string_view key, bool after)> hook{};
  /// Where every call is logged (null: nowhere).
  History* history = nullptr;
};

namespace detail {
template <class S>
struct transaction_of {};
template <class S>
  requires requires { typename S::transaction; }
struct transaction_of<S> {
  using transaction = typename S::transaction;
};
} // namespace detail

/// Wraps a `Store` (held by reference; it must outlive the wrapper) and injects faults.
/// Optional capabilities (`forget`, `purge_expired`, `wait_for_change`, transactions) are
/// forwarded where `S` has them. Thread-safe when `S` is.
template <Store S>
class FaultInjectingStore : public detail::transaction_of<S> {
 public:
  FaultInjectingStore(S& inner, FaultOptions options)
      : inner_(&inner), options_(std::move(options)), rng_(options_.seed) {}

  [[nodiscard]] std::string_view name() const noexcept { return "FaultInjectingStore"; }
  [[nodiscard]] S& inner() noexcept { return *inner_; }

  /// The next call (of any thread) gets `f` instead of a random fault.
  void inject_next(Fault f) {
    const std::lock_guard lock(mutex_);
    forced_ = f;
    has_forced_ = true;
  }

  ClaimResult claim(std::string_view key, std::string_view fingerprint,
                    std::chrono::milliseconds lease) {
    StoreCall log = start(StoreOp::claim, key, {}, lease);
    return call(log, [&] {
      ClaimResult r = inner_->claim(key, fingerprint, lease);
      log.ok = r.acquired();
      log.status = r.status;
      if (r.acquired()) log.token = r.token;
      log.payload = r.payload;
      return r;
    });
  }
  bool complete(std::string_view key, const Token& t, std::string_view payload,
                std::chrono::milliseconds ttl) {
    return transition(StoreOp::complete, key, t, ttl, payload,
                      [&] { return inner_->complete(key, t, payload, ttl); });
  }
  bool fail(std::string_view key, const Token& t, std::string_view payload,
            std::chrono::milliseconds ttl) {
    return transition(StoreOp::fail, key, t, ttl, payload,
                      [&] { return inner_->fail(key, t, payload, ttl); });
  }
  bool release(std::string_view key, const Token& t) {
    return transition(StoreOp::release, key, t, {}, {}, [&] { return inner_->release(key, t); });
  }
  bool renew(std::string_view key, const Token& t, std::chrono::milliseconds lease) {
    return transition(StoreOp::renew, key, t, lease, {},
                      [&] { return inner_->renew(key, t, lease); });
  }
  bool forget(std::string_view key) requires ForgettableStore<S> {
    return transition(StoreOp::forget, key, {}, {}, {}, [&] { return inner_->forget(key); });
  }
  std::size_t purge_expired(std::size_t limit) requires PurgeableStore<S> {
    return inner_->purge_expired(limit);
  }
  void wait_for_change(std::string_view key,
                       std::chrono::milliseconds timeout) requires WaitableStore<S> {
    inner_->wait_for_change(key, timeout);
  }
  template <class Body>
    requires TransactionalStore<S>
  bool complete_in_transaction(std::string_view key, const Token& t, std::chrono::milliseconds ttl,
                               Body&& body) {
    StoreCall log = start(StoreOp::transaction, key, t, ttl);
    return call(log, [&] {
      std::string written;
      const bool ok = inner_->complete_in_transaction(
          key, t, ttl, [&](typename S::transaction& tx) { return written = body(tx); });
      log.ok = ok;
      log.payload = std::move(written);
      return ok;
    });
  }

 private:
  StoreCall start(StoreOp op, std::string_view key, const Token& t, std::chrono::milliseconds d) {
    StoreCall log;
    log.op = op;
    log.key = std::string(key);
    log.token = t;
    log.duration = d;
    log.caller = this_caller();
    return log;
  }

  template <class F>
  bool transition(StoreOp op, std::string_view key, const Token& t, std::chrono::milliseconds d,
                  std::string_view payload, F&& f) {
    StoreCall log = start(op, key, t, d);
    log.payload = std::string(payload);
    return call(log, [&] {
      const bool ok = f();
      log.ok = ok;
      return ok;
    });
  }

  Fault choose() {
    const std::lock_guard lock(mutex_);
    if (has_forced_) {
      has_forced_ = false;
      return forced_;
    }
    const double x = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    double edge = options_.error_before;
    if (x < edge) return Fault::error_before;
    if (x < (edge += options_.error_after)) return Fault::error_after;
    if (x < (edge += options_.delay)) return Fault::delay;
    if (x < (edge += options_.duplicate)) return Fault::duplicate;
    return Fault::none;
  }

  std::chrono::milliseconds delay_length() {
    const std::lock_guard lock(mutex_);
    return std::chrono::milliseconds(
        std::uniform_int_distribution<long long>(0, options_.max_delay.count())(rng_));
  }

  void log_end(StoreCall& log) {
    if (options_.history == nullptr) return;
    log.end_seq = options_.history->tick();
    log.end = options_.history->now();
    options_.history->add(std::move(log));
  }

  [[noreturn]] void lost(StoreCall& log, const char* why) {
    const std::string op(to_string(log.op));
    log_end(log);
    throw StoreError("FaultInjectingStore", op, why);
  }

  // Runs `f` (which calls the inner store and fills `log`) under the chosen fault.
  template <class F>
  auto call(StoreCall& log, F&& f) -> decltype(f()) {
    if (options_.history != nullptr) {
      log.start_seq = options_.history->tick();
      log.start = options_.history->now();
    }
    try {
      if (options_.hook) options_.hook(log.op, log.key, false);
    } catch (...) {
      log_end(log);
      throw;
    }
    Fault fault = choose();
    // a transaction is not re-sent by the network: a second copy would be a second transaction
    if (fault == Fault::duplicate && log.op == StoreOp::transaction) fault = Fault::none;
    if (fault == Fault::error_before) lost(log, "injected fault: the request was lost");
    if (fault == Fault::delay) {
      const auto d = delay_length();
      if (options_.wait)
        options_.wait(d);
      else
        std::this_thread::sleep_for(d);
    }
    decltype(f()) result{};
    try {
      if (fault == Fault::duplicate) {
        const StoreCall before = log;
        (void)f(); // the first copy lands too, and is logged as a call of its own
        log.landed = true;
        if (options_.history != nullptr) {
          StoreCall first = log;
          first.end_seq = options_.history->tick();
          first.end = options_.history->now();
          options_.history->add(std::move(first));
          log.start_seq = options_.history->tick();
        }
        log.token = before.token;
        log.ok = false;
        log.landed = false;
      }
      result = f();
      log.landed = true;
    } catch (...) {
      log.landed = false; // the store's own error: whether it landed is unknown to us
      log_end(log);
      throw;
    }
    try {
      if (options_.hook) options_.hook(log.op, log.key, true);
    } catch (...) {
      log_end(log);
      throw;
    }
    if (fault == Fault::error_after) lost(log, "injected fault: the reply was lost");
    log_end(log);
    return result;
  }

  S* inner_;
  FaultOptions options_;
  std::mutex mutex_;
  std::mt19937_64 rng_;
  Fault forced_ = Fault::none;
  bool has_forced_ = false;
};

} // namespace idempotency::testing
