// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// RedisStore's Lua scripts and the small hiredis helpers every part of the store shares.
//
// Protocol (design §2, §6): one Redis hash per record, under a configurable key prefix:
//   s = state ('p' in progress, 'c' completed, 'f' failed), t = token (32 hex digits),
//   f = fingerprint, p = payload, d = lease deadline (Redis TIME, ms), o = claim took over
//   (d and o stay, unread, in a finished record; its remaining TTL is the key's PTTL).
// Every operation is one Lua script touching exactly that one key (so it is Redis Cluster
// slot-safe), sent with EVALSHA; on NOSCRIPT (SCRIPT FLUSH, restart, failover, a cluster node
// that never saw it) it is resent with EVAL, which also caches it on that node. An in-progress
// record's key expires `lease + holder_grace` after its claim or renewal, so a slow holder can
// still complete after its lease while nobody took it over; a claim takes over a record whose
// lease deadline passed.

#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace idempotency {

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

} // namespace idempotency
