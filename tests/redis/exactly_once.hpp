// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The exactly-once workload shared by test_redis_store and redis_exactly_once_worker: threads
// run "operations" on the same keys through the store's claim / complete (a claimant that
// acquired runs the operation and completes; the others poll until the result is recorded).
// Threads record events; whoever asserts does so after join.
#include <idempotency/stores/redis_store.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace idempotency_test {

/// One call of the operation for `key`: `executed` if this call ran it, `value` the result
/// every caller got back.
struct Event {
  std::size_t key = 0;
  bool executed = false;
  std::string value{};
};

inline std::string workload_key(const std::string& prefix, std::size_t i) {
  return prefix + "/key-" + std::to_string(i);
}

/// Runs `threads` threads over keys 0..keys-1 (all in the same order, to collide), starting
/// at `start` (system_clock, so two processes can start together). Returns every event;
/// exceptions are appended to `errors`.
inline std::vector<Event> run_exactly_once(idempotency::RedisStore& store,
                                           const std::string& prefix, std::size_t keys, int threads,
                                           std::chrono::system_clock::time_point start,
                                           std::vector<std::string>& errors) {
  using namespace std::chrono_literals;
  std::mutex mutex;
  std::vector<Event> all;
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      std::vector<Event> mine;
      std::vector<std::string> my_errors;
      std::this_thread::sleep_until(start);
      for (std::size_t i = 0; i < keys; ++i) {
        const std::string k = workload_key(prefix, i);
        try {
          for (int attempt = 0;; ++attempt) {
            const idempotency::ClaimResult r = store.claim(k, "fp", 20s);
            if (r.acquired()) {
              // the "operation": its result names the execution, so a second run would show
              const std::string value = "result of " + k + " by " + r.token.to_hex();
              mine.push_back({i, true, value});
              if (!store.complete(k, r.token, value, 120s)) {
                my_errors.push_back("complete returned false for " + k);
              }
              break;
            }
            if (r.status == idempotency::ClaimStatus::completed) {
              mine.push_back({i, false, r.payload});
              break;
            }
            if (r.status == idempotency::ClaimStatus::failed) {
              my_errors.push_back("unexpected failed record for " + k);
              break;
            }
            if (attempt > 200000) {
              my_errors.push_back("gave up waiting for " + k);
              break;
            }
            std::this_thread::sleep_for(200us);
          }
        } catch (const std::exception& e) {
          my_errors.emplace_back(e.what());
        }
      }
      std::lock_guard lock(mutex);
      all.insert(all.end(), mine.begin(), mine.end());
      errors.insert(errors.end(), my_errors.begin(), my_errors.end());
    });
  }
  for (auto& th : pool) th.join();
  return all;
}

} // namespace idempotency_test
