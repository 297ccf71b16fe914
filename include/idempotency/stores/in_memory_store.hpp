// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace idempotency {

/// Options of `InMemoryStore`.
struct InMemoryStoreOptions {
  /// Number of independently locked shards (rounded up to a power of two, at least 1).
  std::size_t shards = 16;
  /// Most records held at once, live or not yet reclaimed; 0 = unbounded. A claim that would
  /// exceed it first reclaims expired records, then throws `CapacityExceededError`.
  std::size_t max_records = 0;
  /// How long an in-progress record is kept after its lease passed, so a slow holder nobody
  /// took over can still record its result (design §2). Then it is reclaimed.
  std::chrono::milliseconds in_progress_grace = std::chrono::hours(1);
  /// The store's clock; empty = `std::chrono::steady_clock::now`. Tests pass a ManualClock.
  std::function<std::chrono::steady_clock::time_point()> clock{};
};

/// A thread-safe, sharded, in-process store: for one process and for tests.
///
/// Every operation locks one shard. Expired records are reclaimed as the store is used (a
/// shard is swept after as many claims as it held records at its last sweep, so reclaiming
/// costs O(1) amortized per claim) and by `purge_expired`. Waiters are woken through a condition
/// variable (`WaitableStore`).
///
/// Example:
///
///     idempotency::InMemoryStore store;
///     idempotency::IdempotencyExecutor exec{store};
class InMemoryStore {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  explicit InMemoryStore(InMemoryStoreOptions options = {})
      : options_(std::move(options)), shards_(round_up_pow2(options_.shards)) {
    mask_ = shards_.size() - 1;
  }

  InMemoryStore(const InMemoryStore&) = delete;
  InMemoryStore& operator=(const InMemoryStore&) = delete;

  [[nodiscard]] std::string_view name() const noexcept { return "InMemoryStore"; }

  /// Store contract 1: atomic claim-or-get.
  ClaimResult claim(std::string_view key, std::string_view fingerprint,
                    std::chrono::milliseconds lease) {
    if (options_.max_records != 0 && count_.load(std::memory_order_relaxed) >= options_.max_records)
      purge_expired(static_cast<std::size_t>(-1));
    const HashedKey hk = hashed(key);
    Shard& sh = shard_for(hk);
    std::unique_lock lock(sh.mutex);
    const time_point now = clock_now();
    maybe_sweep(sh, now);
    auto it = sh.records.find(hk);
    if (it != sh.records.end() && live(it->second, now)) {
      Record& r = it->second;
      if (r.status == ClaimStatus::in_progress && r.deadline <= now) {
        // the lease passed: take it over with a new token (fencing)
        r.token = Token::random();
        r.deadline = saturating_add(now, lease);
        r.set(fingerprint, {});
        ClaimResult out;
        out.token = r.token;
        out.took_over = true;
        return out;
      }
      ClaimResult out;
      out.status = r.status;
      out.fingerprint = r.fingerprint();
      out.payload = r.payload();
      out.remaining = std::chrono::ceil<std::chrono::milliseconds>(r.deadline - now);
      return out;
    }
    if (it == sh.records.end()) {
      reserve_slot();
      try {
        it = sh.records.emplace(std::string(key), Record{}).first;
      } catch (...) {
        count_.fetch_sub(1, std::memory_order_relaxed);
        throw;
      }
    }
    Record& r = it->second;
    r.status = ClaimStatus::in_progress;
    r.token = Token::random();
    r.deadline = saturating_add(now, lease);
    r.set(fingerprint, {});
    ClaimResult out;
    out.token = r.token;
    return out;
  }

  /// Store contract 2.
  bool complete(std::string_view key, const Token& token, std::string_view payload,
                std::chrono::milliseconds ttl) {
    return finish(key, token, payload, ttl, ClaimStatus::completed);
  }

  /// Store contract 3.
  bool fail(std::string_view key, const Token& token, std::string_view payload,
            std::chrono::milliseconds ttl) {
    return finish(key, token, payload, ttl, ClaimStatus::failed);
  }

  /// Store contract 4.
  bool release(std::string_view key, const Token& token) {
    return if_held(key, token, /*wake=*/true, [&](Shard& sh, auto it, time_point) {
      sh.records.erase(it);
      count_.fetch_sub(1, std::memory_order_relaxed);
    });
  }

