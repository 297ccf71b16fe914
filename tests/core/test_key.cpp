// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/key.hpp>

#include "support/catch.hpp"

#include <string>

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
  CHECK(Scope{"acme", "charge", "v2"}.prefix() == "acme/charge/v2/");
  CHECK(Scope{"acme", "", ""}.prefix() == "acme///");
  CHECK(Scope{"", "charge", ""}.prefix() == "/charge//");
  // "a/b" as a tenant would collide with tenant "a", operation "b": refused
  CHECK_THROWS_AS((Scope{"a/b", "", ""}.validate()), InvalidKeyError);
  CHECK_THROWS_AS((Scope{"a b", "", ""}.validate()), InvalidKeyError);
  CHECK_THROWS_AS((Scope{"", std::string(65, 'o'), ""}.validate()), InvalidKeyError);
  CHECK_NOTHROW((Scope{"acme", "charge", "v2"}.validate()));
}
