// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>

#include <idempotency/observer.hpp>
#include <idempotency/stores/in_memory_store.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"
#include "support/counting_store.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace idempotency;
using idempotency::testing::ManualClock;

namespace {

struct Declined : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Response {
  int status = 0;
  std::string body;
};
[[maybe_unused]] void to_json(nlohmann::json& j, const Response& r) {
  j = {{"status", r.status}, {"body", r.body}};
}
[[maybe_unused]] void from_json(const nlohmann::json& j, Response& r) {
  j.at("status").get_to(r.status);
  j.at("body").get_to(r.body);
}

// Spins (with short real sleeps) until `pred` holds or 20 s passed; the caller asserts after.
template <class P>
bool eventually(P pred) {
  const auto until = std::chrono::steady_clock::now() + 20s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

// A store whose first `failures` completes throw StoreError (a store that comes back).
template <class Inner>
class FlakyCompleteStore {
 public:
  FlakyCompleteStore(Inner& inner, int failures) : inner_(&inner), failures_(failures) {}
  std::atomic<int> completes{0};
  [[nodiscard]] std::string_view name() const noexcept { return "FlakyCompleteStore"; }
  ClaimResult claim(std::string_view k, std::string_view fp, std::chrono::milliseconds d) {
    return inner_->claim(k, fp, d);
  }
  bool complete(std::string_view k, const Token& t, std::string_view p,
                std::chrono::milliseconds d) {
    if (completes.fetch_add(1) < failures_)
      throw StoreError("FlakyCompleteStore", "complete", "timeout (simulated)");
    return inner_->complete(k, t, p, d);
  }
  bool fail(std::string_view k, const Token& t, std::string_view p, std::chrono::milliseconds d) {
    return inner_->fail(k, t, p, d);
  }
  bool release(std::string_view k, const Token& t) { return inner_->release(k, t); }
  bool renew(std::string_view k, const Token& t, std::chrono::milliseconds d) {
    return inner_->renew(k, t, d);
  }

 private:
  Inner* inner_;
  int failures_;
};

} // namespace

TEST_CASE("coalescing: 16 threads on one key make one store claim and share the leader's value",
          "[policies][coalesce]") {
  InMemoryStore inner;
  test::CountingStore store{inner};
  CountersObserver counters;
  IdempotencyExecutor exec{
      store, {.in_progress = InProgressPolicy::wait, .wait_deadline = 60s, .observer = &counters}};
  constexpr int threads = 16;
  std::atomic<int> runs{0};
  std::atomic<bool> all_joined{false};
  std::vector<int> values(threads, -1);
  std::vector<int> replayed(threads, -1);
  std::atomic<int> errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      try {
        const auto o = exec.execute_outcome("order-16", [&] {
          runs.fetch_add(1);
          // hold the key until the 15 others wait on this flight
          all_joined.store(eventually([&] { return exec.coalesced_waiters("order-16") == 15; }));
          return 4242;
        });
        values[static_cast<std::size_t>(t)] = o.value;
        replayed[static_cast<std::size_t>(t)] = o.replayed ? 1 : 0;
      } catch (...) {
        errors.fetch_add(1);
      }
    });
  }
  for (auto& th : pool) th.join();
  REQUIRE(errors.load() == 0);
  CHECK(all_joined.load());
  CHECK(runs.load() == 1);
  CHECK(store.claims.load() == 1);
  CHECK(store.completes.load() == 1);
  int fresh = 0;
  for (int t = 0; t < threads; ++t) {
    CHECK(values[static_cast<std::size_t>(t)] == 4242);
    fresh += replayed[static_cast<std::size_t>(t)] == 0 ? 1 : 0;
  }
  CHECK(fresh == 1);
  CHECK(counters.count(Event::claimed) == 1);
  CHECK(counters.count(Event::coalesced) == 15);
  CHECK(counters.count(Event::completed) == 1);
}

