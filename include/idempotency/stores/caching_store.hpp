// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// `CachingStore<S>`: an optional, bounded, per-process cache of FINISHED records in front of
// any store, so a replay of a completed or failed key is answered without a round trip.
// Semantics, bounds and limits: docs/caching.md.

#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iterator>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace idempotency {

/// Options of `CachingStore`, checked when it is built (`validate`).
struct ReplayCacheOptions {
  /// Most entries held at once, all shards together (at least 1).
  std::size_t max_entries = 10'000;
  /// Most bytes held at once, all shards together (at least 1). An entry counts its key,
  /// fingerprint and payload plus `CachingStore<S>::entry_overhead`; an entry larger than its
  /// shard's share is not cached.
  std::size_t max_bytes = std::size_t{64} << 20;
  /// The longest one entry is served before the inner store is asked again; 0 = no cap (the
  /// record's own TTL only). Bounds how long a record deleted by ANOTHER process (a `forget`
  /// there) is still replayed here.
  std::chrono::milliseconds max_age = std::chrono::minutes(5);
  /// Independently locked shards (1..1024), each with an equal share of both bounds (fewer
  /// are used when `max_entries` is smaller than this).
  std::size_t shards = 16;
  /// The cache's clock; empty = `std::chrono::steady_clock::now`. A store whose clock is
  /// injected (tests: a `ManualClock`) needs the same one here, or entries outlive records.
  std::function<std::chrono::steady_clock::time_point()> clock{};
};

/// The most shards a `CachingStore` takes.
inline constexpr std::size_t max_replay_cache_shards = 1024;

/// Throws `InvalidOptionsError` for options a cache cannot honour: no entry or no byte
/// allowed, a negative `max_age`, or a shard count outside 1..1024.
inline void validate(const ReplayCacheOptions& o) {
  const auto fail = [](const std::string& what) {
    detail::raise<InvalidOptionsError>("ReplayCacheOptions::" + what);
  };
  if (o.max_entries == 0)
    fail("max_entries is 0; at least 1 is needed (to cache nothing, do not wrap the store)");
  if (o.max_bytes == 0)
    fail("max_bytes is 0; at least 1 is needed (to cache nothing, do not wrap the store)");
  if (o.max_age.count() < 0)
    fail("max_age is " + std::to_string(o.max_age.count()) + " ms; it must be 0 (no cap) or more");
  if (o.shards == 0 || o.shards > max_replay_cache_shards)
    fail("shards is " + std::to_string(o.shards) + "; it must be 1.." +
         std::to_string(max_replay_cache_shards));
}

/// What a `CachingStore` did so far (`stats()`). Each counter is exact on its own; they are
/// not read at one instant together.
struct ReplayCacheStats {
  std::uint64_t hits = 0;      ///< claims answered from the cache (the inner store untouched)
  std::uint64_t misses = 0;    ///< claims forwarded to the inner store
  std::uint64_t evictions = 0; ///< live entries dropped to stay within the bounds
  std::size_t entries = 0;     ///< entries held now
  std::size_t bytes = 0;       ///< bytes held now, as counted against `max_bytes`
};

/// A `Store` that answers replays of finished records from a local, bounded cache and
/// forwards everything else to `inner` (AWS Lambda Powertools' "local cache", for any store).
///
/// - `claim`: a live cached entry of the key is returned as the record (completed or failed,
///   its fingerprint, its payload, its time left) without calling `inner`. Otherwise the call
///   is forwarded; a completed or failed answer is cached until the cache's clock reading
///   taken BEFORE the forwarded call plus the `remaining` the store reported (less 1 ms, for a
///   store that rounds up), capped by `max_age`. The store measured `remaining` later than
///   that reading, so an entry never outlives its record. Acquired and in-progress answers
///   are never cached.
/// - `complete` / `fail` / `release` / `renew`: forwarded unchanged. A complete does not fill
///   the cache: the store may round the TTL, and only a claim's `remaining` tells the expiry.
/// - `forget` (where `inner` has it): drops the local entry, forwards, and drops it again, so
///   a claim that was between the store and the cache meanwhile cannot put it back.
/// - `wait_for_change`, `purge_expired`: forwarded where `inner` has them.
/// - NOT a `TransactionalStore`, even over one: a transactional completion happens inside the
///   application's own transaction, which this cache can neither join nor see commit. Use the
///   inner store's executor for `execute_in_transaction`; a cache over the same store still
///   serves the replays of other executors.
///
/// A record deleted by another process (its `forget`) is served here until the entry expires
/// or `max_age` passes; `invalidate(key)` / `clear()` drop entries by hand. Within one process,
/// where every call goes through the cache, no answer is stale.
///
/// Thread-safe: one mutex per shard, held for the map work and a hit's copy (fills are built
/// outside it), never across a call to `inner`. Eviction per shard in least-recently-used order,
/// approximated by second chance (CLOCK): a hit only marks its entry, and eviction moves a marked
/// entry to the front once instead of evicting it. `inner` is NOT owned: it (and the clock) must
/// outlive the cache.
///
/// Example:
///
///     idempotency::RedisStore redis{{.url = "redis://10.0.0.5:6379"}};
///     idempotency::CachingStore cached{redis, {.max_entries = 50'000, .max_age = 1min}};
///     idempotency::IdempotencyExecutor exec{cached};   // replays of finished keys: no round trip
template <Store S>
class CachingStore {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  /// Bytes counted per entry on top of its key, fingerprint and payload (its bookkeeping:
  /// shared block, list node, index node, strings' headers; an estimate, not an exact size).
  static constexpr std::size_t entry_overhead = 192;

