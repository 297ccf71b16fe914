// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/stores/caching_store.hpp>

#include <idempotency/idempotency.hpp>
#include <idempotency/testing/conformance.hpp>
#include <idempotency/testing/fault_injecting_store.hpp>
#include <idempotency/testing/history_checker.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"
#include "support/counting_store.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using idempotency::CachingStore;
using idempotency::ClaimStatus;
using idempotency::InMemoryStore;
using idempotency::ReplayCacheOptions;
using idempotency::testing::ManualClock;
using Ms = std::chrono::milliseconds;

namespace {

// Forwards to `Inner`, counting claims and marking (per thread) that a claim reached it.
// Optional hooks run right after the inner claim answered, and before a forget reaches the
// inner store (to force a race at those points).
template <idempotency::Store Inner>
class SpyStore {
 public:
  explicit SpyStore(Inner& inner) : inner_(&inner) {}

  static bool& reached() noexcept {
    thread_local bool r = false;
    return r;
  }
  std::atomic<int> claims{0};
  std::function<void(std::string_view)> after_claim{};
  std::function<void(std::string_view)> before_forget{};

  [[nodiscard]] std::string_view name() const noexcept { return "SpyStore"; }
  idempotency::ClaimResult claim(std::string_view k, std::string_view fp, Ms d) {
    claims.fetch_add(1);
    reached() = true;
    idempotency::ClaimResult r = inner_->claim(k, fp, d);
    if (after_claim) after_claim(k);
    return r;
  }
  bool complete(std::string_view k, const idempotency::Token& t, std::string_view p, Ms d) {
    return inner_->complete(k, t, p, d);
  }
  bool fail(std::string_view k, const idempotency::Token& t, std::string_view p, Ms d) {
    return inner_->fail(k, t, p, d);
  }
  bool release(std::string_view k, const idempotency::Token& t) { return inner_->release(k, t); }
  bool renew(std::string_view k, const idempotency::Token& t, Ms d) {
    return inner_->renew(k, t, d);
  }
  bool forget(std::string_view k) {
    if (before_forget) before_forget(k);
    return inner_->forget(k);
  }

 private:
  Inner* inner_;
};

// A store that claims to be transactional (declarations only: for the concept checks).
struct TransactionalFake {
  struct transaction {};
  [[nodiscard]] std::string_view name() const noexcept { return "TransactionalFake"; }
  idempotency::ClaimResult claim(std::string_view, std::string_view, Ms);
  bool complete(std::string_view, const idempotency::Token&, std::string_view, Ms);
  bool fail(std::string_view, const idempotency::Token&, std::string_view, Ms);
  bool release(std::string_view, const idempotency::Token&);
  bool renew(std::string_view, const idempotency::Token&, Ms);
  bool complete_in_transaction(std::string_view, const idempotency::Token&, Ms,
                               std::function<std::string(transaction&)>);
};

using Cached = CachingStore<InMemoryStore>;
using Counting = idempotency::test::CountingStore<InMemoryStore>;
static_assert(idempotency::Store<Cached>);
static_assert(idempotency::WaitableStore<Cached>);
static_assert(idempotency::PurgeableStore<Cached>);
static_assert(idempotency::ForgettableStore<Cached>);
static_assert(!idempotency::TransactionalStore<Cached>);
// the optional capabilities exist only where the inner store has them
static_assert(idempotency::Store<CachingStore<Counting>>);
static_assert(!idempotency::WaitableStore<CachingStore<Counting>>);
static_assert(!idempotency::PurgeableStore<CachingStore<Counting>>);
static_assert(!idempotency::ForgettableStore<CachingStore<Counting>>);
static_assert(idempotency::TransactionalStore<TransactionalFake>);
static_assert(!idempotency::TransactionalStore<CachingStore<TransactionalFake>>);

// The cache and the store share one ManualClock (a cache on another clock would serve
// entries past the store's expiry as the test moves its clock).
struct CachingHarness {
  using store_type = Cached;
  ManualClock clock;
  InMemoryStore inner_{{.shards = 4, .clock = clock.source()}};
  Cached store_{inner_, {.clock = clock.source()}};
  Cached& store() { return store_; }
  std::chrono::milliseconds unit() const { return 1s; }
  void advance(std::chrono::milliseconds d) { clock.advance(d); }
};

// Tiny bounds and no age cap: every section evicts, the 1 MiB payload is never cached, and a
// "forever" TTL must saturate inside the cache too.
struct TinyCacheHarness {
  using store_type = Cached;
  ManualClock clock;
  InMemoryStore inner_{{.shards = 1, .clock = clock.source()}};
  Cached store_{
      inner_,
      {.max_entries = 2, .max_bytes = 8192, .max_age = 0ms, .shards = 1, .clock = clock.source()}};
  Cached& store() { return store_; }
  std::chrono::milliseconds unit() const { return 1s; }
  void advance(std::chrono::milliseconds d) { clock.advance(d); }
};

// A finished record of `key` with `payload` (status `how`), through `s`.
template <class S>
void finish(S& s, const std::string& key, const std::string& payload, Ms ttl,
            ClaimStatus how = ClaimStatus::completed) {
  const auto c = s.claim(key, "fp", 10s);
  REQUIRE(c.acquired());
  if (how == ClaimStatus::completed)
    REQUIRE(s.complete(key, c.token, payload, ttl));
  else
    REQUIRE(s.fail(key, c.token, payload, ttl));
}

} // namespace

