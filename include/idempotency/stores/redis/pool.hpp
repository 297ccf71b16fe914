// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// A pool of blocking hiredis connections to one Redis server (TCP or Unix socket), and the
// pipelined exchange of a few commands on one of them. RedisStore keeps one pool per server
// it talks to (one; a cluster's masters; the primary Sentinel names).

#include <idempotency/errors.hpp>
#include <idempotency/stores/redis/scripts.hpp>
#include <idempotency/stores/redis/url.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idempotency::detail::redis {

/// What every connection of a store is opened with.
struct ConnectSettings {
  std::string user{};
  std::string password{};
  int db = 0;
  std::chrono::milliseconds connect_timeout{2000};
  std::chrono::milliseconds command_timeout{2000};
  std::size_t pool_size = 8;
  bool accept_eviction_policy = false;
};

[[noreturn]] inline void fail(const char* op, std::string cause) {
  detail::raise<StoreError>(std::string("redis"), std::string(op), std::move(cause));
}

/// Opens a connection with the timeouts set, or returns null and says why in `cause`.
inline ContextPtr open_connection(const RedisAddress& a, const ConnectSettings& s,
                                  std::string& cause) {
  redisContext* raw =
      a.unix_path.empty()
          ? redisConnectWithTimeout(a.host.c_str(), a.port, to_timeval(s.connect_timeout))
          : redisConnectUnixWithTimeout(a.unix_path.c_str(), to_timeval(s.connect_timeout));
  if (raw == nullptr) {
    cause = "cannot allocate a hiredis context [" + a.str() + "]";
    return nullptr;
  }
  ContextPtr c(raw);
  if (c->err != 0) {
    cause = "connect: " + std::string(c->errstr) + " [" + a.str() + "]";
    return nullptr;
  }
  if (redisSetTimeout(c.get(), to_timeval(s.command_timeout)) != 0) {
    cause = "set command timeout: " + std::string(c->errstr) + " [" + a.str() + "]";
    return nullptr;
  }
  if (a.unix_path.empty()) (void)redisEnableKeepAlive(c.get());
  return c;
}

/// One command on a connection the caller owns; an I/O failure throws `StoreError`.
inline ReplyPtr command_on(redisContext* c, const char* op, std::span<const std::string_view> args,
                           const std::string& where) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  void* raw = redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data());
  if (raw == nullptr) fail(op, std::string(c->errstr) + " [" + where + "]");
  return ReplyPtr(static_cast<redisReply*>(raw));
}

/// AUTH and SELECT on a new connection; a refusal throws `StoreError`.
inline void authenticate(redisContext* c, const char* op, const ConnectSettings& s,
                         const std::string& where) {
  if (!s.password.empty()) {
    std::vector<std::string_view> args{"AUTH"};
    if (!s.user.empty()) args.emplace_back(s.user);
    args.emplace_back(s.password);
    const ReplyPtr r = command_on(c, op, args, where);
    if (r->type == REDIS_REPLY_ERROR) fail(op, "AUTH: " + std::string(text(r.get())));
  }
  if (s.db != 0) {
    const std::string db = std::to_string(s.db);
    const std::array<std::string_view, 2> args{"SELECT", db};
    const ReplyPtr r = command_on(c, op, args, where);
    if (r->type == REDIS_REPLY_ERROR) {
      fail(op, "SELECT " + db + ": " + std::string(text(r.get())));
    }
  }
}

/// How an exchange on a pool ended.
enum class Io {
  ok,          ///< every reply arrived
  unreachable, ///< no connection could be opened: nothing was sent
  broken,      ///< the connection broke: the commands may or may not have run
  timed_out,   ///< no reply within the command timeout: the commands may or may not have run
};

/// Up to three commands sent together on one connection (ASKING, the script, WAIT), and
/// optionally one more sent on the same connection once the last reply is in, if
/// `follow_if(last reply)` says so (a claim that acquired waits for its replicas; a replay
/// does not).
struct Batch {
  static constexpr std::size_t max = 3;
  std::array<std::span<const std::string_view>, max> commands{};
  std::size_t count = 0;
  std::array<ReplyPtr, max> replies{};
  std::span<const std::string_view> follow_up{};
  bool (*follow_if)(const redisReply*) = nullptr;
  ReplyPtr follow_reply{};

  void add(std::span<const std::string_view> args) noexcept { commands[count++] = args; }
  void clear() noexcept {
    for (std::size_t i = 0; i < count; ++i) replies[i].reset();
    follow_reply.reset();
    count = 0;
  }
};

