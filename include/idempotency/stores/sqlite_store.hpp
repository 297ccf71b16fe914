// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// SqliteStore: the embedded store. Several threads and several processes on one host share one
// database file. Requires SQLite >= 3.35 (RETURNING); link the CMake target `idempotency::sqlite`.

#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>

#include <sqlite3.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#if SQLITE_VERSION_NUMBER < 3035000
#error "idempotency::SqliteStore needs SQLite 3.35 or newer (INSERT ... RETURNING)"
#endif

namespace idempotency {

/// How hard a commit waits for the disk (`PRAGMA synchronous`, always in WAL mode).
enum class SqliteDurability : std::uint8_t {
  /// `synchronous = NORMAL`: a commit is atomic and the file never corrupts, but the last
  /// commits before a power loss or OS crash may be rolled back (a process crash loses nothing).
  normal,
  /// `synchronous = FULL`: every commit is fsync'ed to the WAL before it returns; survives
  /// power loss, at the cost of one fsync per claim / complete.
  full,
};

/// Options of `SqliteStore`.
struct SqliteStoreOptions {
  /// `normal` (default) or `full`; see `SqliteDurability`.
  SqliteDurability durability = SqliteDurability::normal;
  /// How long a statement waits for a lock held by another connection (in this process or
  /// another one, also a stopped one) before failing with `StoreError`
  /// (`sqlite3_busy_timeout`). This bounds every call: SQLite has no other unbounded wait.
  std::chrono::milliseconds busy_timeout{10'000};
  /// The store's clock (wall clock; every process sharing the file must agree on it). Empty:
  /// `std::chrono::system_clock::now`. Tests inject a manual clock here.
  std::function<std::chrono::system_clock::time_point()> clock{};
  /// `purge_expired` deletes an in-progress record only this long after its lease passed, so a
  /// slow holder nobody took over can still record its result (design §2).
  std::chrono::milliseconds purge_in_progress_after{std::chrono::hours(1)};
  /// Idle connections kept open for reuse; more are opened when more threads call at once.
  std::size_t max_idle_connections = 16;
};

/// The open transaction handed to the body of `SqliteStore::complete_in_transaction`.
///
/// The body does its own writes on `db()` (the store's connection, inside a `BEGIN IMMEDIATE`
/// transaction that also writes the completed record). It must not `COMMIT`, `ROLLBACK` or
/// `BEGIN` itself (savepoints are fine), must not call the same store (that would wait for its
/// own write lock), and must not keep `db()` after it returns.
class SqliteTransaction {
 public:
  /// The open connection, for `sqlite3_prepare_v2` & co.
  [[nodiscard]] sqlite3* db() const noexcept { return db_; }

  /// Runs one or more SQL statements without results; throws `StoreError` on failure.
  void exec(std::string_view sql) {
    const std::string text(sql);
    char* message = nullptr;
    const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
      std::string cause = message != nullptr ? message : sqlite3_errstr(rc);
      sqlite3_free(message);
      detail::raise<StoreError>("sqlite", "transaction exec", std::move(cause));
    }
  }

  /// Rows changed by the most recent INSERT / UPDATE / DELETE on this connection.
  [[nodiscard]] std::int64_t changes() const noexcept { return sqlite3_changes64(db_); }

  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;
  SqliteTransaction(SqliteTransaction&&) = delete;
  SqliteTransaction& operator=(SqliteTransaction&&) = delete;
  ~SqliteTransaction() = default;

 private:
  friend class SqliteStore;
  explicit SqliteTransaction(sqlite3* db) noexcept : db_(db) {}
  sqlite3* db_;
};

/// A `Store` over one SQLite database file, shared by threads and processes on one host.
///
/// - WAL journal; every claim is one `BEGIN IMMEDIATE` transaction around
///   `INSERT … ON CONFLICT(key) DO UPDATE … WHERE expired … RETURNING`; complete / fail /
///   release / renew are single token-checked statements.
/// - Thread safety: one object may be used from any number of threads. It keeps a
///   mutex-protected pool of connections (each with its prepared statements); a call checks
///   one out for its duration, opening a new one when none is idle.
/// - The schema (table `idempotency_records`) is created on first use and versioned with
///   `PRAGMA user_version` (this store owns the file's user_version). A file that is not a
///   database, cannot be written, or has a newer schema is refused with `StoreError` and left
///   untouched.
/// - complete / fail are idempotent per token: re-sent after the record already became
///   Completed / Failed by that same token they answer true and change nothing.
/// - A database file deleted or replaced (renamed over) while the store is open is never
///   served: every call checks its connection before and after its statement, and from the
///   first detection on every call throws `StoreError` (the store never reopens by itself).
/// - Every call is bounded in time by `SqliteStoreOptions::busy_timeout` (the only unbounded
///   wait SQLite has is a lock held by another connection or process).
/// - Time is `SqliteStoreOptions::clock` (default: the system clock), in milliseconds.
///
/// Example:
///
///     idempotency::SqliteStore store{"/var/lib/app/idempotency.db"};
///     idempotency::IdempotencyExecutor exec{store, {.result_ttl = 1h, .lease = 60s}};
class SqliteStore {
 public:
  /// The transaction handed to `complete_in_transaction`'s body (TransactionalStore).
  using transaction = SqliteTransaction;

