// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/errors.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <vector>
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#include <cstdlib>
#include <memory>
#endif

namespace idempotency {

/// Default limit on an encoded result (design §4).
inline constexpr std::size_t default_max_payload = std::size_t{1} << 20;

/// How results travel to and from the store: nlohmann::json text. A type is storable when
/// nlohmann::json can convert it both ways (`to_json` / `from_json` found by ADL, or an
/// `adl_serializer` specialization). `void` is stored as `null`; `std::optional<T>` as `null`
/// or the value.
namespace codec {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

/// T can be turned into JSON (`to_json` found, or a type nlohmann knows).
template <class T>
concept Encodable = std::is_void_v<T> || std::is_constructible_v<nlohmann::json, const T&>;
/// T can be read back from JSON (`from_json` found, or a type nlohmann knows).
template <class T>
concept Decodable = std::is_void_v<T> || requires(const nlohmann::json& j) {
  j.template get<T>();
};

template <class T>
struct storable : std::bool_constant<Encodable<T> && Decodable<T>> {};
template <class T>
struct storable<std::optional<T>> : storable<T> {};

/// A result type the executor can record and replay.
template <class T>
concept Storable = std::is_void_v<T> || storable<T>::value;

namespace detail_ {
[[noreturn]] inline void not_encodable(const std::string& why) {
  detail::raise<ResultNotRecordedError>(
      "the operation's result cannot be encoded (" + why +
          "); it was not recorded, and the claim is kept until its lease passes (the operation "
          "already ran: releasing would let a retry run it again)",
      std::string());
}

// JSON has no NaN or infinity: nlohmann would write `null` and the replay would differ.
inline void check_finite(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::number_float:
      if (!std::isfinite(j.get<double>())) not_encodable("a NaN or infinite number");
      break;
    case nlohmann::json::value_t::array:
    case nlohmann::json::value_t::object:
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

/// `j` as text; invalid UTF-8 in a string is a `ResultNotRecordedError`, a text over
/// `max_payload` bytes a `PayloadTooLargeError`.
[[nodiscard]] inline std::string dump_checked(const nlohmann::json& j, std::size_t max_payload) {
  std::string out;
  try {
    out = j.dump();
  } catch (const nlohmann::json::exception& e) {
    detail_::not_encodable(e.what());
  }
  if (out.size() > max_payload) detail::raise<PayloadTooLargeError>(out.size(), max_payload);
  return out;
}

/// Encodes `value`: `ResultNotRecordedError` if it cannot be encoded exactly (see above),
/// `PayloadTooLargeError` past `max_payload` bytes.
template <class T>
[[nodiscard]] std::string encode(const T& value, std::size_t max_payload) {
  return dump_checked(to_json_checked(value), max_payload);
}

[[nodiscard]] inline std::string encode_void() { return "null"; }

namespace detail_ {
[[noreturn]] inline void corrupt(std::string_view key, const std::string& why) {
  detail::raise<CorruptRecordError>("stored result of key '" + std::string(key) +
                                    "' does not decode as the requested type: " + why);
}

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

/// Decodes a stored result; anything that does not decode as `T` exactly (not JSON, another
/// type, a number out of range, a `from_json` that throws anything) is a `CorruptRecordError`.
template <class T>
[[nodiscard]] T decode(std::string_view payload, std::string_view key) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(payload);
  } catch (const nlohmann::json::exception& e) {
    detail::raise<CorruptRecordError>("stored result of key '" + std::string(key) +
                                      "' is not valid JSON: " + e.what());
  }
  if constexpr (std::is_void_v<T>) {
    if (!j.is_null())
      detail::raise<CorruptRecordError>("stored result of key '" + std::string(key) +
                                        "' should be null for a void operation");
  } else if constexpr (is_optional<T>::value) {
    if (j.is_null()) return T{};
    return T{decode<typename T::value_type>(payload, key)};
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

/// A remembered failure as stored: `{"kind": …, "message": …}`.
[[nodiscard]] inline std::string encode_failure(std::string_view kind, std::string_view message,
                                                std::size_t max_payload) {
  nlohmann::json j = {{"kind", kind}, {"message", message}};
  std::string out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (out.size() > max_payload) {
    // a huge message must not lose the failure: keep its head
    j["message"] = std::string(message.substr(0, max_payload / 2)) + "...";
    out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return out;
}

/// Throws the `ReplayedFailureError` a stored failure stands for (or `CorruptRecordError`).
[[noreturn]] inline void rethrow_failure(std::string_view payload, std::string_view key) {
  std::string kind;
  std::string message;
  try {
    const auto j = nlohmann::json::parse(payload);
    kind = j.at("kind").get<std::string>();
    message = j.at("message").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    detail::raise<CorruptRecordError>("stored failure of key '" + std::string(key) +
                                      "' does not decode: " + e.what());
  }
  detail::raise<ReplayedFailureError>(std::move(kind), std::move(message));
}

/// A readable name of the dynamic type of `e` (demangled where the ABI allows).
[[nodiscard]] inline std::string exception_kind(const std::exception& e) {
  const char* mangled = typeid(e).name();
#if __has_include(<cxxabi.h>)
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> demangled(
      abi::__cxa_demangle(mangled, nullptr, nullptr, &status), std::free);
  if (status == 0 && demangled) return demangled.get();
#endif
  return mangled;
}

} // namespace codec
} // namespace idempotency
