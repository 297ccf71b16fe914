// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// The two-phase form and the executor's edges: results that cannot be encoded, stored numbers
// that do not fit, a store that breaks its contract, a release that fails after the
// operation threw, a guard used twice.
#include <idempotency/attempt.hpp>

#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/observer.hpp>
#include <idempotency/stores/in_memory_store.hpp>
#include <idempotency/testing/fault_injecting_store.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"
#include "support/counting_store.hpp"

#include <chrono>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace idempotency;
using idempotency::testing::ManualClock;

namespace {
struct Throwing {
  int v = 0;
};
[[maybe_unused]] void to_json(nlohmann::json&, const Throwing&) {
  throw std::runtime_error("to_json refuses");
}
[[maybe_unused]] void from_json(const nlohmann::json& j, Throwing& t) { t.v = j.get<int>(); }

// A store whose claim lies in the ways a broken store can.
struct LyingStore {
  bool empty_token = false;
  std::chrono::milliseconds remaining{0};
  [[nodiscard]] std::string_view name() const noexcept { return "LyingStore"; }
  ClaimResult claim(std::string_view, std::string_view, std::chrono::milliseconds) {
    ClaimResult r;
    if (empty_token) return r; // acquired, no token
    r.status = ClaimStatus::in_progress;
    r.remaining = remaining;
    return r;
  }
  bool complete(std::string_view, const Token&, std::string_view, std::chrono::milliseconds) {
    return false;
  }
  bool fail(std::string_view, const Token&, std::string_view, std::chrono::milliseconds) {
    return false;
  }
  bool release(std::string_view, const Token&) { return false; }
  bool renew(std::string_view, const Token&, std::chrono::milliseconds) { return false; }
};
} // namespace

TEST_CASE("a result that cannot be encoded after the operation ran keeps the claim",
          "[attempt][unencodable]") {
  ManualClock clock;
  InMemoryStore store{{.clock = clock.source()}};
  IdempotencyExecutor exec{store, {.lease = 10s}};
  int runs = 0;
  const auto check = [&](const std::string& key, auto op) {
    runs = 0;
    CHECK_THROWS_AS(exec.execute(key, op), ResultNotRecordedError);
    CHECK(runs == 1);
    // before: NaN was stored as null (retries got CorruptRecordError), a throwing to_json or
    // invalid UTF-8 released the claim and every retry ran the side effect again
    CHECK_THROWS_AS(exec.execute(key, op), InProgressError);
    CHECK(runs == 1);
    CHECK(store.claim(key, "", 1s).status == ClaimStatus::in_progress);
  };
  check("nan", [&] {
    ++runs;
    return std::numeric_limits<double>::quiet_NaN();
  });
  check("inf-inside", [&] {
    ++runs;
    return std::vector<double>{1.0, -std::numeric_limits<double>::infinity()};
  });
  check("bad-utf8", [&] {
    ++runs;
    return std::string("caf\xc3");
  });
  check("to-json-throws", [&] {
    ++runs;
    return Throwing{1};
  });
  // after the lease the key is free again (the operation may run again: documented)
  clock.advance(11s);
  CHECK(exec.execute("nan", [] { return 1.5; }) == 1.5);
}

TEST_CASE("commit of an unencodable value: typed, the guard lets go without releasing",
          "[attempt][unencodable]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  {
    auto a = exec.begin<double>("k");
    REQUIRE_FALSE(a.replayed());
    CHECK_THROWS_AS(a.guard().commit(std::numeric_limits<double>::infinity()),
                    ResultNotRecordedError);
    CHECK_FALSE(a.guard().holding());
  }
  CHECK(store.claim("k", "", 1s).status == ClaimStatus::in_progress);
}

