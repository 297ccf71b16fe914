// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The index of one InMemoryStore shard: open addressing with linear probing over two arrays,
// 32 bits of hash per slot (0 = empty) and a pointer to the record, which holds its own key.
// 12 bytes per slot, at most 3/4 full; a lookup reads the hashes in order and compares a key
// only where its 32 bits match. Moving records and erasing (which shifts the rest of the probe
// run back: no tombstones, so a run never grows with churn) use the stored hashes and never
// read a record. Not thread-safe: the shard lock guards it.
//
// Resizing is incremental, so no call pays for a whole table: a resize makes a new table that
// takes every insert, and each insert moves a few more of the old table's records over; until
// the old table is empty, a lookup reads both. A large table is mapped, not zeroed: its pages
// are faulted in as its slots are first written (a page fault can cost 10+ µs in a VM), not
// all at once.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <new>
#include <string_view>
#include <utility>

#if __has_include(<sys/mman.h>)
#include <sys/mman.h>
#define IDEMPOTENCY_TABLE_MMAP 1
#else
#define IDEMPOTENCY_TABLE_MMAP 0
#endif

namespace idempotency::detail {

/// `KeyOf` maps a `const Rec*` to its key (a `std::string_view`).
template <class Rec, class KeyOf>
class RecordTable {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  static constexpr std::size_t min_capacity = 16;
  /// Old-table slots an insert looks at while a resize is under way (a cluster of records
  /// between empty slots moves whole). A growth is done after 1/64 as many inserts as the old
  /// table has slots, long before the new table fills.
  static constexpr std::size_t move_step = 64;

  RecordTable() : cur_(min_capacity) {}

