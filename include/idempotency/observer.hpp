// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace idempotency {

/// Every state change the executor reports to an `Observer`.
enum class Event : std::uint8_t {
  claimed,              ///< this call acquired the key and will run the operation
  replayed,             ///< a recorded result (or recorded failure) was returned from the store
  rejected_in_progress, ///< `InProgressError`: reject policy, or the wait deadline passed
  waited,               ///< the call waited on the store for another process's holder, then went on
  coalesced,            ///< the call got the outcome of a leader in this process (no store call)
  mismatch,             ///< `FingerprintMismatchError`
  completed,            ///< the result was recorded
  released,             ///< the claim was given back (exception with release, classifier, abandon)
  failure_remembered,   ///< the failure was recorded and will be replayed
  lease_renewed,        ///< the lease was extended (renewal timer or `OwnerGuard::renew`)
  lease_lost,           ///< the claim was found taken over or gone
  store_error,          ///< a store call threw `StoreError`
};

/// Number of `Event` values.
inline constexpr std::size_t event_count = 12;

/// The stable name of an event (used as the Prometheus label value).
constexpr std::string_view to_string(Event e) noexcept {
  switch (e) {
    case Event::claimed: return "claimed";
    case Event::replayed: return "replayed";
    case Event::rejected_in_progress: return "rejected_in_progress";
    case Event::waited: return "waited";
    case Event::coalesced: return "coalesced";
    case Event::mismatch: return "mismatch";
    case Event::completed: return "completed";
    case Event::released: return "released";
    case Event::failure_remembered: return "failure_remembered";
    case Event::lease_renewed: return "lease_renewed";
    case Event::lease_lost: return "lease_lost";
    case Event::store_error: return "store_error";
  }
  return "unknown";
}

/// One state change. `key` is the storage key (scope prefix included) and is valid only
/// during the call. `elapsed` is the time the step took: for `claimed`, `replayed`,
/// `rejected_in_progress`, `waited`, `coalesced` and `mismatch` since the call began; for
/// `completed`, `released`, `failure_remembered` and `lease_lost` since the key was claimed;
/// for `lease_renewed`, `store_error`, and `lease_lost` found by the renewal timer, the store
/// call itself.
struct ObserverEvent {
  Event event;
  std::string_view key;
  std::chrono::nanoseconds elapsed;
};

/// A hook on every state change. Set `Options::observer` to one; it must outlive the
/// executor. Called from the calling threads and from the executor's renewal thread, so an
/// implementation must be thread-safe, quick, and must not call back into the executor.
/// An exception it throws is swallowed.
///
/// With no observer set (the default) the executor reads no clock and makes no call for
/// events: each state change costs one test of a pointer already in a register or cache.
class Observer {
 public:
  Observer() = default;
  Observer(const Observer&) = default;
  Observer& operator=(const Observer&) = default;
  virtual ~Observer() = default;
  virtual void on_event(const ObserverEvent& event) = 0;
};

/// A ready observer: one counter and one total time per event, all atomics (relaxed).
///
/// Example:
///
///     idempotency::CountersObserver counters;
///     idempotency::IdempotencyExecutor exec{store, {.observer = &counters}};
///     ...
///     http_response(idempotency::render_prometheus(counters));
class CountersObserver final : public Observer {
 public:
  void on_event(const ObserverEvent& e) override {
    const auto i = static_cast<std::size_t>(e.event);
    counts_[i].fetch_add(1, std::memory_order_relaxed);
    nanos_[i].fetch_add(static_cast<std::uint64_t>(e.elapsed.count() > 0 ? e.elapsed.count() : 0),
                        std::memory_order_relaxed);
  }

  /// How many times `e` happened.
  [[nodiscard]] std::uint64_t count(Event e) const noexcept {
    return counts_[static_cast<std::size_t>(e)].load(std::memory_order_relaxed);
  }

  /// The time all occurrences of `e` took together.
  [[nodiscard]] std::chrono::nanoseconds total_time(Event e) const noexcept {
    return std::chrono::nanoseconds(static_cast<std::chrono::nanoseconds::rep>(
        nanos_[static_cast<std::size_t>(e)].load(std::memory_order_relaxed)));
  }

 private:
  std::array<std::atomic<std::uint64_t>, event_count> counts_{};
  std::array<std::atomic<std::uint64_t>, event_count> nanos_{};
};

namespace detail {
inline void append_number(std::string& out, std::uint64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

/// `v` as fmt's `{}` writes a double: the shortest text that reads back as `v`, in
/// scientific notation when its decimal exponent is below -4 or at least 16, else fixed
/// (no trailing `.0`); the exponent with a sign and at least two digits (`1e-05`, `1e+16`).
inline void append_number(std::string& out, double v) {
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string_view sci(buf, static_cast<std::size_t>(r.ptr - buf));
  const auto e = sci.find('e');
  int exponent = 0;
  if (e != std::string_view::npos) {
    const char* first = sci.data() + e + 1;
    if (*first == '+') ++first;
    std::from_chars(first, sci.data() + sci.size(), exponent);
  }
  if (e == std::string_view::npos || exponent < -4 || exponent >= 16) { // also inf, nan
    out += sci;
    return;
  }
  r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
  out.append(buf, r.ptr);
}
} // namespace detail

/// Renders `counters` in the Prometheus text exposition format (version 0.0.4): two counter
/// families, `<prefix>_events_total{event="…"}` and `<prefix>_event_seconds_total{event="…"}`,
/// each with its `# HELP` and `# TYPE` lines, one sample per event.
///
/// Example output:
///
///     # HELP idempotency_events_total State changes of idempotency keys, by event.
///     # TYPE idempotency_events_total counter
///     idempotency_events_total{event="claimed"} 3
///     ...
[[nodiscard]] inline std::string render_prometheus(const CountersObserver& counters,
                                                   std::string_view prefix = "idempotency") {
  std::string out;
  auto family = [&](std::string_view name, std::string_view help, auto&& value) {
    const auto head = [&](std::string_view what, std::string_view text) {
      out += what;
      out += prefix;
      out += '_';
      out += name;
      out += ' ';
      out += text;
      out += '\n';
    };
    head("# HELP ", help);
    head("# TYPE ", "counter");
    for (std::size_t i = 0; i < event_count; ++i) {
      const auto e = static_cast<Event>(i);
      out += prefix;
      out += '_';
      out += name;
      out += "{event=\"";
      out += to_string(e);
      out += "\"} ";
      detail::append_number(out, value(e));
      out += '\n';
    }
  };
  family("events_total", "State changes of idempotency keys, by event.",
         [&](Event e) { return counters.count(e); });
  family("event_seconds_total", "Time taken by the state changes, by event, in seconds.",
         [&](Event e) { return std::chrono::duration<double>(counters.total_time(e)).count(); });
  return out;
}

namespace detail {
/// Reports one event; the caller tested `observer` already (so the no-observer path reads
/// no clock).
inline void notify(Observer& observer, Event event, std::string_view key,
                   std::chrono::steady_clock::time_point since) noexcept {
  try {
    observer.on_event({event, key, std::chrono::steady_clock::now() - since});
  } catch (...) { // an observer must not change the outcome
  }
}

inline void notify_elapsed(Observer& observer, Event event, std::string_view key,
                           std::chrono::nanoseconds elapsed) noexcept {
  try {
    observer.on_event({event, key, elapsed});
  } catch (...) {
  }
}
} // namespace detail

} // namespace idempotency
