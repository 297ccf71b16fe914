// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// A recorded history of a stress test or a simulation: every store call (as the store saw it,
// written by `FaultInjectingStore`), every executor call (what its caller was told) and every
// side effect. `check_history` (history_checker.hpp) verifies the guarantees against it.

#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idempotency::testing {

using history_clock = std::chrono::steady_clock;

/// A store operation, as logged by `FaultInjectingStore`.
enum class StoreOp : std::uint8_t { claim, complete, fail, release, renew, forget, transaction };

[[nodiscard]] constexpr std::string_view to_string(StoreOp op) noexcept {
  switch (op) {
    case StoreOp::claim: return "claim";
    case StoreOp::complete: return "complete";
    case StoreOp::fail: return "fail";
    case StoreOp::release: return "release";
    case StoreOp::renew: return "renew";
    case StoreOp::forget: return "forget";
    case StoreOp::transaction: return "complete_in_transaction";
  }
  return "?";
}

/// One store call as the store saw it. `landed` says whether the request reached the store
/// (a request can land and still end in an error for its caller: a lost reply).
struct StoreCall {
  std::uint64_t start_seq = 0; ///< `History::tick()` before the request was sent
  std::uint64_t end_seq = 0;   ///< and after its reply (or its error)
  history_clock::time_point start{};
  history_clock::time_point end{};
  int caller = -1;
  StoreOp op = StoreOp::claim;
  std::string key;
  /// The token the call carried; for a claim that acquired, the token it got.
  Token token{};
  bool landed = false;
  /// The store's answer where it landed: a transition's bool, or "acquired" for a claim.
  bool ok = false;
  /// A claim's status where it landed.
  ClaimStatus status = ClaimStatus::acquired;
  /// complete / fail / transaction: the payload written; claim: the payload returned.
  std::string payload;
  /// claim / renew: the lease asked for; complete / fail / transaction: the TTL.
  std::chrono::milliseconds duration{0};
};

/// What an executor call told its caller.
enum class Told : std::uint8_t {
  recorded,         ///< ran, and its result was recorded
  released,         ///< ran (or threw) and its claim was released: nothing recorded
  failed,           ///< threw, and its failure was recorded (`OnException::remember`)
  replayed,         ///< got a stored value without running
  replayed_failure, ///< got a stored failure (`ReplayedFailureError`)
  in_progress,      ///< `InProgressError`
  lease_lost,       ///< `LeaseLostError`: its result was refused
  not_recorded,     ///< `ResultNotRecordedError`: outcome unknown
  store_error,      ///< `StoreError`
  crashed,          ///< the caller "died" (simulation): nothing it was told counts
  other,            ///< anything else (the message is in `value`)
};

[[nodiscard]] constexpr std::string_view to_string(Told t) noexcept {
  switch (t) {
    case Told::recorded: return "recorded";
    case Told::released: return "released";
    case Told::failed: return "failed";
    case Told::replayed: return "replayed";
    case Told::replayed_failure: return "replayed_failure";
    case Told::in_progress: return "in_progress";
    case Told::lease_lost: return "lease_lost";
    case Told::not_recorded: return "not_recorded";
    case Told::store_error: return "store_error";
    case Told::crashed: return "crashed";
    case Told::other: return "other";
  }
  return "?";
}

/// One executor call and what its caller was told.
struct Call {
  std::uint64_t start_seq = 0;
  std::uint64_t end_seq = 0;
  history_clock::time_point start{};
  history_clock::time_point end{};
  int caller = -1;
  std::string key;
  Told told = Told::other;
  /// recorded / released / replayed / lease_lost / not_recorded: the value (as the checker's
  /// `decode` writes it); other: the error message.
  std::string value;
};

/// One run of the operation's side effect, with the value that run produced.
struct Effect {
  std::uint64_t seq = 0;
  history_clock::time_point at{};
  int caller = -1;
  std::string key;
  std::string value;
};

