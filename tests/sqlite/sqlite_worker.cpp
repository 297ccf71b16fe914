// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// Child process of test_sqlite_store (started with fork + exec). Each mode opens its own
// SqliteStore on the shared file with the real clock.
//
//   sqlite_worker exactly-once DB KEYS THREADS WORKER_ID OUTFILE
//       every thread claims every key (in its own order); the claimer "executes" by inserting
//       (key, value) into table `executions`, then completes with value; every caller writes
//       the value it ended up with to OUTFILE as "key value" lines.
//   sqlite_worker hold DB KEY LEASE_MS
//       claims KEY, prints "claimed <token hex>", then writes other keys until killed.
//   sqlite_worker tx-crash DB KEY LEASE_MS
//       claims KEY, then inside complete_in_transaction inserts into `ledger`, prints
//       "written", and waits to be killed before the commit.
//   sqlite_worker open DB
//       opens the store; exit 0 and prints the message if it threw StoreError, 3 if it opened.
//   sqlite_worker lock DB
//       opens a plain connection, runs BEGIN IMMEDIATE (the write lock), prints "locked" and
//       waits, holding the lock, until killed.
//   sqlite_worker readonly-midway DB
//       opens two stores on DB: "pooled" (keeps its connection) and "fresh" (max_idle_connections
//       = 0: a new connection for every call). Records and prints "acked <key>" for
//       pooled-before and fresh-before (payload "value-<key>"), claims "pending" with "fresh",
//       prints "ready" and waits for "go" on stdin (the parent makes the files read-only). Then
//       "fresh" claims "fresh-after" and completes "pending", printing "store-error <op>:
//       <cause>" (or "unexpected ..." / "other ...") for each; "pooled" records pooled-after
//       ("acked pooled-after"). Ends with "done".
#include <idempotency/stores/sqlite_store.hpp>

#include <sqlite3.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace std::chrono_literals;
using idempotency::ClaimStatus;
using idempotency::SqliteStore;

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "sqlite_worker: %s\n", why.c_str());
  std::fflush(stderr);
  std::_Exit(2);
}

void say(const std::string& line) {
  std::fputs((line + "\n").c_str(), stdout);
  std::fflush(stdout);
}

int exactly_once(const std::string& db_path, int keys, int threads, int worker,
                 const std::string& out_path) {
  SqliteStore store{db_path};
  std::vector<std::vector<std::pair<int, std::string>>> got(static_cast<std::size_t>(threads));
  std::vector<std::string> errors(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      auto& mine = got[static_cast<std::size_t>(t)];
      sqlite3* side = nullptr;
      try {
        if (sqlite3_open_v2(db_path.c_str(), &side, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
          throw std::runtime_error("cannot open the side connection");
        sqlite3_busy_timeout(side, 20'000);
        sqlite3_stmt* insert = nullptr;
        if (sqlite3_prepare_v2(side, "INSERT INTO executions(key, value) VALUES (?1, ?2)", -1,
                               &insert, nullptr) != SQLITE_OK)
          throw std::runtime_error(sqlite3_errmsg(side));
        const int lane = worker * threads + t;
        const bool backwards = lane % 2 == 1;
        for (int i = 0; i < keys; ++i) {
          const int base = backwards ? keys - 1 - i : i;
          const int idx = (base + lane * 97) % keys;
          const std::string key = "key-" + std::to_string(idx);
          for (;;) {
            const auto r = store.claim(key, "fp", 20s);
            if (r.status == ClaimStatus::acquired) {
              const std::string value = "w" + std::to_string(worker) + "t" + std::to_string(t) +
                                        "k" + std::to_string(idx);
              sqlite3_bind_text(insert, 1, key.c_str(), -1, SQLITE_TRANSIENT);
              sqlite3_bind_text(insert, 2, value.c_str(), -1, SQLITE_TRANSIENT);
              const int rc = sqlite3_step(insert);
              sqlite3_reset(insert);
              if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(side));
              if (!store.complete(key, r.token, value, 1h))
                throw std::runtime_error("complete returned false for " + key);
              mine.emplace_back(idx, value);
              break;
            }
            if (r.status == ClaimStatus::completed) {
              mine.emplace_back(idx, r.payload);
              break;
            }
            if (r.status == ClaimStatus::failed) throw std::runtime_error("unexpected failed");
            std::this_thread::sleep_for(200us); // in progress elsewhere: ask again
          }
        }
        sqlite3_finalize(insert);
      } catch (const std::exception& e) {
        errors[static_cast<std::size_t>(t)] = e.what();
      }
      sqlite3_close_v2(side);
    });
  }
  for (auto& th : pool) th.join();
  for (const auto& e : errors)
    if (!e.empty()) die(e);
  std::ofstream out(out_path);
  for (const auto& v : got)
    for (const auto& [idx, value] : v) out << idx << ' ' << value << '\n';
  out.close();
  if (!out) die("cannot write " + out_path);
  return 0;
}