  /// The schema version this code writes and reads (`PRAGMA user_version`).
  static constexpr int schema_version = 1;

  /// Opens (creating it if missing) the database at `path` and checks or creates the schema.
  /// Throws `StoreError` if the file is not a database, is read-only, or its schema is newer.
  explicit SqliteStore(std::string path, SqliteStoreOptions options = {})
      : path_(std::move(path)), options_(std::move(options)) {
    if (!options_.clock) options_.clock = [] { return std::chrono::system_clock::now(); };
    anchor_ = open_connection(/*initialize=*/true, "open");
  }

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  SqliteStore(SqliteStore&&) = delete;
  SqliteStore& operator=(SqliteStore&&) = delete;
  ~SqliteStore() = default;

  /// "sqlite", for error messages.
  [[nodiscard]] std::string_view name() const noexcept { return "sqlite"; }

  /// The database file.
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  /// Store concept 1: one `BEGIN IMMEDIATE` transaction.
  [[nodiscard]] ClaimResult claim(std::string_view key, std::string_view fingerprint,
                                  std::chrono::milliseconds lease) {
    Lease c = checkout("claim");
    // a replay is one read, no write lock: checkout() already checked the file is in place
    // (a write needs the check after it too: it may have gone to a replaced file)
    if (std::optional<ClaimResult> done = replay_on(*c, key)) return std::move(*done);
    ClaimResult r = claim_on(*c, key, fingerprint, lease); // committed
    verify_unmoved(*c, "claim");
    return r;
  }

  /// Store concept 2: `InProgress(token)` → `Completed(payload)` for `ttl`. Also true, changing
  /// nothing, when the record already is Completed by `token` (a re-sent complete).
  bool complete(std::string_view key, const Token& token, std::string_view payload,
                std::chrono::milliseconds ttl) {
    return finish(key, token, payload, ttl, state_completed, "complete");
  }

  /// Store concept 3: `InProgress(token)` → `Failed(payload)` for `ttl`. Also true, changing
  /// nothing, when the record already is Failed by `token` (a re-sent fail).
  bool fail(std::string_view key, const Token& token, std::string_view payload,
            std::chrono::milliseconds ttl) {
    return finish(key, token, payload, ttl, state_failed, "fail");
  }

  /// Store concept 4: deletes `InProgress(token)`.
  bool release(std::string_view key, const Token& token) {
    Lease c = checkout("release");
    const auto token_bytes = encode_token(token);
    {
      Stmt s(*this, *c, StmtId::release, "release");
      s.bind_blob(1, key);
      s.bind_blob(2, as_view(token_bytes));
      s.run();
    }
    const bool released = sqlite3_changes(c->db.get()) == 1;
    verify_unmoved(*c, "release");
    return released;
  }

  /// Store concept 5: sets the lease of `InProgress(token)` to `lease` from now.
  bool renew(std::string_view key, const Token& token, std::chrono::milliseconds lease) {
    Lease c = checkout("renew");
    const auto token_bytes = encode_token(token);
    {
      Stmt s(*this, *c, StmtId::renew, "renew");
      s.bind_int(1, plus(now_ms(), lease));
      s.bind_blob(2, key);
      s.bind_blob(3, as_view(token_bytes));
      s.run();
    }
    const bool renewed = sqlite3_changes(c->db.get()) == 1;
    verify_unmoved(*c, "renew");
    return renewed;
  }

  /// ForgettableStore (operators only): deletes the record of `key` in any state.
  bool forget(std::string_view key) {
    Lease c = checkout("forget");
    {
      Stmt s(*this, *c, StmtId::forget, "forget");
      s.bind_blob(1, key);
      s.run();
    }
    const bool forgotten = sqlite3_changes(c->db.get()) == 1;
    verify_unmoved(*c, "forget");
    return forgotten;
  }