TEST_CASE("a stored number that does not fit the result type is CorruptRecordError",
          "[attempt][decode]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  const auto put = [&](const std::string& key, const std::string& payload) {
    const auto c = store.claim(key, "", 1s);
    REQUIRE(c.acquired());
    REQUIRE(store.complete(key, c.token, payload, 1h));
  };
  put("big", "4294967297");
  put("neg", "-1");
  put("huge", "4.4e21");
  int runs = 0;
  CHECK_THROWS_AS(exec.execute("big", [&] { return ++runs; }), CorruptRecordError);
  CHECK_THROWS_AS(exec.execute("neg", [&] { return static_cast<unsigned>(++runs); }),
                  CorruptRecordError);
  CHECK_THROWS_AS(exec.execute("huge", [&] { return static_cast<long>(++runs); }),
                  CorruptRecordError);
  CHECK(runs == 0);
}

TEST_CASE("std::optional results work out of the box", "[attempt]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  CHECK(exec.execute("none", [] { return std::optional<int>{}; }) == std::nullopt);
  const auto o = exec.execute_outcome("none", [] { return std::optional<int>{3}; });
  CHECK(o.replayed);
  CHECK(o.value == std::nullopt);
  CHECK(exec.execute("some", [] { return std::optional<int>{3}; }) == 3);
  CHECK(exec.execute("some", [] { return std::optional<int>{4}; }) == 3);
}

TEST_CASE("a store that answers acquired without a token: StoreError, nothing run",
          "[attempt][store-contract]") {
  LyingStore store{.empty_token = true};
  IdempotencyExecutor exec{store};
  int runs = 0;
  CHECK_THROWS_AS(exec.execute("k", [&] { return ++runs; }), StoreError);
  CHECK(runs == 0);
}

TEST_CASE("a negative remaining lease is clamped: retry_after is never negative",
          "[attempt][store-contract]") {
  LyingStore store{.remaining = -5000ms};
  IdempotencyExecutor exec{store};
  try {
    (void)exec.execute("k", [] { return 1; });
    FAIL("ran");
  } catch (const InProgressError& e) {
    CHECK(e.retry_after() >= 0ms);
  }
}

TEST_CASE("the operation threw and the release failed: StoreError with the exception nested",
          "[attempt][release-fails]") {
  InMemoryStore inner;
  test::CountingStore store{inner};
  CountersObserver counters;
  IdempotencyExecutor exec{store, {.observer = &counters}};
  try {
    (void)exec.execute("k", [&]() -> int {
      store.down = true; // the store goes away while the operation runs
      throw std::runtime_error("card declined");
    });
    FAIL("no exception");
  } catch (const StoreError& e) {
    CHECK(e.operation() == "release");
    CHECK(std::string(e.what()).find("nested") != std::string::npos);
    try {
      std::rethrow_if_nested(e);
      FAIL("nothing nested");
    } catch (const std::runtime_error& original) {
      CHECK(std::string(original.what()) == "card declined");
    }
  }
  CHECK(counters.count(Event::store_error) >= 1);
  store.down = false;
}

TEST_CASE("a guard committed twice says so", "[attempt]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  auto a = exec.begin<int>("k");
  REQUIRE_FALSE(a.replayed());
  a.guard().commit(1);
  try {
    a.guard().commit(2);
    FAIL("committed twice");
  } catch (const LeaseLostError& e) {
    CHECK(std::string(e.what()).find("already committed") != std::string::npos);
  }
  CHECK(exec.execute("k", [] { return 3; }) == 1);
}

TEST_CASE("a classify_result that throws after the operation ran keeps the claim",
          "[attempt][unencodable]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.classify_result = [](const nlohmann::json& j) {
                             return j.at("status").get<int>() >= 500 ? OnResult::release
                                                                     : OnResult::record;
                           }}};
  int runs = 0;
  const auto op = [&] {
    ++runs;
    return 7; // no "status": the classifier throws nlohmann's out_of_range
  };
  try {
    (void)exec.execute("k", op);
    FAIL("no exception");
  } catch (const ResultNotRecordedError& e) {
    CHECK(e.has_value());
    CHECK(unrecorded_value<int>(e) == 7);
  }
  CHECK_THROWS_AS(exec.execute("k", op), InProgressError); // before: released, ran again
  CHECK(runs == 1);
}