  /// Throws `InvalidOptionsError` (see `validate(const ReplayCacheOptions&)`).
  explicit CachingStore(S& inner, ReplayCacheOptions options = {})
      : inner_(&inner),
        options_(checked(std::move(options))),
        name_("CachingStore(" + std::string(std::string_view(inner.name())) + ")"),
        shards_(std::min(options_.shards, options_.max_entries)) {
    const std::size_t n = shards_.size();
    const auto share = [n](std::size_t total, std::size_t i) {
      return total / n + static_cast<std::size_t>(i < total % n); // the shares sum to total
    };
    for (std::size_t i = 0; i < n; ++i) {
      shards_[i].max_entries = share(options_.max_entries, i);
      shards_[i].max_bytes = share(options_.max_bytes, i);
    }
  }

  CachingStore(const CachingStore&) = delete;
  CachingStore& operator=(const CachingStore&) = delete;

  /// "CachingStore(<inner's name>)".
  [[nodiscard]] std::string_view name() const noexcept { return name_; }

  /// The wrapped store.
  [[nodiscard]] S& inner() const noexcept { return *inner_; }

  /// Store contract 1: answered from the cache when a live entry of `key` is held, else by
  /// the inner store (whose completed or failed answer is then cached).
  ClaimResult claim(std::string_view key, std::string_view fingerprint,
                    std::chrono::milliseconds lease) {
    const HashedKey hk{key, std::hash<std::string_view>{}(key)};
    Shard& sh = shard_for(hk);
    const time_point before = now();
    std::uint64_t epoch = 0;
    {
      Lru dropped; // freed after the lock is released
      const std::lock_guard lock(sh.mutex);
      if (auto it = sh.index.find(hk); it != sh.index.end()) {
        const Entry& e = *it->second;
        if (e.serve_until > before) {
          // a hit: copied under the lock (no reference count traffic), as a store would
          it->second->referenced = true; // second chance at eviction; no list surgery here
          ClaimResult out;
          out.status = e.status;
          out.fingerprint = e.fingerprint;
          out.payload = e.payload;
          out.remaining = std::chrono::ceil<std::chrono::milliseconds>(e.record_expiry - before);
          // only lock holders write it: a plain increment, no locked read-modify-write
          sh.hits.store(sh.hits.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
          return out;
        }
        unlink(sh, it->second, dropped); // expired entries go when met
      }
      epoch = sh.epoch;
    }
    misses_.fetch_add(1, std::memory_order_relaxed);
    ClaimResult r = inner_->claim(key, fingerprint, lease);
    if (r.status == ClaimStatus::completed || r.status == ClaimStatus::failed)
      fill(sh, key, r, before, epoch);
    return r;
  }

  /// Store contract 2, forwarded.
  bool complete(std::string_view key, const Token& token, std::string_view payload,
                std::chrono::milliseconds ttl) {
    return inner_->complete(key, token, payload, ttl);
  }

  /// Store contract 3, forwarded.
  bool fail(std::string_view key, const Token& token, std::string_view payload,
            std::chrono::milliseconds ttl) {
    return inner_->fail(key, token, payload, ttl);
  }

  /// Store contract 4, forwarded (only an in-progress record is released: never a cached one).
  bool release(std::string_view key, const Token& token) { return inner_->release(key, token); }

  /// Store contract 5, forwarded.
  bool renew(std::string_view key, const Token& token, std::chrono::milliseconds lease) {
    return inner_->renew(key, token, lease);
  }

  /// ForgettableStore (operators only): drops the local entry, then forgets in the inner store.
  bool forget(std::string_view key) requires ForgettableStore<S> {
    invalidate(key);
    bool forgotten = false;
    try {
      forgotten = inner_->forget(key);
    } catch (...) {
      invalidate(key); // it may have landed
      throw;
    }
    // a claim that read the record before the forget landed may be about to fill the cache:
    // the epoch bump turns that fill away, and an entry it already made goes here
    invalidate(key);
    return forgotten;
  }

  /// WaitableStore, forwarded.
  void wait_for_change(std::string_view key,
                       std::chrono::milliseconds timeout) requires WaitableStore<S> {
    inner_->wait_for_change(key, timeout);
  }

  /// PurgeableStore, forwarded (the cache's own expired entries go when met or evicted).
  std::size_t purge_expired(std::size_t limit) requires PurgeableStore<S> {
    return inner_->purge_expired(limit);
  }

  /// Drops the local entry of `key`, if any, without touching the inner store (e.g. when
  /// another process announces that it forgot the key). A claim in flight does not refill it.
  void invalidate(std::string_view key) {
    Shard& sh = shard_for(key);
    Lru dropped;
    const std::lock_guard lock(sh.mutex);
    ++sh.epoch;
    if (auto it = sh.index.find(key); it != sh.index.end()) unlink(sh, it->second, dropped);
  }

  /// Drops every entry (the counters stay).
  void clear() {
    for (Shard& sh : shards_) {
      Lru dropped;
      const std::lock_guard lock(sh.mutex);
      ++sh.epoch;
      while (!sh.lru.empty()) unlink(sh, std::prev(sh.lru.end()), dropped);
    }
  }

  /// Hits, misses, evictions, and what is held now.
  [[nodiscard]] ReplayCacheStats stats() const noexcept {
    ReplayCacheStats s;
    for (const Shard& sh : shards_) s.hits += sh.hits.load(std::memory_order_relaxed);
    s.misses = misses_.load(std::memory_order_relaxed);
    s.evictions = evictions_.load(std::memory_order_relaxed);
    s.entries = entries_.load(std::memory_order_relaxed);
    s.bytes = bytes_.load(std::memory_order_relaxed);
    return s;
  }

  /// The options in force.
  [[nodiscard]] const ReplayCacheOptions& options() const noexcept { return options_; }

 private:
  // Made once, never changed in place; a hit copies it under the shard lock.
  struct Entry {
    std::string key;
    std::string fingerprint;
    std::string payload;
    ClaimStatus status = ClaimStatus::completed;
    time_point record_expiry{}; // no later than the record's own expiry
    time_point serve_until{};   // record_expiry, capped by max_age
    std::size_t bytes = 0;
    bool referenced = false; // hit since eviction last passed it (under the shard lock)
  };
  using Lru = std::list<Entry>; // a node is made outside the lock and spliced in

  // A key with its hash computed once: it picks the shard and the bucket (heterogeneous lookup).
  struct HashedKey {
    std::string_view key;
    std::size_t hash;
  };
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view k) const noexcept {
      return std::hash<std::string_view>{}(k);
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
    Lru lru; // newest (or hit and passed over) first; evicted from the back
    // keyed by views of the entries' own keys (stable: list nodes never move in memory)
    std::unordered_map<std::string_view, typename Lru::iterator, KeyHash, KeyEqual> index;
    std::size_t bytes = 0;
    // bumped by invalidate / clear: a claim that read the store before does not fill
    std::uint64_t epoch = 0;
    std::atomic<std::uint64_t> hits{0}; // written under the lock, read by stats()
    std::size_t max_entries = 0;
    std::size_t max_bytes = 0;
  };