  /// PurgeableStore: deletes up to `limit` expired records (completed / failed past their TTL,
  /// in-progress records `purge_in_progress_after` past their lease); returns how many went.
  std::size_t purge_expired(std::size_t limit) {
    if (limit == 0) {
      throw_if_failed("purge_expired");
      return 0;
    }
    Lease c = checkout("purge_expired");
    const std::int64_t now = now_ms();
    {
      Stmt s(*this, *c, StmtId::purge, "purge_expired");
      s.bind_int(1, now);
      s.bind_int(2, plus(now, -options_.purge_in_progress_after));
      s.bind_int(3, limit > static_cast<std::size_t>(INT64_MAX) ? INT64_MAX
                                                                : static_cast<std::int64_t>(limit));
      s.run();
    }
    const auto purged = static_cast<std::size_t>(sqlite3_changes64(c->db.get()));
    verify_unmoved(*c, "purge_expired");
    return purged;
  }

  /// TransactionalStore: in ONE `BEGIN IMMEDIATE` transaction, checks that `key` is still
  /// `InProgress` holding `token`, calls `body(tx)` (the application's own writes on
  /// `tx.db()`; it returns the encoded result), writes `Completed(result)` for `ttl`, and
  /// commits both. If the token no longer holds, `body` is not called, nothing is written and
  /// the result is false. If `body` throws, everything is rolled back and the exception
  /// propagates. A crash before the commit leaves neither the writes nor the record.
  ///
  /// Example:
  ///
  ///     store.complete_in_transaction(key, claim.token, 1h, [&](SqliteStore::transaction& tx) {
  ///       tx.exec("INSERT INTO ledger(amount) VALUES (42)");
  ///       return std::string("receipt-1");
  ///     });
  bool complete_in_transaction(std::string_view key, const Token& token,
                               std::chrono::milliseconds ttl,
                               std::function<std::string(transaction&)> body) {
    const char* op = "complete_in_transaction";
    Lease c = checkout(op);
    const auto token_bytes = encode_token(token);
    TxGuard tx(*this, *c, op);
    {
      Stmt s(*this, *c, StmtId::check_token, op); // in progress, holding `token`
      s.bind_blob(1, key);
      s.bind_blob(2, as_view(token_bytes));
      if (!s.step()) {
        verify_unmoved(*c, op);
        return false; // TxGuard rolls back
      }
    }
    transaction handle(c->db.get());
    std::string result = body(handle); // on throw: TxGuard rolls back, exception propagates
    if (sqlite3_get_autocommit(c->db.get()) != 0)
      raise_store("complete_in_transaction",
                  "the body ended the store's transaction (COMMIT/ROLLBACK/END inside the body "
                  "is not allowed; use SAVEPOINT)");
    const std::int64_t now = now_ms();
    {
      Stmt s(*this, *c, StmtId::finish_in_progress, op);
      s.bind_int(1, state_completed);
      s.bind_blob(2, result);
      s.bind_int(3, plus(now, ttl));
      s.bind_blob(4, key);
      s.bind_blob(5, as_view(token_bytes));
      s.run();
    }
    if (sqlite3_changes(c->db.get()) != 1) { // the body touched our record
      verify_unmoved(*c, op);
      return false;
    }
    tx.commit();
    verify_unmoved(*c, op); // the commit went to the file this store opened
    return true;
  }

 private:
  static constexpr std::int64_t state_in_progress = 0;
  static constexpr std::int64_t state_completed = 1;
  static constexpr std::int64_t state_failed = 2;

  enum class StmtId : std::uint8_t {
    begin_immediate,
    commit,
    rollback,
    claim_upsert,
    select_record,
    finish,
    finish_in_progress,
    release,
    renew,
    purge,
    check_token,
    forget,
    count_,
  };

