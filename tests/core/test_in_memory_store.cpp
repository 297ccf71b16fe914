// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/stores/in_memory_store.hpp>

#include <idempotency/detail/record_table.hpp>
#include <idempotency/testing/conformance.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
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

namespace {
struct TableRec {
  std::string key;
  int value = 0;
  std::size_t at = 0; // its place in TableModel::keys
};
struct TableKeyOf {
  std::string_view operator()(const TableRec* r) const noexcept { return r->key; }
};
using Table = idempotency::detail::RecordTable<TableRec, TableKeyOf>;

// The table under test and a model of it: the records, owned here, by key.
struct TableModel {
  Table table;
  std::unordered_map<std::string, std::unique_ptr<TableRec>> records;
  std::vector<std::string> keys; // the model's keys, to pick one at random
  std::size_t next_key = 0;

  void insert(int value) {
    auto r = std::make_unique<TableRec>(
        TableRec{"key-" + std::to_string(next_key++), value, keys.size()});
    REQUIRE(table.find(r->key, Table::hash(r->key)) == Table::npos);
    const std::size_t slot = table.insert(r.get(), Table::hash(r->key));
    REQUIRE(table.at(slot) == r.get());
    keys.push_back(r->key);
    records.emplace(r->key, std::move(r));
  }
  // Removes keys[i] from the table and the model.
  void erase(std::size_t i) {
    const std::string key = keys[i];
    const std::size_t slot = table.find(key, Table::hash(key));
    REQUIRE(slot != Table::npos);
    REQUIRE(table.at(slot) == records.at(key).get());
    table.erase(slot);
    forget(key);
  }
  void forget(const std::string& key) {
    const std::size_t i = records.at(key)->at;
    records.erase(key);
    if (i + 1 != keys.size()) {
      keys[i] = keys.back();
      records.at(keys[i])->at = i;
    }
    keys.pop_back();
  }
  void replace(std::size_t i) {
    const std::string& key = keys[i];
    const std::size_t slot = table.find(key, Table::hash(key));
    REQUIRE(slot != Table::npos);
    const TableRec& old = *records.at(key);
    auto fresh = std::make_unique<TableRec>(TableRec{key, old.value + 2, old.at});
    table.replace(slot, fresh.get());
    records[key] = std::move(fresh);
  }
  // The store's sweep: looks at `n` slots from `slot` on, erasing the records `pred` matches;
  // an erase may move a later record into the slot, so it is looked at again. Returns where
  // it stopped.
  template <class Pred>
  std::size_t sweep(std::size_t slot, std::size_t n, Pred pred) {
    for (std::size_t k = 0; k < n && slot < table.capacity(); ++k) {
      if (table.occupied(slot) && pred(*table.at(slot))) {
        const std::string key = table.at(slot)->key;
        table.erase(slot);
        forget(key);
      } else {
        ++slot;
      }
    }
    return slot;
  }
  // Every record is found, in the table once, and nothing else is (one assertion each).
  void check() {
    REQUIRE(table.size() == records.size());
    std::size_t seen = 0, strangers = 0, lost = 0;
    table.for_each([&](const TableRec* r) {
      ++seen;
      const auto it = records.find(r->key);
      if (it == records.end() || it->second.get() != r) ++strangers;
    });
    for (const auto& [key, r] : records) {
      const std::size_t slot = table.find(key, Table::hash(key));
      if (slot == Table::npos || table.at(slot) != r.get()) ++lost;
    }
    REQUIRE(seen == records.size());
    REQUIRE(strangers == 0);
    REQUIRE(lost == 0);
    REQUIRE(table.find("absent", Table::hash("absent")) == Table::npos);
  }
};
} // namespace

TEST_CASE("the record index stays correct while a resize is under way", "[in_memory]") {
  // A resize moves the old table's records to the new one a few slots per insert; meanwhile
  // every lookup, insert, erase, replacement and sweep must see each record exactly once.
  std::mt19937_64 rng(20260603);
  TableModel m;
  std::size_t resizing_ops = 0, shrinks = 0;
  auto pick = [&] { return static_cast<std::size_t>(rng() % m.keys.size()); };
  auto shrink = [&] {
    const bool was = m.table.resizing();
    m.table.shrink_to_fit();
    if (!was && m.table.resizing()) ++shrinks;
  };
  auto any = [](const TableRec&) { return true; };
  auto odd = [](const TableRec& r) { return r.value % 2 == 1; };
  for (int phase = 0; phase < 6; ++phase) {
    // grow, with churn: growths at many sizes, each moved over while records come and go
    for (int i = 0; i < 30000; ++i) {
      const auto op = rng() % 10;
      if (op < 7 || m.keys.empty())
        m.insert(static_cast<int>(rng() % 1000));
      else if (op < 9)
        m.erase(pick());
      else
        m.replace(pick());
      if (m.table.resizing()) {
        ++resizing_ops;
        if (m.keys.size() < 5000 || i % 61 == 0) m.check(); // every record, mid-move
      }
    }
    m.check();
    // sweep records away a few slots at a time, as the store does, shrinking after each
    // pass, with inserts (and so moves) while a shrink is under way
    std::size_t cursor = 0;
    for (int passes = 0; passes < 3 && m.keys.size() > 1000;) {
      cursor = m.sweep(cursor, 4, phase % 2 == 0 ? +any : +odd);
      if (cursor >= m.table.capacity()) {
        cursor = 0;
        ++passes;
        if (phase % 2 == 1) // odd phases: keep 1000 records of the even ones
          while (m.keys.size() > 1000) m.erase(pick());
        shrink();
      }
      if (rng() % 4 == 0) m.insert(static_cast<int>(rng() % 1000));
      if (m.table.resizing()) ++resizing_ops;
      if (rng() % 20000 == 0) m.check();
    }
    m.check();
    if (phase == 2) { // a purge: a full sweep, then compact, leaves no resize under way
      for (int i = 0; i < 5000; ++i) m.insert(static_cast<int>(rng() % 1000));
      m.sweep(0, static_cast<std::size_t>(-1), odd);
      m.table.compact();
      CHECK_FALSE(m.table.resizing());
      for (const auto& [key, r] : m.records) CHECK(r->value % 2 == 0);
      m.check();
    }
  }
  CHECK(resizing_ops > 1000);
  CHECK(shrinks > 0);
  // a shrink of a large table to a small one, then a growth before the shrink is done: the
  // growth first finishes the shrink
  while (m.keys.size() < 40000) m.insert(0);
  while (m.keys.size() > 50) m.erase(pick());
  m.table.compact();                        // nothing under way
  while (m.keys.size() < 8000) m.insert(1); // ~60k slots: no shrink started yet
  while (m.keys.size() > 50) m.erase(pick());
  shrink();
  REQUIRE(m.table.resizing());
  std::size_t resizes_seen = 0;
  for (int i = 0; i < 400 && m.table.resizing(); ++i) {
    const std::size_t cap = m.table.capacity();
    m.insert(2);
    if (m.table.resizing() && m.table.capacity() != cap) ++resizes_seen; // a growth began
    m.check();
  }
  CHECK(resizes_seen > 0);
  while (!m.keys.empty()) m.erase(pick());
  m.table.compact();
  m.check();
  CHECK(m.table.capacity() == Table::min_capacity);
}
