// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/options.hpp>

#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/stores/in_memory_store.hpp>

#include "support/catch.hpp"

#include <atomic>
#include <chrono>
#include <limits>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace idempotency;
using Ms = std::chrono::milliseconds;

namespace {
bool rejected(const Options& o) {
  InMemoryStore store;
  try {
    IdempotencyExecutor exec{store, o};
  } catch (const InvalidOptionsError& e) {
    CHECK(e.code() == errc::invalid_options);
    return true;
  }
  return false;
}
} // namespace

TEST_CASE("options that would run an operation twice are refused when the executor is built",
          "[options]") {
  const Ms forever = Ms::max();
  CHECK(rejected({.lease = 0ms}));
  CHECK(rejected({.lease = -5ms}));
  CHECK(rejected({.lease = forever}));
  CHECK(rejected({.result_ttl = 0ms}));
  CHECK(rejected({.result_ttl = -1ms}));
  CHECK(rejected({.result_ttl = forever}));
  CHECK(rejected({.wait_deadline = 0ms}));
  CHECK(rejected({.wait_deadline = forever}));
  CHECK(rejected({.max_payload = 0}));
  CHECK(rejected({.completion_retry = {.max_attempts = 0}}));
  CHECK(rejected({.completion_retry = {.initial_backoff = -1ms}}));
  CHECK(rejected({.completion_retry = {.max_backoff = forever}}));
  CHECK_FALSE(rejected({}));
  CHECK_FALSE(rejected({.result_ttl = max_option_duration, .lease = max_option_duration}));
  CHECK_FALSE(rejected({.result_ttl = 1ms, .lease = 1ms}));
}

TEST_CASE("the message names the option and the rule", "[options]") {
  InMemoryStore store;
  try {
    IdempotencyExecutor exec{store, {.lease = 0ms}};
    FAIL("accepted");
  } catch (const InvalidOptionsError& e) {
    const std::string what = e.what();
    CHECK(what.rfind("[idempotency.invalid_options] ", 0) == 0);
    CHECK(what.find("lease") != std::string::npos);
  }
}

TEST_CASE("a zero lease no longer lets 8 concurrent callers all run", "[options]") {
  // the reproduction: before validation, .lease = 0ms let every caller take the key over
  InMemoryStore store;
  CHECK_THROWS_AS((IdempotencyExecutor{store, {.lease = 0ms}}), InvalidOptionsError);
}

TEST_CASE("the longest allowed durations work in the in-memory store (no overflow)", "[options]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store,
                           {.result_ttl = max_option_duration,
                            .lease = max_option_duration,
                            .wait_deadline = max_option_duration}};
  std::atomic<int> runs{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      try {
        (void)exec.execute("k", [&] {
          runs.fetch_add(1);
          return 1;
        });
      } catch (const InProgressError&) {
      }
    });
  for (auto& t : threads) t.join();
  CHECK(runs.load() == 1);
  CHECK(exec.execute("k", [&] { return 2; }) == 1); // replayed, not run again
  // the store saturates when called directly with "forever"
  const auto c = store.claim("direct", "", Ms::max());
  REQUIRE(c.acquired());
  CHECK(store.claim("direct", "", 1s).status == ClaimStatus::in_progress);
  CHECK(store.complete("direct", c.token, "v", Ms::max()));
  CHECK(store.claim("direct", "", 1s).status == ClaimStatus::completed);
}
