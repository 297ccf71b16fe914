// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// Failover under load, for real: 8 threads run operations through the executor on a
// RedisStore while the test SIGKILLs a Redis Cluster master (its replica is promoted) or the
// primary Sentinel watches (the sentinels promote the replica). Checked after each fault:
//  - every call ended with a value or a typed idempotency::Error, within the bound the
//    options give;
//  - with replica_acks = 1, no key whose result a caller was given runs again (checked by
//    executing every such key again through a fresh store and counting executions);
//  - with replica_acks = 0, how many given results were lost is counted and printed (a
//    figure for the README, not a pass/fail);
//  - the store follows the new master / primary.
// The fixtures (redis_topology.sh cluster / sentinel) start the servers and stop them.
#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/stores/redis_store.hpp>

// main() first: it defines CATCH_CONFIG_RUNNER before Catch2 is included anywhere
#include "support/server_main.hpp"

#include "support/catch.hpp"
#include "topology_support.hpp"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using idempotency::RedisAddress;
using idempotency::RedisStore;
using idempotency::RedisStoreOptions;
using idempotency::RedisUrl;

std::string cluster_url() { return topology_test::read_env_file("IDEMPOTENCY_REDIS_CLUSTER_DIR"); }
std::string sentinel_url() {
  return topology_test::read_env_file("IDEMPOTENCY_REDIS_SENTINEL_DIR");
}

RedisStoreOptions options(const std::string& url, const std::string& prefix, std::size_t acks) {
  RedisStoreOptions o;
  o.url = url;
  o.key_prefix = prefix;
  o.connect_timeout = 500ms;
  o.command_timeout = 2s;
  o.replica_acks = acks;
  o.replica_ack_timeout = 500ms;
  return o;
}

idempotency::Options executor_options() {
  idempotency::Options o;
  o.result_ttl = 1h;
  o.lease = 30s;
  return o;
}

// What a store call may take (RedisStoreOptions::command_timeout's contract), and so an
// executor call: a claim, the operation, and the completion with its retries.
Clock::duration call_bound(const RedisStoreOptions& o) {
  const auto store_call = o.connect_timeout + 2 * o.command_timeout;
  const idempotency::CompletionRetry r{};
  return store_call * (1 + r.max_attempts) + r.max_backoff * r.max_attempts + 1s;
}

struct Run {
  std::vector<std::string> given;        // keys whose result a caller got
  std::size_t typed_errors = 0;          // calls that ended in an idempotency::Error
  std::vector<std::string> other_errors; // anything else (must stay empty)
  Clock::duration longest{};
  std::map<std::string, int> executions;
};

// 8 threads, each on its own keys, until `stop`; `fault` runs on this thread meanwhile.
Run run_under_fault(RedisStore& store, const std::string& tag, const std::function<void()>& fault) {
  idempotency::IdempotencyExecutor exec{store, executor_options()};
  Run run;
  std::mutex mutex;
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        const std::string key = tag + "-t" + std::to_string(t) + "-" + std::to_string(i);
        const auto start = Clock::now();
        try {
          const std::string v = exec.execute(key, [&] {
            std::lock_guard lock(mutex);
            ++run.executions[key];
            return std::string("value of ") + key;
          });
          std::lock_guard lock(mutex);
          if (v == "value of " + key)
            run.given.push_back(key);
          else
            run.other_errors.push_back("wrong value for " + key + ": " + v);
        } catch (const idempotency::Error&) {
          std::lock_guard lock(mutex);
          ++run.typed_errors;
        } catch (const std::exception& e) {
          std::lock_guard lock(mutex);
          run.other_errors.push_back(key + ": untyped " + e.what());
        }
        const auto took = Clock::now() - start;
        std::lock_guard lock(mutex);
        run.longest = std::max(run.longest, took);
      }
    });
  }
  fault();
  stop = true;
  for (auto& th : threads) th.join();
  return run;
}

// Every key a caller was given a result for, executed again through a fresh store without
// replica acks (so a lost record would run): how many ran.
std::size_t reruns(const std::string& url, const std::string& prefix, const Run& run) {
  RedisStore store(options(url, prefix, 0));
  idempotency::IdempotencyExecutor exec{store, executor_options()};
  std::size_t ran = 0;
  for (const auto& key : run.given) {
    const std::string v = exec.execute(key, [&] {
      ++ran;
      return std::string("value of ") + key;
    });
    CHECK(v == "value of " + key);
  }
  return ran;
}

