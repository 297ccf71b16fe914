// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// JSON text without a JSON library, for the few records the core writes itself whatever the
// result's codec is: a remembered failure `{"kind":…,"message":…}` and a void result `null`.
// The writer produces the bytes nlohmann_json's `dump(-1, ' ', false,
// error_handler_t::replace)` produced for them (records already stored keep decoding, and new
// ones read the same); the reader accepts exactly that shape, as any JSON writer may lay it out.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace idempotency::detail::json_text {

/// JSON's insignificant whitespace (RFC 8259: space, tab, line feed, carriage return).
constexpr bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/// `text` without leading and trailing JSON whitespace.
constexpr std::string_view trim(std::string_view text) noexcept {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

/// The bytes one UTF-8 sequence may continue with after lead byte `lead` (the well-formed
/// sequences of Unicode table 3-7): `need` continuation bytes, the first in [lo, hi], the
/// others in [0x80, 0xBF]. `need == 0`: `lead` starts no sequence (ASCII is handled apart).
struct Utf8Lead {
  int need = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
};

constexpr Utf8Lead utf8_lead(unsigned char lead) noexcept {
  if (lead >= 0xC2 && lead <= 0xDF) return {1, 0x80, 0xBF};
  if (lead == 0xE0) return {2, 0xA0, 0xBF};
  if (lead == 0xED) return {2, 0x80, 0x9F}; // no UTF-16 surrogates
  if (lead >= 0xE1 && lead <= 0xEF) return {2, 0x80, 0xBF};
  if (lead == 0xF0) return {3, 0x90, 0xBF};
  if (lead >= 0xF1 && lead <= 0xF3) return {3, 0x80, 0xBF};
  if (lead == 0xF4) return {3, 0x80, 0x8F}; // nothing past U+10FFFF
  return {};                                // 0x80..0xC1, 0xF5..0xFF
}

/// Appends the ASCII byte `b` (below 0x80) as it stands inside a JSON string: `"` and `\`
/// escaped, U+0008, U+0009, U+000A, U+000C, U+000D as `\b \t \n \f \r`, the other control
/// characters as `\u00xx` (lower-case hex), anything else as it is. nlohmann_json and RFC 8785
/// (JCS) write ASCII alike.
inline void append_ascii(std::string& out, unsigned char b) {
  static constexpr char hex[] = "0123456789abcdef";
  switch (b) {
    case '\b': out += "\\b"; break;
    case '\t': out += "\\t"; break;
    case '\n': out += "\\n"; break;
    case '\f': out += "\\f"; break;
    case '\r': out += "\\r"; break;
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    default:
      if (b <= 0x1F) {
        out += "\\u00";
        out += hex[b >> 4];
        out += hex[b & 0xF];
      } else {
        out += static_cast<char>(b);
      }
  }
}

/// Appends `s` as a JSON string, quotes included, byte for byte as nlohmann_json 3.x writes
/// it with `error_handler_t::replace` and `ensure_ascii == false`: `"` and `\` escaped,
/// U+0008, U+0009, U+000A, U+000C, U+000D as `\b \t \n \f \r`, the other control characters
/// as `\u00xx` (lower-case hex), every other well-formed UTF-8 sequence copied as it is, and
/// each ill-formed one replaced by U+FFFD where that decoder rejects it: a byte that cannot
/// start a sequence is replaced, a sequence cut short is replaced and the byte that cut it is
/// read again, a sequence left open at the end is replaced.
inline void append_string(std::string& out, std::string_view s) {
  static constexpr std::string_view replacement = "\xEF\xBF\xBD";
  out += '"';
  std::size_t last_accept = out.size(); // end of the output of the last complete code point
  int need = 0;                         // continuation bytes still expected
  unsigned char lo = 0x80;              // the range of the next continuation byte
  unsigned char hi = 0xBF;
  const auto reject = [&] {
    out.resize(last_accept);
    out += replacement;
    last_accept = out.size();
    need = 0;
  };
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (need == 0) {
      if (b < 0x80) {
        append_ascii(out, b);
        last_accept = out.size();
        continue;
      }
      const Utf8Lead lead = utf8_lead(b);
      if (lead.need == 0) { // cannot start a sequence: replaced, not read again
        reject();
        continue;
      }
      need = lead.need;
      lo = lead.lo;
      hi = lead.hi;
      out += static_cast<char>(b);
      continue;
    }
    if (b < lo || b > hi) { // the sequence is cut short: replace it, read this byte again
      reject();
      --i;
      continue;
    }
    out += static_cast<char>(b);
    lo = 0x80;
    hi = 0xBF;
    if (--need == 0) last_accept = out.size();
  }
  if (need != 0) reject(); // left open at the end
  out += '"';
}

/// Appends the code point `cp` (at most U+10FFFF, no surrogate) as UTF-8.
inline void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

/// A strict reader of JSON text: whitespace, punctuation and strings (RFC 8259). Each call
/// returns false on the first thing that does not fit, with `error()` saying what and where.
class Reader {
 public:
  explicit Reader(std::string_view text) noexcept : text_(text) {}

  [[nodiscard]] const std::string& error() const noexcept { return error_; }
  [[nodiscard]] bool at_end() noexcept {
    skip_space();
    return pos_ == text_.size();
  }

