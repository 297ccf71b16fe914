// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/codec.hpp>

#include "support/catch.hpp"

// Only to compare with: the records codec.hpp writes by hand are the ones nlohmann_json wrote
// before (this TU does not include json_codec.hpp: no type here is stored as JSON).
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

using namespace idempotency;

namespace codec_test {
struct Blob {
  std::string bytes;
};
struct NoCodec {};
struct Refused {};
} // namespace codec_test

template <>
struct idempotency::Codec<codec_test::Blob> {
  static std::string encode(const codec_test::Blob& b) {
    if (b.bytes == "throw") throw std::invalid_argument("cannot encode this blob");
    if (b.bytes == "throw int") throw 42;
    return "B:" + b.bytes;
  }
  static codec_test::Blob decode(std::string_view s) {
    if (s.substr(0, 2) != "B:") throw std::runtime_error("not a blob");
    if (s == "B:corrupt") throw CorruptRecordError("the codec's own words");
    if (s == "B:int") throw 7;
    return {std::string(s.substr(2))};
  }
};

// A codec whose decode returns another type: not Storable.
template <>
struct idempotency::Codec<codec_test::Refused> {
  static std::string encode(const codec_test::Refused&) { return {}; }
  static int decode(std::string_view) { return 0; }
};

static_assert(Storable<void>);
static_assert(Storable<codec_test::Blob>);
static_assert(!Storable<codec_test::NoCodec>);
static_assert(!Storable<codec_test::Refused>);
static_assert(!Storable<int>); // JSON only with json_codec.hpp
static_assert(codec::Storable<codec_test::Blob>);

TEST_CASE("a Codec<T> specialization is used, its errors mapped", "[codec]") {
  CHECK(codec::encode(codec_test::Blob{"x"}, 100) == "B:x");
  CHECK(codec::decode<codec_test::Blob>("B:x", "k").bytes == "x");
  CHECK(codec::encode(codec_test::Blob{"1234"}, 6) == "B:1234"); // the limit is exact
  CHECK_THROWS_AS(codec::encode(codec_test::Blob{"12345"}, 6), PayloadTooLargeError);
  try {
    (void)codec::encode(codec_test::Blob{"throw"}, 100);
    FAIL("encoded");
  } catch (const ResultNotRecordedError& e) {
    const std::string what = e.what();
    CHECK(what.find("Codec<codec_test::Blob>::encode threw: cannot encode this blob") !=
          std::string::npos);
    CHECK_FALSE(e.has_value());
  }
  CHECK_THROWS_AS(codec::encode(codec_test::Blob{"throw int"}, 100), ResultNotRecordedError);
  try {
    (void)codec::decode<codec_test::Blob>("junk", "key-1");
    FAIL("decoded");
  } catch (const CorruptRecordError& e) {
    CHECK(std::string(e.what()) ==
          "[idempotency.corrupt_record] stored result of key 'key-1' "
          "does not decode as the requested type: not a blob");
  }
  try {
    (void)codec::decode<codec_test::Blob>("B:corrupt", "key-1");
    FAIL("decoded");
  } catch (const CorruptRecordError& e) { // the codec's own CorruptRecordError passes as it is
    CHECK(std::string(e.what()) == "[idempotency.corrupt_record] the codec's own words");
  }
  CHECK_THROWS_AS(codec::decode<codec_test::Blob>("B:int", "k"), CorruptRecordError);
}

