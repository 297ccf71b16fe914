// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// RedisStore on a real Redis Cluster (3 masters, 3 replicas) that the ctest fixture
// redis_topology.sh starts on 127.0.0.1: the conformance suite, exactly-once across all slots,
// and a slot migrated while threads run, so that MOVED and ASK really happen.
#include <idempotency/stores/redis_store.hpp>

// main() first: it defines CATCH_CONFIG_RUNNER before Catch2 is included anywhere
#include "support/server_main.hpp"

#include <idempotency/testing/conformance.hpp>

#include "exactly_once.hpp"
#include "support/catch.hpp"
#include "topology_support.hpp"

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using idempotency::ClaimStatus;
using idempotency::RedisAddress;
using idempotency::RedisStore;
using idempotency::RedisStoreOptions;
using idempotency::RedisTopology;
using idempotency::RedisUrl;
using idempotency::StoreError;
using topology_test::cluster_nodes;
using topology_test::Raw;

std::string cluster_url() { return topology_test::read_env_file("IDEMPOTENCY_REDIS_CLUSTER_DIR"); }

RedisAddress seed() { return RedisUrl::parse(cluster_url()).nodes.front(); }

std::string unique_prefix(const std::string& what) {
  return "test:" + idempotency::Token::random().to_hex().substr(0, 12) + ":" + what + ":";
}

RedisStoreOptions cluster_options(const std::string& prefix) {
  RedisStoreOptions o;
  o.url = cluster_url();
  o.key_prefix = prefix;
  o.command_timeout = 5s;
  return o;
}

RedisStoreOptions with_acks(RedisStoreOptions o) {
  o.replica_acks = 1; // every master has a replica: WAIT 1 succeeds
  return o;
}

struct ClusterHarness {
  using store_type = RedisStore;
  RedisStore store_{with_acks(cluster_options(unique_prefix("conformance")))};
  RedisStore& store() { return store_; }
  [[nodiscard]] std::chrono::milliseconds unit() const { return 200ms; }
  void advance(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }
};

std::vector<topology_test::Node> masters() {
  std::vector<topology_test::Node> out;
  for (auto& n : cluster_nodes(seed())) {
    if (n.master && !n.slots.empty()) out.push_back(n);
  }
  return out;
}

} // namespace

bool idempotency_test_server_available(std::string& why) {
  if (cluster_url().empty()) {
    why =
        "no Redis Cluster: the fixture (redis_topology.sh cluster) wrote no URL to "
        "IDEMPOTENCY_REDIS_CLUSTER_DIR/url (redis-server missing?)";
    return false;
  }
  return true;
}

IDEMPOTENCY_STORE_CONFORMANCE("RedisStore on a Redis Cluster", ClusterHarness)

TEST_CASE("key_slot agrees with CLUSTER KEYSLOT, hash tags included", "[redis][cluster]") {
  Raw raw(seed());
  std::mt19937_64 rng(42);
  const std::vector<std::string> shapes{"", "{", "}", "{}", "{tag}", "a{b}c", "{{x}}", "}{y}"};
  for (int i = 0; i < 500; ++i) {
    std::string key = "k" + std::to_string(rng());
    key.insert(rng() % key.size(), shapes[rng() % shapes.size()]);
    const auto ours = idempotency::detail::redis::key_slot(key);
    INFO(key);
    CHECK(raw.run({"CLUSTER", "KEYSLOT", key}) == std::to_string(ours));
  }
}

TEST_CASE(
    "RedisStore on a cluster: one execution per key, 8 threads x 2000 keys over all "
    "masters",
    "[redis][cluster][race]") {
  const std::string prefix = unique_prefix("race");
  RedisStore store(cluster_options(prefix));
  CHECK(store.topology() == RedisTopology::cluster);
  std::vector<std::string> errors;
  const auto start = std::chrono::system_clock::now() + 100ms;
  const auto events = idempotency_test::run_exactly_once(store, "race", 2000, 8, start, errors);
  for (const auto& e : errors) FAIL_CHECK(e);
  std::map<std::size_t, int> runs;
  std::map<std::size_t, std::set<std::string>> values;
  for (const auto& e : events) {
    runs[e.key] += e.executed ? 1 : 0;
    values[e.key].insert(e.value);
  }
  REQUIRE(values.size() == 2000);
  for (const auto& [k, n] : runs) {
    INFO("key " << k);
    CHECK(n == 1);
    CHECK(values[k].size() == 1);
  }
  // the keys really spread: every master holds some
  int holding = 0;
  for (const auto& m : masters()) {
    Raw raw(m.address);
    const std::string n =
        raw.run({"EVAL", "return #redis.call('KEYS', ARGV[1])", "0", prefix + "*"});
    if (std::atoi(n.c_str()) > 0) ++holding;
  }
  CHECK(holding == 3);
  CHECK(store.stats().moved == 0); // the slot map was right from the start
}

