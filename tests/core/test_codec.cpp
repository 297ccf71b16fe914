// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/codec.hpp>

#include "support/catch.hpp"

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace idempotency;

TEST_CASE("values round-trip through the JSON codec", "[codec]") {
  CHECK(codec::decode<int>(codec::encode(42, 100), "k") == 42);
  CHECK(codec::decode<std::string>(codec::encode(std::string("h\"i\n"), 100), "k") == "h\"i\n");
  const std::vector<int> v{1, 2, 3};
  CHECK(codec::decode<std::vector<int>>(codec::encode(v, 100), "k") == v);
  const std::map<std::string, double> m{{"a", 1.5}, {"b", -2.0}};
  CHECK((codec::decode<std::map<std::string, double>>(codec::encode(m, 100), "k") == m));
  const std::pair<int, bool> pr{3, true};
  CHECK((codec::decode<std::pair<int, bool>>(codec::encode(pr, 100), "k") == pr));
  CHECK_NOTHROW(codec::decode<void>(codec::encode_void(), "k"));
}

TEST_CASE("the payload limit is exact", "[codec]") {
  const std::string s(8, 'x'); // encodes as 10 bytes with its quotes
  CHECK(codec::encode(s, 10).size() == 10);
  CHECK_THROWS_AS(codec::encode(s, 9), PayloadTooLargeError);
}

TEST_CASE("undecodable payloads are corrupt records", "[codec]") {
  CHECK_THROWS_AS(codec::decode<int>("", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<int>("{", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<int>("\"text\"", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<void>("1", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::rethrow_failure("[]", "k"), CorruptRecordError);
}

TEST_CASE("failures round-trip, also with invalid UTF-8 and huge messages", "[codec]") {
  try {
    codec::rethrow_failure(codec::encode_failure("E", "bad \xff byte", 1000), "k");
  } catch (const ReplayedFailureError& e) {
    CHECK(e.kind() == "E");
    CHECK(e.original_message().find("bad ") == 0);
  }
  const std::string huge(5000, 'm');
  const std::string stored = codec::encode_failure("E", huge, 1000);
  CHECK(stored.size() <= 1000);
  CHECK_THROWS_AS(codec::rethrow_failure(stored, "k"), ReplayedFailureError);
}

TEST_CASE("exception kinds are readable type names", "[codec]") {
  CHECK(codec::exception_kind(std::runtime_error("x")) == "std::runtime_error");
}

namespace {
struct Throwing {};
[[maybe_unused]] void to_json(nlohmann::json&, const Throwing&) {
  throw std::runtime_error("to_json refuses");
}
[[maybe_unused]] void from_json(const nlohmann::json&, Throwing&) {
  throw std::runtime_error("from_json refuses");
}
} // namespace

TEST_CASE("a value JSON cannot hold exactly is not encodable (never stored as null)", "[codec]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  CHECK_THROWS_AS(codec::encode(nan, 100), ResultNotRecordedError);
  CHECK_THROWS_AS(codec::encode(-inf, 100), ResultNotRecordedError);
  CHECK_THROWS_AS(codec::encode(std::vector<double>{1.0, inf}, 100), ResultNotRecordedError);
  CHECK_THROWS_AS(codec::encode(std::string("caf\xc3"), 100), ResultNotRecordedError);
  CHECK_THROWS_AS(codec::encode(Throwing{}, 100), ResultNotRecordedError);
  CHECK(codec::encode(std::optional<int>{}, 100) == "null");
  CHECK(codec::encode(std::optional<int>{7}, 100) == "7");
  CHECK_THROWS_AS(codec::encode(std::optional<double>{nan}, 100), ResultNotRecordedError);
}

TEST_CASE("decoding returns the recorded number or CorruptRecordError, never another number",
          "[codec]") {
  CHECK_THROWS_AS(codec::decode<int>("4294967297", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<unsigned>("-1", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<long>("4.4e21", "k"), CorruptRecordError); // UB before
  CHECK_THROWS_AS(codec::decode<int>("1.5", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<std::int8_t>("300", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<float>("1e300", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<bool>("1", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<std::vector<int>>("[1, 4294967297]", "k"), CorruptRecordError);
  CHECK_THROWS_AS((codec::decode<std::map<std::string, unsigned>>("{\"a\": -2}", "k")),
                  CorruptRecordError);
  CHECK(codec::decode<int>("-2147483648", "k") == std::numeric_limits<int>::min());
  CHECK(codec::decode<std::uint64_t>("18446744073709551615", "k") ==
        std::numeric_limits<std::uint64_t>::max());
  CHECK(codec::decode<double>("4.4e21", "k") == 4.4e21);
  CHECK(codec::decode<float>("1.5", "k") == 1.5F);
  CHECK(codec::decode<std::optional<int>>("null", "k") == std::nullopt);
  CHECK(codec::decode<std::optional<int>>("5", "k") == 5);
  CHECK_THROWS_AS(codec::decode<std::optional<int>>("4294967297", "k"), CorruptRecordError);
}

TEST_CASE("a from_json that throws anything is CorruptRecordError with its cause", "[codec]") {
  try {
    (void)codec::decode<Throwing>("{}", "k");
    FAIL("decoded");
  } catch (const CorruptRecordError& e) {
    CHECK(std::string(e.what()).find("from_json refuses") != std::string::npos);
  }
}
