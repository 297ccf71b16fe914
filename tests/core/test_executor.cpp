// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>

#include <idempotency/stores/in_memory_store.hpp>
#include <idempotency/testing/fault_injecting_store.hpp>
#include <idempotency/testing/history_checker.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"
#include "support/counting_store.hpp"

#include <algorithm>
#include <atomic>
#include <memory>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace idempotency;
using idempotency::testing::ManualClock;

namespace shop {
struct Receipt {
  std::string id;
  long amount_cents = 0;
  bool operator==(const Receipt&) const = default;
};
inline void to_json(nlohmann::json& j, const Receipt& r) {
  j = {{"id", r.id}, {"amount_cents", r.amount_cents}};
}
inline void from_json(const nlohmann::json& j, Receipt& r) {
  j.at("id").get_to(r.id);
  j.at("amount_cents").get_to(r.amount_cents);
}

// move-only result
struct Ticket {
  std::unique_ptr<int> number;
  Ticket() = default;
  explicit Ticket(int n) : number(std::make_unique<int>(n)) {}
  Ticket(Ticket&&) = default;
  Ticket& operator=(Ticket&&) = default;
};
inline void to_json(nlohmann::json& j, const Ticket& t) { j = *t.number; }
inline void from_json(const nlohmann::json& j, Ticket& t) {
  t.number = std::make_unique<int>(j.get<int>());
}

struct Declined : std::runtime_error {
  using std::runtime_error::runtime_error;
};
} // namespace shop

TEST_CASE("the first call runs, every retry replays the same result", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.result_ttl = 1h, .lease = 60s}};
  int runs = 0;
  auto charge = [&] {
    ++runs;
    return shop::Receipt{"r-" + std::to_string(runs), 1250};
  };
  const shop::Receipt first = exec.execute("order-1", charge);
  const shop::Receipt again = exec.execute("order-1", charge);
  CHECK(runs == 1);
  CHECK(first == again);
  CHECK(first.id == "r-1");
  const shop::Receipt other = exec.execute("order-2", charge);
  CHECK(runs == 2);
  CHECK(other.id == "r-2");
}

TEST_CASE("execute_outcome says whether the value was replayed", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  const auto a = exec.execute_outcome("k", [] { return 7; });
  const auto b = exec.execute_outcome("k", [] { return 8; });
  CHECK_FALSE(a.replayed);
  CHECK(b.replayed);
  CHECK(a.value == 7);
  CHECK(b.value == 7);
}

TEST_CASE("arguments are forwarded to the callable", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  auto add = [](int x, const std::string& s) { return s + std::to_string(x); };
  CHECK(exec.execute("args", add, 5, std::string("n=")) == "n=5");
  CHECK(exec.execute("args", add, 6, std::string("ignored")) == "n=5");
}

TEST_CASE("void and move-only results", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  int sends = 0;
  exec.execute("email-1", [&] { ++sends; });
  exec.execute("email-1", [&] { ++sends; });
  CHECK(sends == 1);
  const auto o = exec.execute_outcome("email-1", [&] { ++sends; });
  CHECK(o.replayed);
  CHECK(sends == 1);

  shop::Ticket t1 = exec.execute("ticket", [] { return shop::Ticket(42); });
  shop::Ticket t2 = exec.execute("ticket", [] { return shop::Ticket(43); });
  REQUIRE(t1.number);
  REQUIRE(t2.number);
  CHECK(*t1.number == 42);
  CHECK(*t2.number == 42);
}

TEST_CASE("invalid keys are typed errors before any store call", "[executor]") {
  InMemoryStore inner;
  test::CountingStore store{inner};
  IdempotencyExecutor exec{store};
  int runs = 0;
  auto op = [&] { return ++runs; };
  CHECK_THROWS_AS(exec.execute("", op), InvalidKeyError);
  CHECK_THROWS_AS(exec.execute(std::string(256, 'k'), op), InvalidKeyError);
  CHECK_THROWS_AS(exec.execute("with space", op), InvalidKeyError);
  CHECK_THROWS_AS(exec.execute("ctl\x01", op), InvalidKeyError);
  CHECK_THROWS_AS(exec.execute("line\nbreak", op), InvalidKeyError);
  CHECK(runs == 0);
  CHECK(store.claims.load() == 0);
  CHECK(exec.execute(std::string(255, 'k'), op) == 1);
}

