// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The index of one InMemoryStore shard: open addressing with linear probing over two arrays,
// 32 bits of hash per slot (0 = empty) and a pointer to the record, which holds its own key.
// 12 bytes per slot, at most 3/4 full; a lookup reads the hashes in order and compares a key
// only where its 32 bits match. Growing and erasing (which shifts the rest of the probe run
// back: no tombstones, so a run never grows with churn) use the stored hashes and never read a
// record. Not thread-safe: the shard lock guards it.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>
#include <utility>

namespace idempotency::detail {

/// `KeyOf` maps a `const Rec*` to its key (a `std::string_view`).
template <class Rec, class KeyOf>
class RecordTable {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);
  static constexpr std::size_t min_capacity = 16;

  RecordTable() { rebuild(min_capacity); }

  [[nodiscard]] static std::size_t hash(std::string_view key) noexcept {
    return std::hash<std::string_view>{}(key);
  }

  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

  /// The slot holding `key` (hashed to `h`), or npos.
  [[nodiscard]] std::size_t find(std::string_view key, std::size_t h) const noexcept {
    const std::uint32_t t = stored(h);
    for (std::size_t i = home(t);; i = next(i)) {
      const std::uint32_t s = hashes_[i];
      if (s == 0) return npos;
      if (s == t && KeyOf{}(records_[i]) == key) return i;
    }
  }

  [[nodiscard]] Rec* at(std::size_t slot) const noexcept { return records_[slot]; }
  /// Replaces the record in `slot` by one with the same key.
  void replace(std::size_t slot, Rec* r) noexcept { records_[slot] = r; }
  /// Whether `slot` holds a record (for scans by slot number).
  [[nodiscard]] bool occupied(std::size_t slot) const noexcept { return hashes_[slot] != 0; }

  /// Inserts `r`, whose key (hashed to `h`) is not in the table; returns its slot. May grow
  /// the table by half (std::bad_alloc leaves it as it was): between 1/2 and 3/4 full after
  /// the first growths, so a record costs 16 to 24 bytes of index.
  std::size_t insert(Rec* r, std::size_t h) {
    if ((size_ + 1) * 4 > capacity_ * 3) rebuild(capacity_ + capacity_ / 2);
    const std::uint32_t t = stored(h);
    std::size_t i = home(t);
    while (hashes_[i] != 0) i = next(i);
    hashes_[i] = t;
    records_[i] = r;
    ++size_;
    return i;
  }

  /// Empties `slot`, moving later records of its probe run back into the gap. A record may
  /// move from a slot after `slot` to `slot` itself or before it.
  void erase(std::size_t slot) noexcept {
    std::size_t hole = slot;
    for (std::size_t j = next(hole); hashes_[j] != 0; j = next(j)) {
      const std::size_t h = home(hashes_[j]);
      // j stays if its home lies cyclically in (hole, j]
      const bool stays = hole <= j ? (h > hole && h <= j) : (h > hole || h <= j);
      if (stays) continue;
      hashes_[hole] = hashes_[j];
      records_[hole] = records_[j];
      hole = j;
    }
    hashes_[hole] = 0;
    records_[hole] = nullptr;
    --size_;
  }

  /// Shrinks the arrays when at most 1/4 full (after a purge), to about half full.
  /// std::bad_alloc keeps them.
  void shrink_to_fit() noexcept {
    if (size_ * 4 > capacity_ || capacity_ == min_capacity) return;
    try {
      rebuild(std::max(min_capacity, size_ * 2));
    } catch (...) {
    }
  }

  /// Calls `f(record)` for every record (order unspecified).
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i < capacity_; ++i)
      if (hashes_[i] != 0) f(records_[i]);
  }

 private:
  // 32 bits of the hash, never 0 (0 marks an empty slot).
  [[nodiscard]] static std::uint32_t stored(std::size_t h) noexcept {
    const auto h64 = static_cast<std::uint64_t>(h);
    const auto v = static_cast<std::uint32_t>(h64 ^ (h64 >> 32));
    return v == 0 ? 1 : v;
  }
  // The slot a hash starts probing at: a multiply-shift range reduction, so the capacity need
  // not be a power of two and the table can grow by half instead of doubling.
  [[nodiscard]] std::size_t home(std::uint32_t t) const noexcept {
    return static_cast<std::size_t>((static_cast<std::uint64_t>(t) * capacity_) >> 32);
  }
  [[nodiscard]] std::size_t next(std::size_t i) const noexcept {
    return i + 1 == capacity_ ? 0 : i + 1;
  }

  void rebuild(std::size_t cap) {
    auto hashes = std::make_unique<std::uint32_t[]>(cap); // zeroed
    auto records = std::make_unique<Rec*[]>(cap);
    const std::size_t old_capacity = capacity_;
    capacity_ = cap; // home() and next() now map into the new arrays
    for (std::size_t i = 0; i < old_capacity; ++i) {
      if (hashes_[i] == 0) continue;
      std::size_t j = home(hashes_[i]);
      while (hashes[j] != 0) j = next(j);
      hashes[j] = hashes_[i];
      records[j] = records_[i];
    }
    hashes_ = std::move(hashes);
    records_ = std::move(records);
  }

  std::unique_ptr<std::uint32_t[]> hashes_;
  std::unique_ptr<Rec*[]> records_;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
};

} // namespace idempotency::detail
