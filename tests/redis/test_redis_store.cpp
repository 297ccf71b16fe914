// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// RedisStore against a real redis-server on 127.0.0.1 (started by the ctest fixture
// redis_server.sh; some tests start their own server on another free port).
#include <idempotency/stores/redis_store.hpp>

// main() first: it defines CATCH_CONFIG_RUNNER before Catch2 is included anywhere
#include "support/server_main.hpp"

#include <idempotency/testing/conformance.hpp>

#include "exactly_once.hpp"
#include "support/catch.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if __has_include(<idempotency/executor.hpp>) && !defined(IDEMPOTENCY_TEST_NO_EXECUTOR)
#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#define IDEMPOTENCY_TEST_HAVE_EXECUTOR 1
#endif

extern char** environ;

namespace {

using namespace std::chrono_literals;
using idempotency::ClaimStatus;
using idempotency::RedisEndpoint;
using idempotency::RedisStore;
using idempotency::RedisStoreOptions;
using idempotency::StoreError;

std::string fixture_url() {
  if (const char* url = std::getenv("IDEMPOTENCY_REDIS_URL"); url != nullptr && *url != '\0') {
    return url;
  }
  const char* file = std::getenv("IDEMPOTENCY_REDIS_URL_FILE");
  if (file == nullptr) return {};
  std::ifstream in(file);
  std::string url;
  std::getline(in, url);
  return url;
}

std::string unique_prefix(const std::string& what) {
  return "test:" + idempotency::Token::random().to_hex().substr(0, 12) + ":" + what + ":";
}

RedisStoreOptions options_with(const std::string& url, const std::string& prefix) {
  RedisStoreOptions o;
  o.url = url;
  o.key_prefix = prefix;
  return o;
}

std::filesystem::path scratch_dir() {
  const char* s = std::getenv("IDEMPOTENCY_REDIS_SCRATCH");
  std::filesystem::path p = s != nullptr ? s : std::filesystem::temp_directory_path();
  p /= "run-" + idempotency::Token::random().to_hex().substr(0, 10);
  std::filesystem::create_directories(p);
  return p;
}

/// A plain hiredis connection for the test's own commands (INFO, SCRIPT FLUSH, CONFIG, ...).
class RawRedis {
 public:
  explicit RawRedis(const std::string& url) {
    const RedisEndpoint ep = RedisEndpoint::parse(url);
    timeval tv{2, 0};
    c_.reset(redisConnectWithTimeout(ep.host.c_str(), ep.port, tv));
    if (c_ && c_->err == 0) (void)redisSetTimeout(c_.get(), tv);
  }
  [[nodiscard]] bool ok() const { return c_ && c_->err == 0; }
  [[nodiscard]] std::string error() const { return c_ ? c_->errstr : "no context"; }

  /// The reply as text: status/string/error text, an integer in decimal; "" on I/O failure.
  std::string run(const std::vector<std::string>& args) {
    if (!ok()) return {};
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    void* raw = redisCommandArgv(c_.get(), static_cast<int>(argv.size()), argv.data(), lens.data());
    if (raw == nullptr) return {};
    const idempotency::detail::redis::ReplyPtr r(static_cast<redisReply*>(raw));
    if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
    if (r->type == REDIS_REPLY_ARRAY) {
      std::string joined;
      for (std::size_t i = 0; i < r->elements; ++i) {
        joined += std::string(idempotency::detail::redis::text(r->element[i])) + "\n";
      }
      return joined;
    }
    return std::string(idempotency::detail::redis::text(r.get()));
  }

  /// `calls` of one command in INFO commandstats (e.g. "evalsha").
  long long calls(const std::string& command) {
    const std::string info = run({"INFO", "commandstats"});
    const std::string tag = "cmdstat_" + command + ":calls=";
    const auto at = info.find(tag);
    if (at == std::string::npos) return 0;
    return std::stoll(info.substr(at + tag.size()));
  }

  /// Sum of `calls` in INFO commandstats over every command but EVAL/EVALSHA and INFO: the
  /// commands the stores' Lua scripts ran inside Redis (this connection sends only INFO).
  long long scripted_calls() {
    const std::string info = run({"INFO", "commandstats"});
    std::istringstream lines(info);
    std::string line;
    long long total = 0;
    while (std::getline(lines, line)) {
      if (line.rfind("cmdstat_", 0) != 0) continue;
      const auto colon = line.find(':');
      const std::string name = line.substr(8, colon - 8);
      if (name == "eval" || name == "evalsha" || name == "info") continue;
      const auto at = line.find("calls=");
      if (colon == std::string::npos || at == std::string::npos) continue;
      total += std::stoll(line.substr(at + 6));
    }
    return total;
  }

