// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/detail/record_arena.hpp>
#include <idempotency/detail/record_table.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
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
/// Every operation locks one shard. A record is one block (a 32-byte header, the key, the
/// fingerprint, the payload) from the shard's slab allocator, indexed by an open-addressing
/// table of 12 bytes per slot, half to 3/4 full: a record of a 16-byte key and a 64-byte
/// payload costs 112 bytes plus 16 to 24 bytes of index. Expired records are reclaimed as the store
/// is used (each new record makes the shard's sweep look at 4 more slots, so no call reclaims more
/// than 4 records) and by `purge_expired`. Waiters are woken through a condition variable
/// (`WaitableStore`). Keys and fingerprints up to 64 KiB and payloads up to 1 GiB are held; larger
/// ones are a `StoreError`.
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
    check_sizes(key, fingerprint, {}, "claim");
    if (options_.max_records != 0 && count_.load(std::memory_order_relaxed) >= options_.max_records)
      purge_expired(static_cast<std::size_t>(-1));
    const HashedKey hk = hashed(key);
    Shard& sh = shard_for(hk);
    std::unique_lock lock(sh.mutex);
    const time_point now = clock_now();
    const std::size_t slot = sh.table.find(key, hk.hash);
    ClaimResult out;
    if (slot != Table::npos) {
      Record* r = sh.table.at(slot);
      if (live(*r, now) && !(r->status() == ClaimStatus::in_progress && r->deadline <= now)) {
        out.status = r->status();
        out.fingerprint.assign(r->fingerprint());
        out.payload.assign(r->payload());
        out.remaining = std::chrono::ceil<std::chrono::milliseconds>(r->deadline - now);
        return out;
      }
      // expired, or in progress with its lease passed (a takeover: fencing by a new token)
      out.took_over = live(*r, now);
      out.token = Token::random();
      Record* fresh = make_record(sh, key, fingerprint, {}, ClaimStatus::in_progress, out.token,
                                  saturating_add(now, lease));
      sh.table.replace(slot, fresh);
      free_record(sh, r);
      return out;
    }
    reserve_slot();
    try {
      sweep_some(sh, now); // before the insert: it may move records between slots
      out.token = Token::random();
      Record* fresh = make_record(sh, key, fingerprint, {}, ClaimStatus::in_progress, out.token,
                                  saturating_add(now, lease));
      try {
        sh.table.insert(fresh, hk.hash);
      } catch (...) {
        free_record(sh, fresh);
        throw;
      }
    } catch (...) {
      count_.fetch_sub(1, std::memory_order_relaxed);
      throw;
    }
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
    return if_held(key, token, /*wake=*/true,
                   [&](Shard& sh, std::size_t slot, time_point) { erase_slot(sh, slot); });
  }

  /// Store contract 5.
  bool renew(std::string_view key, const Token& token, std::chrono::milliseconds lease) {
    return if_held(key, token, /*wake=*/false, [&](Shard& sh, std::size_t slot, time_point now) {
      sh.table.at(slot)->deadline = saturating_add(now, lease);
    });
  }

  /// ForgettableStore (operators only): deletes the record of `key` in any state.
  bool forget(std::string_view key) {
    const HashedKey hk = hashed(key);
    Shard& sh = shard_for(hk);
    {
      std::lock_guard lock(sh.mutex);
      const std::size_t slot = sh.table.find(key, hk.hash);
      if (slot == Table::npos) return false;
      erase_slot(sh, slot);
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
    auto current = [&]() -> const Record* {
      const std::size_t slot = sh.table.find(key, hk.hash);
      return slot == Table::npos ? nullptr : sh.table.at(slot);
    };
    const Record* r = current();
    if (r == nullptr || r->status() != ClaimStatus::in_progress) return;
    const Token t = r->token;
    sh.changed.wait_for(lock, timeout, [&] {
      const Record* now_r = current();
      return now_r == nullptr || now_r->status() != ClaimStatus::in_progress || now_r->token != t ||
             now_r->deadline <= clock_now();
    });
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

  /// Most bytes of one key, one fingerprint, one payload this store holds; a larger one is a
  /// `StoreError` (the executor's own limits are far below).
  static constexpr std::size_t max_key_bytes = 0xFFFF;
  static constexpr std::size_t max_fingerprint_bytes = 0xFFFF;
  static constexpr std::size_t max_payload_bytes = (std::size_t{1} << 30) - 1;

 private:
  // A record is one block: this 32-byte header, then the key, the fingerprint and the payload.
  // `deadline` is the lease end while in progress and the expiry once finished.
  struct Record {
    time_point deadline{};
    Token token{};
    std::uint32_t payload_size_status = 0; ///< low 30 bits: payload bytes; high 2: status
    std::uint16_t key_size = 0;
    std::uint16_t fingerprint_size = 0;

    [[nodiscard]] const char* bytes() const noexcept {
      return reinterpret_cast<const char*>(this + 1);
    }
    [[nodiscard]] char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
    [[nodiscard]] ClaimStatus status() const noexcept {
      return static_cast<ClaimStatus>(payload_size_status >> 30);
    }
    [[nodiscard]] std::size_t payload_size() const noexcept {
      return payload_size_status & max_payload_bytes;
    }
    [[nodiscard]] std::string_view key() const noexcept { return {bytes(), key_size}; }
    [[nodiscard]] std::string_view fingerprint() const noexcept {
      return {bytes() + key_size, fingerprint_size};
    }
    [[nodiscard]] std::string_view payload() const noexcept {
      return {bytes() + key_size + fingerprint_size, payload_size()};
    }
    [[nodiscard]] std::size_t block_bytes() const noexcept {
      return sizeof(Record) + key_size + fingerprint_size + payload_size();
    }
  };
  static_assert(sizeof(Record) == 32);

  struct KeyOf {
    std::string_view operator()(const Record* r) const noexcept { return r->key(); }
  };
  using Table = detail::RecordTable<Record, KeyOf>;

  // A key with its hash computed once, outside the lock: it picks the shard and the slot.
  struct HashedKey {
    std::string_view key;
    std::size_t hash;
  };

  struct Shard {
    std::mutex mutex;
    std::condition_variable changed;
    detail::RecordArena arena;
    Table table;
    std::size_t sweep_cursor = 0;

    Shard() = default;
    Shard(const Shard&) = delete;
    Shard& operator=(const Shard&) = delete;
    ~Shard() {
      table.for_each([&](Record* r) { arena.deallocate(r, r->block_bytes()); });
    }
  };

  // Slots the sweep looks at per new record: reclaiming stays O(1) per claim (each occupied
  // slot costs a read of its record), and a pass over a table over 1/4 full of expired ones
  // reclaims expired records faster than new ones arrive, so expiry alone does not grow the table.
  // After a pass a table at most 1/4 full shrinks to 1/2 full (moved over incrementally, as a
  // growth is: the table's inserts move a bounded number of slots each).
  static constexpr std::size_t sweep_step = 4;

  static std::size_t round_up_pow2(std::size_t n) {
    std::size_t p = 1;
    while (p < n) p <<= 1;
    return p;
  }

  static void check_sizes(std::string_view key, std::string_view fingerprint,
                          std::string_view payload, const char* op) {
    if (key.size() > max_key_bytes || fingerprint.size() > max_fingerprint_bytes ||
        payload.size() > max_payload_bytes)
      detail::raise<StoreError>("InMemoryStore", op,
                                "a key or fingerprint over 64 KiB, or a payload over 1 GiB");
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
    return HashedKey{key, Table::hash(key)};
  }

  Shard& shard_for(const HashedKey& k) {
    // mix the hash so the shard index does not reuse the bits the table probes with
    std::size_t h = k.hash;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    return shards_[h & mask_];
  }

  static Record* make_record(Shard& sh, std::string_view key, std::string_view fingerprint,
                             std::string_view payload, ClaimStatus status, const Token& token,
                             time_point deadline) {
    const std::size_t bytes = sizeof(Record) + key.size() + fingerprint.size() + payload.size();
    Record* r = new (sh.arena.allocate(bytes)) Record();
    r->deadline = deadline;
    r->token = token;
    r->payload_size_status =
        static_cast<std::uint32_t>(payload.size()) | (static_cast<std::uint32_t>(status) << 30);
    r->key_size = static_cast<std::uint16_t>(key.size());
    r->fingerprint_size = static_cast<std::uint16_t>(fingerprint.size());
    char* out = r->bytes();
    if (!key.empty()) std::memcpy(out, key.data(), key.size());
    out += key.size();
    if (!fingerprint.empty()) std::memcpy(out, fingerprint.data(), fingerprint.size());
    out += fingerprint.size();
    if (!payload.empty()) std::memcpy(out, payload.data(), payload.size());
    return r;
  }

  static void free_record(Shard& sh, Record* r) noexcept {
    const std::size_t bytes = r->block_bytes();
    r->~Record();
    sh.arena.deallocate(r, bytes);
  }

  void erase_slot(Shard& sh, std::size_t slot) noexcept {
    Record* r = sh.table.at(slot);
    sh.table.erase(slot);
    free_record(sh, r);
    count_.fetch_sub(1, std::memory_order_relaxed);
  }

  [[nodiscard]] bool live(const Record& r, time_point now) const {
    if (r.status() == ClaimStatus::in_progress)
      return saturating_add(r.deadline, options_.in_progress_grace) > now;
    return r.deadline > now;
  }

  [[nodiscard]] bool held_by(const Record& r, const Token& token, time_point now) const {
    return r.status() == ClaimStatus::in_progress && r.token == token && live(r, now);
  }

  // InProgress(token) -> status; a resend by the token that already finished the record with
  // this status (its first reply was lost) is true and changes nothing (design §2).
  bool finish(std::string_view key, const Token& token, std::string_view payload,
              std::chrono::milliseconds ttl, ClaimStatus status) {
    check_sizes(key, {}, payload, status == ClaimStatus::completed ? "complete" : "fail");
    const HashedKey hk = hashed(key);
    Shard& sh = shard_for(hk);
    {
      std::lock_guard lock(sh.mutex);
      const time_point now = clock_now();
      const std::size_t slot = sh.table.find(key, hk.hash);
      if (slot == Table::npos) return false;
      Record* r = sh.table.at(slot);
      if (r->token != token) return false;
      if (r->status() == status) return true;
      if (!held_by(*r, token, now)) return false;
      Record* done =
          make_record(sh, key, r->fingerprint(), payload, status, token, saturating_add(now, ttl));
      sh.table.replace(slot, done);
      free_record(sh, r);
    }
    sh.changed.notify_all();
    return true;
  }

  // The compare-and-set every transition shares: under the shard lock, if `token` holds the
  // record of `key`, applies `change(shard, slot, now)` and returns true. `wake` wakes the
  // shard's waiters afterwards (the record was finished or deleted).
  template <class Change>
  bool if_held(std::string_view key, const Token& token, bool wake, Change&& change) {
    const HashedKey hk = hashed(key);
    Shard& sh = shard_for(hk);
    {
      std::lock_guard lock(sh.mutex);
      const time_point now = clock_now();
      const std::size_t slot = sh.table.find(key, hk.hash);
      if (slot == Table::npos || !held_by(*sh.table.at(slot), token, now)) return false;
      change(sh, slot, now);
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

  // The incremental sweep: looks at `sweep_step` slots from the shard's cursor, reclaiming the
  // expired records there. An erase may move a later record into the slot, so the cursor stays.
  void sweep_some(Shard& sh, time_point now) noexcept {
    for (std::size_t k = 0; k < sweep_step; ++k) {
      const std::size_t slot = sh.sweep_cursor % sh.table.capacity();
      if (sh.table.occupied(slot) && !live(*sh.table.at(slot), now)) {
        erase_slot(sh, slot);
        continue;
      }
      sh.sweep_cursor = slot + 1;
      if (sh.sweep_cursor == sh.table.capacity()) { // a pass is done
        sh.sweep_cursor = 0;
        sh.table.shrink_to_fit(); // at most 1/4 full: to 1/2, so no growth follows soon
      }
    }
  }

  std::size_t sweep(Shard& sh, time_point now, std::size_t limit) noexcept {
    std::size_t purged = 0;
    for (std::size_t slot = 0; slot < sh.table.capacity() && purged < limit;) {
      if (sh.table.occupied(slot) && !live(*sh.table.at(slot), now)) {
        erase_slot(sh, slot); // a later record may move into `slot`: look at it again
        ++purged;
      } else {
        ++slot;
      }
    }
    sh.table.compact(); // finishes a resize under way; at most 1/4 full: shrinks to 1/2
    sh.sweep_cursor = 0;
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
