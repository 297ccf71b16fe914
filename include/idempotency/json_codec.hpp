// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The JSON codec (nlohmann_json): `Codec<T>` for every type nlohmann_json converts both ways
// (`to_json` / `from_json` found by ADL, an `nlohmann::adl_serializer<T>` specialization, or
// a type nlohmann knows), `std::optional` of such a type, and the JSON side of
// `Options::classify_result` and `Fingerprint::of`. The umbrella header includes it.

#include <idempotency/codec.hpp>
#include <idempotency/detail/jcs.hpp>
#include <idempotency/detail/json_hook.hpp>
#include <idempotency/errors.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace idempotency {

namespace detail {
template <class Any>
struct json_hook {
  using json = nlohmann::json;

  /// RFC 8785 text of `body` (`Fingerprint::canonical_json`).
  static std::string canonical(const json& body) {
    try {
      return jcs::serialize(body);
    } catch (const jcs::Unrepresentable& e) {
      raise<InvalidFingerprintError>(
          std::string("the request body has no canonical JSON form (RFC 8785): ") + e.what());
    }
  }
};
} // namespace detail

namespace codec {

/// T can be turned into JSON (`to_json` found, or a type nlohmann knows).
template <class T>
concept Encodable = std::is_void_v<T> || std::is_constructible_v<nlohmann::json, const T&>;
/// T can be read back from JSON (`from_json` found, or a type nlohmann knows).
template <class T>
concept Decodable = std::is_void_v<T> || requires(const nlohmann::json& j) {
  j.template get<T>();
};

template <class T>
struct json_storable : std::bool_constant<Encodable<T> && Decodable<T>> {};
template <class T>
struct json_storable<std::optional<T>> : json_storable<T> {};

/// A (non-void) type the JSON codec stores: nlohmann_json converts it both ways, or it is a
/// `std::optional` of such a type (stored as `null` or the value).
template <class T>
concept JsonStorable = !std::is_void_v<T> && json_storable<T>::value;

namespace detail_ {
// JSON has no NaN or infinity: nlohmann would write `null` and the replay would differ.
// (The helpers over JSON values are templates so that only the ones a TU uses are compiled.)
template <class Json>
void check_finite(const Json& j) {
  switch (j.type()) {
    case Json::value_t::number_float:
      if (!std::isfinite(j.template get<double>())) not_encodable("a NaN or infinite number");
      break;
    case Json::value_t::array:
    case Json::value_t::object:
      for (const auto& e : j) check_finite(e);
      break;
    default: break;
  }
}
} // namespace detail_

/// The JSON of `value`. A value JSON cannot hold exactly (NaN, infinity) or a `to_json` that
/// throws is a `ResultNotRecordedError` (with no encoded value).
template <class T>
[[nodiscard]] nlohmann::json to_json_checked(const T& value) {
  nlohmann::json j;
  try {
    if constexpr (is_optional<T>::value) {
      if (value) j = to_json_checked(*value);
    } else {
      j = nlohmann::json(value);
    }
  } catch (const ResultNotRecordedError&) {
    throw;
  } catch (const std::exception& e) {
    detail_::not_encodable(std::string("to_json threw: ") + e.what());
  } catch (...) {
    detail_::not_encodable("to_json threw a non-standard exception");
  }
  detail_::check_finite(j);
  return j;
}

/// `j` as text; invalid UTF-8 in a string is a `ResultNotRecordedError`.
template <class Json>
[[nodiscard]] std::string dump_json(const Json& j) {
  try {
    return j.dump();
  } catch (const typename Json::exception& e) {
    detail_::not_encodable(e.what());
  }
}

/// `j` as text; invalid UTF-8 in a string is a `ResultNotRecordedError`, a text over
/// `max_payload` bytes a `PayloadTooLargeError`.
template <class Json>
[[nodiscard]] std::string dump_checked(const Json& j, std::size_t max_payload) {
  std::string out = dump_json(j);
  check_size(out, max_payload);
  return out;
}

namespace detail_ {
// Numbers nlohmann would convert with a silent wrap or truncation (or undefined behaviour,
// for a float out of an integer's range) are refused: a replay returns the recorded value or
// CorruptRecordError, never another number. Checked for arithmetic types and inside
// std::optional, std::vector and string-keyed std::map; a user's own from_json is its own.
template <class T>
struct strict;

template <class T>
void check_strict(const nlohmann::json& j, std::string_view key) {
  strict<T>::check(j, key);
}

template <class T>
struct strict {
  static void check(const nlohmann::json& j, std::string_view key) {
    if constexpr (std::is_same_v<T, bool>) {
      if (!j.is_boolean()) corrupt(key, "expected a boolean");
    } else if constexpr (std::is_integral_v<T>) {
      if (j.is_number_unsigned()) {
        const auto v = j.get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
          corrupt(key, std::to_string(v) + " is out of the range of the integer type");
      } else if (j.is_number_integer()) {
        const auto v = j.get<std::int64_t>();
        if constexpr (std::is_signed_v<T>) {
          if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
              v > static_cast<std::int64_t>(std::numeric_limits<T>::max()))
            corrupt(key, std::to_string(v) + " is out of the range of the integer type");
        } else {
          if (v < 0 || static_cast<std::uint64_t>(v) > std::numeric_limits<T>::max())
            corrupt(key, std::to_string(v) + " is out of the range of the unsigned type");
        }
      } else {
        corrupt(key, "expected an integer, found " + std::string(j.type_name()) +
                         (j.is_number_float() ? " " + j.dump() : std::string()));
      }
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!j.is_number()) corrupt(key, "expected a number");
      const double v = j.get<double>();
      if (!std::isfinite(v) || std::fabs(v) > static_cast<double>(std::numeric_limits<T>::max()))
        corrupt(key, j.dump() + " is out of the range of the floating-point type");
    }
  }
};
template <class T>
struct strict<std::optional<T>> {
  static void check(const nlohmann::json& j, std::string_view key) {
    if (!j.is_null()) check_strict<T>(j, key);
  }
};
template <class T, class A>
struct strict<std::vector<T, A>> {
  static void check(const nlohmann::json& j, std::string_view key) {
    if (!j.is_array()) return; // nlohmann reports the type mismatch
    for (const auto& e : j) check_strict<T>(e, key);
  }
};
template <class T, class C, class A>
struct strict<std::map<std::string, T, C, A>> {
  static void check(const nlohmann::json& j, std::string_view key) {
    if (!j.is_object()) return;
    for (const auto& [k, v] : j.items()) check_strict<T>(v, key);
  }
};
} // namespace detail_

