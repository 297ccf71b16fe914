// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// PostgresStore under faults: a fault-injecting proxy in front of a real PostgreSQL (lost and
// late replies, resets, stalls), a real SIGSTOP of the whole server, a dropped records table.
#include <idempotency/stores/postgres_store.hpp>

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
#include <regex>
#include <string>

namespace {

using namespace std::chrono_literals;
using idempotency::ClaimStatus;
using idempotency::PostgresError;
using idempotency::PostgresStore;
using idempotency::PostgresStoreOptions;
using idempotency::StoreError;
using idempotency::Token;
using idempotency::test::FaultProxy;

std::string conninfo() {
  const char* file = std::getenv("IDEMPOTENCY_PG_CONNINFO_FILE");
  if (file == nullptr) return {};
  std::ifstream in(file);
  std::string line;
  std::getline(in, line);
  return line;
}

int conninfo_port() {
  std::smatch m;
  const std::string c = conninfo();
  if (!std::regex_search(c, m, std::regex("port=([0-9]+)"))) return 0;
  return std::stoi(m[1]);
}

/// The postmaster's pid (the fixture keeps the server's files in the directory named by
/// <fixture dir>/pgdir).
pid_t postmaster_pid() {
  const char* file = std::getenv("IDEMPOTENCY_PG_CONNINFO_FILE");
  if (file == nullptr) return 0;
  const auto dir = std::filesystem::path(file).parent_path();
  std::ifstream in(dir / "pgdir");
  std::string pgdir;
  std::getline(in, pgdir);
  if (pgdir.empty()) pgdir = dir.string();
  return idempotency::test::read_pid_file(pgdir + "/data/postmaster.pid");
}

std::string unique_table(const std::string& what) {
  return what + "_" + Token::random().to_hex().substr(0, 10);
}

struct PgFaultHarness {
  std::string table = unique_table("faults");
  FaultProxy proxy_{"127.0.0.1", conninfo_port()};
  PostgresStore truth_{PostgresStoreOptions{.connection = conninfo(), .table = table}};
  PostgresStore proxied_{PostgresStoreOptions{
      .connection = std::regex_replace(conninfo(), std::regex("port=[0-9]+"),
                                       "port=" + std::to_string(proxy_.port())),
      .table = table,
      .pool_size = 1,
      .connect_timeout = 2s,
      .command_timeout = timeout()}};
  int warmed = 0;

  PgFaultHarness() { truth_.ensure_schema(); }
  PostgresStore& proxied() { return proxied_; }
  PostgresStore& truth() { return truth_; }
  FaultProxy& proxy() { return proxy_; }
  static std::chrono::milliseconds timeout() { return 300ms; }
  // Prepares every statement on the proxied store's (single) connection.
  void warm() {
    const std::string k = "warm/" + std::to_string(warmed++);
    auto c = proxied_.claim(k + "/a", "", 10s);
    (void)proxied_.renew(k + "/a", c.token, 10s);
    (void)proxied_.release(k + "/a", c.token);
    c = proxied_.claim(k + "/b", "", 10s);
    (void)proxied_.complete(k + "/b", c.token, "", 1min);
    c = proxied_.claim(k + "/c", "", 10s);
    (void)proxied_.fail(k + "/c", c.token, "", 1min);
  }
};

} // namespace

bool idempotency_test_server_available(std::string& why) {
  if (conninfo().empty()) {
    why = "no PostgreSQL server: the fixture wrote no connection string";
    return false;
  }
  if (PQping(conninfo().c_str()) != PQPING_OK) {
    why = "PostgreSQL at '" + conninfo() + "' does not answer";
    return false;
  }
  return true;
}

TEST_CASE("PostgresStore fault matrix: every operation x lost/late reply, reset, stall",
          "[postgres][faults]") {
  PgFaultHarness h;
  SECTION("the fault takes one request") {
    idempotency::test::run_store_fault_matrix(h, "ops1/", 1);
  }
  SECTION("the fault takes two requests") {
    idempotency::test::run_store_fault_matrix(h, "ops2/", 2);
  }
}

