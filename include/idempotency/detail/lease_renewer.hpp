// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// Per executor, a few threads renew the leases of every running operation that asked for
// renewal: the first starts with the first registration, and another is started whenever a
// renewal is due while every thread is inside a renew call (a store call stalled until its
// command timeout), so one slow renew never delays another key's. All are joined by the
// destructor.

#include <idempotency/observer.hpp>
#include <idempotency/stop_token.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace idempotency::detail {

/// One registered lease. `renew` returns false when the claim is lost; throws on a store fault.
struct LeaseEntry {
  std::function<bool()> renew;
  std::chrono::milliseconds interval{};
  std::string key{};
  Observer* observer = nullptr;
  idempotency::stop_source stop{};
  std::atomic<bool> lost{false};
  // guarded by the renewer's mutex
  std::chrono::steady_clock::time_point due{};
  std::chrono::steady_clock::time_point last_renewed{};
  bool active = true;
  bool running = false; // a thread is inside renew() for it
};

/// (A template only so that its members are compiled where they are used.)
template <class Unused = void>
class BasicLeaseRenewer {
 public:
  BasicLeaseRenewer() = default;
  BasicLeaseRenewer(const BasicLeaseRenewer&) = delete;
  BasicLeaseRenewer& operator=(const BasicLeaseRenewer&) = delete;

  ~BasicLeaseRenewer() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
      threads.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : threads) t.join();
  }

  /// The most threads renewing at once (so the most renew calls that may stall together
  /// before a due renewal waits).
  static constexpr std::size_t max_threads = 16;

  /// Registers a lease claimed at `claimed_at`; the first renewal is due one interval later.
  std::shared_ptr<LeaseEntry> add(std::function<bool()> renew, std::chrono::milliseconds interval,
                                  std::string key, Observer* observer,
                                  std::chrono::steady_clock::time_point claimed_at) {
    auto e = std::make_shared<LeaseEntry>();
    e->renew = std::move(renew);
    e->interval = std::max(interval, std::chrono::milliseconds(1));
    e->key = std::move(key);
    e->observer = observer;
    e->due = claimed_at + e->interval;
    e->last_renewed = claimed_at;
    {
      std::lock_guard lock(mutex_);
      entries_.push_back(e);
      if (threads_.empty()) threads_.emplace_back([this] { run(); });
    }
    cv_.notify_all();
    return e;
  }

  /// Unregisters `e` and waits for a renewal of it in progress, so that no renewal runs (or
  /// reports) after this returns. Returns when the lease was last known to be extended.
  std::chrono::steady_clock::time_point remove(const std::shared_ptr<LeaseEntry>& e) {
    std::unique_lock lock(mutex_);
    e->active = false;
    entries_.erase(std::remove(entries_.begin(), entries_.end(), e), entries_.end());
    cv_.wait(lock, [&] { return !e->running; });
    return e->last_renewed;
  }

 private:
  // Every thread runs this: wait for the earliest due lease nobody is renewing, renew it.
  void run() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      std::shared_ptr<LeaseEntry> next;
      for (const auto& e : entries_)
        if (!e->running && (!next || e->due < next->due)) next = e;
      if (!next) {
        cv_.wait(lock);
        continue;
      }
      if (std::chrono::steady_clock::now() < next->due) {
        cv_.wait_until(lock, next->due);
        continue; // re-pick: entries may have come or gone
      }
      next->running = true;
      // keep one thread free to watch the clock while this one may stall in the store
      if (++busy_ == threads_.size() && threads_.size() < max_threads) {
        try {
          threads_.emplace_back([this] { run(); });
        } catch (...) { // no thread to be had: the ones there are go on
        }
      }
      lock.unlock();
      enum class Result { renewed, lost, error } result = Result::error;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        result = next->renew() ? Result::renewed : Result::lost;
      } catch (...) { // a store fault: try again sooner, the lease may still hold
      }
      const auto t1 = std::chrono::steady_clock::now();
      lock.lock();
      const bool active = next->active;
      if (active) {
        switch (result) {
          case Result::renewed:
            next->last_renewed = t0;
            next->due = t1 + next->interval;
            break;
          case Result::lost:
            next->lost.store(true, std::memory_order_release);
            entries_.erase(std::remove(entries_.begin(), entries_.end(), next), entries_.end());
            break;
          case Result::error:
            next->due = t1 + std::max(next->interval / 4, std::chrono::milliseconds(1));
            break;
        }
      }
      lock.unlock();
      if (active) {
        if (result == Result::lost) next->stop.request_stop();
        if (next->observer != nullptr) {
          const Event ev = result == Result::renewed ? Event::lease_renewed
                           : result == Result::lost  ? Event::lease_lost
                                                     : Event::store_error;
          notify_elapsed(*next->observer, ev, next->key, t1 - t0);
        }
      }
      lock.lock();
      next->running = false;
      --busy_;
      cv_.notify_all();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::shared_ptr<LeaseEntry>> entries_;
  std::size_t busy_ = 0; // threads inside a renewal
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

using LeaseRenewer = BasicLeaseRenewer<>;

} // namespace idempotency::detail