bool wait_until(const std::function<bool()>& ok, Clock::duration limit) {
  const auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (ok()) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

// SIGKILLs the master that serves `slot`, then waits until its replica serves the slot.
// Returns what went wrong ("" if nothing); it runs beside the load threads, so no REQUIRE.
std::string kill_cluster_master(int slot) {
  std::vector<topology_test::Node> nodes; // from a seed that is still alive
  for (const auto& a : RedisUrl::parse(cluster_url()).nodes) {
    nodes = topology_test::cluster_nodes(a);
    if (!nodes.empty()) break;
  }
  std::vector<RedisAddress> all;
  topology_test::Node victim;
  for (const auto& n : nodes) {
    all.push_back(n.address);
    if (n.master && n.serves(slot)) victim = n;
  }
  if (victim.id.empty()) return "no master serves slot " + std::to_string(slot);
  const pid_t pid = topology_test::pid_of("IDEMPOTENCY_REDIS_CLUSTER_DIR", victim.address.port);
  if (pid <= 0 || ::kill(pid, SIGKILL) != 0) return "cannot SIGKILL " + victim.address.str();
  std::printf("SIGKILLed cluster master %s (pid %d)\n", victim.address.str().c_str(), pid);
  const bool promoted = wait_until(
      [&] {
        for (const auto& a : all) { // the first node that answers (earlier victims do not)
          if (a == victim.address) continue;
          const auto seen = topology_test::cluster_nodes(a);
          if (seen.empty()) continue;
          for (const auto& n : seen) {
            if (n.master && !n.failed && n.serves(slot) && n.id != victim.id) return true;
          }
          return false;
        }
        return false;
      },
      30s);
  return promoted ? "" : "no replica was promoted within 30 s";
}

} // namespace

bool idempotency_test_server_available(std::string& why) {
  const char* cluster = std::getenv("IDEMPOTENCY_REDIS_CLUSTER_DIR");
  const char* sentinel = std::getenv("IDEMPOTENCY_REDIS_SENTINEL_DIR");
  if ((cluster != nullptr && cluster_url().empty()) ||
      (sentinel != nullptr && sentinel_url().empty()) ||
      (cluster == nullptr && sentinel == nullptr)) {
    why =
        "no Redis Cluster / Sentinel: the fixture (redis_topology.sh) wrote no URL "
        "(redis-server missing?)";
    return false;
  }
  return true;
}

