// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// How results travel to and from the store: `Codec<T>` turns a result into bytes and back.
// This header needs no JSON library; <idempotency/json_codec.hpp> adds the nlohmann_json
// codec for every type with `to_json` / `from_json` (the umbrella header includes it).

#include <idempotency/detail/json_text.hpp>
#include <idempotency/errors.hpp>

#include <concepts>
#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#include <cstdlib>
#endif

namespace idempotency {

/// Default limit on an encoded result (design §4).
inline constexpr std::size_t default_max_payload = std::size_t{1} << 20;

/// How a result type `T` is stored: specialize it for your type (in namespace `idempotency`)
/// with two static members:
///
/// - **`static std::string encode(const T& value)`** — the bytes to store. It MUST be
///   deterministic enough that `decode(encode(v))` gives back `v`; it may throw if `value`
///   cannot be stored exactly (the call then fails with `ResultNotRecordedError`, and the
///   claim is kept: the operation already ran).
/// - **`static T decode(std::string_view bytes)`** — the value again. It MUST throw (anything)
///   on bytes it does not recognise; the executor reports that as `CorruptRecordError`. It
///   may also take the key, `decode(std::string_view bytes, std::string_view key)`, to name
///   it in its own `CorruptRecordError`.
///
/// `max_payload` applies to the encoded bytes. Types with nlohmann_json's `to_json` /
/// `from_json` get a JSON codec from <idempotency/json_codec.hpp>; a specialization of your
/// own wins over it. The primary template is only declared: an unspecialized `Codec<T>` is
/// incomplete, and `T` is not `Storable`.
///
/// Example:
///
///     template <>
///     struct idempotency::Codec<Money> {
///       static std::string encode(const Money& m) { return std::to_string(m.cents); }
///       static Money decode(std::string_view b) { return Money{std::stoll(std::string(b))}; }
///     };
template <class T>
struct Codec;

/// A result type the executor can record and replay: `void`, or a type whose `Codec<T>` has
/// `encode` and `decode` as above.
template <class T>
concept Storable = std::is_void_v<T> || requires(const T& value, std::string_view bytes) {
  { Codec<T>::encode(value) } -> std::convertible_to<std::string>;
  { Codec<T>::decode(bytes) } -> std::same_as<T>;
};

/// The executor's side of `Codec<T>`: checks and error mapping around the user's codec, and
/// the records the core writes itself (void results, remembered failures).
namespace codec {

/// The name before `Codec<T>` existed.
template <class T>
concept Storable = idempotency::Storable<T>;

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

namespace detail_ {
/// The readable name of a type (demangled where the ABI allows).
inline std::string type_name(const std::type_info& type) {
  const char* mangled = type.name();
#if __has_include(<cxxabi.h>)
  int status = 0;
  struct Demangled { // freed however this returns (no std::unique_ptr: cheaper to compile)
    explicit Demangled(char* t) noexcept : text(t) {}
    Demangled(const Demangled&) = delete;
    Demangled& operator=(const Demangled&) = delete;
    ~Demangled() { std::free(text); }
    char* text;
  } demangled{abi::__cxa_demangle(mangled, nullptr, nullptr, &status)};
  if (status == 0 && demangled.text != nullptr) return demangled.text;
#endif
  return mangled;
}

[[noreturn]] inline void not_encodable(const std::string& why) {
  detail::raise<ResultNotRecordedError>(
      "the operation's result cannot be encoded (" + why +
          "); it was not recorded, and the claim is kept until its lease passes (the operation "
          "already ran: releasing would let a retry run it again)",
      std::string());
}

/// "stored result of key 'k'" (or of an unnamed record).
inline std::string stored_result(std::string_view key) {
  if (key.empty()) return "stored result";
  return "stored result of key '" + std::string(key) + "'";
}

[[noreturn]] inline void corrupt(std::string_view key, const std::string& why) {
  detail::raise<CorruptRecordError>(stored_result(key) +
                                    " does not decode as the requested type: " + why);
}

template <class T>
concept DecodesWithKey = requires(std::string_view bytes, std::string_view key) {
  { Codec<T>::decode(bytes, key) } -> std::same_as<T>;
};
} // namespace detail_

/// Throws `PayloadTooLargeError` if `encoded` is over `max_payload` bytes.
inline void check_size(const std::string& encoded, std::size_t max_payload) {
  if (encoded.size() > max_payload)
    detail::raise<PayloadTooLargeError>(encoded.size(), max_payload);
}

/// Encodes `value` with `Codec<T>`: `ResultNotRecordedError` if the codec throws (the value
/// cannot be stored exactly), `PayloadTooLargeError` past `max_payload` bytes.
template <class T>
  requires(!std::is_void_v<T> && idempotency::Storable<T>)
[[nodiscard]] std::string encode(const T& value, std::size_t max_payload) {
  std::string out;
  try {
    out = Codec<T>::encode(value);
  } catch (const ResultNotRecordedError&) {
    throw;
  } catch (const PayloadTooLargeError&) {
    throw;
  } catch (const std::exception& e) {
    detail_::not_encodable("Codec<" + detail_::type_name(typeid(T)) +
                           ">::encode threw: " + e.what());
  } catch (...) {
    detail_::not_encodable("Codec<" + detail_::type_name(typeid(T)) +
                           ">::encode threw a non-standard exception");
  }
  check_size(out, max_payload);
  return out;
}

/// What a void operation records.
[[nodiscard]] inline std::string encode_void() { return "null"; }

/// Decodes a stored result with `Codec<T>`; anything the codec throws is a
/// `CorruptRecordError` naming `key` (a `CorruptRecordError` of its own passes as it is). A
/// void result must be `null`.
template <class T>
  requires idempotency::Storable<T>
[[nodiscard]] T decode(std::string_view payload, std::string_view key) {
  if constexpr (std::is_void_v<T>) {
    if (detail::json_text::trim(payload) != "null")
      detail::raise<CorruptRecordError>(detail_::stored_result(key) +
                                        " should be null for a void operation");
  } else {
    try {
      if constexpr (detail_::DecodesWithKey<T>) {
        return Codec<T>::decode(payload, key);
      } else {
        return Codec<T>::decode(payload);
      }
    } catch (const CorruptRecordError&) {
      throw;
    } catch (const std::exception& e) {
      detail_::corrupt(key, e.what());
    } catch (...) {
      detail_::corrupt(key, "Codec<" + detail_::type_name(typeid(T)) +
                                ">::decode threw a non-standard exception");
    }
  }
}

/// A remembered failure as stored: `{"kind":…,"message":…}` (the bytes nlohmann_json wrote
/// for it, so records from before `Codec<T>` still decode). Invalid UTF-8 is replaced by
/// U+FFFD; a record over `max_payload` keeps the head of the message (half the limit).
[[nodiscard]] inline std::string encode_failure(std::string_view kind, std::string_view message,
                                                std::size_t max_payload) {
  std::string out = detail::json_text::write_failure(kind, message);
  if (out.size() > max_payload) {
    // a huge message must not lose the failure: keep its head
    std::string head(message.substr(0, max_payload / 2));
    head += "...";
    out = detail::json_text::write_failure(kind, head);
  }
  return out;
}

/// Throws the `ReplayedFailureError` a stored failure stands for (or `CorruptRecordError`).
[[noreturn]] inline void rethrow_failure(std::string_view payload, std::string_view key) {
  std::string kind;
  std::string message;
  std::string why;
  if (!detail::json_text::read_failure(payload, kind, message, why))
    detail::raise<CorruptRecordError>("stored failure of key '" + std::string(key) +
                                      "' does not decode: " + why);
  detail::raise<ReplayedFailureError>(std::move(kind), std::move(message));
}

/// A readable name of the dynamic type of `e` (demangled where the ABI allows).
[[nodiscard]] inline std::string exception_kind(const std::exception& e) {
  return detail_::type_name(typeid(e));
}

} // namespace codec
} // namespace idempotency