/// The caller id that `FaultInjectingStore` and `History` stamp on records made by this
/// thread (-1 until set). A simulation or a stress test sets it once per thread.
inline int& this_caller() noexcept {
  thread_local int id = -1;
  return id;
}

/// A thread-safe recorder. Times come from `clock` (default: `steady_clock`; a simulation
/// gives its `SimClock`), sequence numbers from one counter, so records of different threads
/// are ordered where they do not overlap.
class History {
 public:
  using clock_fn = std::function<history_clock::time_point()>;

  explicit History(clock_fn clock = {}) : clock_(std::move(clock)) {}
  History(const History&) = delete;
  History& operator=(const History&) = delete;

  [[nodiscard]] std::uint64_t tick() noexcept { return seq_.fetch_add(1) + 1; }
  [[nodiscard]] history_clock::time_point now() const {
    return clock_ ? clock_() : history_clock::now();
  }

  void add(StoreCall c) {
    const std::lock_guard lock(mutex_);
    store_calls_.push_back(std::move(c));
  }
  void add(Call c) {
    const std::lock_guard lock(mutex_);
    calls_.push_back(std::move(c));
  }
  /// Logs a side effect of `this_caller()` on `key` that produced `value`.
  void effect(std::string key, std::string value) {
    Effect e{tick(), now(), this_caller(), std::move(key), std::move(value)};
    const std::lock_guard lock(mutex_);
    effects_.push_back(std::move(e));
  }

  /// Copies (safe while other threads still record).
  [[nodiscard]] std::vector<StoreCall> store_calls() const {
    const std::lock_guard lock(mutex_);
    return store_calls_;
  }
  [[nodiscard]] std::vector<Call> calls() const {
    const std::lock_guard lock(mutex_);
    return calls_;
  }
  [[nodiscard]] std::vector<Effect> effects() const {
    const std::lock_guard lock(mutex_);
    return effects_;
  }

 private:
  clock_fn clock_;
  std::atomic<std::uint64_t> seq_{0};
  mutable std::mutex mutex_;
  std::vector<StoreCall> store_calls_;
  std::vector<Call> calls_;
  std::vector<Effect> effects_;
};

/// Runs `call` — which returns an `Outcome<std::string>`, e.g.
/// `[&] { return exec.execute_outcome(key, op); }` — and returns what it told its caller, for
/// `History::add` (a simulation may first mark a caller that "died" as `crashed`).
/// `produced` is where the operation writes the value it computed (empty if it did not run):
/// a lease-lost or not-recorded answer carries no value of its own. An exception that is not
/// the library's is the operation's own, rethrown by the executor: it is recorded as
/// `own_exception` (`released` under `OnException::release`). Nothing is rethrown.
template <class F>
Call record_call(History& h, std::string key, const std::string& produced, F&& call,
                 Told own_exception = Told::released) {
  Call c;
  c.caller = this_caller();
  c.key = std::move(key);
  c.start_seq = h.tick();
  c.start = h.now();
  try {
    auto out = std::forward<F>(call)();
    c.told = out.replayed ? Told::replayed : (out.expires_in ? Told::recorded : Told::released);
    c.value = std::move(out.value);
  } catch (const ReplayedFailureError&) {
    c.told = Told::replayed_failure;
  } catch (const InProgressError&) {
    c.told = Told::in_progress;
  } catch (const LeaseLostError&) {
    c.told = Told::lease_lost;
    c.value = produced;
  } catch (const ResultNotRecordedError&) {
    c.told = Told::not_recorded;
    c.value = produced;
  } catch (const StoreError&) {
    c.told = Told::store_error;
  } catch (const Error& e) {
    c.told = Told::other;
    c.value = e.what();
  } catch (const std::exception&) {
    c.told = own_exception;
    c.value = produced;
  }
  c.end_seq = h.tick();
  c.end = h.now();
  return c;
}

} // namespace idempotency::testing
