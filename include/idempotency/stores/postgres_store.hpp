// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// PostgresStore: the Store contract over PostgreSQL (libpq). Requires libpq (Debian:
// libpq-dev); link the CMake target `idempotency::postgres`.
//
// - claim-or-get is ONE statement: a CTE reads the live record first (a replay hit writes
//   nothing and assigns no transaction id), then `INSERT … ON CONFLICT (key) DO UPDATE … WHERE
//   <expired>` creates the claim or takes over an expired one; a statement that lost a race
//   returns no row and is re-run (READ COMMITTED);
// - complete / fail / release / renew are token-checked single statements;
// - every time is the server's `clock_timestamp()`;
// - the lease deadline (`valid_until` of an in-progress record) is kept apart from the row's
//   removal time (`purge_after`), so a slow holder nobody took over can still complete;
// - transactional mode (`complete_in_transaction`) commits the application's own writes and
//   the completed record in one transaction.

#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>

#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace idempotency {

/// A PostgreSQL failure: a `StoreError` that also carries the SQLSTATE and the server's own
/// message. Client-side failures get the standard connection codes: `08001` (could not
/// connect) and `08006` (the connection broke during a call; the call's outcome is unknown).
class PostgresError : public StoreError {
 public:
  PostgresError(std::string operation, std::string sqlstate, std::string server_message)
      : StoreError("PostgresStore", std::move(operation),
                   "SQLSTATE " + (sqlstate.empty() ? std::string("?????") : sqlstate) + ": " +
                       server_message),
        sqlstate_(std::move(sqlstate)),
        server_message_(std::move(server_message)) {}

  /// The five-character SQLSTATE (e.g. `23505`, `08006`, `57P01`).
  [[nodiscard]] const std::string& sqlstate() const noexcept { return sqlstate_; }
  /// The server's (or libpq's) message, without the SQLSTATE.
  [[nodiscard]] const std::string& server_message() const noexcept { return server_message_; }
  /// True for connection exceptions (class 08) and server shutdowns (57P01..57P03): a retry
  /// on a new connection may succeed.
  [[nodiscard]] bool connection_lost() const noexcept {
    return sqlstate_.rfind("08", 0) == 0 || sqlstate_ == "57P01" || sqlstate_ == "57P02" ||
           sqlstate_ == "57P03";
  }

 private:
  std::string sqlstate_;
  std::string server_message_;
};

/// Options of a `PostgresStore`. Example:
///
///     idempotency::PostgresStore store{{.connection = "host=127.0.0.1 dbname=app",
///                                       .table = "idempotency_keys", .pool_size = 8}};
struct PostgresStoreOptions {
  /// A libpq connection string: keywords (`host=… port=… dbname=… user=…`) or a URI
  /// (`postgresql://user@host:5432/db?sslmode=require`). Empty: libpq's defaults / PG* env.
  std::string connection{};
  /// The schema holding the table (created on first use when `create_schema`).
  std::string schema = "public";
  /// The table name; at most 52 bytes (`<table>_migrations` must fit PostgreSQL's 63).
  std::string table = "idempotency_keys";
  /// The most connections the store keeps open at once (at least 1).
  std::size_t pool_size = 4;
  /// How long a call waits for a free pooled connection before it throws `PostgresError`.
  std::chrono::milliseconds acquire_timeout{10'000};
  /// How long an in-progress row is kept after its lease passed, so that a slow holder nobody
  /// took over can still complete; afterwards `purge_expired` may delete it.
  std::chrono::milliseconds abandoned_retention = std::chrono::hours(24);
  /// Create the schema, the table and the version table on first use (and apply migrations).
  /// Off: the tables must exist (see docs/postgres.md for the DDL).
  bool create_schema = true;
  /// Rows deleted per statement by `purge_expired`.
  std::size_t purge_batch = 1000;
  /// Time allowed to open a connection (TCP, TLS, authentication); then `PostgresError` 08001.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  /// Time allowed for one statement's reply. Past it the call throws `PostgresError` 08006
  /// (the statement's outcome is unknown), and the connection is closed, never reused. It
  /// also bounds statements inside `complete_in_transaction`, and is the connection's
  /// `tcp_user_timeout`. A stalled server (SIGSTOP, a dead peer) never blocks a call longer.
  std::chrono::milliseconds command_timeout{std::chrono::seconds(5)};
};

/// The result of `PostgresTransaction::exec`: text-format rows, owned.
class PostgresResult {
 public:
  explicit PostgresResult(PGresult* r) noexcept : res_(r, &PQclear) {}

  /// Number of rows returned.
  [[nodiscard]] int rows() const noexcept { return PQntuples(res_.get()); }
  /// Number of columns returned.
  [[nodiscard]] int columns() const noexcept { return PQnfields(res_.get()); }
  /// True if the field is SQL NULL.
  [[nodiscard]] bool is_null(int row, int col) const noexcept {
    return PQgetisnull(res_.get(), row, col) != 0;
  }
  /// The field as text (empty for NULL); valid while this result lives.
  [[nodiscard]] std::string_view get(int row, int col) const noexcept {
    return {PQgetvalue(res_.get(), row, col),
            static_cast<std::size_t>(PQgetlength(res_.get(), row, col))};
  }
  /// Rows affected by INSERT / UPDATE / DELETE (0 for other commands).
  [[nodiscard]] std::size_t affected_rows() const {
    const char* n = PQcmdTuples(res_.get());
    return (n == nullptr || *n == '\0') ? 0 : static_cast<std::size_t>(std::stoull(n));
  }
  /// The libpq result, for anything else.
  [[nodiscard]] PGresult* native() const noexcept { return res_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> res_;
};

namespace detail::pg {

enum class Stmt : std::uint8_t {
  claim,
  complete,
  fail,
  release,
  renew,
  purge,
  lock,
  forget,
  count
};

struct Connection {
  PGconn* conn = nullptr;
  std::uint32_t prepared = 0; // bit i: Stmt i is prepared on this connection
  bool broken = false;

