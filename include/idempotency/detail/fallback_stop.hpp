// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// A small stop source / token / callback with the interface of <stop_token>, for standard
// libraries without it (libc++ before 17, Apple's toolchains). <idempotency/stop_token.hpp>
// names these as idempotency::stop_token etc. only where `__cpp_lib_jthread` is not defined;
// the tests use them directly under every preset.
//
// Semantics as in the standard:
// - request_stop() sets the flag once and runs the registered callbacks on the requesting
//   thread, each once; later calls return false.
// - A callback registered after the stop ran runs at once, in the stop_callback's constructor.
// - A stop_callback destroyed while its callback runs on another thread waits for it to return;
//   destroyed from inside its own callback, it does not wait.
// - stop_token::stop_possible() is true while a stop_source of the state lives or once stop
//   was requested.

#include <atomic>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

namespace idempotency::detail::fallback_stop {

struct nostopstate_t {
  explicit nostopstate_t() = default;
};
inline constexpr nostopstate_t nostopstate{};

/// A registered callback (the part of stop_callback the shared state sees).
struct callback_node {
  void (*invoke)(callback_node*) noexcept = nullptr;
  callback_node* prev = nullptr;
  callback_node* next = nullptr;
  bool linked = false;
  bool* destroyed = nullptr; // set while request_stop runs it: its destructor reports here
};

/// What the sources, tokens and callbacks of one stop share.
class stop_state {
 public:
  [[nodiscard]] bool requested() const noexcept {
    return requested_.load(std::memory_order_acquire);
  }
  [[nodiscard]] bool possible() const noexcept {
    return requested() || sources_.load(std::memory_order_acquire) > 0;
  }
  void add_source() noexcept { sources_.fetch_add(1, std::memory_order_relaxed); }
  void remove_source() noexcept { sources_.fetch_sub(1, std::memory_order_acq_rel); }

  /// Sets the flag and runs every registered callback once, here; false if already set.
  bool request_stop() noexcept {
    std::unique_lock lock(mutex_);
    if (requested_.load(std::memory_order_relaxed)) return false;
    requested_.store(true, std::memory_order_release);
    stopper_ = std::this_thread::get_id();
    while (head_ != nullptr) {
      callback_node* node = head_;
      unlink(node);
      bool destroyed = false;
      node->destroyed = &destroyed;
      running_ = node;
      lock.unlock();
      node->invoke(node);
      lock.lock();
      if (!destroyed) node->destroyed = nullptr;
      running_ = nullptr;
      done_.notify_all();
    }
    return true;
  }

  /// Registers `node`; false (not registered) when stop was already requested.
  bool add(callback_node* node) {
    std::lock_guard lock(mutex_);
    if (requested_.load(std::memory_order_relaxed)) return false;
    node->prev = nullptr;
    node->next = head_;
    if (head_ != nullptr) head_->prev = node;
    head_ = node;
    node->linked = true;
    return true;
  }

  /// Unregisters `node`; if its callback is running on another thread, waits for it.
  void remove(callback_node* node) noexcept {
    std::unique_lock lock(mutex_);
    if (node->linked) {
      unlink(node);
      return;
    }
    if (running_ != node) return; // never registered, or already run
    if (stopper_ == std::this_thread::get_id()) {
      *node->destroyed = true; // destroyed by its own callback: request_stop must not touch it
      return;
    }
    done_.wait(lock, [&] { return running_ != node; });
  }

 private:
  void unlink(callback_node* node) noexcept {
    if (node->prev != nullptr)
      node->prev->next = node->next;
    else
      head_ = node->next;
    if (node->next != nullptr) node->next->prev = node->prev;
    node->prev = node->next = nullptr;
    node->linked = false;
  }

  std::atomic<bool> requested_{false};
  std::atomic<std::size_t> sources_{0};
  std::mutex mutex_;
  std::condition_variable done_;
  callback_node* head_ = nullptr;    // guarded by mutex_
  callback_node* running_ = nullptr; // guarded by mutex_
  std::thread::id stopper_{};        // guarded by mutex_
};

class stop_source;
template <class Callback>
class stop_callback;

class stop_token {
 public:
  stop_token() noexcept = default;