  static const char* sql_of(StmtId id) noexcept {
    switch (id) {
      case StmtId::begin_immediate: return "BEGIN IMMEDIATE";
      case StmtId::commit: return "COMMIT";
      case StmtId::rollback: return "ROLLBACK";
      case StmtId::claim_upsert:
        // prev_state: what the claim replaced (NULL: fresh insert; 0: a lease taken over).
        return "INSERT INTO idempotency_records"
               " (key, state, token, fingerprint, payload, expires_at, prev_state)"
               " VALUES (?1, 0, ?2, ?3, NULL, ?4, NULL)"
               " ON CONFLICT(key) DO UPDATE SET state = 0, token = excluded.token,"
               " fingerprint = excluded.fingerprint, payload = NULL,"
               " expires_at = excluded.expires_at, prev_state = idempotency_records.state"
               " WHERE idempotency_records.expires_at <= ?5"
               " RETURNING prev_state";
      case StmtId::select_record:
        return "SELECT state, fingerprint, payload, expires_at FROM idempotency_records"
               " WHERE key = ?1";
      case StmtId::finish:
        // idempotent per token: on a record already finished (state ?1) by this token it
        // matches (changes() == 1) but keeps the payload and expiry first written
        return "UPDATE idempotency_records SET state = ?1,"
               " payload = CASE WHEN state = 0 THEN ?2 ELSE payload END,"
               " expires_at = CASE WHEN state = 0 THEN ?3 ELSE expires_at END"
               " WHERE key = ?4 AND token = ?5 AND state IN (0, ?1)";
      case StmtId::finish_in_progress:
        return "UPDATE idempotency_records SET state = ?1, payload = ?2, expires_at = ?3"
               " WHERE key = ?4 AND state = 0 AND token = ?5";
      case StmtId::release:
        return "DELETE FROM idempotency_records WHERE key = ?1 AND state = 0 AND token = ?2";
      case StmtId::renew:
        return "UPDATE idempotency_records SET expires_at = ?1"
               " WHERE key = ?2 AND state = 0 AND token = ?3";
      case StmtId::purge:
        return "DELETE FROM idempotency_records WHERE key IN (SELECT key FROM idempotency_records"
               " WHERE (state <> 0 AND expires_at <= ?1) OR (state = 0 AND expires_at <= ?2)"
               " LIMIT ?3)";
      case StmtId::check_token:
        return "SELECT 1 FROM idempotency_records WHERE key = ?1 AND state = 0 AND token = ?2";
      case StmtId::forget: return "DELETE FROM idempotency_records WHERE key = ?1";
      case StmtId::count_: break;
    }
    return "";
  }

  struct DbCloser {
    void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
  };
  struct StmtFinalizer {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
  };

  struct Connection {
    std::unique_ptr<sqlite3, DbCloser> db;
    // declared after db: finalized before the connection closes
    std::array<std::unique_ptr<sqlite3_stmt, StmtFinalizer>,
               static_cast<std::size_t>(StmtId::count_)>
        stmts{};
  };

