// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/key.hpp>

#include "support/catch.hpp"

#include <map>
#include <string>
#include <vector>

using namespace idempotency;

TEST_CASE("valid keys pass", "[key]") {
  CHECK_NOTHROW(validate_key("a"));
  CHECK_NOTHROW(validate_key("order-42/charge:v1"));
  CHECK_NOTHROW(validate_key(std::string(255, 'k')));
  std::string all;
  for (char c = 0x21; c <= 0x7E; ++c) all += c;
  CHECK_NOTHROW(validate_key(all));
}

TEST_CASE("invalid keys are typed errors", "[key]") {
  CHECK_THROWS_AS(validate_key(""), InvalidKeyError);
  CHECK_THROWS_AS(validate_key(std::string(256, 'k')), InvalidKeyError);
  CHECK_THROWS_AS(validate_key("has space"), InvalidKeyError);
  CHECK_THROWS_AS(validate_key("tab\there"), InvalidKeyError);
  CHECK_THROWS_AS(validate_key("nl\n"), InvalidKeyError);
  CHECK_THROWS_AS(validate_key(std::string("nul\0x", 5)), InvalidKeyError);
  CHECK_THROWS_AS(validate_key("del\x7f"), InvalidKeyError);
  CHECK_THROWS_AS(validate_key("caf\xc3\xa9"), InvalidKeyError);
  try {
    validate_key("a b");
    FAIL("no throw");
  } catch (const InvalidKeyError& e) {
    CHECK(std::string(e.what()) ==
          "[idempotency.invalid_key] key has byte 0x20 at offset 1; only visible ASCII "
          "(0x21..0x7E) is allowed");
  }
}

TEST_CASE("scope prefixes keep tenants apart", "[key]") {
  CHECK(Scope{}.prefix().empty());
  // control bytes no valid key or scope part can hold: the prefix cannot be forged
  CHECK(Scope{"acme", "charge", "v2"}.prefix() ==
        "\x1e"
        "acme\x1f"
        "charge\x1f"
        "v2\x1f");
  CHECK(Scope{"acme", "", ""}.prefix() ==
        "\x1e"
        "acme\x1f\x1f\x1f");
  // '/' is data in a scope part now
  CHECK_NOTHROW((Scope{"a/b", "", ""}.validate()));
  CHECK_THROWS_AS((Scope{"a b", "", ""}.validate()), InvalidKeyError);
  CHECK_THROWS_AS((Scope{"a\x1f", "", ""}.validate()), InvalidKeyError);
  CHECK_THROWS_AS((Scope{"", std::string(65, 'o'), ""}.validate()), InvalidKeyError);
  CHECK_NOTHROW((Scope{"acme", "charge", "v2"}.validate()));
}

TEST_CASE("scoping is injective: no two (scope, key) pairs share a storage key", "[key]") {
  // every scope part of 0..2 bytes and every key of 1..3 bytes over an alphabet that holds the
  // old separator: 13^3 scopes x 39 keys, all pairs, scoped and unscoped alike
  const std::string alphabet = "a/";
  std::vector<std::string> parts{""};
  std::vector<std::string> keys;
  for (std::size_t len = 1; len <= 3; ++len) {
    std::vector<std::string> level{""};
    for (std::size_t i = 0; i < len; ++i) {
      std::vector<std::string> next;
      for (const auto& p : level)
        for (const char c : alphabet) next.push_back(p + c);
      level = next;
    }
    for (const auto& p : level) {
      keys.push_back(p);
      if (len <= 2) parts.push_back(p);
    }
  }
  std::map<std::string, std::string> seen; // storage key -> the pair that made it
  std::size_t pairs = 0;
  for (const auto& t : parts)
    for (const auto& o : parts)
      for (const auto& v : parts) {
        const Scope scope{t, o, v};
        scope.validate();
        const std::string prefix = scope.prefix();
        for (const auto& k : keys) {
          const std::string pair = "(" + t + "|" + o + "|" + v + ")" + k;
          const auto [it, fresh] = seen.emplace(prefix + k, pair);
          if (!fresh) FAIL("storage key of " << pair << " equals that of " << it->second);
          ++pairs;
        }
      }
  CHECK(pairs == 7 * 7 * 7 * keys.size());
}