TEST_CASE("coalescing: a remembered failure reaches every waiter as ReplayedFailureError",
          "[policies][coalesce]") {
  InMemoryStore inner;
  test::CountingStore store{inner};
  IdempotencyExecutor exec{store,
                           {.in_progress = InProgressPolicy::wait,
                            .wait_deadline = 60s,
                            .on_exception = OnException::remember}};
  std::atomic<int> runs{0};
  std::atomic<int> original{0};
  std::atomic<int> replayed_failure{0};
  std::atomic<int> other{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 4; ++t) {
    pool.emplace_back([&] {
      try {
        (void)exec.execute("pay", [&]() -> int {
          runs.fetch_add(1);
          (void)eventually([&] { return exec.coalesced_waiters("pay") == 3; });
          throw Declined("card declined");
        });
        other.fetch_add(1);
      } catch (const Declined&) {
        original.fetch_add(1);
      } catch (const ReplayedFailureError& e) {
        if (e.kind().find("Declined") != std::string::npos &&
            e.original_message() == "card declined")
          replayed_failure.fetch_add(1);
        else
          other.fetch_add(1);
      } catch (...) {
        other.fetch_add(1);
      }
    });
  }
  for (auto& th : pool) th.join();
  CHECK(runs.load() == 1);
  CHECK(original.load() == 1);
  CHECK(replayed_failure.load() == 3);
  CHECK(other.load() == 0);
  CHECK(store.claims.load() == 1);
}

TEST_CASE("coalescing: a leader that releases lets one waiter claim and run",
          "[policies][coalesce]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.in_progress = InProgressPolicy::wait, .wait_deadline = 60s}};
  std::atomic<int> runs{0};
  std::atomic<int> thrown{0};
  std::vector<int> values(3, -1);
  std::vector<std::thread> pool;
  for (int t = 0; t < 3; ++t) {
    pool.emplace_back([&, t] {
      try {
        values[static_cast<std::size_t>(t)] = exec.execute("flaky", [&] {
          if (runs.fetch_add(1) == 0) {
            (void)eventually([&] { return exec.coalesced_waiters("flaky") == 2; });
            throw std::runtime_error("network blip");
          }
          return 7;
        });
      } catch (const std::runtime_error&) {
        thrown.fetch_add(1);
      }
    });
  }
  for (auto& th : pool) th.join();
  CHECK(runs.load() == 2); // the released key ran once more, for all the waiters
  CHECK(thrown.load() == 1);
  int sevens = 0;
  for (int v : values) sevens += v == 7 ? 1 : 0;
  CHECK(sevens == 2);
}

TEST_CASE("wait across processes: a non-waitable store is polled until the holder completes",
          "[policies][wait]") {
  InMemoryStore inner;
  test::CountingStore store{inner}; // no wait_for_change: the waiter polls
  static_assert(!WaitableStore<test::CountingStore<InMemoryStore>>);
  IdempotencyExecutor process_a{store};
  IdempotencyExecutor process_b{store,
                                {.in_progress = InProgressPolicy::wait, .wait_deadline = 60s}};
  auto holder = process_a.begin<int>("cross");
  REQUIRE_FALSE(holder.replayed());
  std::atomic<int> got{0};
  std::atomic<bool> replayed{false};
  std::thread waiter([&] {
    const auto o = process_b.execute_outcome("cross", [] { return -1; });
    got.store(o.value);
    replayed.store(o.replayed);
  });
  (void)eventually([&] { return store.claims.load() >= 4; }); // it polls
  holder.guard().commit(77);
  waiter.join();
  CHECK(got.load() == 77);
  CHECK(replayed.load());
  CHECK(store.claims.load() >= 4);
}

