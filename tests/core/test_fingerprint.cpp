// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/fingerprint.hpp>

#include <idempotency/json_codec.hpp> // Fingerprint::of(json)

#include "support/catch.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using idempotency::errc;
using idempotency::Fingerprint;
using idempotency::InvalidFingerprintError;
using idempotency::detail::Sha256;
using idempotency::detail::to_hex;

TEST_CASE("SHA-256 matches the FIPS 180-4 test vectors", "[fingerprint]") {
  CHECK(to_hex(Sha256::hash("abc")) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(to_hex(Sha256::hash("")) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(to_hex(Sha256::hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(to_hex(Sha256::hash("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                            "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")) ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  // one million 'a', fed in uneven pieces to exercise the block boundary handling
  Sha256 h;
  const std::string piece(997, 'a');
  std::size_t fed = 0;
  while (fed + piece.size() <= 1000000) {
    h.update(piece);
    fed += piece.size();
  }
  h.update(std::string(1000000 - fed, 'a'));
  CHECK(to_hex(h.finish()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("padding lengths around the 56-byte boundary", "[fingerprint]") {
  // lengths 55, 56, 63, 64 hit every padding branch; the values are the standard digests
  CHECK(to_hex(Sha256::hash(std::string(55, 'a'))) ==
        "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
  CHECK(to_hex(Sha256::hash(std::string(56, 'a'))) ==
        "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
  CHECK(to_hex(Sha256::hash(std::string(64, 'a'))) ==
        "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST_CASE("JSON fingerprints ignore key order and whitespace, not values", "[fingerprint]") {
  const auto a = Fingerprint::of(nlohmann::json::parse(R"({"b": 1, "a": {"y": 2, "x": [1, 2]}})"));
  const auto b = Fingerprint::of(nlohmann::json::parse(R"({"a":{"x":[1,2],"y":2},"b":1})"));
  const auto c = Fingerprint::of(nlohmann::json::parse(R"({"a":{"x":[2,1],"y":2},"b":1})"));
  CHECK(a == b);
  CHECK_FALSE(a == c);
  CHECK(a.hex().size() == 64);
  CHECK(Fingerprint::canonical_json(nlohmann::json::parse(R"({ "b" : 1 , "a" : 2 })")) ==
        R"({"a":2,"b":1})");
  CHECK(Fingerprint::of_bytes("abc").hex() ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Fingerprint{}.empty());
  CHECK_FALSE(Fingerprint::of_bytes("").empty());
}

TEST_CASE("numbers that are the same double fingerprint alike (RFC 8785)", "[fingerprint]") {
  // before: three fingerprints, so a client that re-serialised its retry got a 422
  const auto a = Fingerprint::of(nlohmann::json::parse(R"({"amount":100})"));
  const auto b = Fingerprint::of(nlohmann::json::parse(R"({"amount":100.0})"));
  const auto c = Fingerprint::of(nlohmann::json::parse(R"({"amount":1e2})"));
  CHECK(a == b);
  CHECK(a == c);
  CHECK_FALSE(a == Fingerprint::of(nlohmann::json::parse(R"({"amount":100.5})")));
}

TEST_CASE("canonical JSON is RFC 8785: the RFC's own example", "[fingerprint]") {
  // RFC 8785 §3.2.2 (input) and §3.2.3 (output)
  const auto in = nlohmann::json::parse(
      "{\"numbers\": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],"
      " \"string\": \"\\u20ac$\\u000F\\u000aA'\\u0042\\u0022\\u005c\\\\\\\"\\/\","
      " \"literals\": [null, true, false]}");
  CHECK(Fingerprint::canonical_json(in) ==
        "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
        "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

TEST_CASE("canonical JSON sorts members by UTF-16 code units (RFC 8785 §3.2.3)", "[fingerprint]") {
  const auto in = nlohmann::json::parse(
      R"({"\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh",
          "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control",
          "\u00f6": "Latin Small Letter O With Diaeresis"})");
  const std::string out = Fingerprint::canonical_json(in);
  std::vector<std::string> order;
  for (const char* name :
       {"\\r", "1", "\xc2\x80", "\xc3\xb6", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xef\xac\xb3"})
    order.push_back(std::string("\"") + name + "\":");
  std::size_t at = 0;
  for (const auto& name : order) {
    const auto found = out.find(name, at);
    CHECK(found != std::string::npos); // each name, after the one before it
    if (found != std::string::npos) at = found;
  }
}

TEST_CASE("canonical numbers are ECMAScript's (RFC 8785 Appendix B)", "[fingerprint]") {
  const auto num = [](std::uint64_t bits) {
    double d = 0;
    std::memcpy(&d, &bits, sizeof d);
    return Fingerprint::canonical_json(nlohmann::json(d));
  };
  CHECK(num(0x0000000000000000) == "0");
  CHECK(num(0x8000000000000000) == "0");
  CHECK(num(0x0000000000000001) == "5e-324");
  CHECK(num(0x8000000000000001) == "-5e-324");
  CHECK(num(0x7fefffffffffffff) == "1.7976931348623157e+308");
  CHECK(num(0xffefffffffffffff) == "-1.7976931348623157e+308");
  CHECK(num(0x4340000000000000) == "9007199254740992");
  CHECK(num(0xc340000000000000) == "-9007199254740992");
  CHECK(num(0x4430000000000000) == "295147905179352830000");
  CHECK(num(0x44b52d02c7e14af5) == "9.999999999999997e+22");
  CHECK(num(0x44b52d02c7e14af6) == "1e+23");
  CHECK(num(0x44b52d02c7e14af7) == "1.0000000000000001e+23");
  CHECK(num(0x444b1ae4d6e2ef4e) == "999999999999999700000");
  CHECK(num(0x444b1ae4d6e2ef4f) == "999999999999999900000");
  CHECK(num(0x444b1ae4d6e2ef50) == "1e+21");
  CHECK(num(0x3eb0c6f7a0b5ed8c) == "9.999999999999997e-7");
  CHECK(num(0x3eb0c6f7a0b5ed8d) == "0.000001");
  CHECK(num(0x41b3de4355555553) == "333333333.3333332");
  CHECK(num(0x41b3de4355555554) == "333333333.33333325");
  CHECK(num(0x41b3de4355555555) == "333333333.3333333");
  CHECK(num(0x41b3de4355555556) == "333333333.3333334");
  CHECK(num(0x41b3de4355555557) == "333333333.33333343");
  CHECK(num(0xbecbf647612f3696) == "-0.0000033333333333333333");
  CHECK(num(0x43143ff3c1cb0959) == "1424953923781206.2");
  CHECK_THROWS_AS(num(0x7fffffffffffffff), InvalidFingerprintError); // NaN
  CHECK_THROWS_AS(num(0x7ff0000000000000), InvalidFingerprintError); // Infinity
}

TEST_CASE("invalid UTF-8 in a fingerprinted body is a typed error", "[fingerprint]") {
  CHECK_THROWS_AS(Fingerprint::of(nlohmann::json(std::string("caf\xc3"))), InvalidFingerprintError);
  CHECK_THROWS_AS(Fingerprint::of(nlohmann::json{{std::string("\xed\xa0\x80"), 1}}),
                  InvalidFingerprintError); // a surrogate code point in a member name
  try {
    (void)Fingerprint::of(nlohmann::json(std::string("\xff")));
  } catch (const InvalidFingerprintError& e) {
    CHECK(e.code() == errc::invalid_fingerprint);
  }
  // of_bytes takes any bytes exactly
  CHECK_NOTHROW(Fingerprint::of_bytes("\xff\xfe"));
}