TEST_CASE("a result over the payload limit is an error and stored nowhere", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.max_payload = 1024}};
  int runs = 0;
  auto big = [&] {
    ++runs;
    return std::string(2000, 'x');
  };
  CHECK_THROWS_AS(exec.execute("big", big), PayloadTooLargeError);
  CHECK(store.size() == 0); // released: nothing stored
  // the key is free again: a smaller result is recorded
  CHECK(exec.execute("big", [] { return std::string("small"); }) == "small");
  // the default limit is 1 MiB
  IdempotencyExecutor def{store};
  CHECK(def.options().max_payload == (std::size_t{1} << 20));
  CHECK_THROWS_AS(def.execute("huge", [] { return std::string(1 << 20, 'x'); }),
                  PayloadTooLargeError);
}

TEST_CASE("an exception releases the key by default: the retry runs again", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  int runs = 0;
  auto flaky = [&] {
    if (++runs == 1) throw std::runtime_error("network blip");
    return 99;
  };
  CHECK_THROWS_AS(exec.execute("flaky", flaky), std::runtime_error);
  CHECK(exec.execute("flaky", flaky) == 99);
  CHECK(runs == 2);
  CHECK(exec.execute("flaky", flaky) == 99);
  CHECK(runs == 2);
}

TEST_CASE("remember: the failure is stored and replayed as a typed error", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.on_exception = OnException::remember}};
  int runs = 0;
  auto decline = [&]() -> int {
    ++runs;
    throw shop::Declined("card declined");
  };
  CHECK_THROWS_AS(exec.execute("pay", decline), shop::Declined); // the original, first time
  try {
    exec.execute("pay", decline);
    FAIL("expected a replayed failure");
  } catch (const ReplayedFailureError& e) {
    CHECK(e.kind() == "shop::Declined");
    CHECK(e.original_message() == "card declined");
  }
  CHECK(runs == 1);
}

TEST_CASE("a classifier chooses release or remember per exception", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.classify = [](const std::exception& e) {
                             return dynamic_cast<const shop::Declined*>(&e) ? OnException::remember
                                                                            : OnException::release;
                           }}};
  int runs = 0;
  auto transient = [&]() -> int {
    ++runs;
    throw std::runtime_error("timeout");
  };
  CHECK_THROWS_AS(exec.execute("a", transient), std::runtime_error);
  CHECK_THROWS_AS(exec.execute("a", transient), std::runtime_error);
  CHECK(runs == 2); // released both times
  auto permanent = [&]() -> int {
    ++runs;
    throw shop::Declined("no funds");
  };
  CHECK_THROWS_AS(exec.execute("b", permanent), shop::Declined);
  CHECK_THROWS_AS(exec.execute("b", permanent), ReplayedFailureError);
  CHECK(runs == 3);
}

TEST_CASE("a stale holder's completion is a lease-lost error, never an overwrite", "[executor]") {
  ManualClock clock;
  InMemoryStore store{{.clock = clock.source()}};
  IdempotencyExecutor exec{store, {.lease = 10s}};
  int runs = 0;
  auto attempt = exec.begin<int>("slow");
  REQUIRE_FALSE(attempt.replayed());
  ++runs; // the slow holder's operation ran ...
  clock.advance(11s);
  // ... and meanwhile the lease passed and a retry took the key over and finished
  const int fresh = exec.execute("slow", [&] { return ++runs * 100; });
  CHECK(fresh == 200);
  CHECK_THROWS_AS(attempt.guard().commit(100), LeaseLostError);
  CHECK(exec.execute("slow", [&] { return -1; }) == 200);
  CHECK(runs == 2);
}