/// Up to `pool_size` connections to one server, shared by all threads (opened lazily; a thread
/// holds one only for one exchange). A broken connection is closed and the idle ones with it
/// (a restart or a failover breaks them all).
class Pool {
 public:
  Pool(RedisAddress address, const ConnectSettings& settings,
       std::atomic<std::uint64_t>& commands_sent)
      : address_(std::move(address)),
        where_(address_.str()),
        settings_(settings),
        commands_sent_(commands_sent) {}

  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  Pool(Pool&&) = delete;
  Pool& operator=(Pool&&) = delete;
  ~Pool() = default;

  [[nodiscard]] const RedisAddress& address() const noexcept { return address_; }
  [[nodiscard]] const std::string& where() const noexcept { return where_; }

  /// Sends the batch's commands on one connection and reads every reply. `force_fresh` opens
  /// a new connection instead of taking an idle one; `fresh` tells which one was used. On
  /// anything but `Io::ok`, `cause` says what happened. A server that refuses AUTH / SELECT
  /// or fails the eviction-policy check throws `StoreError`.
  Io run(const char* op, Batch& b, bool force_fresh, bool& fresh, std::string& cause) {
    ContextPtr c = checkout(op, force_fresh, fresh, cause);
    if (!c) return Io::unreachable;
    constexpr std::size_t inline_args = 12;
    std::array<const char*, inline_args> argv_inline{};
    std::array<std::size_t, inline_args> lens_inline{};
    std::vector<const char*> argv_heap;
    std::vector<std::size_t> lens_heap;
    for (std::size_t i = 0; i < b.count; ++i) {
      const auto args = b.commands[i];
      const char** argv = argv_inline.data();
      std::size_t* lens = lens_inline.data();
      if (args.size() > inline_args) {
        argv_heap.resize(args.size());
        lens_heap.resize(args.size());
        argv = argv_heap.data();
        lens = lens_heap.data();
      }
      for (std::size_t j = 0; j < args.size(); ++j) {
        argv[j] = args[j].data();
        lens[j] = args[j].size();
      }
      if (redisAppendCommandArgv(c.get(), static_cast<int>(args.size()), argv, lens) != REDIS_OK) {
        cause = std::string(c->errstr) + " [" + where_ + "]";
        discard(std::move(c));
        return Io::broken;
      }
    }
    commands_sent_.fetch_add(b.count, std::memory_order_relaxed);
    for (std::size_t i = 0; i < b.count; ++i) {
      if (const Io io = read_reply(c, b.replies[i], cause); io != Io::ok) return io;
    }
    if (b.follow_if != nullptr && b.follow_if(b.replies[b.count - 1].get())) {
      std::array<const char*, inline_args> argv{};
      std::array<std::size_t, inline_args> lens{};
      const auto args = b.follow_up.first(std::min(b.follow_up.size(), inline_args));
      for (std::size_t j = 0; j < args.size(); ++j) {
        argv[j] = args[j].data();
        lens[j] = args[j].size();
      }
      commands_sent_.fetch_add(1, std::memory_order_relaxed);
      if (redisAppendCommandArgv(c.get(), static_cast<int>(args.size()), argv.data(),
                                 lens.data()) != REDIS_OK) {
        cause = std::string(c->errstr) + " [" + where_ + "]";
        discard(std::move(c));
        return Io::broken;
      }
      if (const Io io = read_reply(c, b.follow_reply, cause); io != Io::ok) return io;
    }
    checkin(std::move(c));
    return Io::ok;
  }

  /// A connection of this pool for a setup command (SCRIPT LOAD); returned with `give_back`.
  ContextPtr borrow(const char* op) {
    bool fresh = false;
    std::string cause;
    ContextPtr c = checkout(op, false, fresh, cause);
    if (!c) fail(op, cause);
    return c;
  }
  void give_back(ContextPtr c) { checkin(std::move(c)); }

  /// `maxmemory-policy` as read on the first connection; empty if CONFIG GET was refused.
  [[nodiscard]] std::string maxmemory_policy() const {
    std::lock_guard lock(mutex_);
    return maxmemory_policy_;
  }

  /// Closes the idle connections (after the server was found demoted or gone).
  void drop_idle() {
    std::vector<ContextPtr> stale;
    {
      std::lock_guard lock(mutex_);
      stale.swap(idle_);
      open_ -= stale.size();
    }
    cv_.notify_all();
  }