TEST_CASE("wait: the deadline passes with InProgressError; another request is a mismatch at once",
          "[policies][wait]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  test::CountingStore store{inner};
  IdempotencyExecutor exec{
      store, {.lease = 60s, .in_progress = InProgressPolicy::wait, .wait_deadline = 30ms}};
  const auto fp1 = Fingerprint::of_bytes("one");
  auto holder = exec.begin<int>("k", fp1);
  REQUIRE_FALSE(holder.replayed());
  const int claims_before = store.claims.load();
  // same request in this process: waits on the leader (no store call), then gives up
  try {
    (void)exec.execute("k", fp1, [] { return 1; });
    FAIL("expected InProgressError");
  } catch (const InProgressError& e) {
    CHECK(e.retry_after() > 0ms);
    CHECK(e.retry_after() <= 60s);
  }
  CHECK(store.claims.load() == claims_before);
  // another request with the same key is not coalesced: the store says mismatch at once
  CHECK_THROWS_AS(exec.execute("k", Fingerprint::of_bytes("two"), [] { return 2; }),
                  FingerprintMismatchError);
  holder.guard().commit(5);
  CHECK(exec.execute("k", fp1, [] { return 1; }) == 5);
}

TEST_CASE("reject stays the default", "[policies]") {
  CHECK(Options{}.in_progress == InProgressPolicy::reject);
  CHECK_FALSE(Options{}.renew_lease);
  CHECK(Options{}.observer == nullptr);
  CHECK(Options{}.completion_retry.max_attempts == 4);
}