TEST_CASE("a slow holder nobody took over still records its result", "[executor]") {
  ManualClock clock;
  InMemoryStore store{{.clock = clock.source()}};
  IdempotencyExecutor exec{store, {.lease = 10s}};
  const int v = exec.execute("slow-ok", [&] {
    clock.advance(30s);
    return 5;
  });
  CHECK(v == 5);
  CHECK(exec.execute_outcome("slow-ok", [] { return 6; }).replayed);
}

TEST_CASE("in progress: reject is a typed error carrying the remaining lease", "[executor]") {
  ManualClock clock;
  InMemoryStore store{{.clock = clock.source()}};
  IdempotencyExecutor exec{store, {.lease = 20s}};
  auto holder = exec.begin<int>("busy");
  REQUIRE_FALSE(holder.replayed());
  clock.advance(5s);
  try {
    (void)exec.execute("busy", [] { return 1; });
    FAIL("expected InProgressError");
  } catch (const InProgressError& e) {
    CHECK(e.retry_after() == 15s);
  }
  holder.guard().commit(3);
  CHECK(exec.execute("busy", [] { return 1; }) == 3);
}

TEST_CASE("in progress: wait returns the holder's result", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.in_progress = InProgressPolicy::wait, .wait_deadline = 30s}};
  auto holder = exec.begin<int>("w");
  REQUIRE_FALSE(holder.replayed());
  std::atomic<int> got{0};
  std::atomic<bool> replayed{false};
  std::thread waiter([&] {
    const auto o = exec.execute_outcome("w", [] { return -1; });
    got.store(o.value);
    replayed.store(o.replayed);
  });
  std::this_thread::sleep_for(20ms);
  holder.guard().commit(77);
  waiter.join();
  CHECK(got.load() == 77);
  CHECK(replayed.load());
}

TEST_CASE("in progress: wait gives up at the deadline with InProgressError", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.in_progress = InProgressPolicy::wait, .wait_deadline = 50ms}};
  auto holder = exec.begin<int>("w2");
  REQUIRE_FALSE(holder.replayed());
  CHECK_THROWS_AS(exec.execute("w2", [] { return 1; }), InProgressError);
}

TEST_CASE("same key, different request: a mismatch error, never a replay", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  const auto body1 = nlohmann::json{{"amount", 100}, {"currency", "EUR"}};
  const auto body1_reordered = nlohmann::json::parse(R"({"currency":"EUR","amount":100})");
  const auto body2 = nlohmann::json{{"amount", 999}, {"currency", "EUR"}};
  int runs = 0;
  auto op = [&] { return ++runs; };
  CHECK(exec.execute("pay-1", Fingerprint::of(body1), op) == 1);
  CHECK(exec.execute("pay-1", Fingerprint::of(body1_reordered), op) == 1);
  CHECK_THROWS_AS(exec.execute("pay-1", Fingerprint::of(body2), op), FingerprintMismatchError);
  CHECK_THROWS_AS(exec.execute("pay-1", op), FingerprintMismatchError); // none vs some
  CHECK_THROWS_AS(exec.execute("pay-1", Fingerprint::of_bytes("raw"), op),
                  FingerprintMismatchError);
  CHECK(runs == 1);
  // a mismatch while the first request is still in progress is a mismatch too
  auto holder = exec.begin<int>("pay-2", Fingerprint::of(body1));
  CHECK_THROWS_AS(exec.execute("pay-2", Fingerprint::of(body2), op), FingerprintMismatchError);
  CHECK_THROWS_AS(exec.execute("pay-2", Fingerprint::of(body1), op), InProgressError);
}