  explicit Connection(PGconn* c) noexcept : conn(c) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (conn != nullptr) PQfinish(conn);
  }

  /// No round trip: an idle connection must have nothing to read. Data (a FATAL from a
  /// server shutting down) or end-of-file means the server side is gone.
  [[nodiscard]] bool looks_alive() const noexcept {
    if (broken || PQstatus(conn) != CONNECTION_OK) return false;
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) return false;
    const int fd = PQsocket(conn);
    if (fd < 0) return false;
    char byte = 0;
    const auto n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
};

inline std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (const char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

inline void put_be64(std::uint64_t v, char* out) noexcept {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<char>(v & 0xFF);
    v >>= 8;
  }
}

inline std::uint64_t get_be(const char* p, std::size_t n) noexcept {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

/// Binary-format parameters for a prepared statement.
class Params {
 public:
  void bytes(std::string_view b) {
    if (b.size() > static_cast<std::size_t>(INT_MAX)) {
      detail::raise<PostgresError>("bind", "54000", "parameter too large");
    }
    values_.push_back(b.data() != nullptr ? b.data() : "");
    lengths_.push_back(static_cast<int>(b.size()));
    formats_.push_back(1);
  }
  void token(const Token& t) {
    char* slot = scratch();
    put_be64(t.hi, slot);
    put_be64(t.lo, slot + 8);
    values_.push_back(slot);
    lengths_.push_back(16);
    formats_.push_back(1);
  }
  void int8(std::int64_t v) {
    char* slot = scratch();
    put_be64(static_cast<std::uint64_t>(v), slot);
    values_.push_back(slot);
    lengths_.push_back(8);
    formats_.push_back(1);
  }
  [[nodiscard]] int size() const noexcept { return static_cast<int>(values_.size()); }
  [[nodiscard]] const char* const* values() const noexcept { return values_.data(); }
  [[nodiscard]] const int* lengths() const noexcept { return lengths_.data(); }
  [[nodiscard]] const int* formats() const noexcept { return formats_.data(); }

 private:
  char* scratch() {
    if (used_ >= scratch_.size())
      detail::raise<PostgresError>("bind", "54000", "too many parameters");
    return scratch_[used_++].data();
  }
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  std::array<std::array<char, 16>, 4> scratch_{};
  std::size_t used_ = 0;
};

// 0 .. 1000 years: "forever" saturates instead of overflowing the interval arithmetic.
inline std::int64_t to_ms(std::chrono::milliseconds d) noexcept {
  constexpr std::int64_t most = 1000LL * 365 * 24 * 3600 * 1000;
  return std::clamp<std::int64_t>(static_cast<std::int64_t>(d.count()), 0, most);
}

/// Text parameters for `PostgresTransaction::exec`.
inline std::optional<std::string> to_text_param(std::nullptr_t) { return std::nullopt; }
inline std::optional<std::string> to_text_param(std::nullopt_t) { return std::nullopt; }
inline std::optional<std::string> to_text_param(bool v) { return std::string(v ? "t" : "f"); }
template <class T>
  requires std::is_convertible_v<const T&, std::string_view>
inline std::optional<std::string> to_text_param(const T& v) {
  return std::string(std::string_view(v));
}
template <class T>
  requires(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>)
inline std::optional<std::string> to_text_param(T v) { return std::to_string(v); }
template <class T>
inline std::optional<std::string> to_text_param(const std::optional<T>& v) {
  if (!v) return std::nullopt;
  return to_text_param(*v);
}

} // namespace detail::pg

class PostgresStore;

/// The open transaction handed to the body of `PostgresStore::complete_in_transaction`. The
/// body does the application's writes through it; they commit together with the completed
/// record, or not at all. The body must not COMMIT or ROLLBACK itself.
class PostgresTransaction {
 public:
  /// The libpq connection inside the open transaction (for libpq calls of your own).
  [[nodiscard]] PGconn* conn() const noexcept { return conn_.conn; }

  /// Runs one SQL statement with text-format parameters `$1…$n` (strings, numbers, bools,
  /// `std::optional`, `nullptr`/`std::nullopt` for NULL). Throws `PostgresError` on failure.
  ///
  ///     tx.exec("INSERT INTO orders (id, amount) VALUES ($1, $2)", order_id, 1999);
  template <class... Params>
  PostgresResult exec(std::string_view sql, const Params&... params);