TEST_CASE("renewal on: an operation running for 3 leases keeps its claim", "[policies][renewal]") {
  // real time: the renewal timer is real. Lease 600 ms, renewed every ~200 ms, run 1.8 s.
  InMemoryStore inner;
  test::CountingStore store{inner};
  CountersObserver counters;
  IdempotencyExecutor exec{store, {.lease = 600ms, .renew_lease = true, .observer = &counters}};
  IdempotencyExecutor rival{store, {.lease = 600ms}};
  std::atomic<bool> running{true};
  std::atomic<bool> started{false};
  std::atomic<int> rival_runs{0};
  std::atomic<int> rival_rejected{0};
  std::thread other([&] {
    // the rival starts once the long operation holds the key (else it could win the claim)
    while (!started.load()) std::this_thread::sleep_for(1ms);
    while (running.load()) {
      try {
        (void)rival.execute("long", [&] {
          rival_runs.fetch_add(1);
          return -1;
        });
      } catch (const InProgressError&) {
        rival_rejected.fetch_add(1);
      } catch (...) {
      }
      std::this_thread::sleep_for(50ms);
    }
  });
  bool stop_seen = false;
  const int v = exec.execute("long", [&](idempotency::stop_token st) {
    started.store(true);
    const auto until = std::chrono::steady_clock::now() + 1800ms;
    while (std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
    stop_seen = st.stop_requested();
    return 11;
  });
  running.store(false);
  other.join();
  CHECK(v == 11);
  CHECK_FALSE(stop_seen);
  CHECK(rival_runs.load() == 0);
  CHECK(rival_rejected.load() >= 3);
  CHECK(store.renews.load() >= 3);
  CHECK(counters.count(Event::lease_renewed) >= 3);
  CHECK(counters.count(Event::lease_lost) == 0);
  CHECK(exec.execute_outcome("long", [] { return 0; }).value == 11);
}

namespace {
// An InMemoryStore whose renew of one key stalls (a store call stuck on a dead connection,
// bounded only by its command timeout).
class SlowRenewStore {
 public:
  explicit SlowRenewStore(InMemoryStore& inner) : inner_(&inner) {}
  std::atomic<int> slow_renews{0};
  [[nodiscard]] std::string_view name() const noexcept { return "SlowRenewStore"; }
  ClaimResult claim(std::string_view k, std::string_view fp, std::chrono::milliseconds d) {
    return inner_->claim(k, fp, d);
  }
  bool complete(std::string_view k, const Token& t, std::string_view p,
                std::chrono::milliseconds d) {
    return inner_->complete(k, t, p, d);
  }
  bool fail(std::string_view k, const Token& t, std::string_view p, std::chrono::milliseconds d) {
    return inner_->fail(k, t, p, d);
  }
  bool release(std::string_view k, const Token& t) { return inner_->release(k, t); }
  bool renew(std::string_view k, const Token& t, std::chrono::milliseconds d) {
    if (k == "stalled") {
      slow_renews.fetch_add(1);
      std::this_thread::sleep_for(1500ms);
    }
    return inner_->renew(k, t, d);
  }

 private:
  InMemoryStore* inner_;
};
} // namespace

TEST_CASE("renewal: one stalled renew does not delay another key's renewals past its lease",
          "[policies][renewal]") {
  // real time. Lease 300 ms (renewed every ~100 ms); the renew of "stalled" takes 1.5 s.
  InMemoryStore inner;
  SlowRenewStore store{inner};
  IdempotencyExecutor exec{store, {.lease = 300ms, .renew_lease = true}};
  std::atomic<bool> both_running{false};
  std::atomic<int> started{0};
  const auto long_op = [&](idempotency::stop_token) {
    started.fetch_add(1);
    std::this_thread::sleep_for(1200ms);
    return 1;
  };
  std::thread stalled([&] { (void)exec.execute("stalled", long_op); });
  while (started.load() < 1) std::this_thread::sleep_for(1ms);
  int fast_value = 0;
  bool fast_lost = false;
  std::thread fast([&] {
    try {
      fast_value = exec.execute("fast", long_op);
    } catch (const LeaseLostError&) {
      fast_lost = true;
    }
  });
  while (started.load() < 2) std::this_thread::sleep_for(1ms);
  both_running.store(true);
  // another process polls "fast": its lease must never pass while its operation runs
  int rival_acquired = 0;
  const auto until = std::chrono::steady_clock::now() + 1100ms;
  while (std::chrono::steady_clock::now() < until) {
    const ClaimResult r = inner.claim("fast", "", 300ms);
    if (r.acquired()) {
      ++rival_acquired;
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  fast.join();
  stalled.join();
  CHECK(store.slow_renews.load() >= 1);
  CHECK(rival_acquired == 0);
  CHECK_FALSE(fast_lost);
  CHECK(fast_value == 1);
}

TEST_CASE("renewal off: a second caller takes over after one lease, the first gets LeaseLost",
          "[policies][renewal]") {
  ManualClock clock;
  InMemoryStore store{{.clock = clock.source()}};
  IdempotencyExecutor exec{store, {.lease = 10s}};
  IdempotencyExecutor rival{store, {.lease = 10s}};
  int rival_value = 0;
  bool stop_possible = true;
  CHECK_THROWS_AS(exec.execute("slow",
                               [&](idempotency::stop_token st) {
                                 stop_possible = st.stop_possible();
                                 clock.advance(11s); // one lease passes, nobody renews
                                 rival_value = rival.execute("slow", [] { return 2; });
                                 return 1;
                               }),
                  LeaseLostError);
  CHECK_FALSE(stop_possible); // without renewal nobody would ever stop it
  CHECK(rival_value == 2);
  CHECK(exec.execute("slow", [] { return 3; }) == 2); // the new owner's result, not overwritten
}

TEST_CASE("renewal: an operation taking a stop_token is told when the lease is lost",
          "[policies][renewal]") {
  ManualClock clock; // the store's clock; the renewal timer is real (~100 ms)
  InMemoryStore store{{.clock = clock.source()}};
  CountersObserver counters;
  IdempotencyExecutor exec{store, {.lease = 300ms, .renew_lease = true, .observer = &counters}};
  bool stopped = false;
  bool took_over = false;
  try {
    (void)exec.execute("lost", [&](idempotency::stop_token st) {
      clock.advance(1s);                                  // the lease passed in the store's time
      took_over = store.claim("lost", "", 60s).took_over; // and another caller took the key
      stopped = eventually([&] { return st.stop_requested(); });
      return 1;
    });
    FAIL("expected LeaseLostError");
  } catch (const LeaseLostError&) {
  }
  CHECK(took_over);
  CHECK(stopped);
  CHECK(counters.count(Event::lease_lost) >= 1);
  CHECK(counters.count(Event::completed) == 0);
}

TEST_CASE("a value classifier: 5xx releases (the retry runs again), 4xx is recorded",
          "[policies][classify]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.classify_result = [](const nlohmann::json& j) {
                             return j.at("status").get<int>() >= 500 ? OnResult::release
                                                                     : OnResult::record;
                           }}};
  int runs = 0;
  auto call = [&] {
    ++runs;
    return runs == 1 ? Response{503, "unavailable"} : Response{402, "payment required"};
  };
  const auto a = exec.execute_outcome("req", call);
  CHECK(a.value.status == 503);
  CHECK_FALSE(a.replayed);
  const auto b = exec.execute_outcome("req", call);
  CHECK(b.value.status == 402);
  CHECK_FALSE(b.replayed);
  const auto c = exec.execute_outcome("req", call);
  CHECK(c.value.status == 402);
  CHECK(c.replayed);
  CHECK(runs == 2);
}

