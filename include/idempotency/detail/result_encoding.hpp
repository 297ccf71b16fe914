// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The payload the executor records for a result: the codec's bytes within `max_payload`, after
// `Options::classify_result` (which sees results as JSON) had its say.

#include <idempotency/codec.hpp>
#include <idempotency/detail/operation.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/options.hpp>

#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <typeinfo>

namespace idempotency::detail {

template <class R>
std::optional<std::string> classify_and_encode(const R& value, const Options& options) {
  const auto j = Codec<R>::to_json(value); // the JSON codec's checks (NaN, to_json throwing)
  const auto dumped = [&] {
    std::string out = Codec<R>::dump(j);
    codec::check_size(out, options.max_payload);
    return out;
  };
  OnResult what = OnResult::record;
  try {
    what = options.classify_result(j);
  } catch (const std::exception& e) { // the operation ran: never a reason to run it again
    raise<ResultNotRecordedError>(
        std::string("classify_result threw: ") + e.what() +
            "; the result was not recorded and the claim is kept until its lease passes",
        dumped());
  } catch (...) {
    raise<ResultNotRecordedError>(
        "classify_result threw a non-standard exception; the result was not recorded and the "
        "claim is kept until its lease passes",
        dumped());
  }
  if (what == OnResult::release) return std::nullopt;
  return dumped();
}

// The payload to record for `value` (Options::classify_result applied), or nullopt when the
// classifier says release. Throws ResultNotRecordedError (cannot be encoded exactly) or
// PayloadTooLargeError; the caller decides what becomes of the claim.
template <class R>
std::optional<std::string> encode_result(const R& value, const Options& options) {
  if constexpr (!JsonClassifiable<R>) {
    return codec::encode(value, options.max_payload); // check_classifiable ran first
  } else {
    if (!options.classify_result) return codec::encode(value, options.max_payload);
    return classify_and_encode(value, options);
  }
}

// A classifier sees results as JSON: with one set, a result type of another codec is
// refused before anything is claimed or run.
template <class R>
void check_classifiable(const Options& options) {
  if constexpr (!std::is_void_v<R> && !JsonClassifiable<R>) {
    if (options.classify_result)
      raise<InvalidOptionsError>(
          "Options::classify_result is set, but the result type " +
          codec::detail_::type_name(typeid(R)) +
          " is not stored as JSON (it has a Codec<T> of its own), and a classifier sees "
          "results as JSON; nothing was claimed or run. Use an executor without "
          "classify_result for this operation");
  }
}

} // namespace idempotency::detail