 private:
  friend class PostgresStore;
  PostgresTransaction(PostgresStore& store, detail::pg::Connection& c) noexcept
      : store_(store), conn_(c) {}
  PostgresStore& store_;
  detail::pg::Connection& conn_;
};

/// A `Store` on PostgreSQL (libpq) with a small thread-safe connection pool.
///
/// Capabilities: `Store`, `PurgeableStore` (`purge_expired`), `TransactionalStore`
/// (`complete_in_transaction`). Example:
///
///     idempotency::PostgresStore store{{.connection = "postgresql://app@db/app"}};
///     idempotency::IdempotencyExecutor exec{store, {.result_ttl = 1h, .lease = 60s}};
///
/// Nothing connects until the first call; the first call creates the schema (when
/// `create_schema`). Every call may throw `PostgresError` (a `StoreError`).
class PostgresStore {
  using Stmt = detail::pg::Stmt;

 public:
  /// The transaction type of the TransactionalStore capability.
  using transaction = PostgresTransaction;

  /// The schema version this header writes (rows of `<table>_migrations`).
  static constexpr int schema_version = 1;

  /// A store with the given options. Throws `StoreError` for an invalid table/schema name.
  explicit PostgresStore(PostgresStoreOptions options) : opt_(std::move(options)) {
    check_name(opt_.schema, "schema");
    check_name(opt_.table, "table");
    if (opt_.table.size() > 52) {
      detail::raise<StoreError>("PostgresStore", "configure", "table name over 52 bytes");
    }
    if (opt_.pool_size == 0) opt_.pool_size = 1;
    if (opt_.purge_batch == 0) opt_.purge_batch = 1;
    if (opt_.connect_timeout <= std::chrono::milliseconds(0) ||
        opt_.command_timeout <= std::chrono::milliseconds(0)) {
      detail::raise<StoreError>("PostgresStore", "configure",
                                "connect_timeout and command_timeout must be positive");
    }
    qualified_ = detail::pg::quote_ident(opt_.schema) + "." + detail::pg::quote_ident(opt_.table);
    versions_ = detail::pg::quote_ident(opt_.schema) + "." +
                detail::pg::quote_ident(opt_.table + "_migrations");
    build_sql();
  }

  /// A store on `connection` (libpq keywords or URI) with default options. (A template, so
  /// that `PostgresStore store{{.connection = …, .table = …}}` is not ambiguous.)
  template <class Text>
    requires std::is_convertible_v<const Text&, std::string_view>
  explicit PostgresStore(const Text& connection)
      : PostgresStore(
            PostgresStoreOptions{.connection = std::string(std::string_view(connection))}) {}

  PostgresStore(const PostgresStore&) = delete;
  PostgresStore& operator=(const PostgresStore&) = delete;
  ~PostgresStore() = default;

  /// "PostgresStore".
  [[nodiscard]] std::string_view name() const noexcept { return "PostgresStore"; }

  /// The options in use.
  [[nodiscard]] const PostgresStoreOptions& options() const noexcept { return opt_; }

  /// `"schema"."table"`, quoted, ready to paste into SQL.
  [[nodiscard]] const std::string& qualified_table() const noexcept { return qualified_; }

  /// Requests sent to the server so far (statements, prepares, BEGIN/COMMIT; not the
  /// connection handshake). A replay hit costs 1, a first execution 2 (claim + complete) on
  /// a warm connection; each new connection adds its setup and one prepare per statement.
  [[nodiscard]] std::uint64_t round_trips() const noexcept {
    return round_trips_.load(std::memory_order_relaxed);
  }
  /// Connections opened so far.
  [[nodiscard]] std::uint64_t connections_opened() const noexcept {
    return connections_opened_.load(std::memory_order_relaxed);
  }

  /// Creates the schema, the tables and applies migrations now (otherwise the first call
  /// does). Safe against concurrent processes (an advisory lock serializes them).
  void ensure_schema() {
    auto c = acquire();
    c.release_to_pool();
  }

  /// Store §1: claim-or-get in one statement. See the class comment.
  ClaimResult claim(std::string_view key, std::string_view fingerprint,
                    std::chrono::milliseconds lease) {
    const Token token = Token::random();
    detail::pg::Params p;
    p.bytes(key);
    p.token(token);
    p.bytes(fingerprint);
    p.int8(detail::pg::to_ms(lease));
    p.int8(detail::pg::to_ms(opt_.abandoned_retention));
    auto c = acquire();
    // A statement that lost a race against a concurrent claim returns no row; the re-run
    // (a fresh READ COMMITTED snapshot) sees the winner's record.
    for (int attempt = 0; attempt < 32; ++attempt) {
      PostgresResult r = exec_prepared(*c, Stmt::claim, p, "claim");
      if (r.rows() == 0) continue;
      c.release_to_pool();
      PGresult* res = r.native();
      ClaimResult out;
      if (field_int(res, 0, 0, "claim") == 0) {
        out.status = ClaimStatus::acquired;
        out.token = token;
        out.took_over = field_int(res, 0, 1, "claim") != 0;
        return out;
      }
      switch (field_int(res, 0, 2, "claim")) {
        case 0: out.status = ClaimStatus::in_progress; break;
        case 1: out.status = ClaimStatus::completed; break;
        case 2: out.status = ClaimStatus::failed; break;
        default: detail::raise<CorruptRecordError>("PostgresStore: unknown state in " + qualified_);
      }
      out.fingerprint = field_bytes(res, 0, 3);
      out.payload = field_bytes(res, 0, 4);
      out.remaining =
          std::chrono::milliseconds(static_cast<std::int64_t>(field_int(res, 0, 5, "claim")));
      if (out.remaining < std::chrono::milliseconds(0)) out.remaining = {};
      return out;
    }
    detail::raise<PostgresError>("claim", "40001", "claim kept losing races; giving up");
  }

