// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace idempotency {

/// What went wrong, one value per thing a caller reacts to differently.
enum class errc : std::uint8_t {
  invalid_key = 1,      ///< the key or a scope part breaks the rules; no store was called
  in_progress,          ///< another caller holds the key right now (HTTP 409)
  fingerprint_mismatch, ///< the key was used with a different request (HTTP 422)
  lease_lost,           ///< the claim was taken over or is gone; the result was NOT recorded
  store_failure,        ///< the store could not be reached or refused the operation
  corrupt_record,       ///< a stored record could not be decoded
  replayed_failure,     ///< the first execution failed and its failure was remembered
  payload_too_large,    ///< the encoded result is over the size limit; stored nowhere
  capacity_exceeded,    ///< the store is full (InMemoryStore with a capacity bound)
  result_not_recorded,  ///< the operation succeeded but its result could not be stored
  invalid_options,      ///< an executor option breaks its rule; no executor was built
  invalid_fingerprint,  ///< a request body has no canonical JSON form (NaN, invalid UTF-8)
};

/// The stable name of an error code, as used in the message prefix `[idempotency.<name>]`.
constexpr std::string_view to_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_key: return "invalid_key";
    case errc::in_progress: return "in_progress";
    case errc::fingerprint_mismatch: return "fingerprint_mismatch";
    case errc::lease_lost: return "lease_lost";
    case errc::store_failure: return "store_failure";
    case errc::corrupt_record: return "corrupt_record";
    case errc::replayed_failure: return "replayed_failure";
    case errc::payload_too_large: return "payload_too_large";
    case errc::capacity_exceeded: return "capacity_exceeded";
    case errc::result_not_recorded: return "result_not_recorded";
    case errc::invalid_options: return "invalid_options";
    case errc::invalid_fingerprint: return "invalid_fingerprint";
  }
  return "unknown";
}

/// Base of every error this library throws. `what()` starts with `[idempotency.<code>] `.
class Error : public std::runtime_error {
 public:
  Error(errc code, const std::string& message)
      : std::runtime_error(prefix(code) + message), code_(code) {}

  [[nodiscard]] errc code() const noexcept { return code_; }

 private:
  static std::string prefix(errc code) {
    std::string p = "[idempotency.";
    p += to_string(code);
    p += "] ";
    return p;
  }
  errc code_;
};

/// The key is empty, longer than 255 bytes, or holds a byte outside visible ASCII (0x21..0x7E).
class InvalidKeyError : public Error {
 public:
  explicit InvalidKeyError(const std::string& message) : Error(errc::invalid_key, message) {}
};

/// `key_from` found no value (or `null`) at one of its JSON Pointers: a request without the
/// fields its key is made of has no key (never a key of "null"). `pointer()` names the field.
class MissingKeyFieldError : public InvalidKeyError {
 public:
  MissingKeyFieldError(std::string pointer, const std::string& message)
      : InvalidKeyError(message), pointer_(std::move(pointer)) {}

  /// The JSON Pointer (RFC 6901) that found nothing.
  [[nodiscard]] const std::string& pointer() const noexcept { return pointer_; }

 private:
  std::string pointer_;
};

/// Another caller holds the key. `retry_after()` is the remaining lease as the store reported it.
class InProgressError : public Error {
 public:
  InProgressError(const std::string& message, std::chrono::milliseconds retry_after)
      : Error(errc::in_progress, message), retry_after_(retry_after) {}
  [[nodiscard]] std::chrono::milliseconds retry_after() const noexcept { return retry_after_; }

 private:
  std::chrono::milliseconds retry_after_;
};

/// The key was first used with another request fingerprint; never replayed, never executed.
class FingerprintMismatchError : public Error {
 public:
  explicit FingerprintMismatchError(const std::string& message)
      : Error(errc::fingerprint_mismatch, message) {}
};

/// The claim was lost (taken over after its lease, or deleted) before the result was recorded.
/// The value computed by the stale holder is never returned as the key's result.
class LeaseLostError : public Error {
 public:
  explicit LeaseLostError(const std::string& message) : Error(errc::lease_lost, message) {}
};

/// The store failed: which store, which operation, and the cause in its own words.
class StoreError : public Error {
 public:
  StoreError(std::string store, std::string operation, std::string cause)
      : StoreError(errc::store_failure, std::move(store), std::move(operation), std::move(cause)) {}

