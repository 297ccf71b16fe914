// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// SqliteStore against raw sqlite3 on a plain table with the same WAL + synchronous setting:
// replay vs a prepared primary-key SELECT, first execution vs one autocommit INSERT, from one
// and from two processes sharing the database file.
#include "common.hpp"

#if defined(IDEMPOTENCY_BENCH_HAVE_SQLITE) && __has_include(<idempotency/stores/sqlite_store.hpp>)
#include <idempotency/stores/sqlite_store.hpp>

#include <fmt/format.h>
#include <stdlib.h> // mkdtemp

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace bench {

namespace {

using namespace std::chrono_literals;

constexpr double kReplayTarget = 1.3; ///< vs a prepared primary-key SELECT
constexpr double kFirstTarget = 2.2;  ///< vs one autocommit INSERT

/// The floor: one prepared statement on a plain table, same WAL + synchronous setting.
struct RawSqlite {
  sqlite3* db = nullptr;
  sqlite3_stmt* select = nullptr;
  sqlite3_stmt* insert = nullptr;
  RawSqlite(const std::string& path, bool full) {
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("sqlite open");
    sqlite3_busy_timeout(db, 10'000);
    exec("PRAGMA journal_mode=WAL");
    exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec("CREATE TABLE IF NOT EXISTS raw(key BLOB PRIMARY KEY, payload BLOB) WITHOUT ROWID");
    prepare("SELECT payload FROM raw WHERE key = ?1", &select);
    prepare("INSERT INTO raw(key, payload) VALUES (?1, ?2)", &insert);
  }
  RawSqlite(const RawSqlite&) = delete;
  RawSqlite& operator=(const RawSqlite&) = delete;
  ~RawSqlite() {
    sqlite3_finalize(select);
    sqlite3_finalize(insert);
    sqlite3_close(db);
  }
  void exec(const char* sql) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db));
  }
  void prepare(const char* sql, sqlite3_stmt** s) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, s, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db));
  }
  std::size_t get(std::string_view key) {
    sqlite3_bind_blob(select, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    std::string out;
    if (sqlite3_step(select) == SQLITE_ROW)
      out.assign(static_cast<const char*>(sqlite3_column_blob(select, 0)),
                 static_cast<std::size_t>(sqlite3_column_bytes(select, 0)));
    sqlite3_reset(select);
    return out.size();
  }
  void put(std::string_view key, std::string_view payload) {
    sqlite3_bind_blob(insert, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_blob(insert, 2, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
    if (sqlite3_step(insert) != SQLITE_DONE)
      throw std::runtime_error(std::string("sqlite insert: ") + sqlite3_errmsg(db));
    sqlite3_reset(insert);
  }
};

std::string fresh_key(std::size_t i, int gen, int proc) {
  return make_key(i, 16, 's') + "-" + std::to_string(gen) + "-" + std::to_string(proc);
}

} // namespace

void bench_sqlite(const Config& cfg) {
  char tmpl[] = "/tmp/idempotency-bench-sqlite-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    skip("sqlite", "cannot create a temp dir");
    return;
  }
  const std::string dir = tmpl;
  const std::string payload(64, 'p');
  const std::size_t n = cfg.quick ? 100 : 500; // FULL: each prefill commit is an fsync
  const double secs = cfg.seconds_per_rep;
  int generation = 0; // fresh keys per side and repetition
  for (bool full : {false, true}) {
    const std::string sync = full ? "FULL" : "NORMAL";
    const std::string store_path = dir + "/store-" + sync + ".db";
    const std::string raw_path = dir + "/raw-" + sync + ".db";
    const idempotency::SqliteStoreOptions opts{.durability =
                                                   full ? idempotency::SqliteDurability::full
                                                        : idempotency::SqliteDurability::normal};
    {
      idempotency::SqliteStore store{store_path, opts};
      RawSqlite raw{raw_path, full};
      for (std::size_t i = 0; i < n; ++i) {
        const std::string k = make_key(i, 16);
        const auto c = store.claim(k, kNoFingerprint, 60s);
        if (c.acquired() && !store.complete(k, c.token, payload, 1h)) std::abort();
        raw.put(k, payload);
      }
    } // no connection is open across fork()
    for (int procs : {1, 2}) {
      const std::string label = fmt::format("sync={} procs={}", sync, procs);
      auto store_side = [&](bool first_exec) -> Side {
        return [&, first_exec]() {
          const int gen = ++generation;
          return run_processes(procs, [&, gen, first_exec](int proc) -> std::function<double()> {
            auto store = std::make_shared<idempotency::SqliteStore>(store_path, opts);
            return [store, first_exec, gen, proc, &payload, secs, n]() {
              return timed_loop(secs, [&](std::size_t i) {
                if (first_exec) {
                  const std::string k = fresh_key(i, gen, proc);
                  const auto c = store->claim(k, kNoFingerprint, 60s);
                  if (!c.acquired() || !store->complete(k, c.token, payload, 1h)) std::abort();
                } else {
                  const auto r =
                      store->claim(make_key((i * 7 + static_cast<std::size_t>(proc)) % n, 16),
                                   kNoFingerprint, 60s);
                  if (r.status != idempotency::ClaimStatus::completed) {
                    std::fprintf(stderr, "sqlite replay found status %d\n",
                                 static_cast<int>(r.status));
                    std::abort();
                  }
                  sink(r.payload.size());
                }
              });
            };
          });
        };
      };
      auto raw_side = [&](bool first_exec) -> Side {
        return [&, first_exec]() {
          const int gen = ++generation;
          return run_processes(procs, [&, gen, first_exec](int proc) -> std::function<double()> {
            auto raw = std::make_shared<RawSqlite>(raw_path, full);
            return [raw, first_exec, gen, proc, &payload, secs, n]() {
              return timed_loop(secs, [&](std::size_t i) {
                if (first_exec)
                  raw->put(fresh_key(i, gen, proc), payload);
                else
                  sink(raw->get(make_key((i * 7 + static_cast<std::size_t>(proc)) % n, 16)));
              });
            };
          });
        };
      };
      for (bool first_exec : {false, true}) {
        const auto p = measure_pair(cfg.reps, store_side(first_exec), raw_side(first_exec));
        Row r = pair_row(std::string("sqlite.") + (first_exec ? "first " : "replay ") + label,
                         first_exec ? "raw sqlite3 INSERT (1 autocommit tx)"
                                    : "raw sqlite3 SELECT by primary key",
                         p);
        const double target = first_exec ? kFirstTarget : kReplayTarget;
        r.extra["transactions_per_op"] = first_exec ? 2 : 1;
        r.target = "<= " + fmt_num(target, 1) + "x";
        r.met = *r.ratio <= target;
        if (procs > 1) r.note = "ns_per_op = wall time / ops of both processes";
        add(std::move(r));
      }
    }
  }
  std::string rm = "rm -rf '" + dir + "'";
  if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir.c_str());
}

} // namespace bench

#else
namespace bench {
void bench_sqlite(const Config&) {
  skip("sqlite", "SqliteStore not built (SQLite3 not found, or sqlite_store.hpp missing)");
}
} // namespace bench
#endif