  /// Store §2: `InProgress(token)` → `Completed(payload)` for `ttl`, token-checked.
  bool complete(std::string_view key, const Token& token, std::string_view payload,
                std::chrono::milliseconds ttl) {
    return finish(detail::pg::Stmt::complete, key, token, payload, ttl, "complete");
  }

  /// Store §3: `InProgress(token)` → `Failed(payload)` for `ttl`, token-checked.
  bool fail(std::string_view key, const Token& token, std::string_view payload,
            std::chrono::milliseconds ttl) {
    return finish(detail::pg::Stmt::fail, key, token, payload, ttl, "fail");
  }

  /// Store §4: deletes `InProgress(token)`, token-checked.
  bool release(std::string_view key, const Token& token) {
    detail::pg::Params p;
    p.bytes(key);
    p.token(token);
    return affected(detail::pg::Stmt::release, p, "release") == 1;
  }

  /// Store §5: sets the lease of `InProgress(token)` to `lease` from now, token-checked.
  bool renew(std::string_view key, const Token& token, std::chrono::milliseconds lease) {
    detail::pg::Params p;
    p.bytes(key);
    p.token(token);
    p.int8(detail::pg::to_ms(lease));
    p.int8(detail::pg::to_ms(opt_.abandoned_retention));
    return affected(detail::pg::Stmt::renew, p, "renew") == 1;
  }

  /// ForgettableStore (operators only): deletes the row of `key` in any state.
  bool forget(std::string_view key) {
    detail::pg::Params p;
    p.bytes(key);
    return affected(detail::pg::Stmt::forget, p, "forget") == 1;
  }

  /// PurgeableStore: deletes up to `limit` rows past their removal time (completed/failed
  /// past their TTL; in-progress past lease + `abandoned_retention`), `purge_batch` rows per
  /// statement (each its own short transaction; rows locked by others are skipped).
  std::size_t purge_expired(std::size_t limit) {
    std::size_t total = 0;
    while (total < limit) {
      const std::size_t batch = std::min(opt_.purge_batch, limit - total);
      detail::pg::Params p;
      p.int8(static_cast<std::int64_t>(batch));
      const std::size_t n = affected(detail::pg::Stmt::purge, p, "purge_expired");
      total += n;
      if (n < batch) break;
    }
    return total;
  }

  /// TransactionalStore: BEGIN; lock the claim row if it is still `InProgress(token)` (else
  /// roll back and return false without calling `body`); `body(tx)`; write
  /// `Completed(result)` for `ttl`; COMMIT. While the body runs the row stays locked, so no
  /// claim can take the key over: a concurrent claim waits (at most its `command_timeout`, then
  /// `PostgresError` 08006) and then replays the result.
  /// If `body` throws, everything rolls back and the exception propagates.
  bool complete_in_transaction(std::string_view key, const Token& token,
                               std::chrono::milliseconds ttl,
                               std::function<std::string(transaction&)> body) {
    auto c = acquire();
    simple(*c, "BEGIN ISOLATION LEVEL READ COMMITTED", "begin");
    try {
      detail::pg::Params lock;
      lock.bytes(key);
      lock.token(token);
      if (exec_prepared(*c, Stmt::lock, lock, "lock").rows() == 0) {
        rollback(*c);
        c.release_to_pool();
        return false;
      }
      transaction tx(*this, *c);
      const std::string payload = body(tx);
      if (PQtransactionStatus(c->conn) != PQTRANS_INTRANS) {
        detail::raise<PostgresError>("complete_in_transaction", "25000",
                                     "the body ended or aborted the transaction");
      }
      detail::pg::Params p;
      p.bytes(key);
      p.token(token);
      p.bytes(payload);
      p.int8(detail::pg::to_ms(ttl));
      if (exec_prepared(*c, Stmt::complete, p, "complete_in_transaction").affected_rows() != 1) {
        rollback(*c);
        c.release_to_pool();
        return false;
      }
      simple(*c, "COMMIT", "commit");
    } catch (...) {
      rollback(*c);
      throw;
    }
    c.release_to_pool();
    return true;
  }

 private:
  friend class PostgresTransaction;