  // A connection checked out of the pool; goes back on destruction unless it is mid-transaction.
  class Lease {
   public:
    Lease(SqliteStore& store, std::unique_ptr<Connection> c) : store_(&store), c_(std::move(c)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease(Lease&&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease() { store_->give_back(std::move(c_)); }
    Connection& operator*() const noexcept { return *c_; }
    Connection* operator->() const noexcept { return c_.get(); }

   private:
    SqliteStore* store_;
    std::unique_ptr<Connection> c_;
  };

  // One use of a prepared statement: reset and unbound on scope exit.
  class Stmt {
   public:
    Stmt(SqliteStore& store, Connection& c, StmtId id, const char* op)
        : store_(store), c_(c), op_(op), s_(store.statement(c, id, op)) {}
    Stmt(const Stmt&) = delete;
    Stmt& operator=(const Stmt&) = delete;
    Stmt(Stmt&&) = delete;
    Stmt& operator=(Stmt&&) = delete;
    ~Stmt() {
      sqlite3_reset(s_);
      sqlite3_clear_bindings(s_);
    }

    void bind_blob(int i, std::string_view bytes) {
      // a zero-length blob, not NULL, for empty input
      const void* data = bytes.data() != nullptr ? bytes.data() : "";
      check(sqlite3_bind_blob64(s_, i, data, static_cast<sqlite3_uint64>(bytes.size()),
                                SQLITE_STATIC));
    }
    void bind_int(int i, std::int64_t v) { check(sqlite3_bind_int64(s_, i, v)); }

    /// true: a row is available; false: done.
    bool step() {
      const int rc = sqlite3_step(s_);
      if (rc == SQLITE_ROW) return true;
      if (rc == SQLITE_DONE) return false;
      store_.raise_sqlite(c_, rc, op_);
    }
    void run() {
      while (step()) {
      }
    }
    // RETURNING rows must be stepped to the end before the statement's effect is final.
    void done() { run(); }

    [[nodiscard]] int column_type(int i) const { return sqlite3_column_type(s_, i); }
    [[nodiscard]] std::int64_t column_int(int i) const {
      return static_cast<std::int64_t>(sqlite3_column_int64(s_, i));
    }
    [[nodiscard]] std::string column_bytes(int i) const {
      const void* p = sqlite3_column_blob(s_, i);
      const int n = sqlite3_column_bytes(s_, i);
      if (p == nullptr || n <= 0) return {};
      return std::string(static_cast<const char*>(p), static_cast<std::size_t>(n));
    }

   private:
    void check(int rc) {
      if (rc != SQLITE_OK) store_.raise_sqlite(c_, rc, op_);
    }
    SqliteStore& store_;
    Connection& c_;
    const char* op_;
    sqlite3_stmt* s_;
  };

  // BEGIN IMMEDIATE on construction; ROLLBACK on destruction unless committed.
  class TxGuard {
   public:
    TxGuard(SqliteStore& store, Connection& c, const char* op) : store_(store), c_(c), op_(op) {
      Stmt s(store_, c_, StmtId::begin_immediate, op_);
      s.run();
    }
    TxGuard(const TxGuard&) = delete;
    TxGuard& operator=(const TxGuard&) = delete;
    TxGuard(TxGuard&&) = delete;
    TxGuard& operator=(TxGuard&&) = delete;
    void commit() {
      Stmt s(store_, c_, StmtId::commit, op_);
      s.run();
      committed_ = true;
    }
    ~TxGuard() {
      if (committed_ || sqlite3_get_autocommit(c_.db.get()) != 0) return;
      try {
        Stmt s(store_, c_, StmtId::rollback, op_);
        s.run();
      } catch (...) {
        // the connection is dropped by give_back (still inside a transaction)
      }
    }

   private:
    SqliteStore& store_;
    Connection& c_;
    const char* op_;
    bool committed_ = false;
  };

  // The live record the cursor `s` is on (state, fingerprint, payload, expires_at), as a claim
  // that did not acquire reports it; `now` is the claim's clock reading.
  void read_record(Stmt& s, std::string_view key, std::int64_t now, ClaimResult& r) {
    // a state or expiry of another type reads as 0 through sqlite3_column_int64: a text state
    // would be "in progress" forever, and a text expiry never passes (text sorts above every
    // number, so a claim's upsert never took the record over)
    if (s.column_type(0) != SQLITE_INTEGER)
      raise_corrupt(key, std::string("has a state that is not an integer (") +
                             type_name(s.column_type(0)) + ")");
    if (s.column_type(3) != SQLITE_INTEGER)
      raise_corrupt(key, std::string("has an expiry that is not an integer (") +
                             type_name(s.column_type(3)) + ")");
    const std::int64_t state = s.column_int(0);
    switch (state) {
      case state_in_progress: r.status = ClaimStatus::in_progress; break;
      case state_completed: r.status = ClaimStatus::completed; break;
      case state_failed: r.status = ClaimStatus::failed; break;
      default: raise_corrupt(key, "has unknown state " + std::to_string(state));
    }
    if (s.column_type(1) == SQLITE_NULL) raise_corrupt(key, "has no fingerprint");
    r.fingerprint = s.column_bytes(1);
    if (r.status != ClaimStatus::in_progress) {
      if (s.column_type(2) == SQLITE_NULL) raise_corrupt(key, "is finished but has no payload");
      r.payload = s.column_bytes(2);
    }
    const std::int64_t left = s.column_int(3) - now;
    r.remaining = std::chrono::milliseconds(left > 0 ? left : 1);
  }

  // The fast path of a claim: a finished, unexpired record, read in one autocommit SELECT;
  // nullopt for anything else (absent, in progress, expired, odd), which the claim's
  // transaction then handles.
  std::optional<ClaimResult> replay_on(Connection& c, std::string_view key) {
    const std::int64_t now = now_ms();
    Stmt s(*this, c, StmtId::select_record, "claim");
    s.bind_blob(1, key);
    if (!s.step()) return std::nullopt;
    if (s.column_type(0) != SQLITE_INTEGER || s.column_type(3) != SQLITE_INTEGER)
      return std::nullopt;
    const std::int64_t state = s.column_int(0);
    if ((state != state_completed && state != state_failed) || s.column_int(3) <= now)
      return std::nullopt;
    ClaimResult r;
    read_record(s, key, now, r);
    return r;
  }

  // The claim on `c`: the upsert, in a transaction of its own (one statement, autocommit: no
  // statement journal), and when it did not acquire, a read of the live record. A record that
  // went (released, forgotten) or expired between the two is claimed again.
  ClaimResult claim_on(Connection& c, std::string_view key, std::string_view fingerprint,
                       std::chrono::milliseconds lease) {
    const Token token = Token::random();
    const std::array<unsigned char, 16> token_bytes = encode_token(token);
    for (int attempt = 0; attempt < 32; ++attempt) {
      const std::int64_t now = now_ms(); // after the checkout's check: tests move the file here
      ClaimResult r;
      {
        Stmt s(*this, c, StmtId::claim_upsert, "claim");
        s.bind_blob(1, key);
        s.bind_blob(2, as_view(token_bytes));
        s.bind_blob(3, fingerprint);
        s.bind_int(4, plus(now, lease));
        s.bind_int(5, now);
        if (s.step()) {
          r.status = ClaimStatus::acquired;
          r.token = token;
          r.took_over = s.column_type(0) == SQLITE_INTEGER && s.column_int(0) == state_in_progress;
          s.done(); // commits
          return r;
        }
      }
      Stmt s(*this, c, StmtId::select_record, "claim");
      s.bind_blob(1, key);
      if (!s.step()) continue; // gone since the upsert: claim again
      const std::int64_t read_at = now_ms();
      if (s.column_type(3) == SQLITE_INTEGER && s.column_int(3) <= read_at) continue; // expired
      read_record(s, key, read_at, r);
      return r;
    }
    raise_store("claim", "the record kept changing under 32 claims in a row");
  }

  bool finish(std::string_view key, const Token& token, std::string_view payload,
              std::chrono::milliseconds ttl, std::int64_t state, const char* op) {
    Lease c = checkout(op);
    const auto token_bytes = encode_token(token);
    {
      Stmt s(*this, *c, StmtId::finish, op);
      s.bind_int(1, state);
      s.bind_blob(2, payload);
      s.bind_int(3, plus(now_ms(), ttl)); // after the checkout's check: tests move the file here
      s.bind_blob(4, key);
      s.bind_blob(5, as_view(token_bytes));
      s.run();
    }
    const bool finished = sqlite3_changes(c->db.get()) == 1;
    verify_unmoved(*c, op); // the write went to the file this store opened
    return finished;
  }

  // now + d in ms, clamped to the int64 range (a "forever" duration must not wrap around).
  [[nodiscard]] static std::int64_t plus(std::int64_t now, std::chrono::milliseconds d) noexcept {
    const std::int64_t v = d.count();
    if (v > 0 && now > INT64_MAX - v) return INT64_MAX;
    if (v < 0 && now < INT64_MIN - v) return INT64_MIN;
    return now + v;
  }

  [[nodiscard]] std::int64_t now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               options_.clock().time_since_epoch())
        .count();
  }