 private:
  idempotency::detail::redis::ContextPtr c_;
};

bool ping(const std::string& url) {
  RawRedis r(url);
  return r.ok() && r.run({"PING"}) == "PONG";
}

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  // sockaddr_in -> sockaddr is how the BSD socket API is called
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

pid_t spawn(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (::posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

/// A redis-server of the test's own, on a free port, in a scratch dir: appendonly yes,
/// appendfsync always, so a SIGKILL loses nothing that was acknowledged.
class LocalRedis {
 public:
  explicit LocalRedis(std::vector<std::string> extra = {})
      : dir_(scratch_dir()), port_(free_port()), extra_(std::move(extra)) {
    start();
  }
  ~LocalRedis() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  LocalRedis(const LocalRedis&) = delete;
  LocalRedis& operator=(const LocalRedis&) = delete;

  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] bool running() const { return pid_ > 0; }

  void start() {
    std::vector<std::string> args = {"redis-server",
                                     "--bind",
                                     "127.0.0.1",
                                     "--port",
                                     std::to_string(port_),
                                     "--dir",
                                     dir_.string(),
                                     "--appendonly",
                                     "yes",
                                     "--appendfsync",
                                     "always",
                                     "--save",
                                     "",
                                     "--daemonize",
                                     "no",
                                     "--logfile",
                                     (dir_ / "redis.log").string()};
    args.insert(args.end(), extra_.begin(), extra_.end());
    pid_ = spawn(args);
    if (pid_ <= 0) return;
    for (int i = 0; i < 200; ++i) {
      if (ping(url())) return;
      std::this_thread::sleep_for(25ms);
    }
    kill9();
  }

  void kill9() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  std::filesystem::path dir_;
  int port_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
};

bool have_redis_server() { return std::system("command -v redis-server >/dev/null 2>&1") == 0; }

struct RedisHarness {
  using store_type = RedisStore;
  RedisStore store_{options_with(fixture_url(), unique_prefix("conformance"))};
  RedisStore& store() { return store_; }
  // Redis's clock: the suite sleeps. 200 ms keeps a few round trips well under one unit
  // even under ThreadSanitizer on a loaded 2-core machine.
  [[nodiscard]] std::chrono::milliseconds unit() const { return 200ms; }
  void advance(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }
};

} // namespace

bool idempotency_test_server_available(std::string& why) {
  const std::string url = fixture_url();
  if (url.empty()) {
    why =
        "no Redis server: redis-server is not installed (the fixture wrote no URL to "
        "IDEMPOTENCY_REDIS_URL_FILE) and IDEMPOTENCY_REDIS_URL is not set";
    return false;
  }
  if (!ping(url)) {
    why = "the Redis server at " + url + " does not answer PING";
    return false;
  }
  return true;
}

IDEMPOTENCY_STORE_CONFORMANCE("RedisStore", RedisHarness)

TEST_CASE("RedisEndpoint parses redis:// URLs", "[redis][url]") {
  const RedisEndpoint a = RedisEndpoint::parse("redis://10.1.2.3:6380");
  CHECK(a.host == "10.1.2.3");
  CHECK(a.port == 6380);
  CHECK(a.password.empty());
  CHECK(a.db == 0);
  const RedisEndpoint b = RedisEndpoint::parse("redis://:s3cret@cache.local:7000/5");
  CHECK(b.host == "cache.local");
  CHECK(b.port == 7000);
  CHECK(b.user.empty());
  CHECK(b.password == "s3cret");
  CHECK(b.db == 5);
  const RedisEndpoint c = RedisEndpoint::parse("redis://app:pw@localhost");
  CHECK(c.user == "app");
  CHECK(c.password == "pw");
  CHECK(c.port == 6379);
  for (const char* bad : {"http://x:1", "redis://", "redis://h:0", "redis://h:70000",
                          "redis://h:12x", "redis://h:1/db", "redis://pw@h:1", "redis://[::1]:1"}) {
    INFO(bad);
    CHECK_THROWS_AS(RedisEndpoint::parse(bad), StoreError);
  }
  try {
    (void)RedisEndpoint::parse("redis://:topsecret@h:99999");
    FAIL("no throw");
  } catch (const StoreError& e) {
    CHECK(e.operation() == "parse url");
    CHECK(std::string(e.what()).find("topsecret") == std::string::npos);
  }
}

TEST_CASE("RedisUrl parses unix://, redis+cluster:// and redis+sentinel:// URLs", "[redis][url]") {
  using idempotency::RedisTopology;
  using idempotency::RedisUrl;
  const RedisUrl u = RedisUrl::parse("unix:///run/redis/redis.sock");
  CHECK(u.topology == RedisTopology::single);
  REQUIRE(u.nodes.size() == 1);
  CHECK(u.nodes[0].unix_path == "/run/redis/redis.sock");
  const RedisUrl u2 = RedisUrl::parse("unix://:pw@/tmp/r.sock?db=3");
  CHECK(u2.password == "pw");
  CHECK(u2.db == 3);
  CHECK(u2.nodes[0].unix_path == "/tmp/r.sock");
  const RedisUrl c = RedisUrl::parse("redis+cluster://app:pw@10.0.0.1:7000,10.0.0.2:7001");
  CHECK(c.topology == RedisTopology::cluster);
  REQUIRE(c.nodes.size() == 2);
  CHECK(c.nodes[1].host == "10.0.0.2");
  CHECK(c.nodes[1].port == 7001);
  CHECK(c.user == "app");
  const RedisUrl s = RedisUrl::parse("redis+sentinel://s1,s2:26380/mymaster/4");
  CHECK(s.topology == RedisTopology::sentinel);
  REQUIRE(s.nodes.size() == 2);
  CHECK(s.nodes[0].port == 26379);
  CHECK(s.nodes[1].port == 26380);
  CHECK(s.master_name == "mymaster");
  CHECK(s.db == 4);
  for (const char* bad : {"unix://relative.sock", "unix:///x.sock?foo=1", "redis+cluster://h:1/2",
                          "redis+sentinel://h:1", "redis+sentinel://h:1/", "redis://a:1,b:2",
                          "redis+cluster://", "redis+cluster://h:1,,h:2"}) {
    INFO(bad);
    CHECK_THROWS_AS(RedisUrl::parse(bad), StoreError);
  }
  try {
    (void)RedisUrl::parse("rediss://:pw@h:6380");
    FAIL("no throw");
  } catch (const StoreError& e) {
    CHECK(std::string(e.what()).find("stunnel") != std::string::npos);
  }
}

TEST_CASE("RedisStoreOptions are validated: a typed error, no store", "[redis][options]") {
  RedisStoreOptions o = options_with(fixture_url(), unique_prefix("options"));
  o.replica_acks = 1;
  o.replica_ack_timeout = o.command_timeout; // would outlast the reply's timeout
  CHECK_THROWS_AS(RedisStore(o), idempotency::InvalidOptionsError);
  o.replica_ack_timeout = 0ms;
  CHECK_THROWS_AS(RedisStore(o), idempotency::InvalidOptionsError);
  o = options_with(fixture_url(), unique_prefix("options"));
  o.command_timeout = 0ms;
  CHECK_THROWS_AS(RedisStore(o), idempotency::InvalidOptionsError);
}

TEST_CASE("replica_acks on a server without replicas: ReplicaAckError, the claim is given back",
          "[redis][replica_acks]") {
  RedisStoreOptions o = options_with(fixture_url(), unique_prefix("acks"));
  o.replica_acks = 1;
  o.replica_ack_timeout = 100ms;
  RedisStore store(o);
  RawRedis raw(fixture_url());
  try {
    (void)store.claim("k", "fp", 10s);
    FAIL("no throw");
  } catch (const idempotency::ReplicaAckError& e) {
    CHECK(e.acknowledged() == 0);
    CHECK(e.required() == 1);
    CHECK(e.code() == idempotency::errc::store_failure);
  }
  CHECK(raw.run({"EXISTS", store.storage_key("k")}) == "0"); // released: a retry may claim
  CHECK(store.stats().replica_ack_shortfalls == 1);
  // a replay never waits: a record finished by a store without acks is served at once
  RedisStoreOptions plain = o;
  plain.replica_acks = 0;
  RedisStore writer(plain);
  const auto c = writer.claim("done", "fp", 10s);
  REQUIRE(c.acquired());
  REQUIRE(writer.complete("done", c.token, "v", 60s));
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = store.claim("done", "fp", 10s);
  CHECK(r.status == ClaimStatus::completed);
  CHECK(std::chrono::steady_clock::now() - t0 < 100ms);
  // complete: applied on the server, reported as not acknowledged; a resend is the same
  const auto d = writer.claim("late", "fp", 10s);
  REQUIRE(d.acquired());
  CHECK_THROWS_AS(store.complete("late", d.token, "v", 60s), idempotency::ReplicaAckError);
  CHECK_THROWS_AS(store.complete("late", d.token, "v", 60s), idempotency::ReplicaAckError);
  CHECK(raw.run({"HGET", store.storage_key("late"), "s"}) == "c");
}

TEST_CASE("an unreachable server is a typed StoreError naming the operation", "[redis]") {
  RedisStoreOptions o;
  o.url = "redis://127.0.0.1:" + std::to_string(free_port());
  o.connect_timeout = 500ms;
  try {
    RedisStore store(o);
    FAIL("constructed a store without a server");
  } catch (const StoreError& e) {
    CHECK(e.code() == idempotency::errc::store_failure);
    CHECK(e.store() == "redis");
    CHECK(e.operation() == "connect");
    CHECK(e.cause().find("Connection refused") != std::string::npos);
  }
}

TEST_CASE("keys live under the prefix, binary-safe, and prefixes keep stores apart", "[redis]") {
  const std::string url = fixture_url();
  const std::string prefix = unique_prefix("prefix") + std::string("\0\xff", 2);
  RedisStore a(options_with(url, prefix + "a:"));
  RedisStore b(options_with(url, prefix + "b:"));
  const std::string key = std::string("k\0\r\n ey", 7);
  const auto ca = a.claim(key, std::string("\0fp", 3), 5s);
  REQUIRE(ca.acquired());
  CHECK(b.claim(key, "", 5s).acquired()); // same key, other prefix: independent
  const std::string payload("\0\x01\xfe\xff payload\r\n", 14);
  REQUIRE(a.complete(key, ca.token, payload, 5s));
  const auto replay = a.claim(key, "", 5s);
  CHECK(replay.status == ClaimStatus::completed);
  CHECK(replay.payload == payload);
  CHECK(replay.fingerprint == std::string("\0fp", 3));
  RawRedis raw(url);
  CHECK(raw.run({"EXISTS", a.storage_key(key)}) == "1");
  CHECK(raw.run({"TYPE", prefix + "a:" + key}) == "hash");
  // a key's record outlives its lease by holder_grace, and a finished one lives its TTL
  const long long pttl = std::stoll(raw.run({"PTTL", a.storage_key(key)}));
  CHECK(pttl > 0);
  CHECK(pttl <= 5000);
  const long long inflight = std::stoll(raw.run({"PTTL", b.storage_key(key)}));
  CHECK(inflight > 5000); // lease 5 s + grace 1 h
}

TEST_CASE("a record that is not ours is reported, never overwritten", "[redis]") {
  const std::string url = fixture_url();
  RedisStore store(options_with(url, unique_prefix("corrupt")));
  RawRedis raw(url);
  raw.run({"SET", store.storage_key("string"), "x"});
  CHECK_THROWS_AS(store.claim("string", "fp", 5s), StoreError); // WRONGTYPE from Redis
  raw.run({"HSET", store.storage_key("hash"), "s", "z"});
  CHECK_THROWS_AS(store.claim("hash", "fp", 5s), idempotency::CorruptRecordError);
  raw.run({"HSET", store.storage_key("foreign"), "name", "someone else's"});
  CHECK_THROWS_AS(store.claim("foreign", "fp", 5s), idempotency::CorruptRecordError);
  CHECK(raw.run({"HGET", store.storage_key("foreign"), "name"}) == "someone else's");
  try {
    (void)store.claim("string", "fp", 5s);
  } catch (const StoreError& e) {
    CHECK(e.operation() == "claim");
    CHECK(e.cause().find("WRONGTYPE") != std::string::npos);
  }
}

TEST_CASE("round trips: a replay hit costs 1 command, a first execution 2", "[redis]") {
  const std::string url = fixture_url();
  RedisStore store(options_with(url, unique_prefix("roundtrips")));
  RawRedis raw(url);
  (void)store.claim("warm-up", "", 1s); // opens the connection
  const auto sent0 = store.commands_sent();
  const auto server0 = raw.calls("evalsha");
  const auto c = store.claim("k", "fp", 10s);
  REQUIRE(c.acquired());
  REQUIRE(store.complete("k", c.token, "v", 10s));
  CHECK(store.commands_sent() - sent0 == 2);
  CHECK(raw.calls("evalsha") - server0 == 2);
  const auto sent1 = store.commands_sent();
  const auto server1 = raw.calls("evalsha");
  const auto hit = store.claim("k", "fp", 10s);
  CHECK(hit.status == ClaimStatus::completed);
  CHECK(hit.payload == "v");
  CHECK(store.commands_sent() - sent1 == 1);
  CHECK(raw.calls("evalsha") - server1 == 1);
  CHECK(store.script_reloads() == 0);
}

TEST_CASE("commands the scripts run inside Redis: first execution 8, replay 2", "[redis]") {
  const std::string url = fixture_url();
  RedisStore store(options_with(url, unique_prefix("scripted")));
  RawRedis raw(url);
  (void)store.claim("warm-up", "", 1s); // opens the connection
  // claim: HMGET + EXISTS (no state field: absent or not ours?) + TIME + HSET + PEXPIRE;
  // complete: HMGET + HSET + PEXPIRE
  const auto first0 = raw.scripted_calls();
  const auto c = store.claim("k", "fp", 10s);
  REQUIRE(c.acquired());
  REQUIRE(store.complete("k", c.token, "v", 10s));
  CHECK(raw.scripted_calls() - first0 == 8);
  // replay: HMGET + PTTL
  const auto replay0 = raw.scripted_calls();
  const auto hit = store.claim("k", "fp", 10s);
  CHECK(hit.status == ClaimStatus::completed);
  CHECK(hit.payload == "v");
  CHECK(hit.remaining > 0ms);
  CHECK(hit.remaining <= 10s);
  CHECK(raw.scripted_calls() - replay0 == 2);
}

TEST_CASE("exactly once: 8 threads x 1,000 keys", "[redis][exactly-once]") {
  const std::string url = fixture_url();
  RedisStore store(options_with(url, unique_prefix("eo-threads")));
  constexpr std::size_t kKeys = 1000;
  constexpr int kThreads = 8;
  std::vector<std::string> errors;
  const auto events = idempotency_test::run_exactly_once(store, "w", kKeys, kThreads,
                                                         std::chrono::system_clock::now(), errors);
  CHECK(errors.empty());
  if (!errors.empty()) FAIL_CHECK(errors.front());
  std::vector<int> executions(kKeys, 0);
  std::vector<std::string> value(kKeys);
  for (const auto& e : events) {
    if (e.executed) {
      ++executions[e.key];
      value[e.key] = e.value;
    }
  }
  std::size_t bad_count = 0;
  std::size_t bad_value = 0;
  for (std::size_t i = 0; i < kKeys; ++i) bad_count += executions[i] == 1 ? 0U : 1U;
  for (const auto& e : events) bad_value += e.value == value[e.key] ? 0U : 1U;
  CHECK(events.size() == kKeys * kThreads);
  CHECK(bad_count == 0);
  CHECK(bad_value == 0);
}

TEST_CASE("exactly once: 2 processes x 4 threads on the same keys", "[redis][exactly-once]") {
  const std::string url = fixture_url();
  const std::string prefix = unique_prefix("eo-processes");
  constexpr std::size_t kKeys = 1000;
  const auto dir = scratch_dir();
  const auto out = dir / "worker.txt";
  const auto start = std::chrono::system_clock::now() + 1500ms; // both processes start together
  const auto start_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(start.time_since_epoch()).count();
  const pid_t child = spawn({IDEMPOTENCY_REDIS_WORKER, url, prefix + "w", std::to_string(kKeys),
                             "4", std::to_string(start_ms), out.string()});
  REQUIRE(child > 0);
  RedisStore store(options_with(url, ""));
  std::vector<std::string> errors;
  auto events = idempotency_test::run_exactly_once(store, prefix + "w", kKeys, 4, start, errors);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(errors.empty());
  std::ifstream in(out);
  std::string line;
  std::size_t from_child = 0;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    idempotency_test::Event e;
    char kind = 0;
    fields >> e.key >> kind;
    fields.get();
    std::getline(fields, e.value);
    e.executed = kind == 'E';
    events.push_back(e);
    ++from_child;
  }
  CHECK(from_child == kKeys * 4);
  std::vector<int> executions(kKeys, 0);
  std::vector<std::string> value(kKeys);
  std::size_t executed_by_child = 0;
  for (std::size_t n = 0; n < events.size(); ++n) {
    const auto& e = events[n];
    if (e.key >= kKeys) continue;
    if (e.executed) {
      ++executions[e.key];
      value[e.key] = e.value;
      if (n >= events.size() - from_child) ++executed_by_child;
    }
  }
  std::size_t bad_count = 0;
  std::size_t bad_value = 0;
  for (std::size_t i = 0; i < kKeys; ++i) bad_count += executions[i] == 1 ? 0U : 1U;
  for (const auto& e : events) bad_value += e.key < kKeys && e.value == value[e.key] ? 0U : 1U;
  CHECK(events.size() == kKeys * 8);
  CHECK(bad_count == 0);
  CHECK(bad_value == 0);
  INFO("keys executed by the child process: " << executed_by_child);
  CHECK(executed_by_child > 0); // the processes really competed
  CHECK(executed_by_child < kKeys);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

TEST_CASE("SCRIPT FLUSH mid-run: no error reaches the caller", "[redis]") {
  const std::string url = fixture_url();
  RedisStore store(options_with(url, unique_prefix("flush")));
  RawRedis raw(url);
  {
    REQUIRE(raw.run({"SCRIPT", "FLUSH"}) == "OK");
    const auto c = store.claim("single", "fp", 5s); // NOSCRIPT, then EVAL
    REQUIRE(c.acquired());
    CHECK(store.script_reloads() == 1);
    CHECK(store.complete("single", c.token, "v", 5s));
    CHECK(store.claim("single", "fp", 5s).payload == "v");
  }
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::atomic<int> wrong{0};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; !stop.load() || i < 50; ++i) {
        const std::string k = std::to_string(t) + "/" + std::to_string(i);
        try {
          const auto c = store.claim(k, "fp", 5s);
          if (!c.acquired() || !store.complete(k, c.token, k, 5s) ||
              store.claim(k, "fp", 5s).payload != k) {
            wrong.fetch_add(1);
          }
          if (i % 7 == 0) {
            const auto r = store.claim(k + "/r", "fp", 5s);
            if (!r.acquired() || !store.renew(k + "/r", r.token, 5s) ||
                !store.release(k + "/r", r.token)) {
              wrong.fetch_add(1);
            }
          }
          done.fetch_add(1);
        } catch (...) {
          errors.fetch_add(1);
        }
      }
    });
  }
  const auto reloads_before = store.script_reloads();
  for (int i = 0; i < 15; ++i) {
    std::this_thread::sleep_for(20ms);
    raw.run({"SCRIPT", "FLUSH"});
  }
  stop.store(true);
  for (auto& th : threads) th.join();
  CHECK(errors.load() == 0);
  CHECK(wrong.load() == 0);
  CHECK(done.load() >= 200);
  CHECK(store.script_reloads() > reloads_before);
}

