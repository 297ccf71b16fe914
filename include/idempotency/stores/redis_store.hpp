// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// RedisStore: the Store contract on Redis (hiredis, RESP2), for a fleet of services sharing one
// Redis. Requires hiredis (CMake target `idempotency::redis`); only those who include this
// header compile against it.
//
// Protocol (design §2, §6): one Redis hash per record, under a configurable key prefix:
//   s = state ('p' in progress, 'c' completed, 'f' failed), t = token (32 hex digits),
//   f = fingerprint, p = payload, d = lease deadline (Redis TIME, ms), o = claim took over
//   (d and o stay, unread, in a finished record; its remaining TTL is the key's PTTL).
// Every operation is one Lua script touching exactly that one key (so it is Redis Cluster
// slot-safe), sent with EVALSHA; on NOSCRIPT (SCRIPT FLUSH, restart, failover) it is resent
// once with EVAL, which also caches it again. An in-progress record's key expires
// `lease + holder_grace` after its claim or renewal, so a slow holder can still complete after
// its lease while nobody took it over; a claim takes over a record whose lease deadline passed.

#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idempotency {

/// Where a RedisStore connects: parsed from `redis://[[user]:password@]host[:port][/db]`.
struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user{};     ///< Redis 6+ ACL user; empty: `AUTH password` (the default user)
  std::string password{}; ///< empty: no AUTH
  int db = 0;             ///< SELECT index; 0 sends no SELECT

  /// Parses a `redis://` URL. Host names and IPv4 addresses only (no IPv6 literal, no
  /// percent-decoding, no `rediss://`). Throws `StoreError` (operation "parse url") on anything
  /// else; the message never contains the password.
  [[nodiscard]] static RedisEndpoint parse(std::string_view url) {
    const auto bad = [&](const char* why) -> StoreError {
      return StoreError("redis", "parse url",
                        std::string("invalid Redis URL (") + why +
                            "); expected redis://[:password@]host:port[/db]");
    };
    constexpr std::string_view scheme = "redis://";
    if (url.substr(0, scheme.size()) != scheme) throw bad("it must start with redis://");
    std::string_view rest = url.substr(scheme.size());
    RedisEndpoint ep;
    if (const auto at = rest.rfind('@'); at != std::string_view::npos) {
      const std::string_view auth = rest.substr(0, at);
      rest = rest.substr(at + 1);
      const auto colon = auth.find(':');
      if (colon == std::string_view::npos) throw bad("credentials must be [user]:password");
      ep.user = std::string(auth.substr(0, colon));
      ep.password = std::string(auth.substr(colon + 1));
    }
    std::string_view hostport = rest;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
      hostport = rest.substr(0, slash);
      const std::string_view db = rest.substr(slash + 1);
      if (!db.empty() && !parse_int(db, ep.db)) throw bad("the database must be a number");
    }
    if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
      if (!parse_int(hostport.substr(colon + 1), ep.port) || ep.port < 1 || ep.port > 65535) {
        throw bad("the port must be a number in 1..65535");
      }
      hostport = hostport.substr(0, colon);
    }
    if (hostport.empty()) throw bad("the host is missing");
    if (hostport.find_first_of("[]?#") != std::string_view::npos) {
      throw bad("IPv6 literals, queries and fragments are not supported");
    }
    ep.host = std::string(hostport);
    return ep;
  }

 private:
  static bool parse_int(std::string_view text, int& out) noexcept {
    if (text.empty()) return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && out >= 0;
  }
};

/// Options of a RedisStore.
struct RedisStoreOptions {
  /// `redis://[:password@]host:port[/db]`
  std::string url = "redis://127.0.0.1:6379";
  /// Prepended to every storage key (binary-safe). Use one per application or environment.
  std::string key_prefix = "idempotency:";
  /// Time allowed to open a TCP connection.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(2)};
  /// Time allowed for one command's reply; after it the call throws `StoreError`.
  std::chrono::milliseconds command_timeout{std::chrono::seconds(2)};
  /// At most this many connections are open at once; a thread that finds none idle and the
  /// pool full waits for one to be returned.
  std::size_t pool_size = 8;
  /// How long an in-progress record outlives its lease, so that a slow holder nobody took
  /// over can still record its result (design §2). Its memory is freed after that.
  std::chrono::milliseconds holder_grace{std::chrono::hours(1)};
  /// By default the store refuses a server whose `maxmemory-policy` is not `noeviction`
  /// (eviction can drop an in-flight or completed record, and the operation runs again), and
  /// a server where `CONFIG GET` is disabled or renamed (the policy cannot be checked).
  /// Set to true to accept either after deciding that the risk is acceptable.
  bool accept_eviction_policy = false;
};

