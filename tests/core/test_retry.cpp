// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/retry.hpp>

#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/stores/in_memory_store.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"
#include "support/counting_store.hpp"

#include <chrono>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
using namespace idempotency;
using idempotency::testing::ManualClock;

namespace {
StoreError store_down() { return StoreError("TestStore", "claim", "connection refused"); }

// A policy whose pauses advance a manual clock instead of sleeping, and are recorded.
struct FakeTime {
  ManualClock clock;
  std::vector<std::chrono::milliseconds> pauses;
  RetryPolicy policy(RetryPolicy p = {}) {
    p.sleep = [this](std::chrono::milliseconds d) {
      pauses.push_back(d);
      clock.advance(d);
    };
    p.clock = clock.source();
    return p;
  }
};
} // namespace

TEST_CASE("retry: store errors are retried with capped exponential full-jitter pauses", "[retry]") {
  for (int round = 0; round < 50; ++round) { // jitter is random: check the bounds many times
    FakeTime t;
    int calls = 0;
    const int v = retry(
        t.policy(
            {.max_attempts = 6, .initial_backoff = 100ms, .max_backoff = 400ms, .deadline = 1h}),
        [&] {
          if (++calls < 6) throw store_down();
          return 5;
        });
    REQUIRE(v == 5);
    REQUIRE(calls == 6);
    REQUIRE(t.pauses.size() == 5);
    const std::chrono::milliseconds caps[] = {100ms, 200ms, 400ms, 400ms, 400ms};
    for (std::size_t i = 0; i < 5; ++i) {
      REQUIRE(t.pauses[i] >= 0ms);
      REQUIRE(t.pauses[i] <= caps[i]);
    }
  }
}

TEST_CASE("retry: after max_attempts the last error is rethrown", "[retry]") {
  FakeTime t;
  int calls = 0;
  CHECK_THROWS_AS(retry(t.policy({.max_attempts = 3}),
                        [&]() -> int {
                          ++calls;
                          throw store_down();
                        }),
                  StoreError);
  CHECK(calls == 3);
  CHECK(t.pauses.size() == 2);
}

TEST_CASE("retry: errors that are not safe to retry are thrown at once", "[retry]") {
  FakeTime t;
  int calls = 0;
  auto once = [&](auto make) {
    calls = 0;
    try {
      (void)retry(t.policy(), [&]() -> int {
        ++calls;
        throw make();
      });
    } catch (...) {
    }
    return calls;
  };
  CHECK(once([] { return ResultNotRecordedError("ran, not stored", "1"); }) == 1);
  CHECK(once([] { return FingerprintMismatchError("other request"); }) == 1);
  CHECK(once([] { return LeaseLostError("taken over"); }) == 1);
  CHECK(once([] { return ReplayedFailureError("Declined", "no"); }) == 1);
  CHECK(once([] { return std::runtime_error("app error"); }) == 1);
  CHECK(once([] { return InProgressError("busy", 0ms); }) == 5);
  CHECK(once([] { return CapacityExceededError("S", "claim", "full"); }) == 5);
  CHECK(t.pauses.size() == 8);
}

TEST_CASE("retry: InProgressError::retry_after is a floor on the pause, capped", "[retry]") {
  FakeTime t;
  int calls = 0;
  auto busy_then_ok = [&](std::chrono::milliseconds after) {
    calls = 0;
    return [&calls, after] {
      if (++calls == 1) throw InProgressError("busy", after);
      return 1;
    };
  };
  const RetryPolicy p{.initial_backoff = 10ms, .max_retry_after = 1s};
  CHECK(retry(t.policy(p), busy_then_ok(300ms)) == 1);
  CHECK(retry(t.policy(p), busy_then_ok(20s)) == 1);
  REQUIRE(t.pauses.size() == 2);
  CHECK(t.pauses[0] == 300ms); // jitter <= 10 ms, the floor wins
  CHECK(t.pauses[1] == 1s);    // capped
}

TEST_CASE("retry: by default a rejected caller polls again within 200 ms, not the whole lease",
          "[retry]") {
  FakeTime t;
  int calls = 0;
  // the holder's lease has 60 s left; before, every loser paused 5 s (the cap)
  CHECK(retry(t.policy({}), [&] {
          if (++calls == 1) throw InProgressError("busy", 60s);
          return 1;
        }) == 1);
  REQUIRE(t.pauses.size() == 1);
  CHECK(t.pauses[0] == 200ms);
}

TEST_CASE("retry: no pause is started past the overall deadline", "[retry]") {
  FakeTime t;
  int calls = 0;
  CHECK_THROWS_AS(retry(t.policy({.max_attempts = 100,
                                  .initial_backoff = 1ms,
                                  .deadline = 1s,
                                  .max_retry_after = 10s}),
                        [&]() -> int {
                          ++calls;
                          throw InProgressError("busy", 400ms);
                        }),
                  InProgressError);
  CHECK(calls == 3); // pauses end at 400 ms and 800 ms; a third would end at 1.2 s
  CHECK(t.pauses.size() == 2);
}

TEST_CASE("retry: a custom predicate and on_retry", "[retry]") {
  FakeTime t;
  int calls = 0;
  std::vector<int> seen;
  RetryPolicy p{.retryable =
                    [](const std::exception& e) {
                      return dynamic_cast<const std::logic_error*>(&e) != nullptr;
                    },
                .on_retry = [&](int attempt, std::chrono::milliseconds,
                                const std::exception&) { seen.push_back(attempt); }};
  CHECK(retry(t.policy(p), [&] {
          if (++calls < 3) throw std::logic_error("again");
          return 3;
        }) == 3);
  CHECK(seen == std::vector<int>{1, 2});
}

TEST_CASE("retry around execute: many attempts, one execution", "[retry][executor]") {
  InMemoryStore inner;
  test::CountingStore store{inner};
  IdempotencyExecutor exec{store};
  FakeTime t;
  store.down = true; // the store is unreachable for the first two attempts
  int charges = 0;
  RetryPolicy p{.on_retry = [&](int attempt, std::chrono::milliseconds, const std::exception&) {
    if (attempt == 2) store.down = false;
  }};
  auto call = [&] { return exec.execute("order-7", [&] { return ++charges; }); };
  CHECK(retry(t.policy(p), call) == 1);
  CHECK(store.claims.load() == 3);
  CHECK(retry(t.policy(p), call) == 1); // the client retried once more: replayed
  CHECK(charges == 1);
}
