// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// RedisStore under faults: a fault-injecting proxy in front of a real redis-server (lost and
// late replies, resets, stalls), a real SIGSTOP of the server, and garbage records.
#include <idempotency/stores/redis_store.hpp>

// main() first: it defines CATCH_CONFIG_RUNNER before Catch2 is included anywhere
#include "support/server_main.hpp"

#include "support/catch.hpp"
#include "support/fault_matrix.hpp"
#include "support/fault_proxy.hpp"
#include "support/stopped_server.hpp"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

namespace {

using namespace std::chrono_literals;
using idempotency::ClaimStatus;
using idempotency::RedisEndpoint;
using idempotency::RedisStore;
using idempotency::RedisStoreOptions;
using idempotency::StoreError;
using idempotency::test::FaultProxy;

std::string fixture_url() {
  const char* file = std::getenv("IDEMPOTENCY_REDIS_URL_FILE");
  if (file == nullptr) return {};
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  return url;
}

pid_t fixture_pid() {
  const char* file = std::getenv("IDEMPOTENCY_REDIS_URL_FILE");
  if (file == nullptr) return 0;
  return idempotency::test::read_pid_file(
      (std::filesystem::path(file).parent_path() / "redis.pid").string());
}

std::string unique_prefix(const std::string& what) {
  return "faults:" + idempotency::Token::random().to_hex().substr(0, 12) + ":" + what + ":";
}

struct RedisFaultHarness {
  RedisEndpoint ep = RedisEndpoint::parse(fixture_url());
  std::string prefix = unique_prefix("matrix");
  FaultProxy proxy_{ep.host, ep.port};
  RedisStore proxied_{RedisStoreOptions{.url = "redis://127.0.0.1:" + std::to_string(proxy_.port()),
                                        .key_prefix = prefix,
                                        .command_timeout = timeout(),
                                        .pool_size = 1}};
  RedisStore truth_{RedisStoreOptions{.url = fixture_url(), .key_prefix = prefix}};

  RedisStore& proxied() { return proxied_; }
  RedisStore& truth() { return truth_; }
  FaultProxy& proxy() { return proxy_; }
  static std::chrono::milliseconds timeout() { return 300ms; }
  void warm() {
    const auto c = proxied_.claim("warm", "", 1s);
    if (c.acquired()) (void)proxied_.release("warm", c.token);
  }
};

} // namespace

bool idempotency_test_server_available(std::string& why) {
  const std::string url = fixture_url();
  if (url.empty()) {
    why = "no Redis server: the fixture wrote no URL to IDEMPOTENCY_REDIS_URL_FILE";
    return false;
  }
  try {
    RedisStore probe{url};
  } catch (const StoreError& e) {
    why = std::string("the Redis server at ") + url + " is not usable: " + e.what();
    return false;
  }
  return true;
}

TEST_CASE("RedisStore fault matrix: every operation x lost/late reply, reset, stall",
          "[redis][faults]") {
  RedisFaultHarness h;
  SECTION("the fault takes one request: the store's own resend gets through") {
    idempotency::test::run_store_fault_matrix(h, "ops1/", 1);
  }
  SECTION("the fault takes two requests: the caller's resend must find the effect") {
    idempotency::test::run_store_fault_matrix(h, "ops2/", 2);
  }
}

TEST_CASE("RedisStore: a fault on the complete never loses a recorded result (executor)",
          "[redis][faults]") {
  RedisFaultHarness h;
  SECTION("one request") { idempotency::test::run_executor_fault_matrix(h, "x1/", 1); }
  SECTION("two requests") { idempotency::test::run_executor_fault_matrix(h, "x2/", 2); }
}

TEST_CASE("RedisStore: a SIGSTOPped server gives StoreError within the command timeout",
          "[redis][faults][sigstop]") {
  const pid_t pid = fixture_pid();
  REQUIRE(pid > 0);
  const std::string prefix = unique_prefix("sigstop");
  RedisStore truth{RedisStoreOptions{.url = fixture_url(), .key_prefix = prefix}};
  RedisStore store{RedisStoreOptions{
      .url = fixture_url(), .key_prefix = prefix, .command_timeout = 400ms, .pool_size = 2}};
  const auto timed = [](auto&& f) { return idempotency::test::timed_store_call(f); };

  SECTION("during claim") {
    auto [error, took] = [&] {
      idempotency::test::StoppedServer stopped(pid, false);
      return timed([&] { (void)store.claim("k-claim", "fp", 10s); });
    }();
    CHECK(error);
    CHECK(took < 400ms + 1500ms);
    // after SIGCONT the store serves again (the broken connection was dropped)
    const auto r = store.claim("k-claim-2", "fp", 10s);
    CHECK(r.acquired());
  }

  SECTION("during complete: the resend after SIGCONT is acknowledged, the result recorded") {
    const auto c = store.claim("k-complete", "fp", 10s);
    REQUIRE(c.acquired());
    auto [error, took] = [&] {
      idempotency::test::StoppedServer stopped(pid, false);
      return timed([&] { (void)store.complete("k-complete", c.token, "receipt", 1h); });
    }();
    CHECK(error);
    CHECK(took < 400ms + 1500ms);
    // the first complete may land when the server resumes; either way the resend says true
    CHECK(store.complete("k-complete", c.token, "receipt", 1h));
    const auto r = truth.claim("k-complete", "fp", 10s);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "receipt");
  }
}

TEST_CASE("RedisStore: an in-progress record without an expiry is corrupt, not in progress forever",
          "[redis][faults]") {
  const std::string prefix = unique_prefix("garbage");
  RedisStore store{RedisStoreOptions{.url = fixture_url(), .key_prefix = prefix}};
  const auto c = store.claim("forever", "fp", 10s);
  REQUIRE(c.acquired());
  // what a hand edit or a foreign writer leaves: a far-future deadline and no expiry
  const RedisEndpoint ep = RedisEndpoint::parse(fixture_url());
  timeval tv{2, 0};
  idempotency::detail::redis::ContextPtr raw(redisConnectWithTimeout(ep.host.c_str(), ep.port, tv));
  REQUIRE(raw);
  REQUIRE(raw->err == 0);
  const std::string k = store.storage_key("forever");
  idempotency::detail::redis::ReplyPtr r1(static_cast<redisReply*>(
      redisCommand(raw.get(), "HSET %b d 99999999999999", k.data(), k.size())));
  idempotency::detail::redis::ReplyPtr r2(
      static_cast<redisReply*>(redisCommand(raw.get(), "PERSIST %b", k.data(), k.size())));
  REQUIRE(r2);
  REQUIRE(r2->integer == 1);
  CHECK_THROWS_AS(store.claim("forever", "fp", 10s), idempotency::CorruptRecordError);
}