  /// A pooled connection; returned to the pool (or closed if unusable) on destruction.
  class Lease {
   public:
    Lease(PostgresStore& s, std::unique_ptr<detail::pg::Connection> c) noexcept
        : store_(&s), conn_(std::move(c)) {}
    Lease(Lease&& o) noexcept : store_(o.store_), conn_(std::move(o.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() { release_to_pool(); }
    detail::pg::Connection& operator*() const noexcept { return *conn_; }
    detail::pg::Connection* operator->() const noexcept { return conn_.get(); }
    void release_to_pool() noexcept {
      if (conn_) store_->give_back(std::move(conn_));
    }

   private:
    PostgresStore* store_;
    std::unique_ptr<detail::pg::Connection> conn_;
  };

  static void check_name(const std::string& name, const char* what) {
    if (name.empty() || name.size() > 63 || name.find('\0') != std::string::npos) {
      detail::raise<StoreError>("PostgresStore", "configure",
                                std::string(what) + " name must be 1..63 bytes without NUL");
    }
  }

  void build_sql() {
    const std::string& t = qualified_;
    sql_[static_cast<std::size_t>(Stmt::claim)] =
        "WITH t AS MATERIALIZED (SELECT clock_timestamp() AS now),"
        " live AS MATERIALIZED ("
        "  SELECT r.state, r.fingerprint, r.payload,"
        "   ceil(extract(epoch FROM (r.valid_until - t.now)) * 1000)::int8 AS remaining_ms"
        "  FROM " +
        t +
        " AS r, t WHERE r.key = $1 AND r.valid_until > t.now),"
        " ins AS ("
        "  INSERT INTO " +
        t +
        " AS r (key, state, token, fingerprint, payload, valid_until,"
        "   purge_after, takeovers, created_at, updated_at)"
        "  SELECT $1, 0, $2, $3, NULL, t.now + $4 * interval '1 millisecond',"
        "   t.now + ($4 + $5) * interval '1 millisecond', 0, t.now, t.now FROM t"
        "  WHERE NOT EXISTS (SELECT 1 FROM live)"
        "  ON CONFLICT (key) DO UPDATE SET state = 0, token = excluded.token,"
        "   fingerprint = excluded.fingerprint, payload = NULL,"
        "   valid_until = clock_timestamp() + $4 * interval '1 millisecond',"
        "   purge_after = clock_timestamp() + ($4 + $5) * interval '1 millisecond',"
        "   takeovers = CASE WHEN r.state = 0 THEN r.takeovers + 1 ELSE 0 END,"
        "   created_at = clock_timestamp(), updated_at = clock_timestamp()"
        "  WHERE r.valid_until <= clock_timestamp()"
        "  RETURNING CASE WHEN r.takeovers > 0 THEN 1 ELSE 0 END::int2 AS took_over)"
        " SELECT 0::int2 AS kind, took_over, NULL::int2 AS state, NULL::bytea AS fingerprint,"
        "  NULL::bytea AS payload, NULL::int8 AS remaining_ms FROM ins"
        " UNION ALL"
        " SELECT 1::int2, 0::int2, state, fingerprint, payload, remaining_ms FROM live";
    // A finished row keeps the token that finished it: a resend by that token (its first
    // reply was lost) matches the row again, is counted, and rewrites nothing but the same
    // values (design §2: transitions are idempotent per token).
    const auto finish_sql = [&](const char* state) {
      return "UPDATE " + t + " SET state = " + state +
             ", payload = CASE WHEN state = 0 THEN $3 ELSE payload END,"
             " valid_until = CASE WHEN state = 0"
             "  THEN clock_timestamp() + $4 * interval '1 millisecond' ELSE valid_until END,"
             " purge_after = CASE WHEN state = 0"
             "  THEN clock_timestamp() + $4 * interval '1 millisecond' ELSE purge_after END,"
             " updated_at = CASE WHEN state = 0 THEN clock_timestamp() ELSE updated_at END"
             " WHERE key = $1 AND token = $2 AND state IN (0, " +
             state + ")";
    };
    sql_[static_cast<std::size_t>(Stmt::complete)] = finish_sql("1");
    sql_[static_cast<std::size_t>(Stmt::fail)] = finish_sql("2");
    sql_[static_cast<std::size_t>(Stmt::release)] =
        "DELETE FROM " + t + " WHERE key = $1 AND token = $2 AND state = 0";
    sql_[static_cast<std::size_t>(Stmt::renew)] =
        "UPDATE " + t +
        " SET valid_until = clock_timestamp() + $3 * interval '1 millisecond',"
        " purge_after = clock_timestamp() + ($3 + $4) * interval '1 millisecond',"
        " updated_at = clock_timestamp() WHERE key = $1 AND token = $2 AND state = 0";
    sql_[static_cast<std::size_t>(Stmt::purge)] =
        "DELETE FROM " + t + " WHERE key IN (SELECT key FROM " + t +
        " WHERE purge_after <= clock_timestamp() LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " AND purge_after <= clock_timestamp()";
    sql_[static_cast<std::size_t>(Stmt::forget)] = "DELETE FROM " + t + " WHERE key = $1";
    sql_[static_cast<std::size_t>(Stmt::lock)] =
        "SELECT 1 FROM " + t + " WHERE key = $1 AND token = $2 AND state = 0 FOR UPDATE";
  }

  // ---- the pool ----------------------------------------------------------------------------

  Lease acquire() {
    Lease l = checkout();
    if (!schema_ready_.load(std::memory_order_acquire)) create_schema(*l);
    return l;
  }

  Lease checkout() {
    std::unique_lock lk(pool_mutex_);
    const auto deadline = std::chrono::steady_clock::now() + opt_.acquire_timeout;
    for (;;) {
      while (!idle_.empty()) {
        std::unique_ptr<detail::pg::Connection> c = std::move(idle_.back());
        idle_.pop_back();
        if (c->looks_alive()) return Lease(*this, std::move(c));
        --open_; // a connection the server dropped (restart): close it, try the next
        lk.unlock();
        c.reset();
        lk.lock();
      }
      if (open_ < opt_.pool_size) {
        ++open_;
        lk.unlock();
        try {
          return Lease(*this, connect());
        } catch (...) {
          lk.lock();
          --open_;
          pool_cv_.notify_one();
          throw;
        }
      }
      if (pool_cv_.wait_until(lk, deadline) == std::cv_status::timeout && idle_.empty() &&
          open_ >= opt_.pool_size) {
        detail::raise<PostgresError>("acquire connection", "53300",
                                     "no pooled connection became free within acquire_timeout");
      }
    }
  }

  void give_back(std::unique_ptr<detail::pg::Connection> c) noexcept {
    const bool keep = !c->broken && PQstatus(c->conn) == CONNECTION_OK &&
                      PQtransactionStatus(c->conn) == PQTRANS_IDLE;
    if (!keep) c.reset(); // close outside the lock
    std::lock_guard lk(pool_mutex_);
    if (keep) {
      idle_.push_back(std::move(c));
    } else {
      --open_;
    }
    pool_cv_.notify_one();
  }

  // Opens a connection within `connect_timeout` (non-blocking libpq: PQconnectStartParams +
  // PQconnectPoll), with TCP keepalives and `tcp_user_timeout` so a dead peer is noticed; the
  // user's connection string overrides those defaults. One wait is outside the bound: libpq
  // resolves a host *name* with the system's blocking resolver (give `hostaddr` to avoid it).
  std::unique_ptr<detail::pg::Connection> connect() {
    const std::string user_timeout = std::to_string(opt_.command_timeout.count());
    const char* const keys[] = {"keepalives",
                                "keepalives_idle",
                                "keepalives_interval",
                                "keepalives_count",
                                "tcp_user_timeout",
                                "dbname",
                                nullptr};
    const char* const values[] = {
        "1", "10", "5", "3", user_timeout.c_str(), opt_.connection.c_str(), nullptr};
    auto c = std::make_unique<detail::pg::Connection>(PQconnectStartParams(keys, values, 1));
    if (c->conn == nullptr) detail::raise<PostgresError>("connect", "08001", "out of memory");
    const auto deadline = std::chrono::steady_clock::now() + opt_.connect_timeout;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (;;) {
      if (PQstatus(c->conn) == CONNECTION_BAD || st == PGRES_POLLING_FAILED) {
        detail::raise<PostgresError>("connect", "08001", trimmed(PQerrorMessage(c->conn)));
      }
      if (st == PGRES_POLLING_OK) break;
      if (!wait_socket(PQsocket(c->conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
                       deadline)) {
        detail::raise<PostgresError>("connect", "08001",
                                     "could not connect within connect_timeout (" +
                                         std::to_string(opt_.connect_timeout.count()) + " ms)");
      }
      st = PQconnectPoll(c->conn);
    }
    if (PQsetnonblocking(c->conn, 1) != 0) {
      detail::raise<PostgresError>("connect", "08001", trimmed(PQerrorMessage(c->conn)));
    }
    connections_opened_.fetch_add(1, std::memory_order_relaxed);
    // a library must not write to stderr: drop NOTICEs ("already exists, skipping")
    PQsetNoticeProcessor(
        c->conn, [](void*, const char*) {}, nullptr);
    // The claim's race handling relies on READ COMMITTED, whatever the database default.
    simple(*c, "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED",
           "connect");
    return c;
  }

  // ---- schema ------------------------------------------------------------------------------

  void create_schema(detail::pg::Connection& c) {
    std::lock_guard lk(schema_mutex_);
    if (schema_ready_.load(std::memory_order_acquire)) return;
    if (!opt_.create_schema) {
      schema_ready_.store(true, std::memory_order_release);
      return;
    }
    const std::string schema_q = detail::pg::quote_ident(opt_.schema);
    simple(c, "BEGIN", "create schema");
    try {
      // One migrator at a time across processes.
      text_exec(c, "SELECT pg_advisory_xact_lock(hashtext($1))", {"idempotency:" + qualified_});
      if (text_exec(c, "SELECT 1 FROM pg_namespace WHERE nspname = $1", {opt_.schema}).rows() ==
          0) {
        simple(c, ("CREATE SCHEMA IF NOT EXISTS " + schema_q).c_str(), "create schema");
      }
      simple(c,
             ("CREATE TABLE IF NOT EXISTS " + versions_ +
              " (version integer PRIMARY KEY,"
              " applied_at timestamptz NOT NULL DEFAULT clock_timestamp())")
                 .c_str(),
             "create schema");
      PostgresResult v = text_exec(c, "SELECT coalesce(max(version), 0) FROM " + versions_, {});
      const int current = std::stoi(std::string(v.get(0, 0)));
      if (current > schema_version) {
        detail::raise<PostgresError>("create schema", "0A000",
                                     "table " + qualified_ + " has schema version " +
                                         std::to_string(current) + ", newer than this library's " +
                                         std::to_string(schema_version));
      }
      if (current < 1) {
        simple(c, migration_1().c_str(), "create schema");
        simple(c, ("INSERT INTO " + versions_ + " (version) VALUES (1)").c_str(), "create schema");
      } else if (text_exec(c, "SELECT to_regclass($1) IS NULL", {qualified_}).get(0, 0) == "t") {
        // the records table was dropped on its own: the version row alone must not stop it
        // from being created again
        simple(c, migration_1().c_str(), "create schema");
      }
      simple(c, "COMMIT", "create schema");
    } catch (...) {
      rollback(c);
      throw;
    }
    schema_ready_.store(true, std::memory_order_release);
  }

  std::string migration_1() const {
    return "CREATE TABLE " + qualified_ +
           " (key bytea PRIMARY KEY,"
           " state smallint NOT NULL CHECK (state IN (0, 1, 2)),"
           " token uuid NOT NULL,"
           " fingerprint bytea NOT NULL,"
           " payload bytea,"
           " valid_until timestamptz NOT NULL,"
           " purge_after timestamptz NOT NULL,"
           " takeovers integer NOT NULL DEFAULT 0,"
           " created_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
           " updated_at timestamptz NOT NULL DEFAULT clock_timestamp());"
           " CREATE INDEX " +
           detail::pg::quote_ident(opt_.table + "_purge_idx") + " ON " + qualified_ +
           " (purge_after)";
  }

  // ---- execution ---------------------------------------------------------------------------

  static std::string trimmed(const char* msg) {
    std::string s = msg != nullptr ? msg : "";
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
  }

  /// Turns a failed result into `PostgresError`; marks the connection broken if it is.
  [[noreturn]] static void fail_result(detail::pg::Connection& c, PGresult* r,
                                       const std::string& operation) {
    std::string state;
    std::string msg;
    if (r != nullptr) {
      const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
      if (s != nullptr) state = s;
      const char* m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
      msg = m != nullptr ? m : trimmed(PQresultErrorMessage(r));
    }
    if (msg.empty()) msg = trimmed(PQerrorMessage(c.conn));
    if (PQstatus(c.conn) != CONNECTION_OK) {
      c.broken = true;
      if (state.empty()) state = "08006";
    }
    if (state.rfind("08", 0) == 0 || state.rfind("57P0", 0) == 0) c.broken = true;
    if (r != nullptr) PQclear(r);
    detail::raise<PostgresError>(operation, std::move(state), std::move(msg));
  }

  static bool ok(PGresult* r) noexcept {
    if (r == nullptr) return false;
    const auto st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  }

  /// Waits until `fd` is ready for `events` or `deadline` passes (false). Retries EINTR.
  static bool wait_socket(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    if (fd < 0) return false;
    for (;;) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= std::chrono::milliseconds(0)) return false;
      pollfd p{fd, events, 0};
      const int n = ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count(), INT_MAX)));
      if (n > 0) return true;
      if (n == 0) return false;
      if (errno != EINTR) return true; // let libpq report the socket's own error
    }
  }

