// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// A result type with a hand-written binary Codec<T> (no nlohmann_json), shared by
// test_custom_codec.cpp and the allocation tests.
#include <idempotency/codec.hpp>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <string_view>

namespace custom_codec_test {
struct Receipt {
  std::int64_t id = 0;
  std::string status;
  std::int64_t amount_cents = 0;
  friend bool operator==(const Receipt&, const Receipt&) = default;
};
} // namespace custom_codec_test

// [id: 8 bytes][amount: 8 bytes][status length: 4 bytes][status], little or big endian as the
// machine is (a test codec; a real one would fix the byte order).
template <>
struct idempotency::Codec<custom_codec_test::Receipt> {
  static std::string encode(const custom_codec_test::Receipt& r) {
    if (r.status == "unencodable") throw std::invalid_argument("status cannot be encoded");
    const auto n = static_cast<std::uint32_t>(r.status.size());
    std::string out(20 + r.status.size(), '\0');
    std::memcpy(out.data(), &r.id, 8);
    std::memcpy(out.data() + 8, &r.amount_cents, 8);
    std::memcpy(out.data() + 16, &n, 4);
    std::memcpy(out.data() + 20, r.status.data(), r.status.size());
    return out;
  }
  static custom_codec_test::Receipt decode(std::string_view b) {
    if (b.size() < 20) throw std::runtime_error("a receipt record has at least 20 bytes");
    custom_codec_test::Receipt r;
    std::uint32_t n = 0;
    std::memcpy(&r.id, b.data(), 8);
    std::memcpy(&r.amount_cents, b.data() + 8, 8);
    std::memcpy(&n, b.data() + 16, 4);
    if (b.size() != 20 + std::size_t{n}) throw std::runtime_error("the status length is wrong");
    r.status.assign(b.data() + 20, n);
    return r;
  }
};
