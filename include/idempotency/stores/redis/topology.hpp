// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// Which server a RedisStore sends a key's command to: the one server; the master that owns the
// key's slot in a Redis Cluster (a slot map read with CLUSTER SLOTS); or the primary that the
// Sentinels name for a master (verified with ROLE). `refresh` learns the arrangement again
// after a failure; one thread does it while the others that saw the same failure wait for it.

#include <idempotency/errors.hpp>
#include <idempotency/stores/redis/pool.hpp>
#include <idempotency/stores/redis/slot.hpp>
#include <idempotency/stores/redis/url.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idempotency::detail::redis {

class Topology {
 public:
  Topology(RedisUrl url, ConnectSettings settings, std::atomic<std::uint64_t>& commands_sent)
      : url_(std::move(url)), settings_(std::move(settings)), commands_sent_(commands_sent) {
    settings_.user = url_.user;
    settings_.password = url_.password;
    settings_.db = url_.db;
    if (url_.topology == RedisTopology::single) {
      single_ = pool_at(url_.nodes.front());
      return;
    }
    owner_.assign(slot_count, none);
    std::string why;
    if (!learn(why)) fail("connect", why);
  }

  [[nodiscard]] RedisTopology kind() const noexcept { return url_.topology; }

  /// The pool that serves `slot` now; null when no server is known for it.
  [[nodiscard]] std::shared_ptr<Pool> pool_for(std::uint16_t slot) const {
    if (single_) return single_;
    std::shared_lock lock(mutex_);
    if (url_.topology == RedisTopology::sentinel) return primary_;
    const std::uint16_t i = owner_[slot];
    return i == none ? nullptr : pools_[i];
  }

  /// The pool of the server at `a`, made on first use.
  std::shared_ptr<Pool> pool_at(const RedisAddress& a) {
    std::unique_lock lock(mutex_);
    return pool_at_locked(a);
  }

  /// A MOVED reply: `slot` is now served by `a`.
  void moved(std::uint16_t slot, const RedisAddress& a) {
    std::unique_lock lock(mutex_);
    const std::shared_ptr<Pool> p = pool_at_locked(a);
    owner_[slot] = index_of_locked(p);
  }

  /// Increases whenever the arrangement was learnt again.
  [[nodiscard]] std::uint64_t generation() const noexcept {
    return generation_.load(std::memory_order_acquire);
  }

  /// Learns the arrangement again, unless somebody did since the caller read `seen` (a burst of
  /// failures costs one refresh). False when no server answered; `why` then says what failed.
  bool refresh(std::uint64_t seen, std::string& why) {
    if (single_) return true;
    std::lock_guard refreshing(refresh_mutex_);
    if (generation() != seen) return true;
    return learn(why);
  }

  /// Every pool made so far (the cluster's nodes, the primaries Sentinel named).
  [[nodiscard]] std::vector<std::shared_ptr<Pool>> pools() const {
    std::shared_lock lock(mutex_);
    return pools_;
  }

  /// The server a sentinel topology writes to now (empty address for the others).
  [[nodiscard]] RedisAddress primary() const {
    std::shared_lock lock(mutex_);
    return primary_ ? primary_->address() : RedisAddress{"", 0, ""};
  }

 private:
  static constexpr std::uint16_t none = 0xFFFF;

  std::shared_ptr<Pool> pool_at_locked(const RedisAddress& a) {
    const std::string k = a.str();
    if (const auto it = by_address_.find(k); it != by_address_.end()) return pools_[it->second];
    if (pools_.size() >= none) fail("route", "too many Redis servers");
    pools_.push_back(std::make_shared<Pool>(a, settings_, commands_sent_));
    by_address_.emplace(k, static_cast<std::uint16_t>(pools_.size() - 1));
    return pools_.back();
  }

  std::uint16_t index_of_locked(const std::shared_ptr<Pool>& p) const {
    return by_address_.at(p->address().str());
  }

  bool learn(std::string& why) {
    const bool ok = url_.topology == RedisTopology::cluster ? learn_slots(why) : learn_primary(why);
    if (ok) generation_.fetch_add(1, std::memory_order_acq_rel);
    return ok;
  }

  // A one-off connection for a topology question.
  ContextPtr ask(const RedisAddress& a, bool auth, std::string& why) {
    std::string cause;
    ContextPtr c = open_connection(a, settings_, cause);
    if (!c) {
      why += (why.empty() ? "" : "; ") + cause;
      return nullptr;
    }
    if (auth) {
      ConnectSettings s = settings_;
      s.db = 0;
      authenticate(c.get(), "connect", s, a.str());
    }
    return c;
  }

