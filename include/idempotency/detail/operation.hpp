// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// What the executor accepts as an operation and its result: the operation concepts, the result
// type of a call, a non-owning callable reference, and the one readable error for a result type
// that cannot be stored.

#include <idempotency/codec.hpp>
#include <idempotency/stop_token.hpp>
#include <idempotency/store.hpp>

#include <concepts>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

namespace idempotency::detail {
/// Thrown out of a transaction body to roll it back when the result classifier says release.
struct NotRecorded {};

template <class F, class... Args>
using result_of_t = std::remove_cvref_t<std::invoke_result_t<F, Args...>>;

/// An operation that takes an `idempotency::stop_token` first (and cannot be called without it).
template <class F, class... Args>
concept StopTokenOperation =
    std::invocable<F&, idempotency::stop_token, Args...> && !std::invocable<F&, Args...>;

/// What `execute` accepts: `fn(args...)` or `fn(stop_token, args...)`.
template <class F, class... Args>
concept Operation =
    std::invocable<F&, Args...> || std::invocable<F&, idempotency::stop_token, Args...>;

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
  using type = result_of_t<F&, idempotency::stop_token, Args...>;
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

/// A non-owning reference to a callable (it must outlive the call it is passed to). A
/// returned prvalue is constructed right in the caller's return slot.
template <class Sig>
class FunctionRef;
template <class R, class... A>
class FunctionRef<R(A...)> {
 public:
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, FunctionRef> &&
             std::is_invocable_r_v<R, F&, A...>)
  FunctionRef(F& f)
  noexcept // NOLINT(google-explicit-constructor)
      : obj_(static_cast<void*>(std::addressof(f))), call_([](void* obj, A... a) -> R {
          return (*static_cast<F*>(obj))(std::forward<A>(a)...);
        }) {}

  R operator()(A... a) const { return call_(obj_, std::forward<A>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, A...);
};

/// One static_assert for a result type that has no codec (the callers stop after it).
template <class T>
constexpr void assert_storable() {
  static_assert(Storable<T>,
                "idempotency: the operation's result type cannot be stored. If it converts to "
                "JSON (to_json/from_json found by ADL, or an nlohmann::adl_serializer<T>), "
                "include <idempotency/json_codec.hpp> (or the umbrella "
                "<idempotency/idempotency.hpp>); otherwise specialize idempotency::Codec<T> with "
                "`static std::string encode(const T&)` and `static T decode(std::string_view)`. "
                "The type is named in the 'required from' lines below");
}

/// A result type stored by the JSON codec, which `Options::classify_result` can see.
template <class R>
concept JsonClassifiable = requires(const R& value) {
  typename Codec<R>::json;
  Codec<R>::to_json(value);
  Codec<R>::dump(Codec<R>::to_json(value));
};
} // namespace idempotency::detail