  /// The connection cannot be trusted any more: mark it (it is closed, never pooled again)
  /// and throw 08006, "connection failure: the outcome of the call is unknown".
  [[noreturn]] static void connection_failed(detail::pg::Connection& c, const std::string& op,
                                             std::string why) {
    c.broken = true;
    detail::raise<PostgresError>(op, "08006", std::move(why));
  }

  /// Collects the reply to the query just sent (non-blocking libpq), never waiting past
  /// `command_timeout`. Returns the last result, or the first failed one of a multi-statement
  /// query. A timeout or a broken socket throws `PostgresError` 08006 (outcome unknown).
  PGresult* await_result(detail::pg::Connection& c, const std::string& op) {
    const auto deadline = std::chrono::steady_clock::now() + opt_.command_timeout;
    const auto timed_out = [&] {
      connection_failed(c, op,
                        "no reply within command_timeout (" +
                            std::to_string(opt_.command_timeout.count()) +
                            " ms); the connection was closed and the statement's outcome is "
                            "unknown");
    };
    for (;;) { // send what libpq still buffers
      const int f = PQflush(c.conn);
      if (f == 0) break;
      if (f < 0) connection_failed(c, op, trimmed(PQerrorMessage(c.conn)));
      if (!wait_socket(PQsocket(c.conn), POLLIN | POLLOUT, deadline)) timed_out();
      if (PQconsumeInput(c.conn) == 0) connection_failed(c, op, trimmed(PQerrorMessage(c.conn)));
    }
    std::unique_ptr<PGresult, void (*)(PGresult*)> kept(nullptr, &PQclear);
    for (;;) {
      while (PQisBusy(c.conn) != 0) {
        if (!wait_socket(PQsocket(c.conn), POLLIN, deadline)) timed_out();
        if (PQconsumeInput(c.conn) == 0) connection_failed(c, op, trimmed(PQerrorMessage(c.conn)));
      }
      PGresult* r = PQgetResult(c.conn);
      if (r == nullptr) break;
      if (kept && !ok(kept.get())) {
        PQclear(r); // keep the first failure
      } else {
        kept.reset(r);
      }
    }
    return kept.release();
  }

