// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/detail/backoff.hpp>
#include <idempotency/errors.hpp>

#include <algorithm>
#include <chrono>
#include <exception>
#include <functional>
#include <thread>
#include <type_traits>
#include <utility>

namespace idempotency {

/// How `retry` retries. Defaults suit a call to a remote store from a request handler.
struct RetryPolicy {
  /// Calls of `fn` in all, the first one included.
  int max_attempts = 5;
  /// Cap of the first pause; it grows by `multiplier` per retry up to `max_backoff`. The pause
  /// itself is uniform in [0, cap] (full jitter), so that retrying clients spread out.
  std::chrono::milliseconds initial_backoff = std::chrono::milliseconds(100);
  std::chrono::milliseconds max_backoff = std::chrono::seconds(5);
  double multiplier = 2.0;
  /// Overall budget from the first call: no pause is started that would end past it.
  std::chrono::milliseconds deadline = std::chrono::seconds(30);
  /// `InProgressError::retry_after()` (the holder's whole remaining lease) is a floor on the
  /// pause, capped at this. Small by default: a holder usually finishes long before its
  /// lease, so a rejected caller in a retry loop polls again soon instead of sleeping seconds.
  std::chrono::milliseconds max_retry_after = std::chrono::milliseconds(200);
  /// Which errors are retried; empty = `retry_safe` (StoreError, InProgressError).
  std::function<bool(const std::exception&)> retryable{};
  /// How to pause; empty = `std::this_thread::sleep_for`. Tests inject a fake.
  std::function<void(std::chrono::milliseconds)> sleep{};
  /// The clock the deadline is measured on; empty = `std::chrono::steady_clock::now`.
  std::function<std::chrono::steady_clock::time_point()> clock{};
  /// Called before each pause with the attempt that failed (1-based), the pause and the error.
  std::function<void(int, std::chrono::milliseconds, const std::exception&)> on_retry{};
};

/// The errors that are safe to retry with the same key: the store failed (nothing or
/// everything was recorded; a retry finds out), or another caller holds the key right now.
/// Not `ResultNotRecordedError` (the operation ran; a retry could run it again after the
/// lease), nor a mismatch, a replayed failure or a lost lease (retrying changes nothing).
[[nodiscard]] inline bool retry_safe(const std::exception& e) noexcept {
  return dynamic_cast<const StoreError*>(&e) != nullptr ||
         dynamic_cast<const InProgressError*>(&e) != nullptr;
}

/// Calls `fn()` until it returns, retrying the errors `policy.retryable` accepts with
/// exponential backoff and full jitter, at most `max_attempts` times and within `deadline`.
/// The last error is rethrown when attempts or time run out; any other error at once.
///
/// Example:
///
///     Receipt r = idempotency::retry({.max_attempts = 8}, [&] {
///       return exec.execute(request_id, [&] { return payments.charge(order); });
///     });
template <class F>
  requires std::invocable<F&>
auto retry(const RetryPolicy& policy, F&& fn) -> std::invoke_result_t<F&> {
  using clock = std::chrono::steady_clock;
  auto now = [&] { return policy.clock ? policy.clock() : clock::now(); };
  const auto deadline = now() + policy.deadline;
  for (int attempt = 1;; ++attempt) {
    std::chrono::milliseconds pause{0};
    try {
      return std::invoke(fn);
    } catch (const std::exception& e) {
      const bool retryable = policy.retryable ? policy.retryable(e) : retry_safe(e);
      if (!retryable || attempt >= policy.max_attempts) throw;
      pause = detail::full_jitter(detail::exponential_backoff(
          policy.initial_backoff, policy.max_backoff, attempt - 1, policy.multiplier));
      if (const auto* busy = dynamic_cast<const InProgressError*>(&e))
        pause = std::max(pause, std::clamp(busy->retry_after(), std::chrono::milliseconds(0),
                                           policy.max_retry_after));
      if (now() + pause > deadline) throw;
      if (policy.on_retry) policy.on_retry(attempt, pause, e);
    }
    if (policy.sleep) {
      policy.sleep(pause);
    } else {
      std::this_thread::sleep_for(pause);
    }
  }
}

} // namespace idempotency
