// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The executor's options and policy types, and what a call returns (`Outcome`).

#include <idempotency/codec.hpp>
#include <idempotency/detail/json_hook.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/key.hpp>
#include <idempotency/observer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

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

/// `Options::classify_result`: a function of the returned value's JSON, as it would be
/// stored, answering `OnResult`. Set it from any callable taking `const nlohmann::json&`
/// (`[](const nlohmann::json& response) { ... }`, a generic lambda, a `std::function`);
/// that needs <idempotency/json_codec.hpp> (the umbrella header includes it), while this
/// header needs no JSON library. It applies to results stored by the JSON codec only: with a
/// classifier set, `execute` of a result type with a `Codec<T>` of its own throws
/// `InvalidOptionsError` before anything is claimed or run.
class ResultClassifier {
 public:
  ResultClassifier() noexcept = default;
  ResultClassifier(std::nullptr_t) noexcept {} // NOLINT(google-explicit-constructor)

  /// Any callable as `OnResult(const nlohmann::json&)`; it is copied (it must be copyable).
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, ResultClassifier> &&
             !std::is_same_v<std::remove_cvref_t<F>, std::nullptr_t>)
  ResultClassifier(F&& fn) { // NOLINT(google-explicit-constructor): `.classify_result = lambda`
    if constexpr (!detail::JsonHookReady<F>) {
      static_assert(detail::dependent_false<F>,
                    "idempotency: Options::classify_result sees results as JSON; include "
                    "<idempotency/json_codec.hpp> (or the umbrella <idempotency/idempotency.hpp>)");
    } else {
      using Json = typename detail::json_hook<F>::json;
      using Fn = std::decay_t<F>;
      static_assert(std::is_invocable_r_v<OnResult, Fn&, const Json&>,
                    "idempotency: Options::classify_result must be callable as "
                    "`OnResult(const nlohmann::json&)`");
      fn_ = [f = Fn(std::forward<F>(fn))](const void* j) mutable -> OnResult {
        return std::invoke(f, *static_cast<const Json*>(j));
      };
    }
  }

  /// False when no classifier is set (every value is recorded).
  explicit operator bool() const noexcept { return static_cast<bool>(fn_); }

  /// Asks the classifier about `json` (a `nlohmann::json`). Throws `std::bad_function_call`
  /// when none is set, and whatever the classifier throws.
  template <class Json>
  OnResult operator()(const Json& json) const {
    static_assert(std::is_same_v<Json, typename detail::json_hook<Json>::json>,
                  "idempotency: a ResultClassifier is called with a nlohmann::json");
    return fn_(static_cast<const void*>(&json));
  }

 private:
  std::function<OnResult(const void*)> fn_{};
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
  /// executor). An operation taking an `idempotency::stop_token` first is told when the lease is
  /// lost.
  bool renew_lease = false;
  /// Per returned value: `record` it (the default when unset) or `release` the key. It sees
  /// the value as it would be stored (its JSON), so one classifier serves every result type
  /// stored as JSON; a result type with a `Codec<T>` of its own cannot be classified
  /// (`InvalidOptionsError` at the call, before anything is claimed). See `ResultClassifier`.
  ResultClassifier classify_result{};
  /// How `complete` is retried when the store fails after the operation succeeded.
  CompletionRetry completion_retry{};
  /// Told of every state change; null (the default) costs nothing. Must outlive the executor.
  Observer* observer = nullptr;
};

/// The longest duration an option may hold (100 years): long enough for "forever", short
/// enough that `now + d` never overflows a clock or a store's millisecond arithmetic.
inline constexpr std::chrono::milliseconds max_option_duration = std::chrono::hours(24 * 365 * 100);

/// Throws `InvalidOptionsError` for an option that would make the executor unsafe: a lease,
/// TTL, deadline or backoff that is zero or negative (or over `max_option_duration`), no
/// completion attempt, a zero payload limit, or an invalid scope (`InvalidKeyError`).
inline void validate(const Options& o) {
  const auto check = [](const char* name, std::chrono::milliseconds d, bool zero_ok) {
    if (d.count() < 0 || (!zero_ok && d.count() == 0) || d > max_option_duration)
      detail::raise<InvalidOptionsError>(
          std::string("Options::") + name + " is " + std::to_string(d.count()) +
          " ms; it must be " + (zero_ok ? "0" : "1") + " ms .. " +
          std::to_string(max_option_duration.count()) + " ms (100 years)");
  };
  check("result_ttl", o.result_ttl, false);
  check("lease", o.lease, false);
  check("wait_deadline", o.wait_deadline, false);
  check("completion_retry.initial_backoff", o.completion_retry.initial_backoff, true);
  check("completion_retry.max_backoff", o.completion_retry.max_backoff, true);
  if (o.completion_retry.max_attempts < 1)
    detail::raise<InvalidOptionsError>("Options::completion_retry.max_attempts is " +
                                       std::to_string(o.completion_retry.max_attempts) +
                                       "; at least 1 call to complete is needed");
  if (o.max_payload == 0)
    detail::raise<InvalidOptionsError>("Options::max_payload is 0; no result could be stored");
  o.scope.validate();
}

/// A result and whether it was replayed from the store rather than computed by this call.
/// `auto [value, replayed] = exec.execute_outcome(…)` binds those two (tuple protocol), so
/// code written before `expires_in` existed keeps compiling.
template <class T>
struct Outcome {
  T value;
  bool replayed = false;
  /// How long the recorded result is still replayed, where known: the store's remaining TTL
  /// for a replay, `result_ttl` for a result this call recorded; empty for a value that was
  /// not recorded (classified `release`) or that a waiter got from another caller in this
  /// process. For a `Cache-Control` / `Expires` header or a log line.
  std::optional<std::chrono::milliseconds> expires_in{};

  template <std::size_t I>
  [[nodiscard]] decltype(auto) get() & noexcept {
    if constexpr (I == 0)
      return (value);
    else
      return (replayed);
  }
  template <std::size_t I>
  [[nodiscard]] decltype(auto) get() const& noexcept {
    if constexpr (I == 0)
      return (value);
    else
      return (replayed);
  }
  template <std::size_t I>
  [[nodiscard]] decltype(auto) get() && noexcept {
    if constexpr (I == 0)
      return std::move(value);
    else
      return std::move(replayed);
  }
};

template <>
struct Outcome<void> {
  bool replayed = false;
  /// As in `Outcome<T>`.
  std::optional<std::chrono::milliseconds> expires_in{};

  template <std::size_t I>
  [[nodiscard]] bool get() const noexcept {
    static_assert(I == 0);
    return replayed;
  }
};

} // namespace idempotency

// `auto [value, replayed] = outcome;` (and `auto [replayed] = void_outcome;`)
template <class T>
struct std::tuple_size<idempotency::Outcome<T>> : std::integral_constant<std::size_t, 2> {};
template <class T>
struct std::tuple_element<0, idempotency::Outcome<T>> {
  using type = T;
};
template <class T>
struct std::tuple_element<1, idempotency::Outcome<T>> {
  using type = bool;
};
template <>
struct std::tuple_size<idempotency::Outcome<void>> : std::integral_constant<std::size_t, 1> {};
template <>
struct std::tuple_element<0, idempotency::Outcome<void>> {
  using type = bool;
};
