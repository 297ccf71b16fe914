// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/stores/in_memory_store.hpp>

#include <idempotency/testing/conformance.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using idempotency::ClaimStatus;
using idempotency::InMemoryStore;
using idempotency::testing::ManualClock;

namespace {
struct InMemoryHarness {
  using store_type = InMemoryStore;
  ManualClock clock;
  InMemoryStore store_{{.shards = 4, .clock = clock.source()}};
  InMemoryStore& store() { return store_; }
  std::chrono::milliseconds unit() const { return 1s; }
  void advance(std::chrono::milliseconds d) { clock.advance(d); }
};

struct OneShardHarness : InMemoryHarness {
  InMemoryStore one_{{.shards = 1, .clock = clock.source()}};
  InMemoryStore& store() { return one_; }
};
} // namespace

IDEMPOTENCY_STORE_CONFORMANCE("InMemoryStore", InMemoryHarness)
IDEMPOTENCY_STORE_CONFORMANCE("InMemoryStore with one shard", OneShardHarness)

TEST_CASE("expired records free their memory: the record count returns to zero", "[in_memory]") {
  ManualClock clock;
  InMemoryStore store{{.in_progress_grace = 10s, .clock = clock.source()}};
  constexpr int n = 20000;
  for (int i = 0; i < n; ++i) {
    const std::string k = "k" + std::to_string(i);
    const auto c = store.claim(k, "", 5s);
    REQUIRE(c.acquired());
    if (i % 2 == 0) REQUIRE(store.complete(k, c.token, std::string(100, 'p'), 60s));
  }
  CHECK(store.size() == n);
  clock.advance(30s); // in-progress records: lease 5 s + grace 10 s passed; results still live
  CHECK(store.purge_expired() == n / 2);
  CHECK(store.size() == n / 2);
  clock.advance(31s); // now the results' TTL passed too
  CHECK(store.purge_expired() == n / 2);
  CHECK(store.size() == 0);
}

TEST_CASE("expired records are reclaimed by ordinary use, without an explicit purge",
          "[in_memory]") {
  ManualClock clock;
  InMemoryStore store{{.shards = 2, .clock = clock.source()}};
  for (int i = 0; i < 5000; ++i) {
    const std::string k = "old" + std::to_string(i);
    const auto c = store.claim(k, "", 1s);
    REQUIRE(store.complete(k, c.token, "v", 10s));
  }
  CHECK(store.size() == 5000);
  clock.advance(11s);
  // keep using the store with other keys that expire too: the sweeps keep the size bounded
  for (int i = 0; i < 20000; ++i) {
    const std::string k = "new" + std::to_string(i);
    const auto c = store.claim(k, "", 1s);
    REQUIRE(store.complete(k, c.token, "v", 1s));
    clock.advance(1s);
  }
  CHECK(store.size() < 1000);
}

TEST_CASE("a capacity bound gives a typed error when full, and admits again after expiry",
          "[in_memory]") {
  ManualClock clock;
  InMemoryStore store{{.max_records = 100, .clock = clock.source()}};
  for (int i = 0; i < 100; ++i) {
    const std::string k = "k" + std::to_string(i);
    const auto c = store.claim(k, "", 1s);
    REQUIRE(store.complete(k, c.token, "v", 5s));
  }
  CHECK_THROWS_AS(store.claim("one-more", "", 1s), idempotency::CapacityExceededError);
  CHECK(store.size() == 100);
  // existing keys still replay when full
  CHECK(store.claim("k7", "", 1s).status == ClaimStatus::completed);
  clock.advance(6s);
  CHECK(store.claim("one-more", "", 1s).acquired());
  CHECK(store.size() == 1);
}

