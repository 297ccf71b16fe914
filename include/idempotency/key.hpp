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
/// A scope part: 0..64 bytes of visible ASCII.
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
/// Each part is optional (0..64 bytes of visible ASCII; '/' is data like any other byte).
///
/// The storage key is the key alone when every part is empty, and otherwise
/// `\x1e tenant \x1f operation \x1f version \x1f key`: the control bytes 0x1E / 0x1F can
/// appear in no key and no part, so the mapping from (scope, key) to storage key is injective
/// — an unscoped key can never name a scoped record, and no scope can name another's.
/// (Version 0.1 wrote `tenant/operation/version/key`, which a crafted key could forge; see
/// the README on records written by 0.1.)
struct Scope {
  std::string tenant{};
  std::string operation{};
  std::string version{};

  /// Opens a scoped storage key.
  static constexpr char begin_marker = '\x1e';
  /// Ends each scope part.
  static constexpr char part_end = '\x1f';

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
    p.reserve(tenant.size() + operation.size() + version.size() + 4);
    p += begin_marker;
    p += tenant;
    p += part_end;
    p += operation;
    p += part_end;
    p += version;
    p += part_end;
    return p;
  }

 private:
  static void check_part(std::string_view what, const std::string& part) {
    if (part.size() > max_scope_part_size)
      detail::raise<InvalidKeyError>("scope " + std::string(what) + " is " +
                                     std::to_string(part.size()) + " bytes, over the limit of " +
                                     std::to_string(max_scope_part_size));
    for (char c : part)
      if (!detail::visible_ascii(c))
        detail::raise<InvalidKeyError>("scope " + std::string(what) + " has byte " +
                                       detail::describe_byte(static_cast<unsigned char>(c)) +
                                       "; only visible ASCII (0x21..0x7E) is allowed");
  }
};

} // namespace idempotency