IDEMPOTENCY_STORE_CONFORMANCE("CachingStore<InMemoryStore>", CachingHarness)
IDEMPOTENCY_STORE_CONFORMANCE("CachingStore<InMemoryStore> with tiny bounds", TinyCacheHarness)

TEST_CASE("the cache names itself after its inner store", "[caching]") {
  InMemoryStore inner;
  Cached cache{inner};
  CHECK(cache.name() == "CachingStore(InMemoryStore)");
  CHECK(&cache.inner() == &inner);
}

TEST_CASE("a replay of a finished record is served from the cache, not the store", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  CachingStore cache{counting, {.clock = clock.source()}};
  const std::string payload("result\0bytes", 12);
  finish(cache, "k", payload, 60s);
  CHECK(counting.claims == 1);
  const auto first = cache.claim("k", "other", 10s); // a miss: asks the store, fills the cache
  CHECK(first.status == ClaimStatus::completed);
  CHECK(counting.claims == 2);
  for (int i = 0; i < 5; ++i) {
    const auto r = cache.claim("k", "other", 10s);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == payload);
    CHECK(r.fingerprint == "fp"); // the record's, not this claim's
    CHECK(r.token.empty());
    CHECK_FALSE(r.took_over);
    CHECK(r.remaining > 0ms);
    CHECK(r.remaining <= 60s);
  }
  CHECK(counting.claims == 2);
  const auto st = cache.stats();
  CHECK(st.hits == 5);
  CHECK(st.misses == 2);
  CHECK(st.evictions == 0);
  CHECK(st.entries == 1);
}

TEST_CASE("a failed record is cached like a completed one", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  CachingStore cache{counting, {.clock = clock.source()}};
  finish(cache, "k", "boom", 60s, ClaimStatus::failed);
  CHECK(cache.claim("k", "fp", 10s).status == ClaimStatus::failed);
  const auto r = cache.claim("k", "fp", 10s);
  CHECK(r.status == ClaimStatus::failed);
  CHECK(r.payload == "boom");
  CHECK(counting.claims == 2);
  CHECK(cache.stats().hits == 1);
}

TEST_CASE("an in-progress record is never cached", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  CachingStore cache{counting, {.clock = clock.source()}};
  const auto c = cache.claim("k", "fp", 10s);
  REQUIRE(c.acquired());
  for (int i = 0; i < 3; ++i) CHECK(cache.claim("k", "fp", 10s).status == ClaimStatus::in_progress);
  CHECK(counting.claims == 4);
  CHECK(cache.stats().entries == 0);
  REQUIRE(cache.complete("k", c.token, "done", 60s));
  const auto r = cache.claim("k", "fp", 10s);
  CHECK(r.status == ClaimStatus::completed); // not a stale "in progress"
  CHECK(r.payload == "done");
  CHECK(cache.stats().hits == 0);
}