TEST_CASE("PostgresStore: a fault on the complete never loses a recorded result (executor)",
          "[postgres][faults]") {
  PgFaultHarness h;
  SECTION("one request") { idempotency::test::run_executor_fault_matrix(h, "x1/", 1); }
  SECTION("two requests") { idempotency::test::run_executor_fault_matrix(h, "x2/", 2); }
}

TEST_CASE("PostgresStore: a SIGSTOPped server gives StoreError within the command timeout",
          "[postgres][faults][sigstop]") {
  const pid_t pid = postmaster_pid();
  REQUIRE(pid > 0);
  const std::string table = unique_table("sigstop");
  PostgresStore truth{PostgresStoreOptions{.connection = conninfo(), .table = table}};
  PostgresStore store{PostgresStoreOptions{.connection = conninfo(),
                                           .table = table,
                                           .pool_size = 2,
                                           .connect_timeout = 1s,
                                           .command_timeout = 500ms}};
  truth.ensure_schema();
  store.ensure_schema();
  const auto timed = [](auto&& f) { return idempotency::test::timed_store_call(f); };

  SECTION("during claim, and a new connection during the stop") {
    {
      idempotency::test::StoppedServer stopped(pid, true);
      REQUIRE(stopped.stopped() > 1);
      auto [error, took] = timed([&] { (void)store.claim("k-claim", "fp", 10s); });
      CHECK(error);
      CHECK(took < 500ms + 1500ms);
      // the pool's connection was dropped; a new one cannot be made while stopped either
      auto [error2, took2] = timed([&] { (void)store.claim("k-claim-2", "fp", 10s); });
      CHECK(error2);
      CHECK(took2 < 1s + 500ms + 1500ms);
    }
    CHECK(store.claim("k-claim-3", "fp", 10s).acquired());
  }

  SECTION("during complete: the resend after SIGCONT is acknowledged, the result recorded") {
    const auto c = store.claim("k-complete", "fp", 10s);
    REQUIRE(c.acquired());
    (void)store.renew("k-complete", c.token, 10s); // warm: the complete is the only request
    auto [error, took] = [&] {
      idempotency::test::StoppedServer stopped(pid, true);
      return timed([&] { (void)store.complete("k-complete", c.token, "receipt", 1h); });
    }();
    CHECK(error);
    CHECK(took < 500ms + 1500ms);
    CHECK(store.complete("k-complete", c.token, "receipt", 1h));
    const auto r = truth.claim("k-complete", "fp", 10s);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "receipt");
  }
}

TEST_CASE("PostgresStore: a records table dropped on its own is created again",
          "[postgres][faults]") {
  const std::string table = unique_table("dropped");
  PostgresStore store{PostgresStoreOptions{.connection = conninfo(), .table = table}};
  REQUIRE(store.claim("before", "fp", 10s).acquired());
  PGconn* raw = PQconnectdb(conninfo().c_str());
  REQUIRE(PQstatus(raw) == CONNECTION_OK);
  PGresult* r = PQexec(raw, ("DROP TABLE " + store.qualified_table()).c_str());
  CHECK(PQresultStatus(r) == PGRES_COMMAND_OK);
  PQclear(r);
  PQfinish(raw);

  SECTION("by the running store: one typed error, then it works again") {
    CHECK_THROWS_AS(store.claim("after", "fp", 10s), PostgresError);
    CHECK(store.claim("after", "fp", 10s).acquired());
  }
  SECTION("by a store opened afterwards (the migrations table still says version 1)") {
    PostgresStore fresh{PostgresStoreOptions{.connection = conninfo(), .table = table}};
    CHECK(fresh.claim("after", "fp", 10s).acquired());
  }
}
