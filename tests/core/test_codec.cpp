// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/codec.hpp>

#include "support/catch.hpp"

#include <map>
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