  // CLUSTER SLOTS from the known masters first, then the seeds.
  bool learn_slots(std::string& why) {
    std::vector<RedisAddress> candidates;
    for (const auto& p : pools()) candidates.push_back(p->address());
    for (const auto& s : url_.nodes) candidates.push_back(s);
    for (const RedisAddress& a : candidates) {
      ContextPtr c = ask(a, true, why);
      if (!c) continue;
      const std::array<std::string_view, 2> args{"CLUSTER", "SLOTS"};
      commands_sent_.fetch_add(1, std::memory_order_relaxed);
      ReplyPtr r;
      try {
        r = command_on(c.get(), "cluster slots", args, a.str());
      } catch (const StoreError& e) {
        why += (why.empty() ? "" : "; ") + std::string(e.cause());
        continue;
      }
      if (r->type != REDIS_REPLY_ARRAY) {
        why += (why.empty() ? "" : "; ") + a.str() + " CLUSTER SLOTS: " +
               (r->type == REDIS_REPLY_ERROR ? std::string(text(r.get())) : "unexpected reply");
        continue;
      }
      std::vector<std::pair<std::pair<long long, long long>, RedisAddress>> ranges;
      for (std::size_t i = 0; i < r->elements; ++i) {
        const redisReply* e = r->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3 ||
            e->element[0]->type != REDIS_REPLY_INTEGER ||
            e->element[1]->type != REDIS_REPLY_INTEGER ||
            e->element[2]->type != REDIS_REPLY_ARRAY || e->element[2]->elements < 2 ||
            e->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
          continue;
        }
        RedisAddress m;
        const std::string_view host = text(e->element[2]->element[0]);
        m.host = host.empty() || host == "?" ? a.host : std::string(host);
        m.port = static_cast<int>(e->element[2]->element[1]->integer);
        ranges.push_back({{e->element[0]->integer, e->element[1]->integer}, m});
      }
      if (ranges.empty()) {
        why += (why.empty() ? "" : "; ") + a.str() + " serves no slot (cluster not ready?)";
        continue;
      }
      std::unique_lock lock(mutex_);
      std::fill(owner_.begin(), owner_.end(), none);
      for (const auto& [range, m] : ranges) {
        const std::uint16_t idx = index_of_locked(pool_at_locked(m));
        for (long long s = std::max(0LL, range.first);
             s <= std::min<long long>(range.second, slot_count - 1); ++s) {
          owner_[static_cast<std::size_t>(s)] = idx;
        }
      }
      return true;
    }
    return false;
  }

  // SENTINEL get-master-addr-by-name from each sentinel in turn, then ROLE on the answer.
  bool learn_primary(std::string& why) {
    for (const RedisAddress& s : url_.nodes) {
      ContextPtr c = ask(s, false, why);
      if (!c) continue;
      const std::array<std::string_view, 3> args{"SENTINEL", "get-master-addr-by-name",
                                                 url_.master_name};
      commands_sent_.fetch_add(1, std::memory_order_relaxed);
      ReplyPtr r;
      try {
        r = command_on(c.get(), "sentinel", args, s.str());
      } catch (const StoreError& e) {
        why += (why.empty() ? "" : "; ") + std::string(e.cause());
        continue;
      }
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
          r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
        why += (why.empty() ? "" : "; ") + s.str() + " does not know master '" + url_.master_name +
               "'";
        continue;
      }
      RedisAddress m;
      m.host = std::string(text(r->element[0]));
      const std::string port(text(r->element[1]));
      m.port = std::atoi(port.c_str());
      ContextPtr p = ask(m, true, why);
      if (!p) continue;
      const std::array<std::string_view, 1> role{"ROLE"};
      commands_sent_.fetch_add(1, std::memory_order_relaxed);
      ReplyPtr rr;
      try {
        rr = command_on(p.get(), "role", role, m.str());
      } catch (const StoreError& e) {
        why += (why.empty() ? "" : "; ") + std::string(e.cause());
        continue;
      }
      if (rr->type != REDIS_REPLY_ARRAY || rr->elements < 1 || text(rr->element[0]) != "master") {
        why += (why.empty() ? "" : "; ") + s.str() + " named " + m.str() +
               ", which is not a primary (yet)";
        continue;
      }
      std::unique_lock lock(mutex_);
      std::shared_ptr<Pool> pool = pool_at_locked(m);
      if (primary_ && primary_ != pool) primary_->drop_idle();
      primary_ = std::move(pool);
      return true;
    }
    return false;
  }

  RedisUrl url_;
  ConnectSettings settings_;
  std::atomic<std::uint64_t>& commands_sent_;
  std::shared_ptr<Pool> single_{};

  mutable std::shared_mutex mutex_;
  std::vector<std::shared_ptr<Pool>> pools_{};
  std::map<std::string, std::uint16_t> by_address_{};
  std::vector<std::uint16_t> owner_{};
  std::shared_ptr<Pool> primary_{};

  std::mutex refresh_mutex_;
  std::atomic<std::uint64_t> generation_{0};
};

} // namespace idempotency::detail::redis