  /// Skips whitespace, then consumes `c` if it is next.
  bool consume(char c) noexcept {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }

  /// Skips whitespace, then reads `c` or fails.
  bool expect(char c) {
    if (consume(c)) return true;
    return fail(std::string("expected '") + c + "'");
  }

  /// Skips whitespace, then reads a string into `out` (escapes resolved, UTF-8 checked).
  bool string(std::string& out) {
    if (!expect('"')) return false;
    out.clear();
    while (pos_ < text_.size()) {
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (c == '\\') {
        if (!escape(out)) return false;
      } else if (c < 0x20) {
        return fail("a control character inside a string must be escaped");
      } else if (c < 0x80) {
        out += static_cast<char>(c);
        ++pos_;
      } else if (!utf8_sequence(out)) {
        return false;
      }
    }
    return fail("the string is not terminated");
  }

  bool fail(const std::string& why) {
    if (error_.empty()) error_ = why + " at byte " + std::to_string(pos_);
    return false;
  }

 private:
  void skip_space() noexcept {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }

  bool hex4(std::uint32_t& v) {
    if (text_.size() - pos_ < 4) return fail("\\u needs 4 hex digits");
    v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = text_[pos_++];
      std::uint32_t d = 0;
      if (c >= '0' && c <= '9') {
        d = static_cast<std::uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        d = static_cast<std::uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        d = static_cast<std::uint32_t>(c - 'A' + 10);
      } else {
        --pos_;
        return fail("\\u needs 4 hex digits");
      }
      v = (v << 4) | d;
    }
    return true;
  }

  bool escape(std::string& out) {
    ++pos_; // the backslash
    if (pos_ >= text_.size()) return fail("the string ends inside an escape");
    const char c = text_[pos_++];
    switch (c) {
      case '"': out += '"'; return true;
      case '\\': out += '\\'; return true;
      case '/': out += '/'; return true;
      case 'b': out += '\b'; return true;
      case 'f': out += '\f'; return true;
      case 'n': out += '\n'; return true;
      case 'r': out += '\r'; return true;
      case 't': out += '\t'; return true;
      case 'u': break;
      default: --pos_; return fail("an unknown escape");
    }
    std::uint32_t cp = 0;
    if (!hex4(cp)) return false;
    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("a low surrogate without a high one");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") return fail("a high surrogate without a low one");
      pos_ += 2;
      std::uint32_t low = 0;
      if (!hex4(low)) return false;
      if (low < 0xDC00 || low > 0xDFFF) return fail("a high surrogate without a low one");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(out, cp);
    return true;
  }

  bool utf8_sequence(std::string& out) {
    const Utf8Lead lead = utf8_lead(static_cast<unsigned char>(text_[pos_]));
    if (lead.need == 0 || text_.size() - pos_ <= static_cast<std::size_t>(lead.need))
      return fail("invalid UTF-8");
    for (int k = 1; k <= lead.need; ++k) {
      const auto b = static_cast<unsigned char>(text_[pos_ + static_cast<std::size_t>(k)]);
      const unsigned char lo = k == 1 ? lead.lo : 0x80;
      const unsigned char hi = k == 1 ? lead.hi : 0xBF;
      if (b < lo || b > hi) return fail("invalid UTF-8");
    }
    const auto n = static_cast<std::size_t>(lead.need) + 1;
    out.append(text_.substr(pos_, n));
    pos_ += n;
    return true;
  }

  std::string_view text_;
  std::size_t pos_ = 0;
  std::string error_{};
};

/// A remembered failure as stored: `{"kind":…,"message":…}`, written as nlohmann_json wrote
/// it (members in this order, no whitespace, strings as `append_string`).
inline std::string write_failure(std::string_view kind, std::string_view message) {
  std::string out;
  out.reserve(kind.size() + message.size() + 24);
  out += "{\"kind\":";
  append_string(out, kind);
  out += ",\"message\":";
  append_string(out, message);
  out += '}';
  return out;
}

/// Reads a remembered failure: an object with exactly the string members `kind` and
/// `message`, in either order, with any whitespace. False (and `why`) for anything else.
inline bool read_failure(std::string_view text, std::string& kind, std::string& message,
                         std::string& why) {
  Reader in(text);
  bool have_kind = false;
  bool have_message = false;
  std::string name;
  bool ok = in.expect('{');
  while (ok) {
    ok = in.string(name) && in.expect(':');
    if (!ok) break;
    if (name == "kind" && !have_kind) {
      ok = in.string(kind);
      have_kind = true;
    } else if (name == "message" && !have_message) {
      ok = in.string(message);
      have_message = true;
    } else {
      ok = in.fail(name == "kind" || name == "message" ? "member '" + name + "' appears twice"
                                                       : "unexpected member '" + name + "'");
    }
    if (!ok || in.consume('}')) break;
    ok = in.expect(',');
  }
  if (ok && !(have_kind && have_message))
    ok = in.fail(have_kind ? "member 'message' is missing" : "member 'kind' is missing");
  if (ok && !in.at_end()) ok = in.fail("unexpected text after the object");
  if (!ok) why = in.error();
  return ok;
}

} // namespace idempotency::detail::json_text
