// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// RedisStore over TLS and over a Unix socket. The fixture (redis_topology.sh tls) starts a
// redis-server that listens on a TLS port and a Unix socket only (no plain TCP port), with a
// certificate made at test time by openssl, and stunnel as the client-side sidecar that
// verifies that certificate (Debian 12's hiredis 0.14 has no TLS of its own). The conformance
// suite runs over each path.
#include <idempotency/stores/redis_store.hpp>

// main() first: it defines CATCH_CONFIG_RUNNER before Catch2 is included anywhere
#include "support/server_main.hpp"

#include <idempotency/testing/conformance.hpp>

#include "support/catch.hpp"
#include "topology_support.hpp"

#include <chrono>
#include <string>
#include <thread>

namespace {

using namespace std::chrono_literals;
using idempotency::RedisStore;
using idempotency::RedisStoreOptions;
using idempotency::RedisUrl;

std::string tls_url() { return topology_test::read_env_file("IDEMPOTENCY_REDIS_TLS_DIR"); }
std::string unix_url() {
  return topology_test::read_env_file("IDEMPOTENCY_REDIS_TLS_DIR", "unix_url");
}

RedisStoreOptions options_for(const std::string& url) {
  RedisStoreOptions o;
  o.url = url;
  o.key_prefix = "test:" + idempotency::Token::random().to_hex().substr(0, 12) + ":";
  return o;
}

struct TlsHarness {
  using store_type = RedisStore;
  RedisStore store_{options_for(tls_url())};
  RedisStore& store() { return store_; }
  [[nodiscard]] std::chrono::milliseconds unit() const { return 200ms; }
  void advance(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }
};

struct UnixHarness {
  using store_type = RedisStore;
  RedisStore store_{options_for(unix_url())};
  RedisStore& store() { return store_; }
  [[nodiscard]] std::chrono::milliseconds unit() const { return 200ms; }
  void advance(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }
};

} // namespace

bool idempotency_test_server_available(std::string& why) {
  if (tls_url().empty() || unix_url().empty()) {
    why =
        "no TLS sidecar: the fixture (redis_topology.sh tls) wrote no URL to "
        "IDEMPOTENCY_REDIS_TLS_DIR (redis-server, stunnel4 or openssl missing?)";
    return false;
  }
  return true;
}

IDEMPOTENCY_STORE_CONFORMANCE("RedisStore over TLS (stunnel sidecar)", TlsHarness)
IDEMPOTENCY_STORE_CONFORMANCE("RedisStore over a Unix socket", UnixHarness)

TEST_CASE("the TLS server speaks TLS only, and both paths reach the same server",
          "[redis][tls][unix]") {
  // the server's only TCP port is the TLS one: a plain client gets no PING answer
  const char* dir = std::getenv("IDEMPOTENCY_REDIS_TLS_DIR");
  REQUIRE(dir != nullptr);
  std::ifstream in(std::string(dir) + "/tls.port");
  int tls_port = 0;
  in >> tls_port;
  REQUIRE(tls_port > 0);
  topology_test::Raw plain({"127.0.0.1", tls_port, ""});
  CHECK(plain.run({"PING"}) != "PONG");
  // a record written over TLS is read over the socket
  RedisStore over_tls(options_for(tls_url()));
  RedisStoreOptions o = options_for(unix_url());
  o.key_prefix = over_tls.options().key_prefix;
  RedisStore over_unix(o);
  const auto r = over_tls.claim("shared", "fp", 10s);
  REQUIRE(r.acquired());
  REQUIRE(over_tls.complete("shared", r.token, "via tls", 60s));
  const auto replay = over_unix.claim("shared", "fp", 10s);
  CHECK(replay.status == idempotency::ClaimStatus::completed);
  CHECK(replay.payload == "via tls");
  CHECK(RedisUrl::parse(unix_url()).nodes.front().unix_path.size() > 0);
}