TEST_CASE("two-phase: a guard destroyed uncommitted releases the key", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  {
    auto a = exec.begin<std::string>("tp");
    REQUIRE_FALSE(a.replayed());
    CHECK(a.guard().holding());
  } // abandoned
  auto b = exec.begin<std::string>("tp");
  REQUIRE_FALSE(b.replayed());
  b.guard().commit(std::string("done"));
  CHECK_FALSE(b.guard().holding());
  auto c = exec.begin<std::string>("tp");
  REQUIRE(c.replayed());
  CHECK(c.value() == "done");
  // renew and release through the guard
  auto d = exec.begin<int>("tp-2");
  CHECK(d.guard().renew());
  CHECK(d.guard().release());
  CHECK_FALSE(d.guard().release());
  CHECK_THROWS_AS(d.guard().commit(1), LeaseLostError);
}

TEST_CASE("scopes keep tenants' keys apart", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor acme{store, {.scope = {"acme", "charge", "v1"}}};
  IdempotencyExecutor globex{store, {.scope = {"globex", "charge", "v1"}}};
  CHECK(acme.execute("order-1", [] { return 1; }) == 1);
  CHECK(globex.execute("order-1", [] { return 2; }) == 2);
  CHECK(acme.execute("order-1", [] { return 3; }) == 1);
  CHECK(acme.storage_key("order-1") ==
        "\x1e"
        "acme\x1f"
        "charge\x1f"
        "v1\x1f"
        "order-1");
  CHECK_THROWS_AS((IdempotencyExecutor{store, {.scope = {"a b", "", ""}}}), InvalidKeyError);
}

TEST_CASE("a corrupt stored record is a typed error and is not overwritten", "[executor]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  const auto c = store.claim("bad", "", 60s);
  REQUIRE(store.complete("bad", c.token, "{not json", 1h));
  int runs = 0;
  CHECK_THROWS_AS(exec.execute("bad", [&] { return ++runs; }), CorruptRecordError);
  const auto c2 = store.claim("wrong-type", "", 60s);
  REQUIRE(store.complete("wrong-type", c2.token, R"({"id": 5})", 1h));
  CHECK_THROWS_AS(exec.execute("wrong-type", [] { return shop::Receipt{}; }), CorruptRecordError);
  const auto c3 = store.claim("bad-failure", "", 60s);
  REQUIRE(store.fail("bad-failure", c3.token, "garbage", 1h));
  CHECK_THROWS_AS(exec.execute("bad-failure", [&] { return ++runs; }), CorruptRecordError);
  CHECK(runs == 0);
  CHECK(store.claim("bad", "", 60s).payload == "{not json");
}

TEST_CASE("a store that is down gives a typed store error and runs nothing", "[executor]") {
  InMemoryStore inner;
  test::CountingStore store{inner};
  IdempotencyExecutor exec{store};
  store.down = true;
  int runs = 0;
  try {
    (void)exec.execute("k", [&] { return ++runs; });
    FAIL("expected StoreError");
  } catch (const StoreError& e) {
    CHECK(e.store() == "CountingStore");
    CHECK(e.operation() == "claim");
  }
  CHECK(runs == 0);
  store.down = false;
  CHECK(exec.execute("k", [&] { return ++runs; }) == 1);
}

TEST_CASE(
    "the store going down at completion: a typed error, the value never replayed as "
    "recorded",
    "[executor]") {
  InMemoryStore inner;
  test::CountingStore store{inner};
  IdempotencyExecutor exec{store,
                           {.completion_retry = {.max_attempts = 3, .initial_backoff = 1ms}}};
  int runs = 0;
  // completion is retried, then the typed error carries the value (see test_policies.cpp)
  CHECK_THROWS_AS(exec.execute("k",
                               [&] {
                                 store.down = true;
                                 return ++runs;
                               }),
                  ResultNotRecordedError);
  CHECK(store.completes.load() == 3);
  store.down = false;
  // nothing was recorded and the claim was left in place, so the key stays in progress until
  // its lease passes
  CHECK_THROWS_AS(exec.execute("k", [&] { return ++runs; }), InProgressError);
  CHECK(runs == 1);
}

