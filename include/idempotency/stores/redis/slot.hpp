// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// The Redis Cluster hash slot of a key (Redis Cluster specification, "Keys distribution
// model"): CRC16 (XMODEM: polynomial 0x1021, initial value 0) of the key modulo 16384, where
// a key that holds a non-empty `{hash tag}` (the first '{' and the first '}' after it) is
// hashed by the tag alone.

#include <array>
#include <cstdint>
#include <string_view>

namespace idempotency::detail::redis {

inline constexpr std::uint16_t slot_count = 16384;

inline constexpr std::array<std::uint16_t, 256> crc16_table = [] {
  std::array<std::uint16_t, 256> t{};
  for (unsigned i = 0; i < 256; ++i) {
    unsigned crc = i << 8;
    for (int bit = 0; bit < 8; ++bit) crc = (crc & 0x8000U) != 0 ? (crc << 1) ^ 0x1021U : crc << 1;
    t[i] = static_cast<std::uint16_t>(crc & 0xFFFFU);
  }
  return t;
}();

constexpr std::uint16_t crc16(std::string_view s) noexcept {
  unsigned crc = 0;
  for (const char c : s) {
    const unsigned byte = static_cast<unsigned char>(c);
    crc = ((crc << 8) ^ crc16_table[((crc >> 8) ^ byte) & 0xFFU]) & 0xFFFFU;
  }
  return static_cast<std::uint16_t>(crc);
}

/// The slot of `key`, honouring a `{hash tag}`.
constexpr std::uint16_t key_slot(std::string_view key) noexcept {
  if (const auto open = key.find('{'); open != std::string_view::npos) {
    if (const auto close = key.find('}', open + 1);
        close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<std::uint16_t>(crc16(key) % slot_count);
}

// The specification's test vector, and the tag rule's examples.
static_assert(crc16("123456789") == 0x31C3);
static_assert(key_slot("{user1000}.following") == key_slot("{user1000}.followers"));
static_assert(key_slot("foo{}{bar}") == crc16("foo{}{bar}") % slot_count);
static_assert(key_slot("foo{{bar}}zap") == crc16("{bar") % slot_count);

} // namespace idempotency::detail::redis