  static std::array<unsigned char, 16> encode_token(const Token& t) noexcept {
    std::array<unsigned char, 16> out{};
    for (std::size_t i = 0; i < 8; ++i) {
      out[i] = static_cast<unsigned char>((t.hi >> (56 - 8 * i)) & 0xFFU);
      out[8 + i] = static_cast<unsigned char>((t.lo >> (56 - 8 * i)) & 0xFFU);
    }
    return out;
  }
  static std::string_view as_view(const std::array<unsigned char, 16>& a) noexcept {
    return {reinterpret_cast<const char*>(a.data()), a.size()};
  }

  [[noreturn]] void raise_store(const char* op, std::string cause) const {
    detail::raise<StoreError>("sqlite", op, path_ + ": " + std::move(cause));
  }
  [[noreturn]] static void raise_corrupt(std::string_view key, const std::string& what) {
    detail::raise<CorruptRecordError>("sqlite record of key '" + std::string(key) + "' " + what);
  }
  static const char* type_name(int type) noexcept {
    switch (type) {
      case SQLITE_INTEGER: return "integer";
      case SQLITE_FLOAT: return "real";
      case SQLITE_TEXT: return "text";
      case SQLITE_BLOB: return "blob";
      default: return "NULL";
    }
  }

  // --- a database file deleted or replaced under the open store ---------------------------
  //
  // The unix VFS keeps writing to the inode it opened: after `rm` or a rename over the path,
  // a store that went on would acknowledge records that no later opener of the path sees (and
  // a new connection would open, or create, another file). So every call checks its
  // connection at checkout and again after its statement, before it answers; a new connection
  // is also checked against the anchor (the connection opened by the constructor, which never
  // serves a call). From the first detection on the store refuses every call.

  // SQLITE_FCNTL_HAS_MOVED: the path no longer names the file `db` has open. A VFS that cannot
  // tell (SQLITE_NOTFOUND) reports "not moved".
  static bool has_moved(sqlite3* db) noexcept {
    int moved = 0;
    return sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK &&
           moved != 0;
  }

