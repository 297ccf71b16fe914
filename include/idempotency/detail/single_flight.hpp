// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// In-process single-flight: the first caller of a key in this process (the leader) goes to
// the store; later callers of the same key and fingerprint wait here for its outcome.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace idempotency::detail {

/// One key's flight. Written under the table's mutex; immutable once no longer pending.
struct Flight {
  enum class State : std::uint8_t {
    pending, ///< the leader is still at work
    value,   ///< `payload` is the recorded (or replayed) result
    failure, ///< `payload` is a recorded failure
    error,   ///< `error` is what every caller gets (result not recorded)
    retry,   ///< the key was released / lost / never claimed: go to the store again
  };
  explicit Flight(std::string fp) : fingerprint(std::move(fp)) {}
  std::string fingerprint;
  State state = State::pending;
  std::string payload{};
  std::exception_ptr error{};
  std::chrono::steady_clock::time_point busy_until{};
  std::size_t waiters = 0;
  std::condition_variable cv{};
};

/// (Templates only so that their members are compiled where they are used: a TU that never
/// runs an executor pays nothing for them.)
template <class Unused = void>
class BasicFlightTable {
 public:
  struct Joined {
    std::shared_ptr<Flight> flight{}; ///< empty: a flight of another fingerprint exists
    bool leader = false;
  };

  /// Becomes the leader of `key`, or joins its flight (same fingerprint only).
  Joined join(const std::string& key, std::string_view fingerprint) {
    std::lock_guard lock(mutex_);
    auto it = flights_.find(key);
    if (it == flights_.end()) {
      auto f = std::make_shared<Flight>(std::string(fingerprint));
      flights_.emplace(key, f);
      return {std::move(f), true};
    }
    if (it->second->fingerprint != fingerprint) return {};
    return {it->second, false};
  }

  /// Waits for the outcome; false if `deadline` passed first.
  bool wait(Flight& f, std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    ++f.waiters;
    const bool done =
        f.cv.wait_until(lock, deadline, [&] { return f.state != Flight::State::pending; });
    --f.waiters;
    return done;
  }

  void publish(const std::string& key, const std::shared_ptr<Flight>& f, Flight::State state,
               std::string payload, std::exception_ptr error) {
    {
      std::lock_guard lock(mutex_);
      if (f->state != Flight::State::pending) return;
      f->state = state;
      f->payload = std::move(payload);
      f->error = std::move(error);
      auto it = flights_.find(key);
      if (it != flights_.end() && it->second == f) flights_.erase(it);
    }
    f->cv.notify_all();
  }

  void set_busy_until(Flight& f, std::chrono::steady_clock::time_point t) {
    std::lock_guard lock(mutex_);
    f.busy_until = t;
  }

  [[nodiscard]] std::chrono::steady_clock::time_point busy_until(const Flight& f) const {
    std::lock_guard lock(mutex_);
    return f.busy_until;
  }

  /// Callers waiting on the flight of `key` now.
  [[nodiscard]] std::size_t waiters(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = flights_.find(key);
    return it == flights_.end() ? 0 : it->second->waiters;
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Flight>> flights_;
};

using FlightTable = BasicFlightTable<>;

/// The leader's side of a flight. Destroyed (or moved-from and destroyed) without an
/// outcome, it publishes `retry`, so waiters never hang on a leader that gave up.
template <class Unused = void>
class BasicFlightHandle {
 public:
  BasicFlightHandle() = default;
  BasicFlightHandle(FlightTable& table, std::string key, std::shared_ptr<Flight> flight)
      : table_(&table), key_(std::move(key)), flight_(std::move(flight)) {}
  BasicFlightHandle(BasicFlightHandle&& other) noexcept
      : table_(other.table_), key_(std::move(other.key_)), flight_(std::move(other.flight_)) {}
  BasicFlightHandle& operator=(BasicFlightHandle&& other) noexcept {
    if (this != &other) {
      publish(Flight::State::retry);
      table_ = other.table_;
      key_ = std::move(other.key_);
      flight_ = std::move(other.flight_);
    }
    return *this;
  }
  BasicFlightHandle(const BasicFlightHandle&) = delete;
  BasicFlightHandle& operator=(const BasicFlightHandle&) = delete;
  ~BasicFlightHandle() {
    if (flight_) publish(Flight::State::retry);
  }

  void publish(Flight::State state, std::string payload = {},
               std::exception_ptr error = {}) noexcept {
    if (!flight_) return;
    try {
      table_->publish(key_, flight_, state, std::move(payload), std::move(error));
    } catch (...) { // std::mutex::lock failing: nothing sane to do
    }
    flight_.reset();
  }

  void set_busy_until(std::chrono::steady_clock::time_point t) {
    if (flight_) table_->set_busy_until(*flight_, t);
  }

  /// True while this handle leads a flight that has no outcome yet.
  explicit operator bool() const noexcept { return static_cast<bool>(flight_); }

 private:
  FlightTable* table_ = nullptr;
  std::string key_{};
  std::shared_ptr<Flight> flight_{};
};

using FlightHandle = BasicFlightHandle<>;

} // namespace idempotency::detail
