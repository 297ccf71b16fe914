// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/json_codec.hpp>

#include <idempotency/executor.hpp>
#include <idempotency/stores/in_memory_store.hpp>

#include "support/catch.hpp"

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

using namespace idempotency;

TEST_CASE("values round-trip through the JSON codec", "[json_codec]") {
  static_assert(Storable<int> && Storable<std::string> && Storable<std::optional<double>>);
  static_assert(std::is_same_v<Codec<int>::json, nlohmann::json>);
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

TEST_CASE("the payload limit is exact", "[json_codec]") {
  const std::string s(8, 'x'); // encodes as 10 bytes with its quotes
  CHECK(codec::encode(s, 10).size() == 10);
  CHECK_THROWS_AS(codec::encode(s, 9), PayloadTooLargeError);
}

TEST_CASE("undecodable payloads are corrupt records", "[json_codec]") {
  CHECK_THROWS_AS(codec::decode<int>("", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<int>("{", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<int>("\"text\"", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<void>("1", "k"), CorruptRecordError);
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

TEST_CASE("a value JSON cannot hold exactly is not encodable (never stored as null)",
          "[json_codec]") {
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
          "[json_codec]") {
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

TEST_CASE("a from_json that throws anything is CorruptRecordError with its cause", "[json_codec]") {
  try {
    (void)codec::decode<Throwing>("{}", "k");
    FAIL("decoded");
  } catch (const CorruptRecordError& e) {
    CHECK(std::string(e.what()).find("from_json refuses") != std::string::npos);
  }
}

TEST_CASE("messages are today's, byte for byte", "[json_codec]") {
  try {
    (void)codec::decode<int>("{", "k-1");
    FAIL("decoded");
  } catch (const CorruptRecordError& e) {
    CHECK(std::string(e.what()).rfind(
              "[idempotency.corrupt_record] stored result of key 'k-1' is not valid JSON: ", 0) ==
          0);
  }
  try {
    (void)codec::decode<int>("1.5", "k-2");
    FAIL("decoded");
  } catch (const CorruptRecordError& e) {
    CHECK(std::string(e.what()) ==
          "[idempotency.corrupt_record] stored result of key 'k-2' does not decode as the "
          "requested type: expected an integer, found number 1.5");
  }
  try {
    (void)codec::encode(std::numeric_limits<double>::quiet_NaN(), 100);
    FAIL("encoded");
  } catch (const ResultNotRecordedError& e) {
    CHECK(std::string(e.what()).find("cannot be encoded (a NaN or infinite number)") !=
          std::string::npos);
    CHECK_FALSE(e.has_value());
  }
  // Codec<T>::decode without a key: the same checks, a message without a key
  CHECK_THROWS_AS(Codec<int>::decode("4294967297"), CorruptRecordError);
  CHECK(Codec<std::vector<int>>::encode({1, 2}) == "[1,2]");
}

namespace json_codec_test {
// converts to JSON, and has a codec of its own: the user's codec wins
struct Both {
  int v = 0;
};
[[maybe_unused]] void to_json(nlohmann::json& j, const Both& b) { j = b.v; }
[[maybe_unused]] void from_json(const nlohmann::json& j, Both& b) { b.v = j.get<int>(); }
} // namespace json_codec_test

template <>
struct idempotency::Codec<json_codec_test::Both> {
  static std::string encode(const json_codec_test::Both& b) { return "B" + std::to_string(b.v); }
  static json_codec_test::Both decode(std::string_view s) {
    if (s.empty() || s[0] != 'B') throw std::invalid_argument("no B");
    return {std::stoi(std::string(s.substr(1)))};
  }
};

TEST_CASE("a Codec<T> of the user's own wins over the JSON codec", "[json_codec]") {
  CHECK(codec::encode(json_codec_test::Both{7}, 100) == "B7");
  CHECK(codec::decode<json_codec_test::Both>("B7", "k").v == 7);
  CHECK_THROWS_AS(codec::decode<json_codec_test::Both>("7", "k"), CorruptRecordError);
}