  /// Store contract 5.
  bool renew(std::string_view key, const Token& token, std::chrono::milliseconds lease) {
    return if_held(key, token, /*wake=*/false, [&](Shard&, auto it, time_point now) {
      it->second.deadline = saturating_add(now, lease);
    });
  }

  /// ForgettableStore (operators only): deletes the record of `key` in any state.
  bool forget(std::string_view key) {
    const HashedKey hk = hashed(key);
    Shard& sh = shard_for(hk);
    {
      std::lock_guard lock(sh.mutex);
      auto it = sh.records.find(hk);
      if (it == sh.records.end()) return false;
      sh.records.erase(it);
      count_.fetch_sub(1, std::memory_order_relaxed);
    }
    sh.changed.notify_all();
    return true;
  }

  /// WaitableStore: returns when the in-progress record of `key` is completed, failed,
  /// released or taken over, when its lease passed, or after `timeout` (real time).
  void wait_for_change(std::string_view key, std::chrono::milliseconds timeout) {
    const HashedKey hk = hashed(key);
    Shard& sh = shard_for(hk);
    std::unique_lock lock(sh.mutex);
    auto still_waiting = [&](const Token& t) {
      auto it = sh.records.find(hk);
      if (it == sh.records.end()) return false;
      const Record& r = it->second;
      return r.status == ClaimStatus::in_progress && r.token == t && r.deadline > clock_now();
    };
    auto it = sh.records.find(hk);
    if (it == sh.records.end() || it->second.status != ClaimStatus::in_progress) return;
    const Token t = it->second.token;
    sh.changed.wait_for(lock, timeout, [&] { return !still_waiting(t); });
  }

  /// PurgeableStore: reclaims up to `limit` expired records now; returns how many.
  std::size_t purge_expired(std::size_t limit = static_cast<std::size_t>(-1)) {
    std::size_t purged = 0;
    for (Shard& sh : shards_) {
      if (purged >= limit) break;
      std::lock_guard lock(sh.mutex);
      purged += sweep(sh, clock_now(), limit - purged);
    }
    return purged;
  }

  /// Records held now (live ones and expired ones not yet reclaimed).
  [[nodiscard]] std::size_t size() const noexcept { return count_.load(std::memory_order_relaxed); }

  /// The store's clock.
  [[nodiscard]] time_point now() const { return clock_now(); }

 private:
  // 64 bytes: one deadline (the lease end while in progress, the expiry once finished) and
  // one buffer holding the fingerprint followed by the payload.
  struct Record {
    time_point deadline{};
    Token token{};
    std::string data{};
    std::uint32_t fingerprint_size = 0;
    ClaimStatus status = ClaimStatus::in_progress;

    [[nodiscard]] std::string_view fingerprint() const noexcept {
      return std::string_view(data).substr(0, fingerprint_size);
    }
    [[nodiscard]] std::string_view payload() const noexcept {
      return std::string_view(data).substr(fingerprint_size);
    }
    void set(std::string_view fp, std::string_view payload_bytes) {
      if (fp.size() > std::numeric_limits<std::uint32_t>::max())
        detail::raise<StoreError>("InMemoryStore", "claim", "fingerprint over 4 GiB");
      std::string buffer;
      buffer.reserve(fp.size() + payload_bytes.size());
      buffer.append(fp);
      buffer.append(payload_bytes);
      data.swap(buffer); // exact capacity: no slack kept from an earlier, larger value
      fingerprint_size = static_cast<std::uint32_t>(fp.size());
    }
  };

