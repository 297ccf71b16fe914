// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The JSON Canonicalization Scheme (RFC 8785): the one text a JSON value serializes to, so
// that `{"amount":100}`, `{"amount":100.0}` and `{"amount":1e2}` fingerprint alike.
//  - numbers: as IEEE-754 doubles, written the way ECMAScript's Number.prototype.toString
//    writes them (shortest round-trip digits; 1e21 and up, and below 1e-6, in exponent form);
//    NaN and infinity have no JSON form and are refused;
//  - strings: only '"', '\\' and the control characters are escaped (\b \f \n \r \t, else
//    \u00xx in lower case); everything else as UTF-8; invalid UTF-8 is refused;
//  - object members sorted by the UTF-16 code units of their names; no whitespace.

#include <idempotency/detail/json_text.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace idempotency::detail::jcs {

/// Why a value has no canonical form (the caller turns it into its own typed error).
struct Unrepresentable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Decodes UTF-8 into UTF-16 code units (for sorting); throws on invalid UTF-8 (overlong
/// forms, surrogates, code points past U+10FFFF, truncated sequences). (The functions over
/// JSON values and UTF-16 strings are templates so that a TU that never fingerprints a JSON
/// body does not compile them.)
template <class U16 = std::u16string>
U16 utf16(std::string_view s) {
  U16 out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    std::uint32_t cp = 0;
    std::size_t n = 0;
    if (b0 < 0x80) {
      cp = b0;
      n = 1;
    } else if (b0 >= 0xC2 && b0 <= 0xDF) {
      cp = b0 & 0x1FU;
      n = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
      cp = b0 & 0x0FU;
      n = 3;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
      cp = b0 & 0x07U;
      n = 4;
    } else {
      throw Unrepresentable("invalid UTF-8 byte at offset " + std::to_string(i));
    }
    if (i + n > s.size()) throw Unrepresentable("truncated UTF-8 sequence");
    for (std::size_t k = 1; k < n; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0U) != 0x80U)
        throw Unrepresentable("invalid UTF-8 continuation at offset " + std::to_string(i + k));
      cp = (cp << 6) | (b & 0x3FU);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      throw Unrepresentable("invalid UTF-8 (overlong, surrogate or out of range) at offset " +
                            std::to_string(i));
    if (cp < 0x10000) {
      out.push_back(static_cast<char16_t>(cp));
    } else {
      cp -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FFU)));
    }
    i += n;
  }
  return out;
}

/// `s` as a JCS string literal; the caller has validated it as UTF-8 (RFC 8785 §3.2.2.2: ASCII
/// escaped as JSON writers do, every other code point as it is).
inline void write_string(std::string_view s, std::string& out) {
  out += '"';
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80)
      json_text::append_ascii(out, u);
    else
      out += c;
  }
  out += '"';
}

/// `d` as ECMAScript's Number.prototype.toString writes it (RFC 8785 §3.2.2.3).
inline void write_number(double d, std::string& out) {
  if (!std::isfinite(d)) throw Unrepresentable("NaN and infinity have no JSON form");
  if (d == 0) { // also -0
    out += '0';
    return;
  }
  if (d < 0) {
    out += '-';
    d = -d;
  }
  // the shortest digits that round-trip, from the scientific form "d[.ddd]e±x"
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  if (ec != std::errc()) throw Unrepresentable("number formatting failed");
  const std::string_view sci(buf, static_cast<std::size_t>(end - buf));
  const auto e_pos = sci.find('e');
  std::string digits;
  for (const char c : sci.substr(0, e_pos))
    if (c != '.') digits += c;
  int exp10 = 0;
  const std::string_view e_text = sci.substr(e_pos + 1);
  std::from_chars(e_text.data() + (e_text[0] == '+' ? 1 : 0), e_text.data() + e_text.size(), exp10);
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1; // the value is 0.<digits> x 10^n
  if (k <= n && n <= 21) {
    out += digits;
    out.append(static_cast<std::size_t>(n - k), '0');
  } else if (0 < n && n <= 21) {
    out.append(digits, 0, static_cast<std::size_t>(n));
    out += '.';
    out.append(digits, static_cast<std::size_t>(n), std::string::npos);
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(static_cast<std::size_t>(-n), '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out.append(digits, 1, std::string::npos);
    }
    out += 'e';
    out += n - 1 < 0 ? '-' : '+';
    out += std::to_string(std::abs(n - 1));
  }
}

template <class Json>
void write(const Json& j, std::string& out) {
  using t = typename Json::value_t;
  switch (j.type()) {
    case t::null: out += "null"; return;
    case t::boolean: out += j.template get<bool>() ? "true" : "false"; return;
    case t::number_integer:
    case t::number_unsigned:
    case t::number_float: write_number(j.template get<double>(), out); return;
    case t::string: {
      const auto& s = j.template get_ref<const std::string&>();
      (void)utf16<>(s); // validates
      write_string(s, out);
      return;
    }
    case t::array: {
      out += '[';
      bool first = true;
      for (const auto& e : j) {
        if (!first) out += ',';
        first = false;
        write(e, out);
      }
      out += ']';
      return;
    }
    case t::object: {
      std::vector<std::pair<std::u16string, typename Json::const_iterator>> members;
      members.reserve(j.size());
      for (auto it = j.cbegin(); it != j.cend(); ++it) members.emplace_back(utf16<>(it.key()), it);
      std::sort(members.begin(), members.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      out += '{';
      bool first = true;
      for (const auto& [name, it] : members) {
        if (!first) out += ',';
        first = false;
        write_string(it.key(), out);
        out += ':';
        write(it.value(), out);
      }
      out += '}';
      return;
    }
    case t::binary: throw Unrepresentable("binary values have no JSON form");
    case t::discarded: throw Unrepresentable("a discarded value has no JSON form");
  }
}

/// The RFC 8785 canonical text of `j` (a `nlohmann::json`); throws `Unrepresentable`.
template <class Json>
[[nodiscard]] std::string serialize(const Json& j) {
  std::string out;
  write(j, out);
  return out;
}

} // namespace idempotency::detail::jcs