  [[nodiscard]] static std::size_t hash(std::string_view key) noexcept {
    return std::hash<std::string_view>{}(key);
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// Slot numbers run below this: the new table's slots, then the old table's during a resize.
  [[nodiscard]] std::size_t capacity() const noexcept { return cur_.cap + old_.cap; }
  /// Whether a resize is under way (records are still in the old table).
  [[nodiscard]] bool resizing() const noexcept { return old_.cap != 0; }

  /// The slot holding `key` (hashed to `h`), or npos.
  [[nodiscard]] std::size_t find(std::string_view key, std::size_t h) const noexcept {
    const std::uint32_t t = stored(h);
    const std::size_t i = cur_.find(key, t);
    if (i != npos || old_.cap == 0) return i;
    const std::size_t j = old_.find(key, t);
    return j == npos ? npos : cur_.cap + j;
  }

  [[nodiscard]] Rec* at(std::size_t slot) const noexcept {
    return slot < cur_.cap ? cur_.records[slot] : old_.records[slot - cur_.cap];
  }
  /// Replaces the record in `slot` by one with the same key.
  void replace(std::size_t slot, Rec* r) noexcept {
    (slot < cur_.cap ? cur_.records[slot] : old_.records[slot - cur_.cap]) = r;
  }
  /// Whether `slot` holds a record (for scans by slot number).
  [[nodiscard]] bool occupied(std::size_t slot) const noexcept {
    return (slot < cur_.cap ? cur_.hashes[slot] : old_.hashes[slot - cur_.cap]) != 0;
  }

  /// Inserts `r`, whose key (hashed to `h`) is not in the table; returns its slot. May start
  /// growing the table by half (std::bad_alloc leaves it as it was): between 1/2 and 3/4 full
  /// after the first growths, so a record costs 16 to 24 bytes of index. Moves up to
  /// `move_step` slots of a resize under way: records may change slots.
  std::size_t insert(Rec* r, std::size_t h) {
    if ((size_ + 1) * 4 > cur_.cap * 3) resize(cur_.cap + cur_.cap / 2);
    move_some(move_step);
    ++size_;
    return cur_.place(stored(h), r);
  }

  /// Empties `slot`, moving later records of its probe run back into the gap. A record may
  /// move from a slot after `slot` to `slot` itself or before it (in the same table).
  void erase(std::size_t slot) noexcept {
    if (slot < cur_.cap)
      cur_.erase(slot);
    else
      old_.erase(slot - cur_.cap);
    --size_;
  }

  /// Starts shrinking the table when at most 1/4 full (after a sweep), to about half full; not
  /// while a resize is under way. std::bad_alloc keeps the table as it is.
  void shrink_to_fit() noexcept {
    if (old_.cap != 0 || size_ * 4 > cur_.cap || cur_.cap == min_capacity) return;
    try {
      resize(std::max(min_capacity, size_ * 2));
    } catch (...) {
    }
  }

  /// For a purge (itself O(capacity)): finishes a resize under way, then shrinks the table if
  /// it is at most 1/4 full, at once.
  void compact() noexcept {
    move_some(npos);
    shrink_to_fit();
    move_some(npos);
  }

  /// Calls `f(record)` for every record (order unspecified).
  template <class F>
  void for_each(F&& f) const {
    for (const Slots* s : {&cur_, &old_})
      for (std::size_t i = 0; i < s->cap; ++i)
        if (s->hashes[i] != 0) f(s->records[i]);
  }

 private:
  // 32 bits of the hash, never 0 (0 marks an empty slot).
  [[nodiscard]] static std::uint32_t stored(std::size_t h) noexcept {
    const auto h64 = static_cast<std::uint64_t>(h);
    const auto v = static_cast<std::uint32_t>(h64 ^ (h64 >> 32));
    return v == 0 ? 1 : v;
  }

  // One table: `cap` stored hashes, then `cap` record pointers, in one zeroed block.
  struct Slots {
    std::uint32_t* hashes = nullptr;
    Rec** records = nullptr;
    std::size_t cap = 0;

    Slots() = default;
    explicit Slots(std::size_t n)
        : hashes(static_cast<std::uint32_t*>(allocate(bytes(n)))), cap(n) {
      records = reinterpret_cast<Rec**>(reinterpret_cast<std::byte*>(hashes) + records_at(n));
    }
    Slots(Slots&& o) noexcept
        : hashes(std::exchange(o.hashes, nullptr)),
          records(std::exchange(o.records, nullptr)),
          cap(std::exchange(o.cap, 0)) {}
    Slots& operator=(Slots&& o) noexcept {
      if (this != &o) {
        if (hashes != nullptr) deallocate(hashes, bytes(cap));
        hashes = std::exchange(o.hashes, nullptr);
        records = std::exchange(o.records, nullptr);
        cap = std::exchange(o.cap, 0);
      }
      return *this;
    }
    ~Slots() {
      if (hashes != nullptr) deallocate(hashes, bytes(cap));
    }

    [[nodiscard]] static std::size_t records_at(std::size_t n) noexcept {
      return (n * sizeof(std::uint32_t) + alignof(Rec*) - 1) / alignof(Rec*) * alignof(Rec*);
    }
    [[nodiscard]] static std::size_t bytes(std::size_t n) noexcept {
      return records_at(n) + n * sizeof(Rec*);
    }

    // The slot a hash starts probing at: a multiply-shift range reduction, so the capacity need
    // not be a power of two and the table can grow by half instead of doubling.
    [[nodiscard]] std::size_t home(std::uint32_t t) const noexcept {
      return static_cast<std::size_t>((static_cast<std::uint64_t>(t) * cap) >> 32);
    }
    [[nodiscard]] std::size_t next(std::size_t i) const noexcept {
      return i + 1 == cap ? 0 : i + 1;
    }

    [[nodiscard]] std::size_t find(std::string_view key, std::uint32_t t) const noexcept {
      for (std::size_t i = home(t);; i = next(i)) {
        const std::uint32_t s = hashes[i];
        if (s == 0) return npos;
        if (s == t && KeyOf{}(records[i]) == key) return i;
      }
    }

    // Needs an empty slot (the table is at most 3/4 full).
    std::size_t place(std::uint32_t t, Rec* r) noexcept {
      std::size_t i = home(t);
      while (hashes[i] != 0) i = next(i);
      hashes[i] = t;
      records[i] = r;
      return i;
    }

    void erase(std::size_t slot) noexcept {
      std::size_t hole = slot;
      for (std::size_t j = next(hole); hashes[j] != 0; j = next(j)) {
        const std::size_t h = home(hashes[j]);
        // j stays if its home lies cyclically in (hole, j]
        const bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
        if (stays) continue;
        hashes[hole] = hashes[j];
        records[hole] = records[j];
        hole = j;
      }
      hashes[hole] = 0;
      records[hole] = nullptr;
    }
  };

  // Starts a resize to `n` slots; a resize still under way first finishes (rare: a growth
  // moves its old table over long before the new one fills; a shrink to a small table may not).
  void resize(std::size_t n) {
    Slots fresh(n); // may throw: nothing changed yet
    move_some(npos);
    old_ = std::move(cur_);
    cur_ = std::move(fresh);
    // Start at an empty slot: it stays empty (inserts go to the new table, an erase only fills
    // slots of its own probe run), so no cluster wraps past the end of the move.
    move_at_ = 0;
    while (old_.hashes[move_at_] != 0) ++move_at_;
    move_left_ = old_.cap;
    move_some(0); // an empty old table is dropped at once
  }

  // Moves the old table's records to the new one, looking at about `budget` old slots, from
  // `move_at_` on. A cluster (records between two empty slots) moves whole: a record left
  // behind could no longer be found from its home. The slots already looked at stay empty (an
  // erase in the old table only shifts records within their own probe run, which lies ahead),
  // so the old table stays a valid table of the records not yet moved.
  void move_some(std::size_t budget) noexcept {
    if (old_.cap == 0) return;
    while (move_left_ > 0 && budget > 0) {
      --budget;
      while (old_.hashes[move_at_] != 0) { // a cluster; it ends at the latest at the start slot
        cur_.place(old_.hashes[move_at_], old_.records[move_at_]);
        old_.hashes[move_at_] = 0;
        move_at_ = old_.next(move_at_);
        --move_left_;
        if (budget > 0) --budget;
      }
      if (move_left_ == 0) break;
      move_at_ = old_.next(move_at_);
      --move_left_;
    }
    if (move_left_ == 0 || size_ == 0) old_ = Slots(); // one munmap: ~0.1-0.7 ms for 1.4 MB
  }

  // Blocks of at least this many bytes are mapped: zero pages, faulted in when first written.
  static constexpr std::size_t map_threshold = std::size_t{64} * 1024;

  static void* allocate(std::size_t n) {
#if IDEMPOTENCY_TABLE_MMAP
    if (n >= map_threshold) {
      void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      return p;
    }
#endif
    void* p = std::calloc(n, 1);
    if (p == nullptr) throw std::bad_alloc();
    return p;
  }
  static void deallocate(void* p, std::size_t n) noexcept {
#if IDEMPOTENCY_TABLE_MMAP
    if (n >= map_threshold) {
      ::munmap(p, n);
      return;
    }
#endif
    std::free(p);
  }

  Slots cur_;                 ///< takes the inserts
  Slots old_;                 ///< during a resize: the records not moved yet
  std::size_t move_at_ = 0;   ///< the next old slot to look at
  std::size_t move_left_ = 0; ///< old slots not looked at yet
  std::size_t size_ = 0;
};

} // namespace idempotency::detail