namespace detail::redis {

struct ContextDeleter {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
struct ReplyDeleter {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

inline std::string_view text(const redisReply* r) noexcept {
  return r->str == nullptr ? std::string_view{} : std::string_view(r->str, r->len);
}

inline timeval to_timeval(std::chrono::milliseconds d) noexcept {
  const auto ms = d.count() < 1 ? std::chrono::milliseconds::rep{1} : d.count();
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(ms / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((ms % 1000) * 1000);
  return tv;
}

/// A key as it can be shown in an error message (non-printable bytes escaped, long keys cut).
inline std::string printable(std::string_view key) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (const char c : key.substr(0, 120)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7F) {
      out.push_back(c);
    } else {
      out += "\\x";
      out.push_back(hex[u >> 4]);
      out.push_back(hex[u & 0xF]);
    }
  }
  if (key.size() > 120) out += "...";
  return out;
}

// 1 ms .. 1000 years: "forever" saturates instead of overflowing Lua's doubles and PEXPIRE.
inline std::string millis(std::chrono::milliseconds d) {
  constexpr std::chrono::milliseconds::rep most = 1000LL * 365 * 24 * 3600 * 1000;
  return std::to_string(std::clamp<std::chrono::milliseconds::rep>(d.count(), 1, most));
}

// Redis's own clock, in ms. Scripts that read TIME and then write need effects replication:
// the default from Redis 5 on (the only mode in 7), so no redis.replicate_commands() call.
#define IDEMPOTENCY_REDIS_LUA_NOW   \
  "local tm = redis.call('TIME')\n" \
  "local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"

// KEYS[1] key; ARGV: fingerprint, token, lease ms, grace ms.
// One HMGET of the record's fields decides (a reply of fixed positions: no table to build, the
// cheapest read a script can do); any type but a hash fails with Redis's WRONGTYPE. No state
// field is an absent key, or a hash that is not ours (EXISTS tells them apart, on that path
// only: reported, never written). A resent claim (after a lost reply) finds its own token and is
// acquired again. TIME is read only when a lease deadline is needed. Commands run inside Redis:
// a replay of a finished record HMGET + PTTL; a live in-progress record HMGET + TIME + PTTL; a
// new record HMGET + EXISTS + TIME + HSET + PEXPIRE (a taken-over one without the EXISTS). The
// HSET writes every field an in-progress record has (payload emptied), so whatever a
// taken-over record held is overwritten without a DEL.
inline constexpr const char* claim_script =
    "local k = KEYS[1]\n"
    "local now\n"
    "local function clock()\n"
    "  local tm = redis.call('TIME')\n"
    "  now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)\n"
    "end\n"
    "local h = redis.call('HMGET', k, 's', 'f', 'p', 't', 'd', 'o')\n"
    "local s = h[1]\n"
    "local took = 0\n"
    "if s == 'c' or s == 'f' then\n"
    "  local left = redis.call('PTTL', k)\n"
    "  if left > 0 then return {s, h[2] or '', h[3] or '', left} end\n"
    "  if left == -1 then return {'x', 'finished record without an expiry'} end\n"
    "elseif s == 'p' then\n"
    "  local dl = tonumber(h[5])\n"
    "  if not dl then return {'x', 'in-progress record without a lease deadline'} end\n"
    "  if h[4] == ARGV[2] then return {'a', tonumber(h[6]) or 0} end\n"
    "  clock()\n"
    "  if dl > now then\n"
    "    if redis.call('PTTL', k) == -1 then\n"
    "      return {'x', 'in-progress record without an expiry'}\n"
    "    end\n"
    "    return {'p', h[2] or '', '', dl - now}\n"
    "  end\n"
    "  took = 1\n"
    "elseif s then\n"
    "  return {'x', 'unknown record state'}\n"
    "elseif redis.call('EXISTS', k) == 1 then\n"
    "  return {'x', 'the key holds something that is not an idempotency record'}\n"
    "end\n"
    "if not now then clock() end\n"
    "local lease = tonumber(ARGV[3])\n"
    "redis.call('HSET', k, 's', 'p', 't', ARGV[2], 'f', ARGV[1], 'd',\n"
    "           string.format('%d', now + lease), 'o', took, 'p', '')\n"
    "redis.call('PEXPIRE', k, lease + tonumber(ARGV[4]))\n"
    "return {'a', took}\n";

// KEYS[1] key; ARGV: token, new state ('c' or 'f'), payload, ttl ms.
// HMGET + HSET + PEXPIRE. A finished record keeps the token that finished it, so a resend by
// that token (its first reply was lost: a timeout, a broken connection) is acknowledged
// without changing anything, and any other token is refused (design §2). The in-progress
// fields 'd' and 'o' stay behind (a few bytes); no reader looks at them in a finished record,
// whose remaining time is the key's PTTL.
inline constexpr const char* finish_script =
    "local k = KEYS[1]\n"
    "local r = redis.call('HMGET', k, 's', 't')\n"
    "if r[2] ~= ARGV[1] then return 0 end\n"
    "if r[1] == 'p' then\n"
    "  redis.call('HSET', k, 's', ARGV[2], 'p', ARGV[3])\n"
    "  redis.call('PEXPIRE', k, ARGV[4])\n"
    "  return 1\n"
    "end\n"
    "if r[1] == ARGV[2] then return 1 end\n"
    "return 0\n";

// KEYS[1] key; ARGV: token, resent ('0' or '1').
inline constexpr const char* release_script =
    "local k = KEYS[1]\n"
    "local r = redis.call('HMGET', k, 's', 't')\n"
    "if r[1] == 'p' and r[2] == ARGV[1] then redis.call('DEL', k) return 1 end\n"
    "if ARGV[2] == '1' and redis.call('EXISTS', k) == 0 then return 1 end\n"
    "return 0\n";

// KEYS[1] key; ARGV: token, lease ms, grace ms.
inline constexpr const char* renew_script =
    "local k = KEYS[1]\n"
    "local r = redis.call('HMGET', k, 's', 't')\n"
    "if r[1] ~= 'p' or r[2] ~= ARGV[1] then return 0 end\n" IDEMPOTENCY_REDIS_LUA_NOW
    "local lease = tonumber(ARGV[2])\n"
    "redis.call('HSET', k, 'd', string.format('%d', now + lease))\n"
    "redis.call('PEXPIRE', k, lease + tonumber(ARGV[3]))\n"
    "return 1\n";

#undef IDEMPOTENCY_REDIS_LUA_NOW

struct Script {
  const char* body = nullptr;
  std::string sha{};
};

} // namespace detail::redis

/// A Store on Redis (design §6): claim-or-get in one round trip, token-checked
/// complete / fail / release / renew in one round trip each; a replay hit costs 1 command and
/// a first execution 2.
///
/// Connections: a pool of up to `pool_size` blocking hiredis connections shared by all
/// threads (opened lazily, a thread holds one only for the duration of one command). A broken
/// connection is closed and the idle ones with it (a restart breaks them all); the next call
/// connects again. A command whose connection broke after it was sent is resent once on a
/// fresh connection when the connection came from the pool; the scripts recognise their own
/// earlier effect (same token), so a resend never changes the answer. Timeouts are not resent.
///
/// Every failure is a `StoreError` naming the operation and carrying Redis's (or hiredis's)
/// own text; a record that cannot be decoded is a `CorruptRecordError`.
///
/// Example:
///
///     idempotency::RedisStore store{{.url = "redis://:secret@10.0.0.5:6379/2",
///                                    .key_prefix = "payments:"}};
///     idempotency::IdempotencyExecutor exec{store, {.result_ttl = 1h, .lease = 60s}};
class RedisStore {
 public:
  /// Connects once, reads `maxmemory-policy` (refusing anything but `noeviction` unless
  /// `accept_eviction_policy`) and loads the scripts. Throws `StoreError`.
  explicit RedisStore(RedisStoreOptions options = {})
      : options_(std::move(options)), endpoint_(RedisEndpoint::parse(options_.url)) {
    if (options_.pool_size == 0) options_.pool_size = 1;
    detail::redis::ContextPtr c = connect("connect");
    check_eviction_policy(c);
    for (detail::redis::Script* s : {&claim_, &finish_, &release_, &renew_}) {
      const std::vector<std::string_view> args{"SCRIPT", "LOAD", s->body};
      const detail::redis::ReplyPtr r = raw_command(c, "load scripts", args);
      if (r->type != REDIS_REPLY_STRING) {
        throw StoreError(std::string(name()), "load scripts",
                         "SCRIPT LOAD: " + std::string(detail::redis::text(r.get())));
      }
      s->sha = std::string(detail::redis::text(r.get()));
    }
    std::lock_guard lock(mutex_);
    ++open_;
    idle_.push_back(std::move(c));
  }