TEST_CASE(
    "cluster failover under load: replica_acks = 1 loses no given result; "
    "replica_acks = 0 is measured",
    "[redis][cluster][failover]") {
  if (cluster_url().empty()) return;
  const std::string prefix = "failover:" + idempotency::Token::random().to_hex().substr(0, 8) + ":";
  const auto report = [](const char* what, const Run& run, std::size_t lost) {
    std::printf(
        "%s: %zu results given, %zu typed errors, longest call %.2f s, %zu of the given "
        "results lost (their key ran again)\n",
        what, run.given.size(), run.typed_errors,
        std::chrono::duration<double>(run.longest).count(), lost);
  };
  // the victim: the master of the slot of the first thread's first key
  const auto slot_of = [&](const std::string& tag) {
    return static_cast<int>(idempotency::detail::redis::key_slot(prefix + tag + "-t0-0"));
  };
  {
    RedisStore store(options(cluster_url(), prefix, 1));
    std::string fault;
    const Run run = run_under_fault(store, "acks1", [&] {
      std::this_thread::sleep_for(1s);
      fault = kill_cluster_master(slot_of("acks1"));
      std::this_thread::sleep_for(1s);
    });
    INFO(fault);
    REQUIRE(fault.empty());
    for (const auto& e : run.other_errors) FAIL_CHECK(e);
    CHECK(run.longest <= call_bound(store.options()));
    CHECK(run.given.size() > 100);
    const std::size_t lost = reruns(cluster_url(), prefix, run);
    report("cluster, replica_acks=1", run, lost);
    CHECK(lost == 0);
    CHECK(store.stats().moved + store.stats().retries > 0); // it did see the failover
  }
  {
    RedisStore store(options(cluster_url(), prefix, 0));
    // a shard that still has a replica (the first run's shard has none left)
    std::vector<topology_test::Node> nodes; // from a seed that is still alive
    for (const auto& a : RedisUrl::parse(cluster_url()).nodes) {
      nodes = topology_test::cluster_nodes(a);
      if (!nodes.empty()) break;
    }
    const auto has_replica = [&](int slot) {
      for (const auto& m : nodes) {
        if (!m.master || m.failed || !m.serves(slot)) continue;
        for (const auto& r : nodes) {
          if (!r.master && !r.failed && r.master_id == m.id) return true;
        }
      }
      return false;
    };
    std::string other = "acks0";
    for (int i = 0; !has_replica(slot_of(other)); ++i) {
      REQUIRE(i < 100000);
      other = "acks0-" + std::to_string(i);
    }
    std::string fault;
    const Run run = run_under_fault(store, other, [&] {
      std::this_thread::sleep_for(1s);
      fault = kill_cluster_master(slot_of(other));
      std::this_thread::sleep_for(1s);
    });
    INFO(fault);
    REQUIRE(fault.empty());
    for (const auto& e : run.other_errors) FAIL_CHECK(e);
    CHECK(run.longest <= call_bound(store.options()));
    const std::size_t lost = reruns(cluster_url(), prefix, run);
    report("cluster, replica_acks=0", run, lost);
    // the store works on the new master: a fresh key on the failed-over slot runs and replays
    idempotency::IdempotencyExecutor exec{store, executor_options()};
    int ran = 0;
    const std::string k = other + "-t0-0-after";
    for (int i = 0; i < 2; ++i) (void)exec.execute(k, [&] { return ++ran; });
    CHECK(ran == 1);
  }
}

TEST_CASE(
    "Sentinel failover under load: the store follows the new primary; replica_acks = 1 "
    "loses no given result",
    "[redis][sentinel][failover]") {
  if (sentinel_url().empty()) return;
  const std::string prefix = "sentinel:" + idempotency::Token::random().to_hex().substr(0, 8) + ":";
  RedisStore store(options(sentinel_url(), prefix, 1));
  const std::string before = store.current_primary();
  int primary_port = 0;
  {
    const char* dir = std::getenv("IDEMPOTENCY_REDIS_SENTINEL_DIR");
    std::ifstream in(std::string(dir) + "/primary.port");
    in >> primary_port;
  }
  REQUIRE(before == "127.0.0.1:" + std::to_string(primary_port));
  bool killed = false;
  bool moved_on = false;
  const Run run = run_under_fault(store, "acks1", [&] {
    std::this_thread::sleep_for(1s);
    const pid_t pid = topology_test::pid_of("IDEMPOTENCY_REDIS_SENTINEL_DIR", primary_port);
    killed = pid > 0 && ::kill(pid, SIGKILL) == 0;
    if (!killed) return;
    std::printf("SIGKILLed the primary 127.0.0.1:%d (pid %d)\n", primary_port, pid);
    // the sentinels promote the replica; the store finds it on its next failing call
    moved_on = wait_until([&] { return store.current_primary() != before; }, 30s);
    std::this_thread::sleep_for(1s);
  });
  REQUIRE(killed);
  CHECK(moved_on);
  for (const auto& e : run.other_errors) FAIL_CHECK(e);
  CHECK(run.longest <= call_bound(store.options()));
  CHECK(store.current_primary() != before);
  // the new primary has no replica left: with replica_acks = 1 every write now fails, typed
  CHECK_THROWS_AS((void)store.claim("after-failover", "fp", 10s), idempotency::ReplicaAckError);
  const std::size_t lost = reruns(sentinel_url(), prefix, run);
  std::printf(
      "sentinel, replica_acks=1: %zu results given, %zu typed errors, longest call "
      "%.2f s, %zu lost\n",
      run.given.size(), run.typed_errors, std::chrono::duration<double>(run.longest).count(), lost);
  CHECK(lost == 0);
  CHECK(run.given.size() > 100);
}