namespace {
// complete throws something that is not a StoreError (a user store's own bug, bad_alloc)
struct ThrowingCompleteStore {
  InMemoryStore inner;
  [[nodiscard]] std::string_view name() const noexcept { return "ThrowingCompleteStore"; }
  ClaimResult claim(std::string_view k, std::string_view fp, std::chrono::milliseconds d) {
    return inner.claim(k, fp, d);
  }
  bool complete(std::string_view, const Token&, std::string_view, std::chrono::milliseconds) {
    throw std::logic_error("complete exploded");
  }
  bool fail(std::string_view k, const Token& t, std::string_view p, std::chrono::milliseconds d) {
    return inner.fail(k, t, p, d);
  }
  bool release(std::string_view k, const Token& t) { return inner.release(k, t); }
  bool renew(std::string_view k, const Token& t, std::chrono::milliseconds d) {
    return inner.renew(k, t, d);
  }
};
} // namespace

TEST_CASE("a complete that throws anything has an unknown outcome: the claim is kept",
          "[attempt]") {
  ThrowingCompleteStore store;
  IdempotencyExecutor exec{store};
  int runs = 0;
  CHECK_THROWS_AS(exec.execute("k", [&] { return ++runs; }), ResultNotRecordedError);
  CHECK_THROWS_AS(exec.execute("k", [&] { return ++runs; }), InProgressError);
  CHECK(runs == 1); // before: the guard released the key and the retry ran again
}

TEST_CASE("wait: a guard committed on another thread is waited for, not called re-entrant",
          "[attempt][wait]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.in_progress = InProgressPolicy::wait, .wait_deadline = 10s}};
  auto a = exec.begin<int>("k"); // begun here, finished by a worker (an async framework)
  REQUIRE_FALSE(a.replayed());
  std::thread worker([&] {
    std::this_thread::sleep_for(100ms);
    a.guard().commit(5);
  });
  int got = 0;
  try {
    got = exec.execute("k", [] { return 1; });
  } catch (const InProgressError&) {
  }
  worker.join();
  CHECK(got == 5);
}

// Found by the simulation (seed 100611): complete lands, its reply is lost, the result's TTL
// passes and another caller claims the key; the resend is refused. The first write may have
// been the recorded result (other callers were replayed it): "lease lost" would be a lie.
TEST_CASE("a resend refused after a lost reply is 'not recorded' (in doubt), never 'lease lost'",
          "[attempt]") {
  idempotency::testing::SimClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  bool reply_lost = false;
  idempotency::testing::FaultOptions fo;
  fo.hook = [&](idempotency::testing::StoreOp op, std::string_view key, bool after) {
    if (op != idempotency::testing::StoreOp::complete || !after || reply_lost) return;
    reply_lost = true;
    clock.advance(2h);                                   // the recorded result expires...
    REQUIRE(inner.claim(key, "other", 1min).acquired()); // ...and another caller claims
    throw StoreError("test", "complete", "the reply was lost");
  };
  idempotency::testing::FaultInjectingStore store(inner, fo);
  IdempotencyExecutor exec(
      store, {.result_ttl = 1h,
              .lease = 1min,
              .completion_retry = {.max_attempts = 2, .initial_backoff = 0ms, .max_backoff = 0ms}});
  bool not_recorded = false;
  try {
    (void)exec.execute("k", [] { return 7; });
  } catch (const ResultNotRecordedError& e) {
    not_recorded = true;
    REQUIRE(e.has_value());
    CHECK(unrecorded_value<int>(e) == 7);
  } catch (const LeaseLostError& e) {
    FAIL("told 'lease lost' for a result that was recorded: " << e.what());
  }
  CHECK(reply_lost);
  CHECK(not_recorded);
}

TEST_CASE("a first complete refused outright is still 'lease lost'", "[attempt]") {
  ManualClock clock;
  InMemoryStore store{{.clock = clock.source()}};
  IdempotencyExecutor exec(store, {.result_ttl = 1h, .lease = 1min});
  CHECK_THROWS_AS(exec.execute("k",
                               [&] {
                                 clock.advance(2min); // the lease passes; another caller takes over
                                 REQUIRE(store.claim(exec.storage_key("k"), "x", 1min).acquired());
                                 return 7;
                               }),
                  LeaseLostError);
}