  [[nodiscard]] bool stop_requested() const noexcept { return state_ && state_->requested(); }
  [[nodiscard]] bool stop_possible() const noexcept { return state_ && state_->possible(); }
  void swap(stop_token& other) noexcept { state_.swap(other.state_); }
  friend void swap(stop_token& a, stop_token& b) noexcept { a.swap(b); }
  [[nodiscard]] friend bool operator==(const stop_token& a, const stop_token& b) noexcept {
    return a.state_ == b.state_;
  }

 private:
  friend class stop_source;
  template <class Callback>
  friend class stop_callback;
  explicit stop_token(std::shared_ptr<stop_state> state) noexcept : state_(std::move(state)) {}
  std::shared_ptr<stop_state> state_;
};

class stop_source {
 public:
  stop_source() : state_(std::make_shared<stop_state>()) { state_->add_source(); }
  explicit stop_source(nostopstate_t) noexcept {}
  stop_source(const stop_source& other) noexcept : state_(other.state_) {
    if (state_) state_->add_source();
  }
  stop_source(stop_source&& other) noexcept = default;
  stop_source& operator=(const stop_source& other) noexcept {
    if (this != &other) stop_source(other).swap(*this);
    return *this;
  }
  stop_source& operator=(stop_source&& other) noexcept {
    stop_source(std::move(other)).swap(*this);
    return *this;
  }
  ~stop_source() {
    if (state_) state_->remove_source();
  }

  bool request_stop() noexcept { return state_ && state_->request_stop(); }
  [[nodiscard]] stop_token get_token() const noexcept { return stop_token(state_); }
  [[nodiscard]] bool stop_requested() const noexcept { return state_ && state_->requested(); }
  [[nodiscard]] bool stop_possible() const noexcept { return state_ != nullptr; }
  void swap(stop_source& other) noexcept { state_.swap(other.state_); }
  friend void swap(stop_source& a, stop_source& b) noexcept { a.swap(b); }
  [[nodiscard]] friend bool operator==(const stop_source& a, const stop_source& b) noexcept {
    return a.state_ == b.state_;
  }

 private:
  std::shared_ptr<stop_state> state_;
};

template <class Callback>
class stop_callback : private callback_node {
  static_assert(std::is_nothrow_destructible_v<Callback> && std::invocable<Callback>);

 public:
  using callback_type = Callback;

  template <class C>
    requires std::constructible_from<Callback, C>
  explicit stop_callback(const stop_token& token,
                         C&& cb) noexcept(std::is_nothrow_constructible_v<Callback, C>)
      : callback_(std::forward<C>(cb)) {
    attach(token.state_);
  }
  template <class C>
    requires std::constructible_from<Callback, C>
  explicit stop_callback(stop_token&& token,
                         C&& cb) noexcept(std::is_nothrow_constructible_v<Callback, C>)
      : callback_(std::forward<C>(cb)) {
    attach(std::move(token.state_));
  }
  ~stop_callback() {
    if (state_) state_->remove(this);
  }
  stop_callback(const stop_callback&) = delete;
  stop_callback(stop_callback&&) = delete;
  stop_callback& operator=(const stop_callback&) = delete;
  stop_callback& operator=(stop_callback&&) = delete;

 private:
  void attach(std::shared_ptr<stop_state> state) noexcept {
    if (!state || !state->possible()) return;
    invoke = &run;
    bool added = false;
    try {
      added = state->add(this);
    } catch (...) { // the mutex could not be locked: std::terminate, as a throwing callback would
      std::terminate();
    }
    if (added)
      state_ = std::move(state);
    else
      std::forward<Callback>(callback_)(); // stop already requested: run it now
  }
  static void run(callback_node* node) noexcept {
    auto* self = static_cast<stop_callback*>(node);
    std::forward<Callback>(self->callback_)();
  }

  Callback callback_;
  std::shared_ptr<stop_state> state_; // set while registered
};

template <class Callback>
stop_callback(stop_token, Callback) -> stop_callback<Callback>;

} // namespace idempotency::detail::fallback_stop
