// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The index of one InMemoryStore shard: open addressing with linear probing over two arrays,
// a byte of hash per slot (0 = empty) and a pointer to the record, which holds its own key.
// 9 bytes per slot, at most 3/4 full; a lookup reads the tag bytes in order and compares a key
// only where 7 bits of its hash match. Erasing shifts the rest of the probe run back (no
// tombstones), so a run never grows with churn. Not thread-safe: the shard lock guards it.

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
  [[nodiscard]] std::size_t capacity() const noexcept { return mask_ + 1; }

  /// The slot holding `key` (hashed to `h`), or npos.
  [[nodiscard]] std::size_t find(std::string_view key, std::size_t h) const noexcept {
    const std::uint8_t t = tag(h);
    for (std::size_t i = h & mask_;; i = (i + 1) & mask_) {
      const std::uint8_t s = tags_[i];
      if (s == 0) return npos;
      if (s == t && KeyOf{}(records_[i]) == key) return i;
    }
  }

  [[nodiscard]] Rec* at(std::size_t slot) const noexcept { return records_[slot]; }
  /// Replaces the record in `slot` by one with the same key.
  void replace(std::size_t slot, Rec* r) noexcept { records_[slot] = r; }
  /// Whether `slot` holds a record (for scans by slot number).
  [[nodiscard]] bool occupied(std::size_t slot) const noexcept { return tags_[slot] != 0; }

  /// Inserts `r`, whose key (hashed to `h`) is not in the table; returns its slot. May grow
  /// the table (std::bad_alloc leaves it as it was).
  std::size_t insert(Rec* r, std::size_t h) {
    if ((size_ + 1) * 4 > capacity() * 3) rebuild(capacity() * 2);
    std::size_t i = h & mask_;
    while (tags_[i] != 0) i = (i + 1) & mask_;
    tags_[i] = tag(h);
    records_[i] = r;
    ++size_;
    return i;
  }

  /// Empties `slot`, moving later records of its probe run back into the gap. A record may
  /// move from a slot after `slot` to `slot` itself or before it.
  void erase(std::size_t slot) noexcept {
    std::size_t hole = slot;
    for (std::size_t j = (hole + 1) & mask_; tags_[j] != 0; j = (j + 1) & mask_) {
      const std::size_t home = hash(KeyOf{}(records_[j])) & mask_;
      // j stays if its home lies cyclically in (hole, j]
      const bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (stays) continue;
      tags_[hole] = tags_[j];
      records_[hole] = records_[j];
      hole = j;
    }
    tags_[hole] = 0;
    records_[hole] = nullptr;
    --size_;
  }

  /// Shrinks the arrays when at most 1/8 full (after a purge). std::bad_alloc keeps them.
  void shrink_to_fit() noexcept {
    std::size_t want = min_capacity;
    while (size_ * 4 > want * 3 / 2) want *= 2; // leave room to grow to 1/2 full
    if (want * 2 > capacity()) return;
    try {
      rebuild(want);
    } catch (...) {
    }
  }

  /// Calls `f(record)` for every record (order unspecified).
  template <class F>
  void for_each(F&& f) const {
    for (std::size_t i = 0; i <= mask_; ++i)
      if (tags_[i] != 0) f(records_[i]);
  }

 private:
  // 7 bits of the hash that the slot index does not use, with the top bit set (never 0)
  [[nodiscard]] static std::uint8_t tag(std::size_t h) noexcept {
    return static_cast<std::uint8_t>((h >> (sizeof(std::size_t) * 8 - 7)) | 0x80);
  }

  void rebuild(std::size_t cap) {
    auto tags = std::make_unique<std::uint8_t[]>(cap); // zeroed
    auto records = std::make_unique<Rec*[]>(cap);
    const std::size_t mask = cap - 1;
    for (std::size_t i = 0; tags_ && i <= mask_; ++i) {
      if (tags_[i] == 0) continue;
      std::size_t j = hash(KeyOf{}(records_[i])) & mask;
      while (tags[j] != 0) j = (j + 1) & mask;
      tags[j] = tags_[i];
      records[j] = records_[i];
    }
    tags_ = std::move(tags);
    records_ = std::move(records);
    mask_ = mask;
  }

  std::unique_ptr<std::uint8_t[]> tags_;
  std::unique_ptr<Rec*[]> records_;
  std::size_t mask_ = 0;
  std::size_t size_ = 0;
};

} // namespace idempotency::detail