  static ReplayCacheOptions checked(ReplayCacheOptions o) {
    validate(o);
    return o;
  }

  [[nodiscard]] time_point now() const {
    return options_.clock ? options_.clock() : std::chrono::steady_clock::now();
  }

  // t + d, clamped to the clock's range (a "forever" TTL must not wrap into the past).
  [[nodiscard]] static time_point saturating_add(time_point t, std::chrono::milliseconds d) {
    if (d.count() <= 0) return t;
    if (d >= std::chrono::duration_cast<std::chrono::milliseconds>(time_point::max() - t))
      return time_point::max();
    return t + std::chrono::duration_cast<time_point::duration>(d);
  }

  Shard& shard_for(std::string_view key) {
    return shard_for(HashedKey{key, std::hash<std::string_view>{}(key)});
  }
  Shard& shard_for(const HashedKey& k) {
    // mix the hash so the shard does not reuse the bits the index buckets on
    std::size_t h = k.hash;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return shards_[h % shards_.size()];
  }

  // Under the shard lock: takes the entry out of the shard into `dropped`.
  void unlink(Shard& sh, typename Lru::iterator it, Lru& dropped) noexcept {
    const std::size_t bytes = it->bytes;
    sh.index.erase(std::string_view(it->key));
    sh.bytes -= bytes;
    bytes_.fetch_sub(bytes, std::memory_order_relaxed);
    entries_.fetch_sub(1, std::memory_order_relaxed);
    dropped.splice(dropped.end(), sh.lru, it);
  }