  /// Shorthand for `RedisStore({.url = url})`.
  explicit RedisStore(std::string_view url) : RedisStore(options_for(url)) {}

  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;
  RedisStore(RedisStore&&) = delete;
  RedisStore& operator=(RedisStore&&) = delete;
  ~RedisStore() = default;

  /// Store contract 1: claim-or-get, one EVALSHA.
  [[nodiscard]] ClaimResult claim(std::string_view key, std::string_view fingerprint,
                                  std::chrono::milliseconds lease) {
    const Token token = Token::random();
    const std::string k = storage_key(key);
    const std::string tok = token.to_hex();
    const std::string lease_ms = detail::redis::millis(lease);
    const std::string grace_ms = detail::redis::millis(options_.holder_grace);
    std::vector<std::string_view> args{"", "", "1", k, fingerprint, tok, lease_ms, grace_ms};
    const detail::redis::ReplyPtr r = eval("claim", claim_, args, npos);
    const auto corrupt = [&](std::string_view why) {
      return CorruptRecordError("redis record " + detail::redis::printable(k) + ": " +
                                std::string(why));
    };
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[0]->len != 1) {
      throw StoreError(std::string(name()), "claim", "unexpected reply from the claim script");
    }
    const char state = r->element[0]->str[0];
    ClaimResult out;
    if (state == 'a') {
      out.status = ClaimStatus::acquired;
      out.token = token;
      out.took_over = r->element[1]->type == REDIS_REPLY_INTEGER && r->element[1]->integer == 1;
      return out;
    }
    if (state == 'x') throw corrupt(detail::redis::text(r->element[1]));
    if (r->elements != 4 || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[2]->type != REDIS_REPLY_STRING || r->element[3]->type != REDIS_REPLY_INTEGER) {
      throw StoreError(std::string(name()), "claim", "unexpected reply from the claim script");
    }
    if (state == 'p')
      out.status = ClaimStatus::in_progress;
    else if (state == 'c')
      out.status = ClaimStatus::completed;
    else if (state == 'f')
      out.status = ClaimStatus::failed;
    else
      throw corrupt("unknown record state");
    out.fingerprint = std::string(detail::redis::text(r->element[1]));
    out.payload = std::string(detail::redis::text(r->element[2]));
    out.remaining = std::chrono::milliseconds(r->element[3]->integer);
    return out;
  }

