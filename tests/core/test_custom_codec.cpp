// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// A result type with a hand-written binary Codec<T>, through the executor, in a translation
// unit that never sees nlohmann_json (the fmt/nlohmann-free core, issue 16).
#include <idempotency/codec.hpp>

#include <idempotency/errors.hpp>
#include <idempotency/executor.hpp>
#include <idempotency/stores/in_memory_store.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#if defined(NLOHMANN_JSON_VERSION_MAJOR) || defined(FMT_VERSION)
#error "this test must not include nlohmann_json or fmt"
#endif

#include "receipt_codec.hpp"

using namespace std::chrono_literals;
using namespace idempotency;
using custom_codec_test::Receipt;
using idempotency::testing::ManualClock;

static_assert(Storable<Receipt>);
static_assert(!Storable<int>); // no JSON codec in this translation unit

TEST_CASE("a result with its own codec is recorded once and replayed", "[custom_codec]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  int runs = 0;
  const auto charge = [&] {
    ++runs;
    return Receipt{1001, "captured with a status longer than sixteen bytes", 4200};
  };
  const auto first = exec.execute_outcome("order-1", charge);
  CHECK_FALSE(first.replayed);
  for (int i = 0; i < 3; ++i) {
    const auto again = exec.execute_outcome("order-1", charge);
    CHECK(again.replayed);
    CHECK(again.value == first.value);
  }
  CHECK(runs == 1);
  // stored with the codec's bytes, exactly
  const ClaimResult r = store.claim("order-1", "", 1s);
  REQUIRE(r.status == ClaimStatus::completed);
  CHECK(r.payload == Codec<Receipt>::encode(first.value));

  // two-phase form, fingerprints by bytes, void operations: no JSON needed either
  auto a = exec.begin<Receipt>("order-1");
  REQUIRE(a.replayed());
  CHECK(a.value() == first.value);
  const auto fp = Fingerprint::of_bytes("amount=4200");
  CHECK(exec.execute("order-2", fp, charge).id == 1001);
  CHECK_THROWS_AS(exec.execute("order-2", Fingerprint::of_bytes("amount=1"), charge),
                  FingerprintMismatchError);
  int voids = 0;
  exec.execute("void-1", [&] { ++voids; });
  exec.execute("void-1", [&] { ++voids; });
  CHECK(voids == 1);
}

TEST_CASE("bytes the codec does not recognise are CorruptRecordError", "[custom_codec]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  const ClaimResult c = store.claim("order-1", "", 10s);
  REQUIRE(c.acquired());
  REQUIRE(store.complete("order-1", c.token, "short", 1h));
  int runs = 0;
  try {
    (void)exec.execute("order-1", [&] {
      ++runs;
      return Receipt{};
    });
    FAIL("decoded");
  } catch (const CorruptRecordError& e) {
    CHECK(std::string(e.what()) ==
          "[idempotency.corrupt_record] stored result of key 'order-1' does not decode as the "
          "requested type: a receipt record has at least 20 bytes");
  }
  CHECK(runs == 0); // never run again
}

TEST_CASE("max_payload applies to the codec's bytes", "[custom_codec]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.max_payload = 24}};
  int runs = 0;
  const auto op = [&](std::string status) {
    ++runs;
    return Receipt{1, std::move(status), 2};
  };
  CHECK_NOTHROW(exec.execute("fits", op, std::string("abcd"))); // 24 bytes: the limit is exact
  try {
    (void)exec.execute("too-big", op, std::string("abcde"));
    FAIL("stored");
  } catch (const PayloadTooLargeError& e) {
    CHECK(e.size() == 25);
    CHECK(e.limit() == 24);
  }
  // stored nowhere and released: a retry runs again
  CHECK_THROWS_AS(exec.execute("too-big", op, std::string("abcde")), PayloadTooLargeError);
  CHECK(runs == 3);
}

TEST_CASE("a codec that cannot encode the result keeps the claim", "[custom_codec]") {
  ManualClock clock;
  InMemoryStore store{{.clock = clock.source()}};
  IdempotencyExecutor exec{store, {.lease = 10s}};
  int runs = 0;
  const auto op = [&] {
    ++runs;
    return Receipt{1, "unencodable", 2};
  };
  try {
    (void)exec.execute("k", op);
    FAIL("stored");
  } catch (const ResultNotRecordedError& e) {
    CHECK(std::string(e.what()).find(
              "Codec<custom_codec_test::Receipt>::encode threw: status cannot be encoded") !=
          std::string::npos);
  }
  CHECK_THROWS_AS(exec.execute("k", op), InProgressError); // the operation ran: kept
  CHECK(runs == 1);
}

TEST_CASE("remembered failures replay without a JSON library", "[custom_codec]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store, {.on_exception = OnException::remember}};
  int runs = 0;
  const auto op = [&]() -> Receipt {
    ++runs;
    throw std::invalid_argument("card \"declined\"\n\xff");
  };
  CHECK_THROWS_AS(exec.execute("k", op), std::invalid_argument);
  for (int i = 0; i < 2; ++i) {
    try {
      (void)exec.execute("k", op);
      FAIL("ran");
    } catch (const ReplayedFailureError& e) {
      CHECK(e.kind() == "std::invalid_argument");
      CHECK(e.original_message() == "card \"declined\"\n\xef\xbf\xbd");
    }
  }
  CHECK(runs == 1);
  // the bytes nlohmann_json wrote for it before (checked against nlohmann in test_codec)
  CHECK(store.claim("k", "", 1s).payload ==
        R"({"kind":"std::invalid_argument","message":"card \"declined\"\n)"
        "\xef\xbf\xbd\"}");
}
