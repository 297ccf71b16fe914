// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The executor's hot-path key handling: a word-at-a-time key check and the storage key (scope
// prefix + key) built without an allocation.

#include <idempotency/key.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace idempotency::detail {
/// `validate_key`'s rule (1..255 bytes of visible ASCII) checked 8 bytes at a time, for the
/// hot path; `validate_key` says what is wrong when this is false.
[[nodiscard]] inline bool valid_key(std::string_view key) noexcept {
  const std::size_t n = key.size();
  if (n == 0 || n > max_key_size) return false;
  if (n < 8) {
    for (const char c : key)
      if (!visible_ascii(c)) return false;
    return true;
  }
  // per byte b: b < 0x80; b + 0x5F sets the top bit iff b >= 0x21; b + 0x01 iff b >= 0x7F
  // (no byte carries into the next one: every b is below 0x80 when the sums count)
  constexpr std::uint64_t ones = 0x0101010101010101U;
  constexpr std::uint64_t high = 0x8080808080808080U;
  const auto word_ok = [](const char* p) noexcept {
    std::uint64_t w = 0;
    std::memcpy(&w, p, 8);
    return (w & high) == 0 && ((w + 0x5F * ones) & high) == high && ((w + ones) & high) == 0;
  };
  bool ok = word_ok(key.data() + n - 8); // the last 8 bytes (they may overlap the others)
  for (std::size_t i = 0; i + 8 < n; i += 8) ok = ok && word_ok(key.data() + i);
  return ok;
}

/// The storage key of a call (scope prefix + key) without an allocation: the key itself when
/// there is no scope, else built on the stack (a 196-byte scope prefix and a 255-byte key
/// fit); only a longer one (never a valid key) goes to the heap. It may view the caller's key:
/// it lives no longer than the call.
class StorageKey {
 public:
  StorageKey(std::string_view prefix, std::string_view key) {
    if (prefix.empty()) {
      view_ = key;
    } else if (prefix.size() + key.size() <= capacity) {
      std::memcpy(buf_, prefix.data(), prefix.size());
      std::memcpy(buf_ + prefix.size(), key.data(), key.size());
      view_ = std::string_view(buf_, prefix.size() + key.size());
    } else {
      heap_.reserve(prefix.size() + key.size());
      heap_ += prefix;
      heap_ += key;
      view_ = heap_;
    }
  }
  StorageKey(const StorageKey&) = delete;
  StorageKey& operator=(const StorageKey&) = delete;
  ~StorageKey() = default;

  [[nodiscard]] std::string_view view() const noexcept { return view_; }

 private:
  static constexpr std::size_t capacity = 512;
  std::string_view view_;
  char buf_[capacity]; // NOLINT: written only when used
  std::string heap_{};
};
} // namespace idempotency::detail
