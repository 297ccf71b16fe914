// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/fingerprint.hpp>

#include "support/catch.hpp"

#include <string>

using idempotency::Fingerprint;
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