int hold(const std::string& db_path, const std::string& key, long lease_ms) {
  SqliteStore store{db_path};
  const auto r = store.claim(key, "fp", std::chrono::milliseconds(lease_ms));
  if (!r.acquired()) die("hold: could not claim " + key);
  say("claimed " + r.token.to_hex());
  // keep writing, so that the kill lands while transactions are open
  for (long n = 0;; ++n) {
    const std::string other = "churn-" + std::to_string(n % 500);
    const auto c = store.claim(other, "fp", 50ms);
    if (c.acquired()) (void)store.complete(other, c.token, std::string(512, 'x'), 1ms);
  }
}

int tx_crash(const std::string& db_path, const std::string& key, long lease_ms) {
  SqliteStore store{db_path};
  const auto r = store.claim(key, "fp", std::chrono::milliseconds(lease_ms));
  if (!r.acquired()) die("tx-crash: could not claim " + key);
  (void)store.complete_in_transaction(key, r.token, 1h, [&](SqliteStore::transaction& tx) {
    tx.exec("INSERT INTO ledger(key, amount) VALUES ('" + key + "', 100)");
    say("written " + r.token.to_hex());
    for (;;) std::this_thread::sleep_for(1s); // killed here, before the commit
    return std::string("never");
  });
  die("tx-crash: the body returned");
}

int open_only(const std::string& db_path) {
  try {
    SqliteStore store{db_path};
  } catch (const idempotency::StoreError& e) {
    say(e.what());
    return 0;
  } catch (const std::exception& e) {
    say(std::string("other: ") + e.what());
    return 4;
  }
  say("opened");
  return 3;
}

int lock(const std::string& db_path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
    die("lock: cannot open " + db_path);
  sqlite3_busy_timeout(db, 20'000);
  char* message = nullptr;
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, &message) != SQLITE_OK)
    die(std::string("lock: BEGIN IMMEDIATE failed: ") + (message != nullptr ? message : "?"));
  say("locked");
  for (;;) ::pause(); // killed here, holding the write lock
}

template <class F>
void report(const char* what, F&& f) {
  try {
    f();
    say(std::string("unexpected success of ") + what);
  } catch (const idempotency::StoreError& e) {
    say("store-error " + e.operation() + ": " + e.cause());
  } catch (const std::exception& e) {
    say(std::string("other ") + e.what());
  }
}

int readonly_midway(const std::string& db_path) {
  SqliteStore pooled{db_path};
  SqliteStore fresh{db_path, {.max_idle_connections = 0}};
  auto ack = [](SqliteStore& store, const std::string& key) {
    const auto c = store.claim(key, "fp", 1h);
    if (!c.acquired()) die("readonly-midway: could not claim " + key);
    if (!store.complete(key, c.token, "value-" + key, 1h))
      die("readonly-midway: complete returned false for " + key);
    say("acked " + key);
  };
  ack(pooled, "pooled-before");
  ack(fresh, "fresh-before");
  const auto pending = fresh.claim("pending", "fp", 1h);
  if (!pending.acquired()) die("readonly-midway: could not claim pending");
  say("ready");
  std::string go;
  if (!std::getline(std::cin, go) || go != "go") die("readonly-midway: no go");
  // a connection opened now finds the file read-only
  report("claim", [&] { (void)fresh.claim("fresh-after", "fp", 1h); });
  report("complete", [&] { (void)fresh.complete("pending", pending.token, "late", 1h); });
  // a connection opened before the chmod still writes through its descriptor: that lands
  ack(pooled, "pooled-after");
  say("done");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> a(argv, argv + argc);
  try {
    if (a.size() == 7 && a[1] == "exactly-once")
      return exactly_once(a[2], std::stoi(a[3]), std::stoi(a[4]), std::stoi(a[5]), a[6]);
    if (a.size() == 5 && a[1] == "hold") return hold(a[2], a[3], std::stol(a[4]));
    if (a.size() == 5 && a[1] == "tx-crash") return tx_crash(a[2], a[3], std::stol(a[4]));
    if (a.size() == 3 && a[1] == "open") return open_only(a[2]);
    if (a.size() == 3 && a[1] == "lock") return lock(a[2]);
    if (a.size() == 3 && a[1] == "readonly-midway") return readonly_midway(a[2]);
  } catch (const std::exception& e) {
    die(e.what());
  }
  die("usage: see the comment at the top of sqlite_worker.cpp");
}