  [[noreturn]] void raise_moved(const char* op) const {
    raise_store(op,
                "the database file was deleted or replaced under the open store (the path no "
                "longer names the file it opened); this store refuses every call from now on: "
                "the store must be reopened (a new SqliteStore) once the file is in place");
  }

  void throw_if_failed(const char* op) {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (failed_) raise_moved(op);
  }

  // Marks the store failed for good, closes the idle connections and the anchor (SQLite does
  // not checkpoint into a moved file on close), and throws.
  [[noreturn]] void fail_moved(const char* op) {
    std::vector<std::unique_ptr<Connection>> closing;
    std::unique_ptr<Connection> anchor;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      failed_ = true;
      closing.swap(idle_);
      anchor = std::move(anchor_);
    }
    closing.clear();
    anchor.reset();
    raise_moved(op);
  }

  // After a statement, before the call answers: was it the file this store opened?
  void verify_unmoved(const Connection& c, const char* op) {
    if (has_moved(c.db.get())) fail_moved(op);
  }

  bool anchor_moved() {
    const std::lock_guard<std::mutex> lock(mutex_);
    return anchor_ == nullptr || has_moved(anchor_->db.get());
  }

  [[noreturn]] void raise_sqlite(const Connection& c, int rc, const char* op) const {
    raise_sqlite(c.db.get(), rc, op);
  }
  [[noreturn]] void raise_sqlite(sqlite3* db, int rc, const char* op) const {
    std::string cause = sqlite3_errstr(rc);
    if (db != nullptr) {
      const char* msg = sqlite3_errmsg(db);
      if (msg != nullptr && cause != msg) cause += std::string(" (") + msg + ")";
    }
    cause += " [sqlite code " + std::to_string(rc) + "]";
    raise_store(op, std::move(cause));
  }

  sqlite3_stmt* statement(Connection& c, StmtId id, const char* op) {
    auto& slot = c.stmts[static_cast<std::size_t>(id)];
    if (!slot) {
      sqlite3_stmt* s = nullptr;
      const int rc =
          sqlite3_prepare_v3(c.db.get(), sql_of(id), -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr);
      if (rc != SQLITE_OK) raise_sqlite(c, rc, op);
      slot.reset(s);
    }
    return slot.get();
  }