/// Decodes a stored JSON result; anything that does not decode as `T` exactly (not JSON,
/// another type, a number out of range, a `from_json` that throws anything) is a
/// `CorruptRecordError` naming `key`.
template <class T>
  requires JsonStorable<T>
[[nodiscard]] T decode_json(std::string_view payload, std::string_view key) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(payload);
  } catch (const nlohmann::json::exception& e) {
    detail::raise<CorruptRecordError>(detail_::stored_result(key) +
                                      " is not valid JSON: " + e.what());
  }
  if constexpr (is_optional<T>::value) {
    if (j.is_null()) return T{};
    return T{decode_json<typename T::value_type>(payload, key)};
  } else {
    detail_::check_strict<T>(j, key);
    try {
      return std::move(j).template get<T>();
    } catch (const std::exception& e) {
      detail_::corrupt(key, e.what());
    } catch (...) {
      detail_::corrupt(key, "from_json threw a non-standard exception");
    }
  }
}

} // namespace codec

/// The JSON codec: every type nlohmann_json converts both ways, and `std::optional` of one.
/// Results are the text of `nlohmann::json(value).dump()`; `std::optional` is `null` or the
/// value. A value JSON cannot hold exactly (NaN, infinity, invalid UTF-8, a throwing
/// `to_json`) is refused (`ResultNotRecordedError`); a replay returns the recorded value or
/// `CorruptRecordError`, never another number (see `codec::decode_json`). A full
/// specialization `Codec<YourType>` of your own wins over this one.
template <class T>
  requires codec::JsonStorable<T>
struct Codec<T> {
  /// The JSON type `Options::classify_result` sees (present in the JSON codec only).
  using json = nlohmann::json;

  [[nodiscard]] static std::string encode(const T& value) {
    return codec::dump_json(codec::to_json_checked(value));
  }
  [[nodiscard]] static T decode(std::string_view bytes) { return codec::decode_json<T>(bytes, {}); }
  [[nodiscard]] static T decode(std::string_view bytes, std::string_view key) {
    return codec::decode_json<T>(bytes, key);
  }

  /// The JSON of `value` (what `classify_result` sees), and its text.
  [[nodiscard]] static json to_json(const T& value) { return codec::to_json_checked(value); }
  [[nodiscard]] static std::string dump(const json& j) { return codec::dump_json(j); }
};

} // namespace idempotency