  // A key with its hash computed once: the shard is chosen from it and the map looks it up
  // without hashing again (heterogeneous lookup).
  struct HashedKey {
    std::string_view key;
    std::size_t hash;
  };

  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
    std::size_t operator()(const HashedKey& k) const noexcept { return k.hash; }
  };

  struct KeyEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
    bool operator()(const HashedKey& a, std::string_view b) const noexcept { return a.key == b; }
    bool operator()(std::string_view a, const HashedKey& b) const noexcept { return a == b.key; }
  };

  struct Shard {
    std::mutex mutex;
    std::condition_variable changed;
    std::unordered_map<std::string, Record, KeyHash, KeyEqual> records;
    std::size_t ops_since_sweep = 0;
    std::size_t size_after_sweep = 0;
  };

  static std::size_t round_up_pow2(std::size_t n) {
    std::size_t p = 1;
    while (p < n) p <<= 1;
    return p;
  }

  // t + d, clamped to the clock's range (a "forever" duration must not wrap into the past).
  [[nodiscard]] static time_point saturating_add(time_point t, std::chrono::milliseconds d) {
    using dur = time_point::duration;
    const auto max_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(time_point::max() - t);
    if (d >= max_ms) return time_point::max();
    if (d.count() < 0) return t;
    return t + std::chrono::duration_cast<dur>(d);
  }

  [[nodiscard]] time_point clock_now() const {
    return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
  }

  [[nodiscard]] static HashedKey hashed(std::string_view key) noexcept {
    return HashedKey{key, KeyHash{}(key)};
  }

  Shard& shard_for(const HashedKey& k) {
    // mix the hash so the shard index does not reuse the bits the map buckets on
    std::size_t h = k.hash;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return shards_[h & mask_];
  }

  [[nodiscard]] bool live(const Record& r, time_point now) const {
    if (r.status == ClaimStatus::in_progress)
      return saturating_add(r.deadline, options_.in_progress_grace) > now;
    return r.deadline > now;
  }

  [[nodiscard]] bool held_by(const Record& r, const Token& token, time_point now) const {
    return r.status == ClaimStatus::in_progress && r.token == token && live(r, now);
  }

  // InProgress(token) -> status; a resend by the token that already finished the record with
  // this status (its first reply was lost) is true and changes nothing (design §2).
  bool finish(std::string_view key, const Token& token, std::string_view payload,
              std::chrono::milliseconds ttl, ClaimStatus status) {
    const HashedKey hk = hashed(key);
    Shard& sh = shard_for(hk);
    {
      std::lock_guard lock(sh.mutex);
      const time_point now = clock_now();
      auto it = sh.records.find(hk);
      if (it == sh.records.end() || it->second.token != token) return false;
      Record& r = it->second;
      if (r.status == status) return true;
      if (!held_by(r, token, now)) return false;
      r.set(r.fingerprint(), payload); // set() copies before it replaces the buffer
      r.status = status;
      r.deadline = saturating_add(now, ttl);
    }
    sh.changed.notify_all();
    return true;
  }

  // The compare-and-set every transition shares: under the shard lock, if `token` holds the
  // record of `key`, applies `change(shard, iterator, now)` and returns true. `wake` wakes the
  // shard's waiters afterwards (the record was finished or deleted).
  template <class Change>
  bool if_held(std::string_view key, const Token& token, bool wake, Change&& change) {
    const HashedKey hk = hashed(key);
    Shard& sh = shard_for(hk);
    {
      std::lock_guard lock(sh.mutex);
      const time_point now = clock_now();
      auto it = sh.records.find(hk);
      if (it == sh.records.end() || !held_by(it->second, token, now)) return false;
      change(sh, it, now);
    }
    if (wake) sh.changed.notify_all();
    return true;
  }

  void reserve_slot() {
    const std::size_t before = count_.fetch_add(1, std::memory_order_relaxed);
    if (options_.max_records != 0 && before >= options_.max_records) {
      count_.fetch_sub(1, std::memory_order_relaxed);
      detail::raise<CapacityExceededError>(std::string(name()), "claim",
                                           "holds " + std::to_string(before) +
                                               " live records, the capacity bound is " +
                                               std::to_string(options_.max_records));
    }
  }

  void maybe_sweep(Shard& sh, time_point now) {
    // sweep after as many operations as the shard held at its last sweep: O(1) amortized
    if (++sh.ops_since_sweep < std::max<std::size_t>(64, sh.size_after_sweep)) return;
    sweep(sh, now, static_cast<std::size_t>(-1));
  }

  std::size_t sweep(Shard& sh, time_point now, std::size_t limit) {
    sh.ops_since_sweep = 0;
    std::size_t purged = 0;
    for (auto it = sh.records.begin(); it != sh.records.end() && purged < limit;) {
      if (live(it->second, now)) {
        ++it;
      } else {
        it = sh.records.erase(it);
        ++purged;
      }
    }
    count_.fetch_sub(purged, std::memory_order_relaxed);
    sh.size_after_sweep = sh.records.size();
    return purged;
  }

  InMemoryStoreOptions options_;
  std::vector<Shard> shards_;
  std::size_t mask_ = 0;
  std::atomic<std::size_t> count_{0};
};

static_assert(Store<InMemoryStore>);
static_assert(WaitableStore<InMemoryStore>);
static_assert(PurgeableStore<InMemoryStore>);
static_assert(ForgettableStore<InMemoryStore>);
static_assert(!TransactionalStore<InMemoryStore>);

} // namespace idempotency