  /// Sends with `send` (a PQsend* call returning 1 on success), then awaits the reply.
  template <class Send>
  PostgresResult run(detail::pg::Connection& c, const std::string& op, Send&& send) {
    round_trips_.fetch_add(1, std::memory_order_relaxed);
    if (send() != 1) fail_result(c, nullptr, op);
    PGresult* r = await_result(c, op);
    if (!ok(r)) fail_result(c, r, op);
    return PostgresResult(r);
  }

  /// A parameterless statement (simple query protocol; may hold several statements).
  PostgresResult simple(detail::pg::Connection& c, const char* sql, const std::string& op) {
    return run(c, op, [&] { return PQsendQuery(c.conn, sql); });
  }

  PostgresResult text_exec(detail::pg::Connection& c, const std::string& sql,
                           const std::vector<std::optional<std::string>>& params,
                           const std::string& op = "exec") {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
    return run(c, op, [&] {
      return PQsendQueryParams(c.conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                               values.data(), nullptr, nullptr, 0);
    });
  }

  PostgresResult exec_prepared(detail::pg::Connection& c, Stmt s, const detail::pg::Params& p,
                               const std::string& op) {
    const auto idx = static_cast<std::size_t>(s);
    const std::string stmt_name = "idempotency_" + std::to_string(idx);
    const std::uint32_t bit = 1U << idx;
    try {
      if ((c.prepared & bit) == 0) {
        const auto& types = param_types(s);
        run(c, op + " (prepare)", [&] {
          return PQsendPrepare(c.conn, stmt_name.c_str(), sql_[idx].c_str(),
                               static_cast<int>(types.size()), types.data());
        });
        c.prepared |= bit;
      }
      return run(c, op, [&] {
        return PQsendQueryPrepared(c.conn, stmt_name.c_str(), p.size(), p.values(), p.lengths(),
                                   p.formats(), 1);
      });
    } catch (const PostgresError& e) {
      if (e.sqlstate() == "42P01") { // undefined_table: dropped under us; the next call
        schema_ready_.store(false, std::memory_order_release); // creates it again
        c.broken = true; // its prepared statements name the dropped table
      }
      throw;
    }
  }