TEST_CASE("RedisStore follows a slot migrated mid-run: ASK while it moves, MOVED after",
          "[redis][cluster][migration]") {
  // every key of this test carries the hash tag {mig…}: one slot
  const std::string tag = "{mig" + idempotency::Token::random().to_hex().substr(0, 8) + "}";
  RedisStore store(cluster_options("migration:" + tag + ":"));
  const int slot = idempotency::detail::redis::key_slot(store.storage_key("x"));
  const auto ms = masters();
  REQUIRE(ms.size() == 3);
  const topology_test::Node* src = nullptr;
  const topology_test::Node* dst = nullptr;
  for (const auto& m : ms) {
    if (m.serves(slot)) src = &m;
  }
  REQUIRE(src != nullptr);
  for (const auto& m : ms) {
    if (&m != src) dst = &m;
  }
  Raw on_src(src->address);
  Raw on_dst(dst->address);

  // records that exist before the migration: 40 completed
  std::map<std::string, std::string> done;
  for (int i = 0; i < 40; ++i) {
    const std::string k = "before-" + std::to_string(i);
    const auto r = store.claim(k, "fp", 30s);
    REQUIRE(r.acquired());
    REQUIRE(store.complete(k, r.token, "value of " + k, 600s));
    done[k] = "value of " + k;
  }

  // threads keep running operations on keys of the same slot through the whole migration
  std::atomic<bool> stop{false};
  std::vector<std::string> errors;
  std::mutex mutex;
  std::map<std::string, int> executed;
  std::vector<std::thread> workers;
  for (int t = 0; t < 4; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string k = "during-" + std::to_string(i % 150); // 4 threads collide
        try {
          for (int attempt = 0; attempt < 10000; ++attempt) {
            const auto r = store.claim(k, "fp", 30s);
            if (r.acquired()) {
              {
                std::lock_guard lock(mutex);
                ++executed[k];
              }
              if (!store.complete(k, r.token, "v", 600s)) {
                std::lock_guard lock(mutex);
                errors.push_back("complete refused for " + k);
              }
              break;
            }
            if (r.status == ClaimStatus::completed) break;
            std::this_thread::sleep_for(1ms);
          }
        } catch (const std::exception& e) {
          std::lock_guard lock(mutex);
          errors.push_back(std::string("thread ") + std::to_string(t) + ": " + e.what());
        }
      }
    });
  }
  std::this_thread::sleep_for(200ms);

  const std::string s = std::to_string(slot);
  REQUIRE(on_dst.run({"CLUSTER", "SETSLOT", s, "IMPORTING", src->id}) == "OK");
  REQUIRE(on_src.run({"CLUSTER", "SETSLOT", s, "MIGRATING", dst->id}) == "OK");
  // move half of the "before" records now
  std::vector<std::string> first_half{
      "MIGRATE", dst->address.host, std::to_string(dst->address.port), "", "0", "5000", "KEYS"};
  for (int i = 0; i < 20; ++i)
    first_half.push_back(store.storage_key("before-" + std::to_string(i)));
  REQUIRE(on_src.run(first_half) == "OK");
  std::this_thread::sleep_for(300ms); // the workers run into the half-moved slot

  const auto ask0 = store.stats().ask;
  // a moved record: the source has it no more and answers ASK; the replay comes from dst
  const auto moved_record = store.claim("before-3", "fp", 30s);
  CHECK(moved_record.status == ClaimStatus::completed);
  CHECK(moved_record.payload == done["before-3"]);
  CHECK(store.stats().ask > ask0);
  // a record still on the source is served there
  const auto stayed = store.claim("before-33", "fp", 30s);
  CHECK(stayed.status == ClaimStatus::completed);
  CHECK(stayed.payload == done["before-33"]);
  // a new key: ASK to the importing node, acquired and completed there
  const auto fresh = store.claim("new-during", "fp", 30s);
  REQUIRE(fresh.acquired());
  CHECK(store.complete("new-during", fresh.token, "fresh value", 600s));
  CHECK(on_dst.run({"ASKING"}) == "OK"); // the importing node answers only after ASKING
  CHECK(on_dst.run({"EXISTS", store.storage_key("new-during")}) == "1");

  // move the rest, then hand the slot over
  for (;;) {
    Raw scan(src->address);
    std::istringstream keys(scan.run({"CLUSTER", "GETKEYSINSLOT", s, "100"}));
    std::vector<std::string> cmd{
        "MIGRATE", dst->address.host, std::to_string(dst->address.port), "", "0", "5000", "KEYS"};
    std::string k;
    while (std::getline(keys, k)) cmd.push_back(k);
    if (cmd.size() == 7) break;
    REQUIRE(on_src.run(cmd) == "OK");
  }
  for (const auto& m : ms) {
    Raw raw(m.address);
    CHECK(raw.run({"CLUSTER", "SETSLOT", s, "NODE", dst->id}) == "OK");
  }
  std::this_thread::sleep_for(300ms);
  const auto after = store.claim("before-35", "fp", 30s);
  CHECK(after.status == ClaimStatus::completed);
  CHECK(after.payload == done["before-35"]);
  std::this_thread::sleep_for(200ms);
  stop = true;
  for (auto& w : workers) w.join();
  for (const auto& e : errors) FAIL_CHECK(e);
  CHECK(store.stats().moved >= 1);
  INFO("stats: moved " << store.stats().moved << ", ask " << store.stats().ask);
  // exactly once, through the migration
  CHECK(executed.size() == 150);
  for (const auto& [k, n] : executed) {
    INFO(k);
    CHECK(n == 1);
  }
  // every record is whole on its new node
  for (const auto& [k, v] : done) {
    const auto r = store.claim(k, "fp", 30s);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == v);
  }
  CHECK(on_src.run({"CLUSTER", "COUNTKEYSINSLOT", s}) == "0");
}

TEST_CASE("redis+cluster:// with no reachable seed is a StoreError naming every seed",
          "[redis][cluster]") {
  RedisStoreOptions o;
  o.url = "redis+cluster://127.0.0.1:1,127.0.0.1:2";
  o.connect_timeout = 200ms;
  try {
    RedisStore s(o);
    FAIL("constructed");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find("127.0.0.1:1") != std::string::npos);
    CHECK(std::string(e.what()).find("127.0.0.1:2") != std::string::npos);
  }
}
