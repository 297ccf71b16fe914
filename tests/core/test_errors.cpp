// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/errors.hpp>

#include "support/catch.hpp"

#include <set>
#include <string>

using namespace idempotency;

namespace {
template <class E>
std::string what_of(const E& e) {
  return e.what();
}
bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}
} // namespace

TEST_CASE("every error has its code and the stable message prefix", "[errors]") {
  CHECK(InvalidKeyError("x").code() == errc::invalid_key);
  CHECK(starts_with(what_of(InvalidKeyError("key is empty")),
                    "[idempotency.invalid_key] key is empty"));
  const InProgressError ip("busy", std::chrono::milliseconds(1500));
  CHECK(ip.code() == errc::in_progress);
  CHECK(ip.retry_after() == std::chrono::milliseconds(1500));
  CHECK(starts_with(what_of(ip), "[idempotency.in_progress] busy"));
  CHECK(FingerprintMismatchError("m").code() == errc::fingerprint_mismatch);
  CHECK(LeaseLostError("l").code() == errc::lease_lost);
  CHECK(InvalidOptionsError("o").code() == errc::invalid_options);
  CHECK(starts_with(what_of(InvalidOptionsError("lease is 0")),
                    "[idempotency.invalid_options] lease is 0"));
  const StoreError se("RedisStore", "claim", "Connection refused");
  CHECK(se.code() == errc::store_failure);
  CHECK(se.store() == "RedisStore");
  CHECK(se.operation() == "claim");
  CHECK(se.cause() == "Connection refused");
  CHECK(what_of(se) == "[idempotency.store_failure] RedisStore claim: Connection refused");
  const CapacityExceededError ce("InMemoryStore", "claim", "full");
  CHECK(ce.code() == errc::capacity_exceeded);
  CHECK(starts_with(what_of(ce), "[idempotency.capacity_exceeded] InMemoryStore claim: full"));
  CHECK(CorruptRecordError("c").code() == errc::corrupt_record);
  const ReplayedFailureError rf("std::runtime_error", "card declined");
  CHECK(rf.code() == errc::replayed_failure);
  CHECK(rf.kind() == "std::runtime_error");
  CHECK(rf.original_message() == "card declined");
  CHECK(what_of(rf) ==
        "[idempotency.replayed_failure] first execution failed with std::runtime_error: card "
        "declined");
  const PayloadTooLargeError pl(2000, 1000);
  CHECK(pl.size() == 2000);
  CHECK(pl.limit() == 1000);
  CHECK(what_of(pl) ==
        "[idempotency.payload_too_large] encoded result is 2000 bytes, over the limit of 1000");
  const ResultNotRecordedError rn("down", "{\"v\":1}");
  CHECK(rn.code() == errc::result_not_recorded);
  CHECK(rn.encoded_value() == "{\"v\":1}");
}

TEST_CASE("errors form one hierarchy under idempotency::Error and std::runtime_error", "[errors]") {
  try {
    detail::raise<CapacityExceededError>("S", "claim", "full");
  } catch (const StoreError& e) { // a capacity error is a store error
    CHECK(e.code() == errc::capacity_exceeded);
  }
  try {
    detail::raise<LeaseLostError>("gone");
  } catch (const Error& e) {
    CHECK(e.code() == errc::lease_lost);
  }
  try {
    detail::raise<InvalidKeyError>("bad");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()).find("bad") != std::string::npos);
  }
}

TEST_CASE("every code has a distinct stable name", "[errors]") {
  std::set<std::string_view> names;
  for (int c = 1; c <= static_cast<int>(errc::invalid_fingerprint); ++c)
    CHECK(names.insert(to_string(static_cast<errc>(c))).second);
  CHECK(names.count("unknown") == 0);
}
