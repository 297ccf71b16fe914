// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/detail/json_hook.hpp>
#include <idempotency/errors.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

namespace idempotency {

namespace detail {

/// SHA-256 (FIPS 180-4), incremental. Small and dependency-free; checked against the FIPS
/// test vectors in tests/core/test_fingerprint.cpp.
class Sha256 {
 public:
  using Digest = std::array<std::uint8_t, 32>;

  Sha256& update(std::string_view data) noexcept {
    for (char c : data) {
      block_[block_size_++] = static_cast<std::uint8_t>(c);
      if (block_size_ == 64) {
        compress();
        block_size_ = 0;
      }
    }
    length_ += static_cast<std::uint64_t>(data.size());
    return *this;
  }

  Digest finish() noexcept {
    const std::uint64_t bits = length_ * 8;
    block_[block_size_++] = 0x80;
    if (block_size_ > 56) {
      while (block_size_ < 64) block_[block_size_++] = 0;
      compress();
      block_size_ = 0;
    }
    while (block_size_ < 56) block_[block_size_++] = 0;
    for (int i = 7; i >= 0; --i) block_[block_size_++] = static_cast<std::uint8_t>(bits >> (8 * i));
    compress();
    Digest out{};
    for (std::size_t i = 0; i < 8; ++i)
      for (std::size_t j = 0; j < 4; ++j)
        out[4 * i + j] = static_cast<std::uint8_t>(state_[i] >> (24 - 8 * j));
    return out;
  }

  static Digest hash(std::string_view data) noexcept { return Sha256{}.update(data).finish(); }

 private:
  static constexpr std::uint32_t rotr(std::uint32_t x, int n) noexcept {
    return (x >> n) | (x << (32 - n));
  }

  void compress() noexcept {
    static constexpr std::array<std::uint32_t, 64> k = {
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2};
    std::array<std::uint32_t, 64> w{};
    for (std::size_t i = 0; i < 16; ++i)
      w[i] = (std::uint32_t{block_[4 * i]} << 24) | (std::uint32_t{block_[4 * i + 1]} << 16) |
             (std::uint32_t{block_[4 * i + 2]} << 8) | std::uint32_t{block_[4 * i + 3]};
    for (std::size_t i = 16; i < 64; ++i) {
      const std::uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      const std::uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    std::uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3];
    std::uint32_t e = state_[4], f = state_[5], g = state_[6], h = state_[7];
    for (std::size_t i = 0; i < 64; ++i) {
      const std::uint32_t s1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      const std::uint32_t ch = (e & f) ^ (~e & g);
      const std::uint32_t t1 = h + s1 + ch + k[i] + w[i];
      const std::uint32_t s0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      const std::uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
      const std::uint32_t t2 = s0 + maj;
      h = g;
      g = f;
      f = e;
      e = d + t1;
      d = c;
      c = b;
      b = a;
      a = t1 + t2;
    }
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
    state_[4] += e;
    state_[5] += f;
    state_[6] += g;
    state_[7] += h;
  }

  std::array<std::uint32_t, 8> state_ = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                         0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  std::array<std::uint8_t, 64> block_{};
  std::size_t block_size_ = 0;
  std::uint64_t length_ = 0;
};

inline std::string to_hex(const Sha256::Digest& d) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (std::uint8_t b : d) {
    out += digits[b >> 4];
    out += digits[b & 0xF];
  }
  return out;
}

} // namespace detail

/// What identifies a request's content, so the same key with a different request is an error
/// (`FingerprintMismatchError`, the IETF draft's 422), never a replay.
///
/// Stored as 64 lower-case hex digits of SHA-256. An empty fingerprint means "none given";
/// a key first used with one fingerprint and retried with another (or none) is a mismatch.
///
/// Example:
///
///     auto fp = idempotency::Fingerprint::of(nlohmann::json{{"amount", 100}, {"to", "acme"}});
///     exec.execute(key, fp, [&] { return charge(); });
class Fingerprint {
 public:
  Fingerprint() = default;

  /// SHA-256 of the body's RFC 8785 (JSON Canonicalization Scheme) text: members sorted, no
  /// whitespace, numbers compared as IEEE doubles and written as ECMAScript does. So
  /// `{"b":1,"a":2}` and `{"a":2, "b":1}` fingerprint alike, and so do `{"amount":100}`,
  /// `{"amount":100.0}` and `{"amount":1e2}`. Beyond 2^53 two different integers can be the
  /// same double and so share a fingerprint: use `of_bytes` on the raw body where that
  /// matters. Throws `InvalidFingerprintError` for NaN, infinity or invalid UTF-8.
  /// `body` is a `nlohmann::json` (anything that converts to one): this needs
  /// <idempotency/json_codec.hpp>, which the umbrella header includes.
  template <class D = void, class Json = typename detail::json_hook<D>::json>
  [[nodiscard]] static Fingerprint of(const std::type_identity_t<Json>& body) {
    return of_bytes(canonical_json<D>(body));
  }

  /// SHA-256 of raw bytes (an HTTP body, a protobuf, …).
  [[nodiscard]] static Fingerprint of_bytes(std::string_view bytes) {
    Fingerprint f;
    f.hex_ = detail::to_hex(detail::Sha256::hash(bytes));
    return f;
  }

  /// The canonical text `of(body)` hashes (RFC 8785). Throws `InvalidFingerprintError`.
  template <class D = void, class Json = typename detail::json_hook<D>::json>
  [[nodiscard]] static std::string canonical_json(const std::type_identity_t<Json>& body) {
    return detail::json_hook<D>::canonical(body);
  }

  // Without <idempotency/json_codec.hpp>: one readable error instead of "no match".
  template <class Body>
    requires(!detail::JsonHookReady<Body>)
  static Fingerprint of(const Body&) {
    static_assert(detail::dependent_false<Body>,
                  "idempotency: Fingerprint::of(json) needs <idempotency/json_codec.hpp> (or "
                  "the umbrella <idempotency/idempotency.hpp>); Fingerprint::of_bytes needs "
                  "nothing");
    return {};
  }
  template <class Body>
    requires(!detail::JsonHookReady<Body>)
  static std::string canonical_json(const Body&) {
    static_assert(detail::dependent_false<Body>,
                  "idempotency: Fingerprint::canonical_json needs <idempotency/json_codec.hpp> "
                  "(or the umbrella <idempotency/idempotency.hpp>)");
    return {};
  }

  [[nodiscard]] bool empty() const noexcept { return hex_.empty(); }
  [[nodiscard]] const std::string& hex() const noexcept { return hex_; }
  friend bool operator==(const Fingerprint&, const Fingerprint&) = default;

 private:
  std::string hex_;
};

} // namespace idempotency
