// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// Keys made from the request when the client sends none (what the Powertools utility does with
// a JMESPath over the event): a few fields of a JSON body, named by RFC 6901 JSON Pointers,
// hashed to a valid key. Needs nlohmann_json (the umbrella header includes this).

#include <idempotency/detail/jcs.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/fingerprint.hpp>

#include <nlohmann/json.hpp>

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace idempotency {

/// What every key `key_from` makes starts with (then 64 lower-case hex digits).
inline constexpr std::string_view derived_key_prefix = "json-sha256:";

/// The key of a request made of the values at `pointers` (RFC 6901 JSON Pointers, e.g.
/// `"/order/id"`; `""` is the whole document) in `body`:
/// `json-sha256:` + SHA-256 of the RFC 8785 canonical JSON of the object
/// `{pointer: value, …}`. So the key depends on which fields were chosen and on their values,
/// not on the order of `pointers`, on the order of members in `body`, on whitespace, or on how
/// a number is written (`100`, `100.0`, `1e2` are one value). 76 bytes: a valid key.
///
/// Throws (never a key made of nothing):
/// - `MissingKeyFieldError` (an `InvalidKeyError`) when a pointer finds no value or `null`;
/// - `InvalidKeyError` when `pointers` is empty, a pointer is not an RFC 6901 pointer, or a
///   value has no canonical JSON form (invalid UTF-8, NaN).
///
/// Example:
///
///     // {"order": {"id": 42, "lines": [...]}, "customer": "c-7", "note": "…"}
///     const std::string key = idempotency::key_from(body, {"/order/id", "/customer"});
///     exec.execute(key, idempotency::Fingerprint::of(body), [&] { return place(body); });
/// (`Json` is `nlohmann::json`; a template only so that a TU that never calls `key_from` does
/// not compile it.)
template <class Json = nlohmann::json>
[[nodiscard]] std::string key_from(const std::type_identity_t<Json>& body,
                                   std::span<const std::string_view> pointers) {
  if (pointers.empty()) detail::raise<InvalidKeyError>("key_from needs at least one JSON Pointer");
  Json picked = Json::object();
  for (const std::string_view text : pointers) {
    const std::string pointer_text(text);
    typename Json::json_pointer pointer;
    try {
      pointer = typename Json::json_pointer(pointer_text);
    } catch (const typename Json::exception& e) {
      detail::raise<InvalidKeyError>("key_from: '" + pointer_text +
                                     "' is not a JSON Pointer (RFC 6901): " + e.what());
    }
    const Json* value = nullptr;
    try {
      value = &body.at(pointer);
    } catch (const typename Json::exception&) {
      // out_of_range (no such member or index) or parse_error (an index like "01" or "-")
      value = nullptr;
    }
    if (value == nullptr)
      detail::raise<MissingKeyFieldError>(
          pointer_text, "key_from: the request has no value at '" + pointer_text + "'");
    if (value->is_null())
      detail::raise<MissingKeyFieldError>(pointer_text,
                                          "key_from: the value at '" + pointer_text + "' is null");
    picked[pointer_text] = *value;
  }
  std::string canonical;
  try {
    canonical = detail::jcs::serialize(picked);
  } catch (const detail::jcs::Unrepresentable& e) {
    detail::raise<InvalidKeyError>(std::string("key_from: the chosen fields have no canonical "
                                               "JSON form (RFC 8785): ") +
                                   e.what());
  }
  std::string key(derived_key_prefix);
  key += detail::to_hex(detail::Sha256::hash(canonical));
  return key;
}

/// The pointers from a container of strings (e.g. read from configuration).
template <class Json = nlohmann::json>
[[nodiscard]] std::string key_from(const std::type_identity_t<Json>& body,
                                   std::span<const std::string> pointers) {
  std::vector<std::string_view> views(pointers.begin(), pointers.end());
  return key_from<Json>(body, std::span<const std::string_view>(views));
}

/// `key_from(body, {"/order/id", "/customer"})`.
template <class Json = nlohmann::json>
[[nodiscard]] std::string key_from(const std::type_identity_t<Json>& body,
                                   std::initializer_list<std::string_view> pointers) {
  return key_from<Json>(body, std::span<const std::string_view>(pointers.begin(), pointers.size()));
}

} // namespace idempotency