TEST_CASE("void results are null, read with any JSON whitespace", "[codec]") {
  CHECK(codec::encode_void() == "null");
  CHECK_NOTHROW(codec::decode<void>("null", "k"));
  CHECK_NOTHROW(codec::decode<void>(" \t\r\nnull\n", "k"));
  CHECK_THROWS_AS(codec::decode<void>("", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<void>("1", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<void>("nul", "k"), CorruptRecordError);
  CHECK_THROWS_AS(codec::decode<void>("null null", "k"), CorruptRecordError);
}

TEST_CASE("exception kinds are readable type names", "[codec]") {
  CHECK(codec::exception_kind(std::runtime_error("x")) == "std::runtime_error");
}

namespace {
// What encode_failure wrote when it used nlohmann_json (the 0.1 code, verbatim).
std::string nlohmann_failure(std::string_view kind, std::string_view message,
                             std::size_t max_payload) {
  nlohmann::json j = {{"kind", kind}, {"message", message}};
  std::string out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (out.size() > max_payload) {
    j["message"] = std::string(message.substr(0, max_payload / 2)) + "...";
    out = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return out;
}

struct Replayed {
  std::string kind;
  std::string message;
};

Replayed replay(std::string_view payload) {
  try {
    codec::rethrow_failure(payload, "k");
  } catch (const ReplayedFailureError& e) {
    return {e.kind(), e.original_message()};
  }
}

std::vector<std::string> sample_messages() {
  std::vector<std::string> m = {
      "",
      "plain message",
      "quotes \" and \\ backslashes \\\\ and / slashes",
      "tab\there, newline\nthere, cr\r, ff\f, bs\b",
      std::string("nul \0 inside", 12),
      "del \x7f stays",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd \xf4\x8f\xbf\xbf",
      "bad \xff byte",
      "cut at the end \xc3",
      "cut at the end \xe2\x82",
      "cut at the end \xf0\x9f\x98",
      "cut \xc3( in the middle",
      "cut \xe2\x82( in the middle",
      "cut \xf0\x9f\x98( in the middle",
      "cut by a lead \xe2\xe2\x82\xac",
      "surrogate \xed\xa0\x80 encoded",
      "past U+10FFFF \xf4\x90\x80\x80",
      "overlong \xc0\xaf \xc1\xbf \xe0\x80\xaf \xf0\x80\x80\xaf",
      "lone continuation \x80\xbf",
      "f5..ff \xf5\xf8\xfc\xfe\xff",
      "\xc3",
      "\xe0\xa0",
      "\xed\x9f\xbf ok \xee\x80\x80 ok",
  };
  std::string controls;
  for (int c = 0; c < 0x20; ++c) controls += static_cast<char>(c);
  m.push_back(controls);
  std::string high;
  for (int c = 0x80; c < 0x100; ++c) high += static_cast<char>(c);
  m.push_back(high);
  // random strings from an alphabet heavy in what needs care
  std::mt19937 rng(20260616);
  const std::vector<std::string> pieces = {"a",
                                           "Z",
                                           " ",
                                           "\"",
                                           "\\",
                                           "/",
                                           "\n",
                                           std::string(1, '\0'),
                                           "\x01",
                                           "\x1f",
                                           "\x7f",
                                           "\x80",
                                           "\xbf",
                                           "\xc2",
                                           "\xc3",
                                           "\xdf",
                                           "\xe0",
                                           "\xe1",
                                           "\xed",
                                           "\xef",
                                           "\xf0",
                                           "\xf4",
                                           "\xf5",
                                           "\xff",
                                           "\xc3\xa9",
                                           "\xe2\x82\xac",
                                           "\xf0\x9f\x98\x80",
                                           "\xa0",
                                           "\x90",
                                           "\x8f"};
  std::uniform_int_distribution<std::size_t> len(0, 24);
  std::uniform_int_distribution<std::size_t> pick(0, pieces.size() - 1);
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    for (std::size_t n = len(rng); n > 0; --n) s += pieces[pick(rng)];
    m.push_back(std::move(s));
  }
  // random bytes, all 256 values
  std::uniform_int_distribution<int> byte(0, 255);
  for (int i = 0; i < 5000; ++i) {
    std::string s;
    for (std::size_t n = len(rng); n > 0; --n) s += static_cast<char>(byte(rng));
    m.push_back(std::move(s));
  }
  return m;
}
} // namespace

TEST_CASE("failures are written byte for byte as nlohmann_json wrote them", "[codec]") {
  const auto messages = sample_messages();
  std::size_t differ = 0;
  for (const auto& msg : messages) {
    const std::string expected = nlohmann_failure("std::runtime_error", msg, 1 << 20);
    const std::string got = codec::encode_failure("std::runtime_error", msg, 1 << 20);
    if (got != expected) {
      if (++differ <= 5) CHECK(got == expected); // the first few, with their bytes
    }
    // the message as kind too (both strings go through the same escaping)
    if (codec::encode_failure(msg, "m", 1 << 20) != nlohmann_failure(msg, "m", 1 << 20)) ++differ;
  }
  CHECK(differ == 0);
}

TEST_CASE("long failures are cut as before, also inside a UTF-8 sequence", "[codec]") {
  const std::string euro = "\xe2\x82\xac";
  std::vector<std::string> longs = {std::string(5000, 'm'), std::string(3000, '"'),
                                    std::string(3000, '\x01')};
  std::string euros;
  for (int i = 0; i < 1000; ++i) euros += euro;
  longs.push_back(euros);
  longs.push_back("x" + euros);
  longs.push_back("xy" + euros);
  for (const auto& msg : longs) {
    for (std::size_t limit : {std::size_t{40}, std::size_t{41}, std::size_t{42}, std::size_t{43},
                              std::size_t{100}, std::size_t{1000}, std::size_t{1001}}) {
      CAPTURE(limit, msg.size());
      const std::string got = codec::encode_failure("E", msg, limit);
      CHECK(got == nlohmann_failure("E", msg, limit));
      const Replayed r = replay(got);
      CHECK(r.kind == "E");
      CHECK(r.message == nlohmann::json::parse(got).at("message").get<std::string>());
    }
  }
  // the head of a huge message survives, within the limit
  const std::string stored = codec::encode_failure("E", std::string(5000, 'm'), 1000);
  CHECK(stored.size() <= 1000);
  CHECK(replay(stored).message == std::string(500, 'm') + "...");
}

TEST_CASE("failures nlohmann_json wrote read back as it reads them", "[codec]") {
  for (const auto& msg : sample_messages()) {
    const std::string payload = nlohmann_failure("K\xff", msg, 1 << 20);
    const auto j = nlohmann::json::parse(payload);
    const Replayed r = replay(payload);
    CHECK(r.kind == j.at("kind").get<std::string>());
    if (r.message != j.at("message").get<std::string>()) CHECK(r.message == j.at("message"));
    // other layouts a JSON writer may choose: indented, ASCII-only escapes (surrogate pairs)
    for (const std::string& other : {j.dump(2), j.dump(-1, ' ', true), j.dump(1, '\t', true)}) {
      const Replayed o = replay(other);
      if (o.message != r.message || o.kind != r.kind) CHECK(other == payload);
    }
  }
}

TEST_CASE("failure records in any member order and spacing, escapes resolved", "[codec]") {
  const Replayed a = replay(
      " {\n \"message\" :\t\"caf\\u00e9 \\ud83d\\ude00 \\u20AC \\/ \\\" \\\\ "
      "\\b\\f\\n\\r\\t\\u0000\" ,\r\n\"kind\":\"K\"}\n");
  CHECK(a.kind == "K");
  CHECK(a.message == std::string("caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac / \" \\ \b\f\n\r\t") +
                         std::string(1, '\0'));
  CHECK(replay(R"({"kind":"","message":""})").message.empty());
}

TEST_CASE("anything but a failure record is CorruptRecordError", "[codec]") {
  const std::vector<std::string> bad = {
      "",
      "[]",
      "{}",
      "null",
      R"("kind")",
      R"({"kind":"a"})",
      R"({"message":"m"})",
      R"({"kind":"a","message":"m","extra":1})",
      R"({"kind":1,"message":"m"})",
      R"({"kind":"a","message":null})",
      R"({"kind":"a","message":"m"} x)",
      R"({"kind":"a","message":"m"}})",
      R"({"kind":"a","message":"m",})",
      R"({"kind":"a" "message":"m"})",
      R"({"kind":"a","message":"m)",
      R"({"kind":"a","message":"\q"})",
      R"({"kind":"a","message":"\u12"})",
      R"({"kind":"a","message":"\u12g4"})",
      R"({"kind":"a","message":"\ud83d"})",
      R"({"kind":"a","message":"\ud83dx"})",
      R"({"kind":"a","message":"\ud83d\u0041"})",
      R"({"kind":"a","message":"\ude00"})",
      "{\"kind\":\"a\",\"message\":\"raw\ttab\"}",
      "{\"kind\":\"a\",\"message\":\"bad \xff\"}",
      "{\"kind\":\"a\",\"message\":\"cut \xe2\x82\"}",
      "{\"kind\":\"a\",\"message\":\"surrogate \xed\xa0\x80\"}",
      "{'kind':'a','message':'m'}",
  };
  for (const auto& payload : bad) {
    CAPTURE(payload);
    CHECK_THROWS_AS(codec::rethrow_failure(payload, "k"), CorruptRecordError);
    // nlohmann agrees that none of these is a failure record
    bool nlohmann_reads = false;
    try {
      const auto j = nlohmann::json::parse(payload);
      nlohmann_reads =
          j.is_object() && j.size() == 2 && j.at("kind").is_string() && j.at("message").is_string();
    } catch (const nlohmann::json::exception&) {
    }
    CHECK_FALSE(nlohmann_reads);
  }
  // stricter than nlohmann (which keeps the last): a member twice is no record this library wrote
  CHECK_THROWS_AS(codec::rethrow_failure(R"({"kind":"a","message":"m","kind":"b"})", "k"),
                  CorruptRecordError);
  try {
    codec::rethrow_failure(R"({"kind":"a"})", "key-9");
  } catch (const CorruptRecordError& e) {
    CHECK(std::string(e.what()) ==
          "[idempotency.corrupt_record] stored failure of key 'key-9' "
          "does not decode: member 'message' is missing at byte 12");
  }
}