  [[nodiscard]] const std::string& store() const noexcept { return store_; }
  [[nodiscard]] const std::string& operation() const noexcept { return operation_; }
  [[nodiscard]] const std::string& cause() const noexcept { return cause_; }

 protected:
  StoreError(errc code, std::string store, std::string operation, std::string cause)
      : Error(code, store + " " + operation + ": " + cause),
        store_(std::move(store)),
        operation_(std::move(operation)),
        cause_(std::move(cause)) {}

 private:
  std::string store_;
  std::string operation_;
  std::string cause_;
};

/// The store is at its capacity bound and no record could be reclaimed.
class CapacityExceededError : public StoreError {
 public:
  CapacityExceededError(std::string store, std::string operation, std::string cause)
      : StoreError(errc::capacity_exceeded, std::move(store), std::move(operation),
                   std::move(cause)) {}
};

/// A stored record (its payload or its metadata) could not be decoded. Nothing is overwritten.
class CorruptRecordError : public Error {
 public:
  explicit CorruptRecordError(const std::string& message) : Error(errc::corrupt_record, message) {}
};

/// The first execution under this key failed and the policy remembered the failure:
/// every retry gets it back. `kind()` and `original_message()` are the original failure's.
class ReplayedFailureError : public Error {
 public:
  ReplayedFailureError(std::string kind, std::string original_message)
      : Error(errc::replayed_failure,
              "first execution failed with " + kind + ": " + original_message),
        kind_(std::move(kind)),
        original_message_(std::move(original_message)) {}
  [[nodiscard]] const std::string& kind() const noexcept { return kind_; }
  [[nodiscard]] const std::string& original_message() const noexcept { return original_message_; }

 private:
  std::string kind_;
  std::string original_message_;
};

/// The encoded result is larger than `max_payload`; it was stored nowhere.
class PayloadTooLargeError : public Error {
 public:
  PayloadTooLargeError(std::size_t size, std::size_t limit)
      : Error(errc::payload_too_large, "encoded result is " + std::to_string(size) +
                                           " bytes, over the limit of " + std::to_string(limit)),
        size_(size),
        limit_(limit) {}
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] std::size_t limit() const noexcept { return limit_; }

 private:
  std::size_t size_;
  std::size_t limit_;
};

/// The operation ran but its result was not recorded: the store stayed down (or failed in an
/// unknown way) through the completion retries, or the result cannot be encoded exactly (NaN,
/// invalid UTF-8, a throwing `to_json` or `classify_result`). The claim is kept until its
/// lease passes; the message says so. (In `execute_in_transaction` an unencodable result
/// instead rolls the transaction back and releases the claim: nothing happened, the message
/// says that.) `has_value()`: `encoded_value()` carries the encoded result, so the caller can
/// still use it (`unrecorded_value<T>(e)`); see the README on what this means for duplicates.
class ResultNotRecordedError : public Error {
 public:
  ResultNotRecordedError(const std::string& message, std::string encoded_value)
      : Error(errc::result_not_recorded, message), encoded_value_(std::move(encoded_value)) {}
  [[nodiscard]] const std::string& encoded_value() const noexcept { return encoded_value_; }
  /// False when the result could not be encoded (nothing to decode).
  [[nodiscard]] bool has_value() const noexcept { return !encoded_value_.empty(); }

 private:
  std::string encoded_value_;
};

/// An executor option is zero, negative, or so large that `now + d` could overflow (design §4):
/// such an option would run operations twice, so the executor is not built.
class InvalidOptionsError : public Error {
 public:
  explicit InvalidOptionsError(const std::string& message)
      : Error(errc::invalid_options, message) {}
};

/// A body given to `Fingerprint::of` has no canonical JSON form (RFC 8785): a NaN or infinite
/// number, or a string that is not valid UTF-8. Nothing was called; HTTP 400.
class InvalidFingerprintError : public Error {
 public:
  explicit InvalidFingerprintError(const std::string& message)
      : Error(errc::invalid_fingerprint, message) {}
};

namespace detail {
/// Every throw of the library goes through here (one place to break on).
template <class E, class... Args>
[[noreturn]] void raise(Args&&... args) {
  throw E(std::forward<Args>(args)...);
}
} // namespace detail

} // namespace idempotency