TEST_CASE("a broken pooled connection is replaced transparently", "[redis]") {
  const std::string url = fixture_url();
  RedisStore store(options_with(url, unique_prefix("reconnect")));
  const auto c = store.claim("k", "fp", 5s);
  REQUIRE(c.acquired());
  RawRedis raw(url);
  // drop every client connection but this one: the store's pooled connection is now dead
  REQUIRE(std::stoll(raw.run({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"})) >= 1);
  CHECK(store.complete("k", c.token, "v", 5s)); // resent on a fresh connection
  CHECK(store.claim("k", "fp", 5s).payload == "v");
}

TEST_CASE("a command that gets no reply in time is a typed StoreError", "[redis]") {
  const std::string url = fixture_url();
  RedisStoreOptions o = options_with(url, unique_prefix("timeout"));
  o.command_timeout = 200ms;
  RedisStore store(o);
  RawRedis raw(url);
  REQUIRE(raw.run({"CLIENT", "PAUSE", "800", "ALL"}) == "OK");
  const auto t0 = std::chrono::steady_clock::now();
  try {
    (void)store.claim("k", "fp", 5s);
    FAIL("no timeout");
  } catch (const StoreError& e) {
    CHECK(e.operation() == "claim");
    CHECK(e.cause().find("timeout") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - t0 < 700ms); // not resent after a timeout
  std::this_thread::sleep_for(900ms);
  CHECK(store.claim("k2", "fp", 5s).acquired()); // recovers on a new connection
}

TEST_CASE("eviction policies other than noeviction are refused unless accepted", "[redis]") {
  if (!have_redis_server()) {
    WARN("redis-server not in PATH: cannot start a server with another policy");
    return;
  }
  {
    LocalRedis lru({"--maxmemory-policy", "allkeys-lru"});
    REQUIRE(lru.running());
    try {
      RedisStore store(options_with(lru.url(), "p:"));
      FAIL("accepted allkeys-lru");
    } catch (const StoreError& e) {
      CHECK(e.operation() == "check maxmemory-policy");
      CHECK(e.cause().find("allkeys-lru") != std::string::npos);
    }
    RedisStoreOptions o = options_with(lru.url(), "p:");
    o.accept_eviction_policy = true;
    RedisStore store(o);
    CHECK(store.maxmemory_policy() == "allkeys-lru");
    CHECK(store.claim("k", "", 1s).acquired());
  }
  {
    LocalRedis no_config({"--rename-command", "CONFIG", ""});
    REQUIRE(no_config.running());
    try {
      RedisStore store(options_with(no_config.url(), "p:"));
      FAIL("accepted a server whose policy cannot be read");
    } catch (const StoreError& e) {
      CHECK(e.operation() == "check maxmemory-policy");
      CHECK(e.cause().find("CONFIG is disabled, renamed") != std::string::npos);
    }
    RedisStoreOptions o = options_with(no_config.url(), "p:");
    o.accept_eviction_policy = true;
    RedisStore store(o);
    CHECK(store.maxmemory_policy().empty());
    CHECK(store.claim("k", "", 1s).acquired());
  }
}

TEST_CASE("server SIGKILLed and restarted mid-run: typed errors, then recovery, no rerun",
          "[redis][restart]") {
  if (!have_redis_server()) {
    WARN("redis-server not in PATH: cannot run the restart test");
    return;
  }
  LocalRedis server; // appendonly yes, appendfsync always
  REQUIRE(server.running());
  RedisStoreOptions o = options_with(server.url(), "restart:");
  o.connect_timeout = 300ms;
  o.command_timeout = 1s;
  RedisStore store(o);

  constexpr std::size_t kKeys = 300;
  constexpr int kThreads = 2;
  struct KeyLog {
    int executions = 0;
    std::vector<std::string> produced;
    std::string stored;   // the value complete() acknowledged
    std::string observed; // a completed record found by a later claim
  };
  std::vector<KeyLog> log(kKeys);
  std::atomic<std::size_t> finished{0};
  std::atomic<int> store_errors{0};
  std::atomic<int> other_errors{0};
  const auto deadline = std::chrono::steady_clock::now() + 40s;

  // One call of the operation for key i (executes at most once per claim it acquired).
  const auto run_key = [&](std::size_t i, bool& gave_up) {
    const std::string k = "key-" + std::to_string(i);
    auto& entry = log[i];
    for (;;) {
      if (std::chrono::steady_clock::now() > deadline) {
        gave_up = true;
        return;
      }
      try {
        const auto r = store.claim(k, "fp", 300ms);
        if (r.acquired()) {
          ++entry.executions;
          const std::string value = "v-" + r.token.to_hex();
          entry.produced.push_back(value);
          if (store.complete(k, r.token, value, 120s)) {
            entry.stored = value;
            return;
          }
        } else if (r.status == ClaimStatus::completed) {
          entry.observed = r.payload; // e.g. complete() was applied but its reply was lost
          return;
        } else {
          std::this_thread::sleep_for(20ms);
        }
      } catch (const StoreError&) {
        store_errors.fetch_add(1);
        std::this_thread::sleep_for(20ms);
      } catch (...) {
        other_errors.fetch_add(1);
        return;
      }
    }
  };

  std::atomic<int> gave_up_count{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::size_t i = static_cast<std::size_t>(t); i < kKeys; i += kThreads) {
        bool gave_up = false;
        run_key(i, gave_up);
        if (gave_up) gave_up_count.fetch_add(1);
        finished.fetch_add(1);
      }
    });
  }
  while (finished.load() < kKeys / 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
  server.kill9();
  const std::size_t finished_at_kill = finished.load();
  bool typed_while_down = false;
  std::string down_cause;
  try {
    (void)store.claim("probe", "fp", 1s);
  } catch (const StoreError& e) {
    typed_while_down = e.code() == idempotency::errc::store_failure && e.operation() == "claim";
    down_cause = e.cause();
  }
  std::this_thread::sleep_for(400ms);
  server.start();
  REQUIRE(server.running());
  for (auto& th : threads) th.join();

  INFO("cause while down: " << down_cause);
  CHECK(typed_while_down);
  CHECK(finished_at_kill < kKeys); // the kill really happened mid-run
  CHECK(store_errors.load() > 0);  // the workers saw it too, as StoreError
  CHECK(other_errors.load() == 0);
  CHECK(gave_up_count.load() == 0);

  // After recovery: every acknowledged result survived the SIGKILL, and running every key
  // again executes none of those.
  std::size_t stored = 0;
  std::size_t recorded = 0;
  std::size_t lost = 0;
  std::size_t rerun_after_stored = 0;
  std::size_t foreign_value = 0;
  for (std::size_t i = 0; i < kKeys; ++i) {
    const std::string k = "key-" + std::to_string(i);
    const auto r = store.claim(k, "fp", 300ms);
    if (!log[i].stored.empty() || !log[i].observed.empty()) ++recorded;
    if (!log[i].stored.empty()) {
      ++stored;
      if (r.status != ClaimStatus::completed || r.payload != log[i].stored) ++lost;
    }
    if (r.acquired()) {
      if (!log[i].stored.empty()) ++rerun_after_stored;
      store.release(k, r.token);
    } else if (r.status == ClaimStatus::completed) {
      bool known = false;
      for (const auto& v : log[i].produced) known = known || v == r.payload;
      if (!known) ++foreign_value;
    }
  }
  CHECK(recorded == kKeys); // every key eventually got its result recorded
  CHECK(stored > 0);
  CHECK(lost == 0);
  CHECK(rerun_after_stored == 0);
  CHECK(foreign_value == 0);
}

#ifdef IDEMPOTENCY_TEST_HAVE_EXECUTOR
TEST_CASE("exactly once through IdempotencyExecutor::execute, 8 threads", "[redis][executor]") {
  const std::string url = fixture_url();
  RedisStore store(options_with(url, unique_prefix("executor")));
  idempotency::IdempotencyExecutor exec{store};
  constexpr int kKeys = 200;
  constexpr int kThreads = 8;
  std::vector<std::atomic<int>> runs(kKeys);
  std::mutex mutex;
  std::vector<std::pair<int, std::string>> seen;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<std::pair<int, std::string>> mine;
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = "key-" + std::to_string(i);
        for (int attempt = 0; attempt < 100000; ++attempt) {
          try {
            const std::string v = exec.execute(key, [&] {
              runs[static_cast<std::size_t>(i)].fetch_add(1);
              return key + " by " + idempotency::Token::random().to_hex();
            });
            mine.emplace_back(i, v);
            break;
          } catch (const idempotency::InProgressError&) {
            std::this_thread::sleep_for(200us);
          } catch (...) {
            errors.fetch_add(1);
            break;
          }
        }
      }
      std::lock_guard lock(mutex);
      seen.insert(seen.end(), mine.begin(), mine.end());
    });
  }
  for (auto& th : threads) th.join();
  CHECK(errors.load() == 0);
  CHECK(seen.size() == static_cast<std::size_t>(kKeys * kThreads));
  std::map<int, std::set<std::string>> values;
  for (const auto& [i, v] : seen) values[i].insert(v);
  std::size_t bad = 0;
  for (int i = 0; i < kKeys; ++i) {
    bad += runs[static_cast<std::size_t>(i)].load() == 1 && values[i].size() == 1 ? 0U : 1U;
  }
  CHECK(bad == 0);
}
#endif
