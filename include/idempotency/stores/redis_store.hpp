// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// RedisStore: the Store contract on Redis (hiredis, RESP2), for a fleet of services sharing one
// Redis: a single server (TCP or Unix socket), a Redis Cluster, or a primary watched by
// Sentinel. Requires hiredis (CMake target `idempotency::redis`); only those who include this
// header compile against it. The protocol (one hash per record, one Lua script per operation)
// is described in stores/redis/scripts.hpp.

#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>
#include <idempotency/stores/redis/options.hpp>
#include <idempotency/stores/redis/pool.hpp>
#include <idempotency/stores/redis/scripts.hpp>
#include <idempotency/stores/redis/slot.hpp>
#include <idempotency/stores/redis/topology.hpp>
#include <idempotency/stores/redis/url.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace idempotency {

/// A Store on Redis (design §6): claim-or-get in one round trip, token-checked
/// complete / fail / release / renew in one round trip each; a replay hit costs 1 command and
/// a first execution 2 (with `replica_acks`, a first execution adds one WAIT to each).
///
/// Connections: per server a pool of up to `pool_size` blocking hiredis connections shared by
/// all threads. A command whose connection broke after it was sent is resent on a fresh
/// connection (once on a single server; on a cluster or Sentinel, after learning the topology
/// again, until `command_timeout` passes); the scripts recognise their own earlier effect
/// (same token), so a resend never changes the answer. Timeouts are not resent.
///
/// Cluster: each key goes to its slot's master; MOVED updates the slot map and retries, ASK
/// sends ASKING and retries, TRYAGAIN / CLUSTERDOWN back off and retry within the command
/// timeout. Sentinel: the primary is asked of the sentinels and verified with ROLE; a broken
/// connection or a READONLY reply asks again.
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
  /// Connects, reads `maxmemory-policy` (refusing anything but `noeviction` unless
  /// `accept_eviction_policy`) and loads the scripts. Throws `StoreError`, or
  /// `InvalidOptionsError` for options that break their rules.
  explicit RedisStore(RedisStoreOptions options = {})
      : options_(validated(std::move(options))),
        topology_(RedisUrl::parse(options_.url), settings_of(options_), commands_sent_),
        acks_(std::to_string(options_.replica_acks)),
        ack_ms_(std::to_string(options_.replica_ack_timeout.count())) {
    const std::vector<std::shared_ptr<detail::redis::Pool>> pools = topology_.pools();
    const std::shared_ptr<detail::redis::Pool> first =
        topology_.kind() == RedisTopology::sentinel ? topology_.pool_for(0) : pools.front();
    // the first connection checks the eviction policy; scripts are loaded on this server
    // (SHA-1 names them everywhere; another server loads one on its first NOSCRIPT)
    detail::redis::ContextPtr c = first->borrow("connect");
    for (detail::redis::Script* s : {&claim_, &finish_, &release_, &renew_}) {
      const std::array<std::string_view, 3> args{"SCRIPT", "LOAD", s->body};
      commands_sent_.fetch_add(1, std::memory_order_relaxed);
      const detail::redis::ReplyPtr r =
          detail::redis::command_on(c.get(), "load scripts", args, first->where());
      if (r->type != REDIS_REPLY_STRING) {
        throw StoreError(std::string(name()), "load scripts",
                         "SCRIPT LOAD: " + std::string(detail::redis::text(r.get())));
      }
      s->sha = std::string(detail::redis::text(r.get()));
    }
    first->give_back(std::move(c));
    // on a cluster every master is checked now, not on its first record
    for (const auto& p : pools) p->give_back(p->borrow("connect"));
  }

  /// Shorthand for `RedisStore({.url = url})`.
  explicit RedisStore(std::string_view url) : RedisStore(options_for(url)) {}

  RedisStore(const RedisStore&) = delete;
  RedisStore& operator=(const RedisStore&) = delete;
  RedisStore(RedisStore&&) = delete;
  RedisStore& operator=(RedisStore&&) = delete;
  ~RedisStore() = default;

  /// Store contract 1: claim-or-get, one EVALSHA (+ one WAIT when it acquired and
  /// `replica_acks` > 0).
  [[nodiscard]] ClaimResult claim(std::string_view key, std::string_view fingerprint,
                                  std::chrono::milliseconds lease) {
    const Token token = Token::random();
    const std::string k = storage_key(key);
    const std::string tok = token.to_hex();
    const std::string lease_ms = detail::redis::millis(lease);
    const std::string grace_ms = detail::redis::millis(options_.holder_grace);
    std::vector<std::string_view> args{"", "", "1", k, fingerprint, tok, lease_ms, grace_ms};
    long long acks = -1;
    const detail::redis::ReplyPtr r = eval("claim", claim_, k, args, npos, Wait::if_acquired, acks);
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
      if (short_of_acks(acks)) {
        // nothing runs on a claim that a failover may forget: give it back, then say so
        try {
          std::vector<std::string_view> rel{"", "", "1", k, tok, "0"};
          long long ignored = -1;
          (void)eval("release", release_, k, rel, 5, Wait::never, ignored);
        } catch (const Error&) { // NOLINT(bugprone-empty-catch): the lease ends it anyway
        }
        throw ReplicaAckError("claim", acks, options_.replica_acks);
      }
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
    long long acks = -1;
    const detail::redis::ReplyPtr r = eval("release", release_, k, args, 5, Wait::always, acks);
    return acked_integer("release", r, acks);
  }

  /// Store contract 5: sets the lease of `InProgress(token)` to `lease` from now (Redis's
  /// clock), one EVALSHA.
  bool renew(std::string_view key, const Token& token, std::chrono::milliseconds lease) {
    const std::string k = storage_key(key);
    const std::string tok = token.to_hex();
    const std::string lease_ms = detail::redis::millis(lease);
    const std::string grace_ms = detail::redis::millis(options_.holder_grace);
    std::vector<std::string_view> args{"", "", "1", k, tok, lease_ms, grace_ms};
    long long acks = -1;
    const detail::redis::ReplyPtr r = eval("renew", renew_, k, args, npos, Wait::always, acks);
    return acked_integer("renew", r, acks);
  }

  /// ForgettableStore (operators only): deletes the record of `key` in any state, one DEL.
  bool forget(std::string_view key) {
    const std::string k = storage_key(key);
    std::vector<std::string_view> args{"DEL", k};
    long long acks = -1;
    const detail::redis::ReplyPtr r = send("forget", k, args, npos, nullptr, Wait::never, acks);
    if (r->type != REDIS_REPLY_INTEGER) {
      throw StoreError(std::string(name()), "forget", "unexpected reply to DEL");
    }
    return r->integer == 1;
  }

  /// "redis", for error messages.
  [[nodiscard]] std::string_view name() const noexcept { return "redis"; }

  /// Commands sent to Redis so far by this store (operations, resends, NOSCRIPT fallbacks,
  /// redirections, WAITs, and the AUTH / SELECT of new connections).
  [[nodiscard]] std::uint64_t commands_sent() const noexcept {
    return commands_sent_.load(std::memory_order_relaxed);
  }

  /// How many times a script was missing (NOSCRIPT) and was sent again with EVAL.
  [[nodiscard]] std::uint64_t script_reloads() const noexcept {
    return script_reloads_.load(std::memory_order_relaxed);
  }

  /// Every counter at once.
  [[nodiscard]] RedisStoreStats stats() const noexcept {
    constexpr auto r = std::memory_order_relaxed;
    return {commands_sent_.load(r), script_reloads_.load(r), moved_.load(r),     ask_.load(r),
            retries_.load(r),       refreshes_.load(r),      shortfalls_.load(r)};
  }

  /// `maxmemory-policy` of the first server, as read on its first connection; empty if
  /// CONFIG GET was refused.
  [[nodiscard]] std::string maxmemory_policy() const {
    const auto p = topology_.kind() == RedisTopology::sentinel ? topology_.pool_for(0)
                                                               : topology_.pools().front();
    return p ? p->maxmemory_policy() : std::string();
  }

  /// The arrangement of servers this store talks to.
  [[nodiscard]] RedisTopology topology() const noexcept { return topology_.kind(); }

  /// Sentinel: the primary the store writes to now (`host:port`); otherwise "".
  [[nodiscard]] std::string current_primary() const {
    return topology_.kind() == RedisTopology::sentinel ? topology_.primary().str() : "";
  }

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
  enum class Wait { never, if_acquired, always };

  static RedisStoreOptions options_for(std::string_view url) {
    RedisStoreOptions o;
    o.url = std::string(url);
    return o;
  }

  static RedisStoreOptions validated(RedisStoreOptions o) {
    const auto bad = [](const std::string& why) {
      detail::raise<InvalidOptionsError>("RedisStoreOptions: " + why);
    };
    if (o.pool_size == 0) o.pool_size = 1;
    if (o.connect_timeout.count() <= 0) bad("connect_timeout must be positive");
    if (o.command_timeout.count() <= 0) bad("command_timeout must be positive");
    if (o.replica_acks > 0 &&
        (o.replica_ack_timeout.count() <= 0 || o.replica_ack_timeout >= o.command_timeout)) {
      bad("replica_ack_timeout must be positive and below command_timeout (else the WAIT "
          "would outlast the reply's timeout)");
    }
    if (o.replica_acks > 1000) bad("replica_acks is over 1000");
    return o;
  }

  static detail::redis::ConnectSettings settings_of(const RedisStoreOptions& o) {
    detail::redis::ConnectSettings s;
    s.connect_timeout = o.connect_timeout;
    s.command_timeout = o.command_timeout;
    s.pool_size = o.pool_size;
    s.accept_eviction_policy = o.accept_eviction_policy;
    return s;
  }

  bool finish(const char* op, std::string_view state, std::string_view key, const Token& token,
              std::string_view payload, std::chrono::milliseconds ttl) {
    const std::string k = storage_key(key);
    const std::string tok = token.to_hex();
    const std::string ttl_ms = detail::redis::millis(ttl);
    std::vector<std::string_view> args{"", "", "1", k, tok, state, payload, ttl_ms};
    long long acks = -1;
    const detail::redis::ReplyPtr r = eval(op, finish_, k, args, npos, Wait::always, acks);
    return acked_integer(op, r, acks);
  }

  // The script's 0/1; a 1 whose WAIT fell short of `replica_acks` throws ReplicaAckError.
  bool acked_integer(const char* op, const detail::redis::ReplyPtr& r, long long acks) {
    const bool done = integer_reply(op, r);
    if (done && short_of_acks(acks)) throw ReplicaAckError(op, acks, options_.replica_acks);
    return done;
  }

  bool short_of_acks(long long acks) {
    if (options_.replica_acks == 0 || acks < 0) return false;
    if (static_cast<std::size_t>(acks) >= options_.replica_acks) return false;
    shortfalls_.fetch_add(1, std::memory_order_relaxed);
    return true;
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

  // EVALSHA (EVAL after a NOSCRIPT), routed, redirected and retried; see `send`.
  detail::redis::ReplyPtr eval(const char* op, const detail::redis::Script& script,
                               std::string_view k, std::vector<std::string_view>& args,
                               std::size_t resend_flag, Wait wait, long long& acks) {
    return send(op, k, args, resend_flag, &script, wait, acks);
  }

  static bool acquired(const redisReply* r) noexcept {
    return r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
           r->element[0]->type == REDIS_REPLY_STRING && r->element[0]->len == 1 &&
           r->element[0]->str[0] == 'a';
  }

  // Where a MOVED/ASK reply points: "MOVED <slot> <host>:<port>".
  static bool redirect_target(std::string_view t, RedisAddress& a) {
    const auto space = t.rfind(' ');
    if (space == std::string_view::npos) return false;
    const std::string_view hp = t.substr(space + 1);
    const auto colon = hp.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return false;
    a.host = std::string(hp.substr(0, colon));
    const std::string_view port = hp.substr(colon + 1);
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), a.port);
    return ec == std::errc() && end == port.data() + port.size();
  }

  static bool starts(std::string_view t, std::string_view p) noexcept {
    return t.substr(0, p.size()) == p;
  }

  // One command (a script when `script` is set: args[0..1] are filled here) for storage key
  // `k`, on the server that serves it, with WAIT added per `wait`. Follows MOVED and ASK,
  // retries TRYAGAIN / CLUSTERDOWN / LOADING / MASTERDOWN (and, on a cluster or Sentinel,
  // READONLY and a lost server, learning the topology again) with backoff until
  // `command_timeout` has passed. args[resend_flag] becomes "1" once the command may have run.
  detail::redis::ReplyPtr send(const char* op, std::string_view k,
                               std::vector<std::string_view>& args, std::size_t resend_flag,
                               const detail::redis::Script* script, Wait wait, long long& acks) {
    using Clock = std::chrono::steady_clock;
    using detail::redis::Io;
    const bool routed = topology_.kind() != RedisTopology::single;
    const std::uint16_t slot =
        topology_.kind() == RedisTopology::cluster ? detail::redis::key_slot(k) : 0;
    const std::array<std::string_view, 1> asking{"ASKING"};
    const std::array<std::string_view, 3> wait_cmd{"WAIT", acks_, ack_ms_};
    const bool waits = options_.replica_acks > 0 && wait != Wait::never;
    const Clock::time_point deadline = Clock::now() + options_.command_timeout;
    std::shared_ptr<detail::redis::Pool> ask_pool;
    bool use_eval = false;
    bool force_fresh = false;
    bool resent_fresh = false;
    int redirects = 0;
    auto backoff = std::chrono::milliseconds(5);
    detail::redis::Batch b;
    for (;;) {
      const std::uint64_t generation = topology_.generation();
      std::shared_ptr<detail::redis::Pool> pool = ask_pool ? ask_pool : topology_.pool_for(slot);
      std::string cause;
      bool refresh = false;
      if (pool) {
        if (script != nullptr) {
          args[0] = use_eval ? "EVAL" : "EVALSHA";
          args[1] = use_eval ? std::string_view(script->body) : std::string_view(script->sha);
        }
        b.clear();
        if (ask_pool) b.add(asking);
        b.add(args);
        if (waits && wait == Wait::always) b.add(wait_cmd);
        if (waits && wait == Wait::if_acquired) {
          b.follow_up = wait_cmd;
          b.follow_if = &RedisStore::acquired;
        }
        bool fresh = false;
        const Io io = pool->run(op, b, force_fresh, fresh, cause);
        force_fresh = false;
        if (io == Io::ok) {
          const detail::redis::ReplyPtr& main = b.replies[ask_pool ? 1 : 0];
          if (main->type != REDIS_REPLY_ERROR) {
            const detail::redis::ReplyPtr& w =
                wait == Wait::always && waits ? b.replies[b.count - 1] : b.follow_reply;
            acks = w && w->type == REDIS_REPLY_INTEGER ? w->integer : (waits && w ? 0 : -1);
            return std::move(b.replies[ask_pool ? 1 : 0]);
          }
          const std::string_view t = detail::redis::text(main.get());
          RedisAddress to;
          if (starts(t, "NOSCRIPT") && script != nullptr && !use_eval) {
            script_reloads_.fetch_add(1, std::memory_order_relaxed);
            use_eval = true;
            continue;
          }
          if ((starts(t, "MOVED ") || starts(t, "ASK ")) && redirect_target(t, to) &&
              ++redirects <= 16) {
            if (t[0] == 'M') {
              moved_.fetch_add(1, std::memory_order_relaxed);
              topology_.moved(slot, to);
              ask_pool.reset();
            } else {
              ask_.fetch_add(1, std::memory_order_relaxed);
              ask_pool = topology_.pool_at(to);
            }
            continue;
          }
          const bool transient = starts(t, "TRYAGAIN") || starts(t, "CLUSTERDOWN") ||
                                 starts(t, "LOADING") || starts(t, "MASTERDOWN") ||
                                 (routed && starts(t, "READONLY"));
          if (!transient) fail_with(op, std::string(t) + " [" + pool->where() + "]");
          cause = std::string(t) + " [" + pool->where() + "]";
          refresh = routed && !starts(t, "TRYAGAIN") && !starts(t, "LOADING");
        } else {
          if (io == Io::timed_out) fail_with(op, cause);
          if (io == Io::broken && resend_flag != npos) args[resend_flag] = "1";
          if (io == Io::broken && !fresh && !resent_fresh) {
            // a pooled connection was stale (a restart, a failover): once, on a fresh one
            resent_fresh = true;
            force_fresh = true;
            retries_.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          if (!routed) fail_with(op, cause);
          refresh = true;
        }
      } else {
        cause = "no master serves slot " + std::to_string(slot);
        refresh = true;
      }
      // wait, learn the topology again if the failure says it changed, and retry
      if (Clock::now() + backoff >= deadline) {
        fail_with(op, cause + " (still failing after retrying for the command timeout)");
      }
      ask_pool.reset();
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, std::chrono::milliseconds(200));
      retries_.fetch_add(1, std::memory_order_relaxed);
      if (refresh) {
        std::string why;
        refreshes_.fetch_add(1, std::memory_order_relaxed);
        (void)topology_.refresh(generation, why);
      }
    }
  }

  RedisStoreOptions options_;
  std::atomic<std::uint64_t> commands_sent_{0};
  detail::redis::Topology topology_;
  std::string acks_;
  std::string ack_ms_;
  detail::redis::Script claim_{detail::redis::claim_script, {}};
  detail::redis::Script finish_{detail::redis::finish_script, {}};
  detail::redis::Script release_{detail::redis::release_script, {}};
  detail::redis::Script renew_{detail::redis::renew_script, {}};
  std::atomic<std::uint64_t> script_reloads_{0};
  std::atomic<std::uint64_t> moved_{0};
  std::atomic<std::uint64_t> ask_{0};
  std::atomic<std::uint64_t> retries_{0};
  std::atomic<std::uint64_t> refreshes_{0};
  std::atomic<std::uint64_t> shortfalls_{0};
};

static_assert(Store<RedisStore>, "RedisStore must satisfy idempotency::Store");
static_assert(ForgettableStore<RedisStore>);

} // namespace idempotency