TEST_CASE("the capacity bound holds under concurrent claims", "[in_memory]") {
  InMemoryStore store{{.max_records = 500}};
  std::atomic<int> acquired{0};
  std::atomic<int> full{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        try {
          if (store.claim("t" + std::to_string(t) + "-" + std::to_string(i), "", 60s).acquired())
            acquired.fetch_add(1);
        } catch (const idempotency::CapacityExceededError&) {
          full.fetch_add(1);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  CHECK(acquired.load() == 500);
  CHECK(full.load() == 8 * 200 - 500);
  CHECK(store.size() == 500);
}

TEST_CASE("wait_for_change wakes when the holder completes, not after the timeout", "[in_memory]") {
  InMemoryStore store;
  const auto c = store.claim("k", "", 60s);
  REQUIRE(c.acquired());
  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    store.wait_for_change("k", 60s);
    woke.store(true);
  });
  std::this_thread::sleep_for(20ms); // let the waiter block (the test passes either way)
  REQUIRE(store.complete("k", c.token, "done", 60s));
  const auto start = std::chrono::steady_clock::now();
  waiter.join();
  CHECK(woke.load());
  CHECK(std::chrono::steady_clock::now() - start < 30s);
  // nothing in progress: returns at once
  store.wait_for_change("k", 60s);
  store.wait_for_change("absent", 60s);
}

TEST_CASE("expiry is reclaimed incrementally: no single call sweeps a whole shard", "[in_memory]") {
  // Issue 16: a call that met a shard due for its sweep used to reclaim every expired record
  // in it at once (a stall proportional to the shard). Each call now reclaims a bounded number
  // of records, and ordinary use still reclaims all of them.
  ManualClock clock;
  InMemoryStore store{{.shards = 1, .clock = clock.source()}};
  constexpr std::size_t n = 20000;
  for (std::size_t i = 0; i < n; ++i) {
    const std::string k = "old" + std::to_string(i);
    const auto c = store.claim(k, "", 1s);
    REQUIRE(store.complete(k, c.token, "v", 10s));
  }
  clock.advance(11s); // every record expired
  std::size_t largest_drop = 0;
  std::size_t added = 0;
  while (added < 2 * n) {
    const std::size_t before = store.size();
    const std::string k = "new" + std::to_string(added);
    const auto c = store.claim(k, "", 1s);
    REQUIRE(c.acquired());
    REQUIRE(store.complete(k, c.token, "v", 1h));
    ++added;
    const std::size_t after = store.size();
    if (after < before) largest_drop = std::max(largest_drop, before - after);
  }
  CHECK(largest_drop <= 64);
  CHECK(store.size() == added); // all the expired ones were reclaimed by ordinary use
}

TEST_CASE("keys, fingerprints and payloads of any size round-trip, binary bytes included",
          "[in_memory]") {
  ManualClock clock;
  InMemoryStore store{{.shards = 2, .clock = clock.source()}};
  std::string binary_key("k\0ey", 4);
  const std::vector<std::size_t> sizes{0, 1, 15, 16, 17, 100, 1000, 1024, 1025, 5000, 70000};
  std::size_t n = 0;
  for (std::size_t ks : {std::size_t{1}, std::size_t{300}, std::size_t{4000}}) {
    for (std::size_t ps : sizes) {
      std::string key =
          binary_key + std::string(ks, static_cast<char>('a' + n % 26)) + std::to_string(n);
      std::string fp(ps % 300, '\xff');
      std::string payload(ps, '\0');
      for (std::size_t i = 0; i < ps; ++i) payload[i] = static_cast<char>(i * 31 + n);
      const auto c = store.claim(key, fp, 10s);
      REQUIRE(c.acquired());
      const auto busy = store.claim(key, "other", 10s);
      CHECK(busy.status == ClaimStatus::in_progress);
      CHECK(busy.fingerprint == fp);
      REQUIRE(store.complete(key, c.token, payload, 1h));
      const auto r = store.claim(key, "x", 10s);
      CHECK(r.status == ClaimStatus::completed);
      CHECK(r.fingerprint == fp);
      CHECK(r.payload == payload);
      ++n;
    }
  }
  CHECK(store.size() == n);
}