namespace {
// Every caller races every key; the operation counts its executions per key.
// Every call, store call and run is recorded in `h` and the history checked as well.
template <class Exec>
void race_exactly_once(Exec& exec, idempotency::testing::History& h, int threads, int keys,
                       bool retry_in_progress) {
  std::vector<std::atomic<int>> executions(static_cast<std::size_t>(keys));
  std::vector<std::vector<long>> seen(static_cast<std::size_t>(threads),
                                      std::vector<long>(static_cast<std::size_t>(keys), -1));
  std::atomic<int> errors{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<int> order(static_cast<std::size_t>(keys));
      std::iota(order.begin(), order.end(), 0);
      std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(t)));
      ready.fetch_add(1);
      while (ready.load() < threads) std::this_thread::yield();
      for (int k : order) {
        const std::string key = "race-" + std::to_string(k);
        const std::string skey = exec.storage_key(key);
        for (;;) {
          try {
            std::string produced;
            auto op = [&] {
              const int n = executions[static_cast<std::size_t>(k)].fetch_add(1) + 1;
              const long v = static_cast<long>(k) * 1000 + t * 10 + n;
              produced = std::to_string(v);
              h.effect(skey, produced);
              std::this_thread::yield();
              return v;
            };
            long value = -1;
            auto call = idempotency::testing::record_call(h, skey, produced, [&] {
              auto o = exec.execute_outcome(key, op);
              value = o.value;
              return Outcome<std::string>{std::to_string(o.value), o.replayed, o.expires_in};
            });
            h.add(call);
            if (call.told == idempotency::testing::Told::in_progress)
              throw InProgressError("", 0ms);
            if (value < 0) throw std::runtime_error(call.value);
            seen[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)] = value;
            break;
          } catch (const InProgressError&) {
            if (!retry_in_progress) {
              errors.fetch_add(1);
              break;
            }
            std::this_thread::yield();
          } catch (...) {
            errors.fetch_add(1);
            break;
          }
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  REQUIRE(errors.load() == 0);
  int not_once = 0;
  int disagreements = 0;
  for (int k = 0; k < keys; ++k) {
    if (executions[static_cast<std::size_t>(k)].load() != 1) ++not_once;
    for (int t = 1; t < threads; ++t)
      if (seen[static_cast<std::size_t>(t)][static_cast<std::size_t>(k)] !=
          seen[0][static_cast<std::size_t>(k)])
        ++disagreements;
  }
  CHECK(not_once == 0);
  CHECK(disagreements == 0);
  // every holder finished within its lease: P4 (at most one run per key) must hold too
  const auto violations = idempotency::testing::check_history(h, {.at_most_once = true});
  INFO(idempotency::testing::describe(violations));
  CHECK(violations.empty());
  CHECK(h.effects().size() == static_cast<std::size_t>(keys));
}
} // namespace

TEST_CASE("exactly once under races: 8 threads x 1,000 keys, reject + retry", "[executor][race]") {
  InMemoryStore inner;
  idempotency::testing::History h;
  idempotency::testing::FaultInjectingStore store(inner, {.history = &h}); // records, no faults
  IdempotencyExecutor exec{store};
  race_exactly_once(exec, h, 8, 1000, true);
}

TEST_CASE("exactly once under races: 8 threads x 1,000 keys, wait policy", "[executor][race]") {
  InMemoryStore inner;
  idempotency::testing::History h;
  idempotency::testing::FaultInjectingStore store(inner, {.history = &h});
  IdempotencyExecutor exec{store, {.in_progress = InProgressPolicy::wait}};
  race_exactly_once(exec, h, 8, 1000, false);
}

