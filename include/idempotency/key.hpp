// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/errors.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace idempotency {

/// The key rules (design §4): 1..255 bytes of visible ASCII (0x21..0x7E).
inline constexpr std::size_t max_key_size = 255;
/// A scope part: 0..64 bytes of visible ASCII except '/', the separator.
inline constexpr std::size_t max_scope_part_size = 64;

namespace detail {
constexpr bool visible_ascii(char c) noexcept { return c >= 0x21 && c <= 0x7E; }

inline std::string describe_byte(unsigned char c) {
  static constexpr char hex[] = "0123456789ABCDEF";
  std::string s = "0x";
  s += hex[c >> 4];
  s += hex[c & 0xF];
  return s;
}
} // namespace detail

/// Throws `InvalidKeyError` unless `key` follows the key rules. No store is called before this.
inline void validate_key(std::string_view key) {
  if (key.empty()) detail::raise<InvalidKeyError>("key is empty");
  if (key.size() > max_key_size)
    detail::raise<InvalidKeyError>("key is " + std::to_string(key.size()) +
                                   " bytes, over the limit of " + std::to_string(max_key_size));
  for (std::size_t i = 0; i < key.size(); ++i) {
    if (!detail::visible_ascii(key[i]))
      detail::raise<InvalidKeyError>(
          "key has byte " + detail::describe_byte(static_cast<unsigned char>(key[i])) +
          " at offset " + std::to_string(i) + "; only visible ASCII (0x21..0x7E) is allowed");
  }
}

/// A prefix of the storage key so two tenants' (operations', versions') keys never meet.
/// Each part is optional; the storage key is `tenant/operation/version/key` when any part is
/// set, and the key alone otherwise.
struct Scope {
  std::string tenant{};
  std::string operation{};
  std::string version{};

  [[nodiscard]] bool empty() const noexcept {
    return tenant.empty() && operation.empty() && version.empty();
  }

  /// Throws `InvalidKeyError` if a part breaks the scope rules.
  void validate() const {
    check_part("tenant", tenant);
    check_part("operation", operation);
    check_part("version", version);
  }

  /// The prefix this scope puts before every key ("" for an empty scope).
  [[nodiscard]] std::string prefix() const {
    if (empty()) return {};
    std::string p;
    p.reserve(tenant.size() + operation.size() + version.size() + 3);
    p += tenant;
    p += '/';
    p += operation;
    p += '/';
    p += version;
    p += '/';
    return p;
  }

 private:
  static void check_part(std::string_view what, const std::string& part) {
    if (part.size() > max_scope_part_size)
      detail::raise<InvalidKeyError>("scope " + std::string(what) + " is " +
                                     std::to_string(part.size()) + " bytes, over the limit of " +
                                     std::to_string(max_scope_part_size));
    for (char c : part)
      if (!detail::visible_ascii(c) || c == '/')
        detail::raise<InvalidKeyError>(
            "scope " + std::string(what) + " has byte " +
            detail::describe_byte(static_cast<unsigned char>(c)) +
            "; only visible ASCII (0x21..0x7E) other than '/' is allowed");
  }
};

} // namespace idempotency