  /// Store contract 2: `InProgress(token)` -> `Completed(payload)` for `ttl`, one EVALSHA.
  bool complete(std::string_view key, const Token& token, std::string_view payload,
                std::chrono::milliseconds ttl) {
    return finish("complete", "c", key, token, payload, ttl);
  }

  /// Store contract 3: `InProgress(token)` -> `Failed(payload)` for `ttl`, one EVALSHA.
  bool fail(std::string_view key, const Token& token, std::string_view payload,
            std::chrono::milliseconds ttl) {
    return finish("fail", "f", key, token, payload, ttl);
  }

  /// Store contract 4: deletes `InProgress(token)`, one EVALSHA.
  bool release(std::string_view key, const Token& token) {
    const std::string k = storage_key(key);
    const std::string tok = token.to_hex();
    std::vector<std::string_view> args{"", "", "1", k, tok, "0"};
    return integer_reply("release", eval("release", release_, args, 5));
  }

  /// Store contract 5: sets the lease of `InProgress(token)` to `lease` from now (Redis's
  /// clock), one EVALSHA.
  bool renew(std::string_view key, const Token& token, std::chrono::milliseconds lease) {
    const std::string k = storage_key(key);
    const std::string tok = token.to_hex();
    const std::string lease_ms = detail::redis::millis(lease);
    const std::string grace_ms = detail::redis::millis(options_.holder_grace);
    std::vector<std::string_view> args{"", "", "1", k, tok, lease_ms, grace_ms};
    return integer_reply("renew", eval("renew", renew_, args, npos));
  }