TEST_CASE("an unscoped key cannot reach a tenant's record (scoping is injective)", "[executor]") {
  // the reproduction: "tenant-b///order-1" was tenant-b's storage key for "order-1"
  InMemoryStore s;
  IdempotencyExecutor b{s, {.scope = {.tenant = "tenant-b"}}};
  IdempotencyExecutor u{s};
  CHECK(b.execute("order-1", [] { return 1; }) == 1);
  const auto o = u.execute_outcome("tenant-b///order-1", [] { return 2; });
  CHECK_FALSE(o.replayed);
  CHECK(o.value == 2);
  CHECK(b.execute("order-1", [] { return 3; }) == 1);
  CHECK(b.storage_key("order-1") != u.storage_key("tenant-b///order-1"));
}

TEST_CASE("arguments are forwarded as given: move-only arguments work", "[executor]") {
  InMemoryStore s;
  IdempotencyExecutor exec{s};
  auto p = std::make_unique<int>(41);
  const int v = exec.execute(
      "move-only", [](std::unique_ptr<int> q) { return *q + 1; }, std::move(p));
  CHECK(v == 42);
  int lvalue = 1;
  CHECK(exec.execute(
            "by-ref", [](int& x) { return ++x; }, lvalue) == 2);
  CHECK(lvalue == 2); // an lvalue argument is passed as the lvalue
}

TEST_CASE("Outcome says how long the recorded result is still replayed", "[executor]") {
  idempotency::testing::ManualClock clock;
  InMemoryStore s{{.clock = clock.source()}};
  IdempotencyExecutor exec{s, {.result_ttl = 10min}};
  const auto first = exec.execute_outcome("k", [] { return 1; });
  CHECK(first.expires_in == std::chrono::milliseconds(10min));
  clock.advance(4min);
  const auto again = exec.execute_outcome("k", [] { return 2; });
  CHECK(again.replayed);
  REQUIRE(again.expires_in.has_value());
  CHECK(*again.expires_in == std::chrono::milliseconds(6min));
  const auto v = exec.execute_outcome("void", [] {});
  CHECK(v.expires_in == std::chrono::milliseconds(10min));
  // structured bindings still bind (value, replayed) and (replayed)
  auto [value, replayed] = exec.execute_outcome("k", [] { return 3; });
  CHECK(value == 1);
  CHECK(replayed);
  auto [void_replayed] = exec.execute_outcome("void", [] {});
  CHECK(void_replayed);
}

TEST_CASE("forget: an operator makes one key run again", "[executor]") {
  InMemoryStore s;
  IdempotencyExecutor exec{s, {.scope = {.tenant = "acme"}}};
  CHECK(exec.execute("order-1", [] { return 1; }) == 1);
  CHECK(exec.execute("order-1", [] { return 2; }) == 1);
  CHECK(exec.forget("order-1"));
  CHECK(exec.execute("order-1", [] { return 3; }) == 3);
  CHECK_FALSE(exec.forget("never-used"));
}

TEST_CASE("the executor's fast key check agrees with validate_key on every byte and length",
          "[executor][keys]") {
  const auto valid = [](const std::string& k) {
    try {
      validate_key(k);
      return true;
    } catch (const InvalidKeyError&) {
      return false;
    }
  };
  std::size_t disagreements = 0;
  for (const std::size_t n :
       {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{8}, std::size_t{9},
        std::size_t{15}, std::size_t{16}, std::size_t{17}, std::size_t{24}, std::size_t{254},
        std::size_t{255}, std::size_t{256}}) {
    const std::string base(n, 'k');
    if (detail::valid_key(base) != valid(base)) ++disagreements;
    std::vector<std::size_t> positions;
    for (std::size_t at = 0; at < n; at += (n > 32 ? 37 : 1)) positions.push_back(at);
    for (std::size_t back = 1; back <= 9 && back <= n; ++back) positions.push_back(n - back);
    for (const std::size_t at : positions) {
      for (int b = 0; b < 256; ++b) {
        std::string k = base;
        k[at] = static_cast<char>(b);
        if (detail::valid_key(k) != valid(k)) ++disagreements;
      }
    }
  }
  CHECK(disagreements == 0);
}