  void exec_raw(sqlite3* db, const char* sql, const char* op) const {
    const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) raise_sqlite(db, rc, op);
  }

  // Reads one integer (a PRAGMA or a scalar query).
  std::int64_t query_int(sqlite3* db, const char* sql, const char* op) const {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
    if (rc != SQLITE_OK) raise_sqlite(db, rc, op);
    std::unique_ptr<sqlite3_stmt, StmtFinalizer> s(raw);
    rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) return static_cast<std::int64_t>(sqlite3_column_int64(s.get(), 0));
    if (rc == SQLITE_DONE) return 0;
    raise_sqlite(db, rc, op);
  }

  std::string query_text(sqlite3* db, const char* sql, const char* op) const {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql, -1, &raw, nullptr);
    if (rc != SQLITE_OK) raise_sqlite(db, rc, op);
    std::unique_ptr<sqlite3_stmt, StmtFinalizer> s(raw);
    rc = sqlite3_step(s.get());
    if (rc == SQLITE_ROW) {
      const unsigned char* t = sqlite3_column_text(s.get(), 0);
      return t != nullptr ? std::string(reinterpret_cast<const char*>(t)) : std::string();
    }
    if (rc == SQLITE_DONE) return {};
    raise_sqlite(db, rc, op);
  }

  // Checks the schema version; refuses anything this code does not own. Nothing is written.
  void check_version(sqlite3* db, std::int64_t version, const char* op) const {
    if (version > schema_version)
      raise_store(op, "schema version " + std::to_string(version) +
                          " is newer than this library's " + std::to_string(schema_version) +
                          "; upgrade the library (the file was not touched)");
    if (version != 0 && version != schema_version)
      raise_store(op, "PRAGMA user_version is " + std::to_string(version) +
                          ", not a schema version of this store (the file was not touched)");
    if (version == schema_version &&
        query_int(db,
                  "SELECT count(*) FROM sqlite_schema WHERE type = 'table'"
                  " AND name = 'idempotency_records'",
                  op) != 1)
      raise_store(op, "PRAGMA user_version is " + std::to_string(version) +
                          " but table idempotency_records is missing; the file belongs to another"
                          " application (the file was not touched)");
  }

  // `initialize`: the constructor's connection (creates the file and the schema). Any later one
  // never creates the file, and is checked to be on the store's file before anything reads or
  // writes through it.
  std::unique_ptr<Connection> open_connection(bool initialize, const char* op) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(
        path_.c_str(), &raw,
        SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | (initialize ? SQLITE_OPEN_CREATE : 0),
        nullptr);
    auto c = std::make_unique<Connection>();
    c->db.reset(raw); // closed even when opening failed
    if (!initialize) {
      // this connection is on the path's file now (not moved), and so is the anchor: the same
      // file, the store's own
      if (rc != SQLITE_OK) {
        if (anchor_moved()) fail_moved(op);
        raise_sqlite(raw, rc, op);
      }
      if (has_moved(raw) || anchor_moved()) fail_moved(op);
    } else if (rc != SQLITE_OK) {
      raise_sqlite(raw, rc, op);
    }
    sqlite3* db = raw;
    sqlite3_extended_result_codes(db, 1);
    if (sqlite3_db_readonly(db, "main") == 1)
      raise_store(op,
                  "the database file is read-only for this process; SqliteStore needs to "
                  "write (the file was not touched)");
    const auto busy = options_.busy_timeout.count();
    sqlite3_busy_timeout(db, busy > INT32_MAX ? INT32_MAX : static_cast<int>(busy));
    if (initialize) {
      // read before anything writes: SQLITE_NOTADB / a newer schema leave the file untouched
      const std::int64_t version = query_int(db, "PRAGMA user_version", op);
      check_version(db, version, op);
    }
    const std::string mode = query_text(db, "PRAGMA journal_mode = WAL", op);
    if (mode != "wal")
      raise_store(op, "could not switch to WAL (journal_mode is '" + mode +
                          "'); SqliteStore needs a database file on a local file system");
    exec_raw(db,
             options_.durability == SqliteDurability::full ? "PRAGMA synchronous = FULL"
                                                           : "PRAGMA synchronous = NORMAL",
             op);
    if (initialize) {
      exec_raw(db, "BEGIN IMMEDIATE", op);
      try {
        const std::int64_t version = query_int(db, "PRAGMA user_version", op);
        check_version(db, version, op); // another process may have created it meanwhile
        if (version == 0) {
          exec_raw(db,
                   "CREATE TABLE idempotency_records ("
                   " key BLOB PRIMARY KEY NOT NULL,"
                   " state INTEGER NOT NULL," // 0 in progress, 1 completed, 2 failed
                   " token BLOB,"             // 16 bytes, big-endian hi then lo
                   " fingerprint BLOB NOT NULL,"
                   " payload BLOB,"                // result or error bytes (finished records)
                   " expires_at INTEGER NOT NULL," // ms since the epoch: lease end or TTL end
                   " prev_state INTEGER"           // what the last claim replaced (diagnostics)
                   ") WITHOUT ROWID;"
                   "CREATE INDEX idempotency_records_expires ON idempotency_records(expires_at);"
                   "PRAGMA user_version = 1;",
                   op);
        }
        exec_raw(db, "COMMIT", op);
      } catch (...) {
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
      }
    }
    return c;
  }

  // A connection for one call: an idle one, checked to be still on the store's file, or a new
  // one. Throws StoreError once the store failed.
  Lease checkout(const char* op) {
    std::unique_ptr<Connection> c;
    {
      const std::lock_guard<std::mutex> lock(mutex_);
      if (failed_) raise_moved(op);
      if (!idle_.empty()) {
        c = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    if (!c) {
      c = open_connection(/*initialize=*/false, op);
    } else if (has_moved(c->db.get())) {
      c.reset();
      fail_moved(op);
    }
    return Lease(*this, std::move(c));
  }

  void give_back(std::unique_ptr<Connection> c) noexcept {
    if (!c) return;
    // a connection left inside a transaction (a failed ROLLBACK) is closed, never reused
    if (sqlite3_get_autocommit(c->db.get()) == 0) return;
    const std::lock_guard<std::mutex> lock(mutex_);
    if (failed_) return; // closed: a failed store keeps no connection
    if (idle_.size() < options_.max_idle_connections) idle_.push_back(std::move(c));
  }

  std::string path_;
  SqliteStoreOptions options_;
  std::mutex mutex_;
  // guarded by mutex_:
  std::unique_ptr<Connection> anchor_; // the constructor's connection; serves no call
  std::vector<std::unique_ptr<Connection>> idle_;
  bool failed_ = false; // the file was deleted or replaced: every call throws
};

static_assert(Store<SqliteStore>);
static_assert(PurgeableStore<SqliteStore>);
static_assert(ForgettableStore<SqliteStore>);
static_assert(TransactionalStore<SqliteStore>);

} // namespace idempotency
