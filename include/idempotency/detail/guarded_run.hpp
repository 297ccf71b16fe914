// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The operation's run while this call holds its key: marked as running on this thread (so a
// re-entrant call is refused instead of waiting for itself), and its exception handled as the
// policy says (remember or release).

#include <idempotency/codec.hpp>
#include <idempotency/detail/operation.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/options.hpp>

#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idempotency::detail {

// The store failed around a transaction (before the body ran, or at the commit): the
// transaction rolled back or its outcome is unknown. Releasing is safe either way (it is
// token-checked in state InProgress: a record that did commit is never deleted); a release
// that fails leaves the key to its lease. The store's exception is what the caller gets.
template <class Guard>
void release_after_store_failure(Guard& guard) noexcept {
  try {
    guard.release();
  } catch (...) {
  }
}

// The (executor, storage key) pairs whose operation runs on this thread right now, so a
// re-entrant call from inside one is refused instead of waiting for itself.
struct Running {
  const void* executor;
  std::string_view key;
};
inline std::vector<Running>& running_here() {
  thread_local std::vector<Running> running;
  return running;
}
[[nodiscard]] inline bool running_here(const void* executor, std::string_view skey) {
  for (const Running& r : running_here())
    if (r.executor == executor && r.key == skey) return true;
  return false;
}

// Called inside the handler of the operation's own exception (`e`, or null for one that is
// not a std::exception): remember or release as the policy says. If the store fails at
// that, the caller gets that `StoreError` with the operation's exception nested in it
// (`std::rethrow_if_nested`), never just the operation's exception: the key is then left
// to its lease.
template <class Guard>
void apply_exception_policy(const Options& options, Guard& guard, const std::exception* e) {
  if (!guard.holding()) return;
  const std::exception_ptr original = std::current_exception();
  const OnException what = e == nullptr       ? OnException::release
                           : options.classify ? options.classify(*e)
                                              : options.on_exception;
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

template <class Guard, class F, class... Args>
decltype(auto) run_guarded(const void* executor, const Options& options, Guard& guard, F& fn,
                           Args&&... args) {
  struct Mark { // pushed while the operation runs (exception-safe)
    explicit Mark(Running r) { running_here().push_back(r); }
    Mark(const Mark&) = delete;
    Mark& operator=(const Mark&) = delete;
    ~Mark() { running_here().pop_back(); }
  };
  const Mark mark(Running{executor, guard.storage_key()});
  try {
    if constexpr (StopTokenOperation<F, Args...>) {
      return std::invoke(fn, guard.stop_token(), std::forward<Args>(args)...);
    } else {
      return std::invoke(fn, std::forward<Args>(args)...);
    }
  } catch (const std::exception& e) {
    apply_exception_policy(options, guard, &e);
    throw;
  } catch (...) {
    apply_exception_policy(options, guard, nullptr);
    throw;
  }
}
} // namespace idempotency::detail