TEST_CASE("complete does not fill the cache: only a claim's remaining TTL tells the expiry",
          "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  CachingStore cache{counting, {.clock = clock.source()}};
  finish(cache, "k", "v", 60s);
  CHECK(cache.stats().entries == 0);
  CHECK(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  CHECK(counting.claims == 2);
}

TEST_CASE("an entry is never served past the record's expiry", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  CachingStore cache{counting, {.clock = clock.source()}};
  finish(cache, "k", "old", 10s);
  REQUIRE(cache.claim("k", "fp", 10s).remaining == 10s); // miss: cached until just before 10 s
  clock.advance(4s);
  const auto r = cache.claim("k", "fp", 10s);
  CHECK(r.status == ClaimStatus::completed);
  CHECK(r.remaining <= 6s); // time left, counted down by the cache's clock
  CHECK(r.remaining > 5s);
  clock.advance(5s);
  CHECK(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  CHECK(counting.claims == 2);
  clock.advance(1s); // the record expires at 10 s: the cache must not answer any more
  const auto again = cache.claim("k", "fp", 10s);
  CHECK(again.acquired());
  CHECK(counting.claims == 3);
  REQUIRE(cache.complete("k", again.token, "new", 10s));
  CHECK(cache.claim("k", "fp", 10s).payload == "new");
  CHECK(cache.claim("k", "fp", 10s).payload == "new");
}

TEST_CASE("an entry expires before the record even when the store rounds its TTL up", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  CachingStore cache{counting, {.clock = clock.source()}};
  finish(cache, "k", "v", 10s);
  clock.advance(9500us); // the store reports ceil(9.9905 s) = 9991 ms, 0.5 ms more than is left
  REQUIRE(cache.claim("k", "fp", 10s).remaining == 9991ms);
  clock.advance(9990ms + 500us); // the record has expired exactly now
  CHECK(cache.claim("k", "fp", 10s).acquired());
}

TEST_CASE("max_age caps how long one entry is served", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  CachingStore cache{counting, {.max_age = 2s, .clock = clock.source()}};
  finish(cache, "k", "v", 1h);
  REQUIRE(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  const auto hit = cache.claim("k", "fp", 10s);
  CHECK(hit.remaining <= 1h); // the record's time left is what the store said, counted down
  CHECK(hit.remaining > 59min);
  clock.advance(1s);
  CHECK(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  CHECK(counting.claims == 2);
  clock.advance(1s); // max_age passed: ask the store again (it still holds the record)
  CHECK(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  CHECK(counting.claims == 3);
  CHECK(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  CHECK(counting.claims == 3);
}

TEST_CASE("forget through the cache invalidates its entry", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  SpyStore spy{inner};
  CachingStore cache{spy, {.clock = clock.source()}};
  finish(cache, "k", "v", 1h);
  REQUIRE(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  REQUIRE(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  REQUIRE(cache.stats().hits == 1);
  CHECK(cache.forget("k"));
  CHECK(cache.stats().entries == 0);
  CHECK_FALSE(cache.forget("k"));
  const auto again = cache.claim("k", "fp", 10s);
  CHECK(again.acquired()); // the re-run the operator asked for
}

TEST_CASE(
    "a forget landing while a claim is between the store and the cache leaves no stale "
    "entry",
    "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  SpyStore spy{inner};
  CachingStore cache{spy, {.clock = clock.source()}};
  finish(cache, "k", "v", 1h);
  // the store answers "completed", then (before the cache stores the answer) the record is
  // forgotten through the cache
  bool armed = true;
  spy.after_claim = [&](std::string_view k) {
    if (!std::exchange(armed, false)) return;
    CHECK(cache.forget(k));
  };
  CHECK(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  CHECK(cache.claim("k", "fp", 10s).acquired());
}

TEST_CASE("a claim running while a forget is on its way to the store leaves no stale entry",
          "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  SpyStore spy{inner};
  CachingStore cache{spy, {.clock = clock.source()}};
  finish(cache, "k", "v", 1h);
  // the cache dropped its entry and sent the forget; before it lands, a claim reads the
  // record (still there) and caches it
  bool armed = true;
  spy.before_forget = [&](std::string_view k) {
    if (!std::exchange(armed, false)) return;
    CHECK(cache.claim(k, "fp", 10s).status == ClaimStatus::completed);
  };
  CHECK(cache.forget("k"));
  CHECK(cache.claim("k", "fp", 10s).acquired());
}

TEST_CASE("the expiry counts from a clock reading taken before the store was asked", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  SpyStore spy{inner};
  CachingStore cache{spy, {.max_age = 0ms, .clock = clock.source()}};
  finish(cache, "k", "v", 10s);
  // the store answers "10 s left"; the answer reaches the cache 5 s later (a slow network)
  bool armed = true;
  spy.after_claim = [&](std::string_view) {
    if (std::exchange(armed, false)) clock.advance(5s);
  };
  REQUIRE(cache.claim("k", "fp", 10s).remaining == 10s);
  clock.advance(4s); // 9 s after the store's answer: still served from the cache
  CHECK(cache.claim("k", "fp", 10s).status == ClaimStatus::completed);
  CHECK(spy.claims == 2);
  clock.advance(1s); // the record expired; a cache counting from the late reading would not know
  CHECK(cache.claim("k", "fp", 10s).acquired());
}

TEST_CASE("clear drops every entry", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  CachingStore cache{counting, {.clock = clock.source()}};
  for (int i = 0; i < 10; ++i) {
    const std::string k = "k" + std::to_string(i);
    finish(cache, k, "v", 1h);
    REQUIRE(cache.claim(k, "fp", 10s).status == ClaimStatus::completed);
  }
  CHECK(cache.stats().entries == 10);
  cache.clear();
  CHECK(cache.stats().entries == 0);
  CHECK(cache.stats().bytes == 0);
  const int before = counting.claims;
  CHECK(cache.claim("k3", "fp", 10s).status == ClaimStatus::completed);
  CHECK(counting.claims == before + 1);
}

TEST_CASE("the cache evicts the least recently used entry beyond max_entries", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  CachingStore cache{counting, {.max_entries = 3, .shards = 1, .clock = clock.source()}};
  const auto key = [](int i) { return "k" + std::to_string(i); };
  for (int i = 0; i < 3; ++i) {
    finish(cache, key(i), "v" + std::to_string(i), 1h);
    REQUIRE(cache.claim(key(i), "fp", 10s).status == ClaimStatus::completed);
  }
  CHECK(cache.stats().entries == 3);
  REQUIRE(cache.claim(key(0), "fp", 10s).payload == "v0"); // a hit: k0 is now the most recent
  for (int i = 3; i < 5; ++i) {
    finish(cache, key(i), "v" + std::to_string(i), 1h);
    REQUIRE(cache.claim(key(i), "fp", 10s).status == ClaimStatus::completed);
  }
  const auto st = cache.stats();
  CHECK(st.entries == 3);
  CHECK(st.evictions == 2); // k1 and k2
  const int before = counting.claims;
  CHECK(cache.claim(key(0), "fp", 10s).payload == "v0"); // kept
  CHECK(cache.claim(key(4), "fp", 10s).payload == "v4");
  CHECK(counting.claims == before);
  CHECK(cache.claim(key(1), "fp", 10s).payload == "v1"); // evicted: asks the store
  CHECK(counting.claims == before + 1);
}

TEST_CASE("the cache evicts by bytes, and never caches an entry over its byte budget",
          "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  Counting counting{inner};
  const std::size_t per_entry = Cached::entry_overhead + 2 + 2 + 1000; // key, "fp", payload
  CachingStore cache{counting,
                     {.max_bytes = 3 * per_entry + 10, .shards = 1, .clock = clock.source()}};
  for (int i = 0; i < 6; ++i) {
    const std::string k = "k" + std::to_string(i);
    finish(cache, k, std::string(1000, static_cast<char>('a' + i)), 1h);
    REQUIRE(cache.claim(k, "fp", 10s).status == ClaimStatus::completed);
    CHECK(cache.stats().bytes <= 3 * per_entry + 10);
  }
  auto st = cache.stats();
  CHECK(st.entries == 3);
  CHECK(st.bytes == 3 * per_entry);
  CHECK(st.evictions == 3);
  // one entry larger than the whole budget: served by the store every time, evicts nothing
  finish(cache, "big", std::string(4 * per_entry, 'x'), 1h);
  const int before = counting.claims;
  CHECK(cache.claim("big", "fp", 10s).status == ClaimStatus::completed);
  CHECK(cache.claim("big", "fp", 10s).status == ClaimStatus::completed);
  CHECK(counting.claims == before + 2);
  st = cache.stats();
  CHECK(st.entries == 3);
  CHECK(st.evictions == 3);
}

TEST_CASE("the bounds hold across shards: never more than max_entries", "[caching]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  CachingStore cache{inner, {.max_entries = 5, .shards = 16, .clock = clock.source()}};
  for (int i = 0; i < 200; ++i) {
    const std::string k = "k" + std::to_string(i);
    finish(cache, k, "v", 1h);
    REQUIRE(cache.claim(k, "fp", 10s).status == ClaimStatus::completed);
    REQUIRE(cache.stats().entries <= 5);
  }
  CHECK(cache.stats().entries > 0);
}

TEST_CASE("options are validated when the cache is built", "[caching]") {
  InMemoryStore inner;
  using idempotency::InvalidOptionsError;
  CHECK_THROWS_AS(Cached(inner, {.max_entries = 0}), InvalidOptionsError);
  CHECK_THROWS_AS(Cached(inner, {.max_bytes = 0}), InvalidOptionsError);
  CHECK_THROWS_AS(Cached(inner, {.max_age = -1ms}), InvalidOptionsError);
  CHECK_THROWS_AS(Cached(inner, {.shards = 0}), InvalidOptionsError);
  CHECK_THROWS_AS(Cached(inner, {.shards = std::size_t{1} << 20}), InvalidOptionsError);
  try {
    Cached bad(inner, {.max_entries = 0});
  } catch (const InvalidOptionsError& e) {
    CHECK(e.code() == idempotency::errc::invalid_options);
    CHECK(std::string(e.what()).find("ReplayCacheOptions::max_entries") != std::string::npos);
  }
  CHECK_NOTHROW(Cached(inner, {}));
  CHECK_NOTHROW(Cached(inner, {.max_age = 0ms})); // 0 = no cap
  CHECK_NOTHROW(Cached(inner, {.max_entries = 1, .max_bytes = 1, .shards = 16}));
}

TEST_CASE("an executor over the cache runs the operation once; replays come from the cache",
          "[caching][executor]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  SpyStore spy{inner};
  CachingStore cache{spy, {.clock = clock.source()}};
  idempotency::IdempotencyExecutor exec{cache, {.result_ttl = 1h}};
  int runs = 0;
  const auto op = [&] {
    ++runs;
    return std::string("receipt-42");
  };
  const auto fp = idempotency::Fingerprint::of_bytes("order body");
  CHECK(exec.execute("order-1", fp, op) == "receipt-42");
  for (int i = 0; i < 5; ++i) {
    const auto o = exec.execute_outcome("order-1", fp, op);
    CHECK(o.value == "receipt-42");
    CHECK(o.replayed);
    REQUIRE(o.expires_in.has_value());
    CHECK(*o.expires_in <= 1h);
    CHECK(*o.expires_in > 0ms);
  }
  CHECK(runs == 1);
  CHECK(spy.claims == 2); // the first call acquired; the first replay filled the cache
  CHECK(cache.stats().hits == 4);
  // a cached record keeps its fingerprint: another request under the key is still refused
  CHECK_THROWS_AS(exec.execute("order-1", idempotency::Fingerprint::of_bytes("other"), op),
                  idempotency::FingerprintMismatchError);
  CHECK(spy.claims == 2);
  // a remembered failure is replayed from the cache too
  const auto boom = []() -> std::string { throw std::runtime_error("declined"); };
  idempotency::IdempotencyExecutor remember{cache,
                                            {.on_exception = idempotency::OnException::remember}};
  CHECK_THROWS_AS(remember.execute("order-2", boom), std::runtime_error);
  CHECK_THROWS_AS(remember.execute("order-2", boom), idempotency::ReplayedFailureError);
  CHECK_THROWS_AS(remember.execute("order-2", boom), idempotency::ReplayedFailureError);
  CHECK(spy.claims == 4);
  // an operator's forget through the executor reaches the cache: the operation runs again
  CHECK(exec.forget("order-1"));
  CHECK(exec.execute("order-1", fp, op) == "receipt-42");
  CHECK(runs == 2);
}

namespace {
// The strict staleness check the history checker does not make (it sees no TTLs nor forgets
// in P2): a claim answered "completed"/"failed" with payload p although the record holding p
// certainly expired, or was certainly forgotten, before the claim began. Payloads are unique.
std::vector<std::string> stale_answers(const idempotency::testing::History& h, Ms ttl) {
  using idempotency::testing::StoreCall;
  using idempotency::testing::StoreOp;
  const auto calls = h.store_calls();
  std::vector<std::string> out;
  for (const StoreCall& c : calls) {
    if (c.op != StoreOp::claim || !c.landed) continue;
    if (c.status != ClaimStatus::completed && c.status != ClaimStatus::failed) continue;
    const StoreCall* first = nullptr; // the earliest-ending landed finish that wrote this payload
    for (const StoreCall& f : calls)
      if ((f.op == StoreOp::complete || f.op == StoreOp::fail) && f.landed && f.ok &&
          f.key == c.key && f.payload == c.payload && (!first || f.end_seq < first->end_seq))
        first = &f;
    if (first == nullptr) {
      out.push_back(c.key + ": a claim returned '" + c.payload + "', which nobody recorded");
      continue;
    }
    if (c.start >= first->end + ttl)
      out.push_back(c.key + ": a claim returned '" + c.payload + "' after its record expired");
    for (const StoreCall& f : calls)
      if (f.op == StoreOp::forget && f.landed && f.key == c.key && f.start_seq > first->end_seq &&
          f.end_seq < c.start_seq) {
        out.push_back(c.key + ": a claim returned '" + c.payload + "' after it was forgotten");
        break;
      }
  }
  return out;
}

// 8 threads on 6 shared keys claim and finish them every way, move the shared clock (records
// expire, leases are taken over) and, `with_forgets`, forget them, through a small cache that
// keeps evicting. Every call is logged above the cache; `history` is what they did.
struct RaceResult {
  int errors = 0;
  int from_cache = 0;        // claims the inner store never saw
  int bad_cache_answers = 0; // of those, answers other than completed / failed
};
using Spied = SpyStore<InMemoryStore>;
RaceResult race_through_cache(idempotency::testing::History& history, ManualClock& clock,
                              CachingStore<Spied>& cache, bool with_forgets, Ms lease, Ms ttl) {
  constexpr int kThreads = 8;
  constexpr int kOps = 500;
  constexpr int kKeys = 6;
  idempotency::testing::FaultInjectingStore rec{
      cache, idempotency::testing::FaultOptions{.history = &history}};
  std::atomic<int> errors{0};
  std::atomic<int> from_cache{0};
  std::atomic<int> bad{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      idempotency::testing::this_caller() = t;
      std::mt19937 rng(static_cast<unsigned>(t) + 11);
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      try {
        for (int i = 0; i < kOps; ++i) {
          const std::string key = "race-" + std::to_string(rng() % kKeys);
          const auto roll = rng() % 100;
          if (roll < 4 && with_forgets) {
            (void)rec.forget(key);
            continue;
          }
          if (roll >= 4 && roll < 7) {
            clock.advance(1s);
            continue;
          }
          Spied::reached() = false;
          const auto r = rec.claim(key, "fp", lease);
          if (!Spied::reached()) {
            from_cache.fetch_add(1);
            if (r.status != ClaimStatus::completed && r.status != ClaimStatus::failed)
              bad.fetch_add(1);
          }
          if (!r.acquired()) continue;
          const std::string payload = "c" + std::to_string(t) + "-" + std::to_string(i);
          if (rng() % 2 == 0) std::this_thread::yield(); // let others meet the claim
          switch (rng() % 4) {
            case 0: (void)rec.fail(key, r.token, payload, ttl); break;
            case 1: (void)rec.release(key, r.token); break;
            default: (void)rec.complete(key, r.token, payload, ttl);
          }
        }
      } catch (...) {
        errors.fetch_add(1);
      }
    });
  for (auto& th : threads) th.join();
  return {errors.load(), from_cache.load(), bad.load()};
}
} // namespace

TEST_CASE("racing threads through the cache: the history is consistent, no answer is stale",
          "[caching][race]") {
  constexpr Ms lease = 3s;
  constexpr Ms ttl = 5s;
  ManualClock clock;
  idempotency::testing::History history{clock.source()};
  InMemoryStore inner{{.shards = 2, .clock = clock.source()}};
  Spied spy{inner};
  CachingStore cache{spy, {.max_entries = 4, .shards = 2, .clock = clock.source()}};
  const RaceResult r = race_through_cache(history, clock, cache, false, lease, ttl);
  REQUIRE(r.errors == 0);
  CHECK(r.bad_cache_answers == 0);
  CHECK(r.from_cache > 0);
  CHECK(cache.stats().hits == static_cast<std::uint64_t>(r.from_cache));
  CHECK(cache.stats().evictions > 0);
  CHECK(cache.stats().entries <= 4);
  const auto violations = idempotency::testing::check_history(history, {.ttl = ttl});
  INFO(idempotency::testing::describe(violations));
  CHECK(violations.empty());
  const auto stale = stale_answers(history, ttl);
  INFO((stale.empty() ? std::string() : stale.front()));
  CHECK(stale.empty());
}

TEST_CASE("racing threads through the cache with forgets: no answer is stale", "[caching][race]") {
  // Forgets race the claims of their key here, also a claim between the store and the cache.
  // The checker excuses an acquisition or a second result only by a forget CERTAINLY before
  // it, so a forget overlapping the claim makes it report L and P1 falsely; both are about
  // what the inner store did (the cache forwards every claim that can acquire and every
  // transition), and the race above checks them. What the cache answers is checked in full.
  constexpr Ms lease = 3s;
  constexpr Ms ttl = 5s;
  ManualClock clock;
  idempotency::testing::History history{clock.source()};
  InMemoryStore inner{{.shards = 2, .clock = clock.source()}};
  Spied spy{inner};
  CachingStore cache{spy, {.max_entries = 4, .shards = 2, .clock = clock.source()}};
  const RaceResult r = race_through_cache(history, clock, cache, true, lease, ttl);
  REQUIRE(r.errors == 0);
  CHECK(r.bad_cache_answers == 0);
  CHECK(r.from_cache > 0);
  CHECK(cache.stats().hits == static_cast<std::uint64_t>(r.from_cache));
  auto violations = idempotency::testing::check_history(history, {.ttl = ttl});
  violations.erase(
      std::remove_if(violations.begin(), violations.end(),
                     [](const auto& v) { return v.property == "L" || v.property == "P1"; }),
      violations.end());
  INFO(idempotency::testing::describe(violations));
  CHECK(violations.empty());
  const auto stale = stale_answers(history, ttl);
  INFO((stale.empty() ? std::string() : stale.front()));
  CHECK(stale.empty());
}