  /// ForgettableStore (operators only): deletes the record of `key` in any state, one DEL.
  bool forget(std::string_view key) {
    const std::string k = storage_key(key);
    std::vector<std::string_view> args{"DEL", k};
    const detail::redis::ReplyPtr r = command("forget", args, npos);
    if (r->type == REDIS_REPLY_ERROR)
      fail_with("forget", std::string(detail::redis::text(r.get())));
    return integer_reply("forget", r);
  }

  /// "redis", for error messages.
  [[nodiscard]] std::string_view name() const noexcept { return "redis"; }

  /// Commands sent to Redis so far by this store (operations, resends, NOSCRIPT fallbacks,
  /// and the AUTH / SELECT of new connections). For tests and benchmarks.
  [[nodiscard]] std::uint64_t commands_sent() const noexcept {
    return commands_sent_.load(std::memory_order_relaxed);
  }

  /// How many times a script was missing (NOSCRIPT) and was sent again with EVAL.
  [[nodiscard]] std::uint64_t script_reloads() const noexcept {
    return script_reloads_.load(std::memory_order_relaxed);
  }

  /// `maxmemory-policy` as read at construction; empty if CONFIG GET was refused.
  [[nodiscard]] const std::string& maxmemory_policy() const noexcept { return maxmemory_policy_; }

  /// The Redis key that holds the record of `key`: the prefix followed by `key`.
  [[nodiscard]] std::string storage_key(std::string_view key) const {
    std::string k;
    k.reserve(options_.key_prefix.size() + key.size());
    k += options_.key_prefix;
    k += key;
    return k;
  }

  [[nodiscard]] const RedisStoreOptions& options() const noexcept { return options_; }

 private:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  static RedisStoreOptions options_for(std::string_view url) {
    RedisStoreOptions o;
    o.url = std::string(url);
    return o;
  }

  bool finish(const char* op, std::string_view state, std::string_view key, const Token& token,
              std::string_view payload, std::chrono::milliseconds ttl) {
    const std::string k = storage_key(key);
    const std::string tok = token.to_hex();
    const std::string ttl_ms = detail::redis::millis(ttl);
    std::vector<std::string_view> args{"", "", "1", k, tok, state, payload, ttl_ms};
    return integer_reply(op, eval(op, finish_, args, npos));
  }

  bool integer_reply(const char* op, const detail::redis::ReplyPtr& r) const {
    if (r->type != REDIS_REPLY_INTEGER) {
      throw StoreError(std::string(name()), op, "unexpected reply from the script");
    }
    return r->integer == 1;
  }

  [[noreturn]] void fail_with(const char* op, std::string cause) const {
    detail::raise<StoreError>(std::string(name()), std::string(op), std::move(cause));
  }

  std::string where() const { return endpoint_.host + ":" + std::to_string(endpoint_.port); }