namespace {
// A result with a codec of its own (not JSON): a classifier cannot see it.
struct Blob {
  std::string bytes;
};
} // namespace

template <>
struct idempotency::Codec<Blob> {
  static std::string encode(const Blob& b) { return b.bytes; }
  static Blob decode(std::string_view s) { return {std::string(s)}; }
};

TEST_CASE("classify_result takes any callable of a nlohmann::json, and can be unset",
          "[policies][classify]") {
  Options o;
  CHECK_FALSE(o.classify_result);
  o.classify_result = [](const auto& j) { // a generic lambda
    return j.is_number() ? OnResult::release : OnResult::record;
  };
  REQUIRE(o.classify_result);
  CHECK(o.classify_result(nlohmann::json(5)) == OnResult::release);
  CHECK(o.classify_result(nlohmann::json("x")) == OnResult::record);
  const std::function<OnResult(const nlohmann::json&)> f = [](const nlohmann::json&) {
    return OnResult::release;
  };
  o.classify_result = f;
  CHECK(o.classify_result(nlohmann::json::object()) == OnResult::release);
  int calls = 0; // a mutable, stateful callable, copied with the options
  o.classify_result = [calls](const nlohmann::json&) mutable {
    return ++calls > 1 ? OnResult::release : OnResult::record;
  };
  const Options copy = o;
  CHECK(copy.classify_result(nlohmann::json()) == OnResult::record);
  CHECK(copy.classify_result(nlohmann::json()) == OnResult::release);
  o.classify_result = nullptr;
  CHECK_FALSE(o.classify_result);
  CHECK_THROWS_AS(o.classify_result(nlohmann::json()), std::bad_function_call);
}

TEST_CASE("classify_result with a result of its own codec: InvalidOptionsError, nothing run",
          "[policies][classify]") {
  InMemoryStore store;
  IdempotencyExecutor exec{
      store, {.classify_result = [](const nlohmann::json&) { return OnResult::record; }}};
  int runs = 0;
  const auto op = [&] {
    ++runs;
    return Blob{"b"};
  };
  try {
    (void)exec.execute("k", op);
    FAIL("ran");
  } catch (const InvalidOptionsError& e) {
    const std::string what = e.what();
    CHECK(what.find("classify_result is set, but the result type ") != std::string::npos);
    CHECK(what.find("Blob is not stored as JSON") != std::string::npos);
  }
  CHECK_THROWS_AS(exec.execute_outcome("k", op), InvalidOptionsError);
  CHECK(runs == 0);
  CHECK(store.claim("k", "", 1s).acquired()); // nothing was claimed
  // JSON results and void operations on the same executor are fine
  CHECK(exec.execute("j", [] { return 1; }) == 1);
  CHECK_NOTHROW(exec.execute("v", [] {}));
  // the two-phase form records what it is given: no classifier there, no error
  auto a = exec.begin<Blob>("b");
  a.guard().commit(Blob{"x"});
  CHECK(exec.begin<Blob>("b").value().bytes == "x");
  // without a classifier the custom codec is used as usual
  IdempotencyExecutor plain{store};
  CHECK(plain.execute("k2", op).bytes == "b");
  CHECK(runs == 1);
}