  // Caches a finished answer the inner store gave to a claim that began at `before`, unless
  // the key was invalidated since (`epoch`). Best effort: a cache that cannot hold an entry
  // (too big, out of memory) answers from the store next time.
  void fill(Shard& sh, std::string_view key, const ClaimResult& r, time_point before,
            std::uint64_t epoch) noexcept {
    // stores report whole milliseconds and may round up: count one less
    constexpr std::chrono::milliseconds rounding{1};
    if (r.remaining <= rounding) return;
    const std::size_t bytes = key.size() + r.fingerprint.size() + r.payload.size() + entry_overhead;
    if (bytes > sh.max_bytes) return;
    try {
      const time_point record_expiry = saturating_add(before, r.remaining - rounding);
      const time_point serve_until =
          options_.max_age.count() == 0
              ? record_expiry
              : std::min(record_expiry, saturating_add(before, options_.max_age));
      Lru node; // made outside the lock, spliced in under it
      node.push_back(Entry{std::string(key), r.fingerprint, r.payload, r.status, record_expiry,
                           serve_until, bytes});
      Lru dropped;
      const std::lock_guard lock(sh.mutex);
      if (sh.epoch != epoch) return;
      // a concurrent miss filled it first: both answers are of the live record; keep ours
      if (auto it = sh.index.find(key); it != sh.index.end()) unlink(sh, it->second, dropped);
      sh.index.emplace(std::string_view(node.front().key), node.begin());
      sh.lru.splice(sh.lru.begin(), node);
      sh.bytes += bytes;
      bytes_.fetch_add(bytes, std::memory_order_relaxed);
      entries_.fetch_add(1, std::memory_order_relaxed);
      // the new entry is first and fits alone, so this stops before reaching it
      while (sh.lru.size() > sh.max_entries || sh.bytes > sh.max_bytes) {
        const auto last = std::prev(sh.lru.end());
        if (last->referenced) { // hit since it was last passed: to the front, once
          last->referenced = false;
          sh.lru.splice(sh.lru.begin(), sh.lru, last);
          continue;
        }
        if (last->serve_until > before) evictions_.fetch_add(1, std::memory_order_relaxed);
        unlink(sh, last, dropped);
      }
    } catch (...) {
      // out of memory or a lock failure: not cached; the claim's answer stands
    }
  }

  S* inner_;
  ReplayCacheOptions options_;
  std::string name_;
  std::vector<Shard> shards_;
  std::atomic<std::uint64_t> misses_{0};
  std::atomic<std::uint64_t> evictions_{0};
  std::atomic<std::size_t> entries_{0};
  std::atomic<std::size_t> bytes_{0};
};

namespace detail {
/// The least a Store provides (declarations only): checks `CachingStore` against the concepts.
struct CacheArchetypeStore {
  ClaimResult claim(std::string_view, std::string_view, std::chrono::milliseconds);
  bool complete(std::string_view, const Token&, std::string_view, std::chrono::milliseconds);
  bool fail(std::string_view, const Token&, std::string_view, std::chrono::milliseconds);
  bool release(std::string_view, const Token&);
  bool renew(std::string_view, const Token&, std::chrono::milliseconds);
  [[nodiscard]] std::string_view name() const;
};
struct ForgettableCacheArchetypeStore : CacheArchetypeStore {
  bool forget(std::string_view);
};
} // namespace detail

static_assert(Store<CachingStore<detail::CacheArchetypeStore>>);
static_assert(!ForgettableStore<CachingStore<detail::CacheArchetypeStore>>);
static_assert(!WaitableStore<CachingStore<detail::CacheArchetypeStore>>);
static_assert(!PurgeableStore<CachingStore<detail::CacheArchetypeStore>>);
static_assert(!TransactionalStore<CachingStore<detail::CacheArchetypeStore>>);
static_assert(ForgettableStore<CachingStore<detail::ForgettableCacheArchetypeStore>>);

} // namespace idempotency