  // EVALSHA; on NOSCRIPT, EVAL (which caches the script again). args[0..1] are filled here;
  // args[resend_flag] becomes "1" when the command is resent after a lost reply.
  detail::redis::ReplyPtr eval(const char* op, const detail::redis::Script& script,
                               std::vector<std::string_view>& args, std::size_t resend_flag) {
    args[0] = "EVALSHA";
    args[1] = script.sha;
    detail::redis::ReplyPtr r = command(op, args, resend_flag);
    if (r->type == REDIS_REPLY_ERROR && detail::redis::text(r.get()).substr(0, 8) == "NOSCRIPT") {
      script_reloads_.fetch_add(1, std::memory_order_relaxed);
      args[0] = "EVAL";
      args[1] = script.body;
      r = command(op, args, resend_flag);
    }
    if (r->type == REDIS_REPLY_ERROR) fail_with(op, std::string(detail::redis::text(r.get())));
    return r;
  }

  // One command on a pooled connection, resent once on a fresh connection if a pooled
  // connection turned out to be broken (not after a timeout).
  detail::redis::ReplyPtr command(const char* op, std::vector<std::string_view>& args,
                                  std::size_t resend_flag) {
    bool fresh = false;
    detail::redis::ContextPtr c = checkout(op, false, fresh);
    // the argument vectors on the stack for the store's own commands (at most 8 arguments)
    constexpr std::size_t inline_args = 12;
    std::array<const char*, inline_args> argv_inline{};
    std::array<std::size_t, inline_args> lens_inline{};
    std::vector<const char*> argv_heap;
    std::vector<std::size_t> lens_heap;
    const char** argv = argv_inline.data();
    std::size_t* lens = lens_inline.data();
    if (args.size() > inline_args) {
      argv_heap.resize(args.size());
      lens_heap.resize(args.size());
      argv = argv_heap.data();
      lens = lens_heap.data();
    }
    for (int attempt = 0;; ++attempt) {
      for (std::size_t i = 0; i < args.size(); ++i) {
        argv[i] = args[i].data();
        lens[i] = args[i].size();
      }
      commands_sent_.fetch_add(1, std::memory_order_relaxed);
      errno = 0;
      void* raw = redisCommandArgv(c.get(), static_cast<int>(args.size()), argv, lens);
      const int saved_errno = errno;
      if (raw != nullptr) {
        checkin(std::move(c));
        return detail::redis::ReplyPtr(static_cast<redisReply*>(raw));
      }
      const bool timed_out =
          c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
      std::string cause = c->err == REDIS_ERR_EOF ? std::string("connection closed by server")
                                                  : std::string(c->errstr);
      if (timed_out) cause = "no reply within the command timeout (" + cause + ")";
      discard(std::move(c));
      if (timed_out || fresh || attempt > 0) fail_with(op, cause + " [" + where() + "]");
      if (resend_flag != npos) args[resend_flag] = "1";
      c = checkout(op, true, fresh);
    }
  }

  detail::redis::ContextPtr checkout(const char* op, bool force_fresh, bool& fresh) {
    {
      std::unique_lock lock(mutex_);
      if (!force_fresh) {
        cv_.wait(lock, [&] { return !idle_.empty() || open_ < options_.pool_size; });
        if (!idle_.empty()) {
          detail::redis::ContextPtr c = std::move(idle_.back());
          idle_.pop_back();
          fresh = false;
          return c;
        }
      } else {
        cv_.wait(lock, [&] { return open_ < options_.pool_size; });
      }
      ++open_;
    }
    fresh = true;
    try {
      return connect(op);
    } catch (...) {
      std::lock_guard lock(mutex_);
      --open_;
      cv_.notify_one();
      throw;
    }
  }

  void checkin(detail::redis::ContextPtr c) {
    {
      std::lock_guard lock(mutex_);
      idle_.push_back(std::move(c));
    }
    cv_.notify_one();
  }

  // The connection broke: close it, and the idle ones too (after a server restart or a
  // failover they are all broken; they would each cost a caller an error).
  void discard(detail::redis::ContextPtr c) {
    std::vector<detail::redis::ContextPtr> stale;
    {
      std::lock_guard lock(mutex_);
      stale.swap(idle_);
      open_ -= stale.size() + 1;
    }
    cv_.notify_all();
    c.reset();
    stale.clear();
  }

