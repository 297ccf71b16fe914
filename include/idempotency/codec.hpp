// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <idempotency/errors.hpp>

#include <nlohmann/json.hpp>

#include <cstddef>
#include <exception>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
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
/// `adl_serializer` specialization). `void` is stored as `null`.
namespace codec {

/// Encodes `value`; throws `PayloadTooLargeError` past `max_payload` bytes.
template <class T>
[[nodiscard]] std::string encode(const T& value, std::size_t max_payload) {
  std::string out = nlohmann::json(value).dump();
  if (out.size() > max_payload) detail::raise<PayloadTooLargeError>(out.size(), max_payload);
  return out;
}

[[nodiscard]] inline std::string encode_void() { return "null"; }

/// Decodes a stored result; anything that does not decode as `T` is a `CorruptRecordError`.
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
  } else {
    try {
      return std::move(j).template get<T>();
    } catch (const nlohmann::json::exception& e) {
      detail::raise<CorruptRecordError>("stored result of key '" + std::string(key) +
                                        "' does not decode as the requested type: " + e.what());
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