TEST_CASE("result not recorded: completion is retried and succeeds when the store recovers",
          "[policies][not-recorded]") {
  InMemoryStore inner;
  FlakyCompleteStore store{inner, 2};
  IdempotencyExecutor exec{store,
                           {.completion_retry = {.max_attempts = 4, .initial_backoff = 1ms}}};
  int runs = 0;
  CHECK(exec.execute("k", [&] { return ++runs * 10; }) == 10);
  CHECK(store.completes.load() == 3);
  CHECK(exec.execute_outcome("k", [&] { return ++runs * 10; }).replayed);
  CHECK(runs == 1);
}

TEST_CASE("result not recorded: the typed error carries the value; the key waits out its lease",
          "[policies][not-recorded]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  FlakyCompleteStore store{inner, 1000};
  IdempotencyExecutor exec{
      store, {.lease = 30s, .completion_retry = {.max_attempts = 3, .initial_backoff = 1ms}}};
  int runs = 0;
  try {
    (void)exec.execute("k", [&] { return Response{200, "charged #" + std::to_string(++runs)}; });
    FAIL("expected ResultNotRecordedError");
  } catch (const ResultNotRecordedError& e) {
    CHECK(e.code() == errc::result_not_recorded);
    const auto r = unrecorded_value<Response>(e);
    CHECK(r.status == 200);
    CHECK(r.body == "charged #1");
  }
  CHECK(store.completes.load() == 3);
  // the claim was not released: a retry within the lease meets "in progress", not a re-run
  CHECK_THROWS_AS(exec.execute("k",
                               [&] {
                                 return Response{200, std::to_string(++runs)};
                               }),
                  InProgressError);
  CHECK(runs == 1);
  // after the lease a retry runs again: the duplicate window this error warns about
  clock.advance(31s);
  CHECK_THROWS_AS(exec.execute("k",
                               [&] {
                                 return Response{200, std::to_string(++runs)};
                               }),
                  ResultNotRecordedError);
  CHECK(runs == 2);
}

TEST_CASE("result not recorded: completion retries stop at the lease", "[policies][not-recorded]") {
  InMemoryStore inner;
  FlakyCompleteStore store{inner, 1000};
  IdempotencyExecutor exec{
      store, {.lease = 1ms, .completion_retry = {.max_attempts = 100, .initial_backoff = 50ms}}};
  CHECK_THROWS_AS(exec.execute("k",
                               [] {
                                 std::this_thread::sleep_for(2ms); // the lease is over
                                 return 1;
                               }),
                  ResultNotRecordedError);
  CHECK(store.completes.load() == 1);
}

TEST_CASE("wait: a re-entrant call on the same key fails at once instead of waiting for itself",
          "[policies][wait]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.in_progress = InProgressPolicy::wait, .wait_deadline = 30s}};
  const auto t0 = std::chrono::steady_clock::now();
  bool inner_rejected = false;
  const int v = exec.execute("k", [&] {
    try {
      (void)exec.execute("k", [] { return 2; });
    } catch (const InProgressError&) {
      inner_rejected = true;
    }
    return 1;
  });
  CHECK(v == 1);
  CHECK(inner_rejected);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s); // before: parked for the whole 30 s
}