  detail::redis::ContextPtr connect(const char* op) {
    redisContext* raw =
        redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port,
                                detail::redis::to_timeval(options_.connect_timeout));
    if (raw == nullptr) fail_with(op, "cannot allocate a hiredis context [" + where() + "]");
    detail::redis::ContextPtr c(raw);
    if (c->err != 0) fail_with(op, "connect: " + std::string(c->errstr) + " [" + where() + "]");
    if (redisSetTimeout(c.get(), detail::redis::to_timeval(options_.command_timeout)) != 0) {
      fail_with(op, "set command timeout: " + std::string(c->errstr));
    }
    (void)redisEnableKeepAlive(c.get());
    if (!endpoint_.password.empty()) {
      std::vector<std::string_view> args{"AUTH"};
      if (!endpoint_.user.empty()) args.emplace_back(endpoint_.user);
      args.emplace_back(endpoint_.password);
      const detail::redis::ReplyPtr r = raw_command(c, op, args);
      if (r->type == REDIS_REPLY_ERROR) {
        fail_with(op, "AUTH: " + std::string(detail::redis::text(r.get())));
      }
    }
    if (endpoint_.db != 0) {
      const std::string db = std::to_string(endpoint_.db);
      const std::vector<std::string_view> args{"SELECT", db};
      const detail::redis::ReplyPtr r = raw_command(c, op, args);
      if (r->type == REDIS_REPLY_ERROR) {
        fail_with(op, "SELECT " + db + ": " + std::string(detail::redis::text(r.get())));
      }
    }
    return c;
  }

  // A command on a connection the caller owns; an I/O failure throws.
  detail::redis::ReplyPtr raw_command(const detail::redis::ContextPtr& c, const char* op,
                                      const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    commands_sent_.fetch_add(1, std::memory_order_relaxed);
    void* raw = redisCommandArgv(c.get(), static_cast<int>(argv.size()), argv.data(), lens.data());
    if (raw == nullptr) fail_with(op, std::string(c->errstr) + " [" + where() + "]");
    return detail::redis::ReplyPtr(static_cast<redisReply*>(raw));
  }

  void check_eviction_policy(const detail::redis::ContextPtr& c) {
    const std::vector<std::string_view> args{"CONFIG", "GET", "maxmemory-policy"};
    const detail::redis::ReplyPtr r = raw_command(c, "check maxmemory-policy", args);
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
      maxmemory_policy_ = std::string(detail::redis::text(r->element[1]));
    }
    if (options_.accept_eviction_policy || maxmemory_policy_ == "noeviction") return;
    if (maxmemory_policy_.empty()) {
      const std::string why = r->type == REDIS_REPLY_ERROR
                                  ? std::string(detail::redis::text(r.get()))
                                  : std::string("unexpected reply");
      fail_with("check maxmemory-policy",
                "CONFIG GET maxmemory-policy failed: " + why +
                    " -- CONFIG is disabled, renamed or not permitted on this server, so the "
                    "store cannot verify that records are never evicted. Make sure the policy "
                    "is noeviction, then set RedisStoreOptions::accept_eviction_policy = true");
    }
    fail_with("check maxmemory-policy",
              "maxmemory-policy is " + maxmemory_policy_ +
                  ": Redis may evict in-flight or completed records and operations would run "
                  "again. Use noeviction, or set RedisStoreOptions::accept_eviction_policy = true "
                  "to accept the risk");
  }

  RedisStoreOptions options_;
  RedisEndpoint endpoint_;
  std::string maxmemory_policy_{};
  detail::redis::Script claim_{detail::redis::claim_script, {}};
  detail::redis::Script finish_{detail::redis::finish_script, {}};
  detail::redis::Script release_{detail::redis::release_script, {}};
  detail::redis::Script renew_{detail::redis::renew_script, {}};

  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<detail::redis::ContextPtr> idle_;
  std::size_t open_ = 0;
  std::atomic<std::uint64_t> commands_sent_{0};
  std::atomic<std::uint64_t> script_reloads_{0};
};

static_assert(Store<RedisStore>, "RedisStore must satisfy idempotency::Store");
static_assert(ForgettableStore<RedisStore>);

} // namespace idempotency