 private:
  // Reads one reply; on failure the connection is discarded and `cause` says why.
  Io read_reply(ContextPtr& c, ReplyPtr& out, std::string& cause) {
    void* raw = nullptr;
    errno = 0;
    const int rc = redisGetReply(c.get(), &raw);
    const int saved_errno = errno;
    if (rc == REDIS_OK && raw != nullptr) {
      out.reset(static_cast<redisReply*>(raw));
      return Io::ok;
    }
    const bool timed_out =
        c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK);
    cause = c->err == REDIS_ERR_EOF ? std::string("connection closed by server")
                                    : std::string(c->errstr);
    if (timed_out) cause = "no reply within the command timeout (" + cause + ")";
    cause += " [" + where_ + "]";
    discard(std::move(c));
    return timed_out ? Io::timed_out : Io::broken;
  }

  ContextPtr checkout(const char* op, bool force_fresh, bool& fresh, std::string& cause) {
    {
      std::unique_lock lock(mutex_);
      if (!force_fresh) {
        cv_.wait(lock, [&] { return !idle_.empty() || open_ < settings_.pool_size; });
        if (!idle_.empty()) {
          ContextPtr c = std::move(idle_.back());
          idle_.pop_back();
          fresh = false;
          return c;
        }
      } else {
        cv_.wait(lock, [&] { return open_ < settings_.pool_size; });
      }
      ++open_;
    }
    fresh = true;
    try {
      ContextPtr c = open_connection(address_, settings_, cause);
      if (c) {
        commands_sent_.fetch_add(
            (settings_.password.empty() ? 0U : 1U) + (settings_.db == 0 ? 0U : 1U),
            std::memory_order_relaxed);
        authenticate(c.get(), op, settings_, where_);
        check_eviction_policy_once(c.get());
        return c;
      }
    } catch (...) {
      release_slot();
      throw;
    }
    release_slot();
    return nullptr;
  }

  void release_slot() {
    {
      std::lock_guard lock(mutex_);
      --open_;
    }
    cv_.notify_one();
  }

  void checkin(ContextPtr c) {
    {
      std::lock_guard lock(mutex_);
      idle_.push_back(std::move(c));
    }
    cv_.notify_one();
  }

  void discard(ContextPtr c) {
    std::vector<ContextPtr> stale;
    {
      std::lock_guard lock(mutex_);
      stale.swap(idle_);
      open_ -= stale.size() + 1;
    }
    cv_.notify_all();
    c.reset();
    stale.clear();
  }

  // Every server a store writes to is checked once: eviction can drop an in-flight or
  // completed record, and the operation would run again.
  void check_eviction_policy_once(redisContext* c) {
    if (policy_checked_.load(std::memory_order_acquire)) return;
    const std::array<std::string_view, 3> args{"CONFIG", "GET", "maxmemory-policy"};
    commands_sent_.fetch_add(1, std::memory_order_relaxed);
    const ReplyPtr r = command_on(c, "check maxmemory-policy", args, where_);
    std::string policy;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
      policy = std::string(text(r->element[1]));
    }
    {
      std::lock_guard lock(mutex_);
      maxmemory_policy_ = policy;
    }
    if (settings_.accept_eviction_policy || policy == "noeviction") {
      policy_checked_.store(true, std::memory_order_release);
      return;
    }
    if (policy.empty()) {
      const std::string why = r->type == REDIS_REPLY_ERROR ? std::string(text(r.get()))
                                                           : std::string("unexpected reply");
      fail("check maxmemory-policy",
           "CONFIG GET maxmemory-policy failed on " + where_ + ": " + why +
               " -- CONFIG is disabled, renamed or not permitted on this server, so the "
               "store cannot verify that records are never evicted. Make sure the policy "
               "is noeviction, then set RedisStoreOptions::accept_eviction_policy = true");
    }
    fail("check maxmemory-policy",
         "maxmemory-policy is " + policy + " on " + where_ +
             ": Redis may evict in-flight or completed records and operations would run "
             "again. Use noeviction, or set RedisStoreOptions::accept_eviction_policy = true "
             "to accept the risk");
  }

  RedisAddress address_;
  std::string where_;
  ConnectSettings settings_;
  std::atomic<std::uint64_t>& commands_sent_;
  std::atomic<bool> policy_checked_{false};

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<ContextPtr> idle_;
  std::size_t open_ = 0;
  std::string maxmemory_policy_{};
};

} // namespace idempotency::detail::redis
