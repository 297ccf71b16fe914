// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The framework-neutral HTTP messages of the `Idempotency-Key` layer (<idempotency/http.hpp>):
// the request as the layer reads it, the response a handler returns (and the layer stores and
// replays), the codec that stores it, and the parser of the header's value.

#include <idempotency/codec.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/key.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idempotency::http {

/// ASCII case-insensitive equality (HTTP field names).
[[nodiscard]] inline bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

/// A request as the layer reads it; an adapter (e.g. <idempotency/http/httplib.hpp>) fills it
/// from its framework's request. Views: they must outlive the call.
struct Request {
  std::string_view method{};       ///< "POST"
  std::string_view path{};         ///< "/payments", without the query
  std::string_view content_type{}; ///< the Content-Type field ("" if none)
  std::string_view body{};
  /// Every `Idempotency-Key` field value, in order (none: the header is missing).
  std::vector<std::string_view> key_headers{};
  /// Who is asking, as the server authenticated them ("" if nobody): part of the record's
  /// identity, so one client's key never reaches another client's response (the draft's
  /// "composite key combining the idempotency key with client specific attributes").
  std::string_view client{};
};

/// A response: what a handler returns and what a replay returns again.
struct Response {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string body{};

  /// The first value of field `name` (case-insensitive), if any.
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const {
    for (const auto& [n, v] : headers)
      if (iequals(n, name)) return std::string_view(v);
    return std::nullopt;
  }

  /// Replaces every field `name` with one of `value`.
  void set_header(std::string_view name, std::string value) {
    std::erase_if(headers, [&](const auto& h) { return iequals(h.first, name); });
    headers.emplace_back(std::string(name), std::move(value));
  }

  friend bool operator==(const Response&, const Response&) = default;
};

/// The value of an `Idempotency-Key` field: a Structured Field string (RFC 8941 §3.3.3,
/// `"…"` with `\"` and `\\` escapes, the form the draft specifies) or, as many clients send
/// it, the bare key. Optional whitespace around it is ignored. The key must then follow the
/// key rules (1..255 bytes of visible ASCII). Throws `InvalidKeyError` saying what is wrong.
[[nodiscard]] inline std::string parse_key_header(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  std::string key;
  if (!value.empty() && value.front() == '"') {
    std::size_t i = 1;
    bool closed = false;
    for (; i < value.size(); ++i) {
      const char c = value[i];
      if (c == '\\') {
        if (i + 1 >= value.size() || (value[i + 1] != '"' && value[i + 1] != '\\'))
          detail::raise<InvalidKeyError>(
              "the Idempotency-Key string has a '\\' that escapes neither '\"' nor '\\'");
        key += value[++i];
      } else if (c == '"') {
        closed = true;
        break;
      } else if (c < 0x20 || c > 0x7E) {
        detail::raise<InvalidKeyError>("the Idempotency-Key string has byte " +
                                       detail::describe_byte(static_cast<unsigned char>(c)) +
                                       "; a Structured Field string holds printable ASCII only");
      } else {
        key += c;
      }
    }
    if (!closed) detail::raise<InvalidKeyError>("the Idempotency-Key string has no closing '\"'");
    if (i + 1 != value.size())
      detail::raise<InvalidKeyError>(
          "the Idempotency-Key field has text after its string "
          "(parameters and lists are not accepted)");
  } else {
    key.assign(value);
  }
  validate_key(key);
  return key;
}

namespace detail_ {
inline void put_u32(std::string& out, std::size_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out += static_cast<char>((v >> static_cast<unsigned>(shift)) & 0xFFU);
}
inline std::size_t get_u32(std::string_view& in) {
  if (in.size() < 4) throw std::runtime_error("a stored HTTP response is truncated");
  std::size_t v = 0;
  for (int i = 0; i < 4; ++i)
    v = (v << 8U) | static_cast<unsigned char>(in[static_cast<std::size_t>(i)]);
  in.remove_prefix(4);
  return v;
}
inline std::string get_bytes(std::string_view& in) {
  const std::size_t n = get_u32(in);
  if (in.size() < n) throw std::runtime_error("a stored HTTP response is truncated");
  std::string s(in.substr(0, n));
  in.remove_prefix(n);
  return s;
}
} // namespace detail_

} // namespace idempotency::http

namespace idempotency {

/// How a response is stored: `HTTP1`, then big-endian 32-bit lengths before the status text,
/// the header count, each name and value, and the body. Bytes stay bytes (a binary body is
/// stored exactly). Anything else fails to decode (`CorruptRecordError` on a replay).
template <>
struct Codec<http::Response> {
  static constexpr std::string_view magic = "HTTP1";

  [[nodiscard]] static std::string encode(const http::Response& r) {
    std::string out(magic);
    http::detail_::put_u32(out, static_cast<std::size_t>(r.status));
    http::detail_::put_u32(out, r.headers.size());
    for (const auto& [name, value] : r.headers) {
      http::detail_::put_u32(out, name.size());
      out += name;
      http::detail_::put_u32(out, value.size());
      out += value;
    }
    http::detail_::put_u32(out, r.body.size());
    out += r.body;
    return out;
  }

  [[nodiscard]] static http::Response decode(std::string_view in) {
    if (in.substr(0, magic.size()) != magic)
      throw std::runtime_error("a stored HTTP response does not start with HTTP1");
    in.remove_prefix(magic.size());
    http::Response r;
    const std::size_t status = http::detail_::get_u32(in);
    if (status < 100 || status > 999)
      throw std::runtime_error("a stored HTTP response has status " + std::to_string(status));
    r.status = static_cast<int>(status);
    const std::size_t count = http::detail_::get_u32(in);
    if (count > in.size() / 8) throw std::runtime_error("a stored HTTP response is truncated");
    r.headers.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
      std::string name = http::detail_::get_bytes(in);
      std::string value = http::detail_::get_bytes(in);
      r.headers.emplace_back(std::move(name), std::move(value));
    }
    r.body = http::detail_::get_bytes(in);
    if (!in.empty()) throw std::runtime_error("a stored HTTP response has bytes after its body");
    return r;
  }
};

} // namespace idempotency