  static const std::vector<Oid>& param_types(Stmt s) {
    static constexpr Oid bytea = 17;
    static constexpr Oid uuid = 2950;
    static constexpr Oid int8 = 20;
    static const std::array<std::vector<Oid>, static_cast<std::size_t>(Stmt::count)> types{{
        {bytea, uuid, bytea, int8, int8}, // claim
        {bytea, uuid, bytea, int8},       // complete
        {bytea, uuid, bytea, int8},       // fail
        {bytea, uuid},                    // release
        {bytea, uuid, int8, int8},        // renew
        {int8},                           // purge
        {bytea, uuid},                    // lock
        {bytea},                          // forget
    }};
    return types[static_cast<std::size_t>(s)];
  }

  std::size_t affected(Stmt s, const detail::pg::Params& p, const std::string& op) {
    auto c = acquire();
    PostgresResult r = exec_prepared(*c, s, p, op);
    c.release_to_pool();
    return r.affected_rows();
  }

  bool finish(Stmt s, std::string_view key, const Token& token, std::string_view payload,
              std::chrono::milliseconds ttl, const char* op) {
    detail::pg::Params p;
    p.bytes(key);
    p.token(token);
    p.bytes(payload);
    p.int8(detail::pg::to_ms(ttl));
    return affected(s, p, op) == 1;
  }

  void rollback(detail::pg::Connection& c) noexcept {
    if (c.broken || PQstatus(c.conn) != CONNECTION_OK) {
      c.broken = true;
      return;
    }
    if (PQtransactionStatus(c.conn) == PQTRANS_IDLE) return;
    try {
      simple(c, "ROLLBACK", "rollback");
    } catch (...) {
      c.broken = true;
    }
  }

  static std::int64_t field_int(PGresult* r, int row, int col, const char* op) {
    if (PQgetisnull(r, row, col) != 0) {
      detail::raise<CorruptRecordError>(std::string("PostgresStore ") + op + ": unexpected NULL");
    }
    const auto len = static_cast<std::size_t>(PQgetlength(r, row, col));
    if (len != 2 && len != 4 && len != 8) {
      detail::raise<CorruptRecordError>(std::string("PostgresStore ") + op +
                                        ": unexpected integer width");
    }
    const std::uint64_t u = detail::pg::get_be(PQgetvalue(r, row, col), len);
    // sign-extend from the field width
    const unsigned shift = static_cast<unsigned>(64 - 8 * len);
    return static_cast<std::int64_t>(u << shift) >> shift;
  }

  static std::string field_bytes(PGresult* r, int row, int col) {
    if (PQgetisnull(r, row, col) != 0) return {};
    return std::string(PQgetvalue(r, row, col), static_cast<std::size_t>(PQgetlength(r, row, col)));
  }

  PostgresStoreOptions opt_;
  std::string qualified_;
  std::string versions_;
  std::array<std::string, static_cast<std::size_t>(Stmt::count)> sql_{};

  std::mutex pool_mutex_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<detail::pg::Connection>> idle_;
  std::size_t open_ = 0;

  std::mutex schema_mutex_;
  std::atomic<bool> schema_ready_{false};
  std::atomic<std::uint64_t> round_trips_{0};
  std::atomic<std::uint64_t> connections_opened_{0};
};

template <class... Params>
PostgresResult PostgresTransaction::exec(std::string_view sql, const Params&... params) {
  std::vector<std::optional<std::string>> texts{detail::pg::to_text_param(params)...};
  return store_.text_exec(conn_, std::string(sql), texts, "transaction exec");
}

static_assert(Store<PostgresStore>);
static_assert(PurgeableStore<PostgresStore>);
static_assert(ForgettableStore<PostgresStore>);
static_assert(TransactionalStore<PostgresStore>);

} // namespace idempotency
