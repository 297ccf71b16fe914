// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// key_from: keys made of the fields of a JSON body named by RFC 6901 JSON Pointers.
#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/key.hpp>
#include <idempotency/key_from.hpp>
#include <idempotency/stores/in_memory_store.hpp>

#include "support/catch.hpp"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

using namespace idempotency;
using nlohmann::json;

namespace {
const json order = json::parse(R"({
  "order": {"id": 42, "lines": [{"sku": "a", "qty": 2}, {"sku": "b", "qty": 1}]},
  "customer": "c-7",
  "note": "leave at the door",
  "a/b": 1, "m~n": 2, "nothing": null
})");
} // namespace

TEST_CASE("key_from makes a valid key of the chosen fields", "[key_from]") {
  const std::string k = key_from(order, {"/order/id", "/customer"});
  CHECK(k.size() == derived_key_prefix.size() + 64);
  CHECK(k.rfind(derived_key_prefix, 0) == 0);
  CHECK_NOTHROW(validate_key(k));
  // the same fields, values written differently, members reordered, another note: same key
  const json same = json::parse(
      R"({"note": "ring twice", "customer": "c-7", "order": {"lines": [], "id": 42.0}})");
  CHECK(key_from(same, {"/order/id", "/customer"}) == k);
  CHECK(key_from(json::parse(R"({"customer":"c-7","order":{"id":4.2e1}})"),
                 {"/customer", "/order/id"}) == k); // and the pointers in another order
}

TEST_CASE("key_from keys differ with the values and with the fields chosen", "[key_from]") {
  const std::string k = key_from(order, {"/order/id", "/customer"});
  json other = order;
  other["order"]["id"] = 43;
  CHECK(key_from(other, {"/order/id", "/customer"}) != k);
  other = order;
  other["customer"] = "c-8";
  CHECK(key_from(other, {"/order/id", "/customer"}) != k);
  CHECK(key_from(order, {"/order/id"}) != k);
  // one value under two different pointers: two keys (the pointer is part of the key)
  CHECK(key_from(json{{"a", 1}}, {"/a"}) != key_from(json{{"b", 1}}, {"/b"}));
  // a string "42" is not the number 42
  CHECK(key_from(json{{"id", "42"}}, {"/id"}) != key_from(json{{"id", 42}}, {"/id"}));
}

TEST_CASE("key_from follows RFC 6901: escapes, array indexes, the whole document", "[key_from]") {
  CHECK_NOTHROW(key_from(order, {"/a~1b"})); // "a/b"
  CHECK_NOTHROW(key_from(order, {"/m~0n"})); // "m~n"
  CHECK(key_from(order, {"/order/lines/1/sku"}) ==
        key_from(json::parse(R"({"order":{"lines":[0,{"sku":"b"}]}})"), {"/order/lines/1/sku"}));
  CHECK(key_from(order, {""}) == key_from(json::parse(order.dump()), {""}));
  CHECK(key_from(order, {"/order/lines"}) != key_from(order, {"/order/lines/0"}));
}

TEST_CASE("key_from: a missing or null field is a typed error, never a key of null", "[key_from]") {
  const auto missing = [](const json& body, std::string_view pointer) {
    try {
      (void)key_from(body, {pointer});
    } catch (const MissingKeyFieldError& e) {
      CHECK(e.pointer() == pointer);
      CHECK(e.code() == errc::invalid_key);
      CHECK(std::string(e.what()).find(std::string(pointer)) != std::string::npos);
      return true;
    }
    return false;
  };
  CHECK(missing(order, "/order/number"));
  CHECK(missing(order, "/nothing"));        // present but null
  CHECK(missing(order, "/order/lines/2"));  // past the end
  CHECK(missing(order, "/order/lines/-"));  // "-" names no element
  CHECK(missing(order, "/order/lines/01")); // not an RFC 6901 index
  CHECK(missing(order, "/customer/name"));  // into a string
  CHECK(missing(json::array(), "/0"));
  CHECK(missing(json(nullptr), "")); // the whole document is null
  // one field of two missing: no key from the other one alone
  CHECK_THROWS_AS(key_from(order, {"/order/id", "/order/number"}), MissingKeyFieldError);
}

TEST_CASE("key_from: bad pointers and values without a canonical form are InvalidKeyError",
          "[key_from]") {
  const auto invalid_not_missing = [](const json& body, std::vector<std::string_view> ptrs) {
    try {
      (void)key_from(body, std::span<const std::string_view>(ptrs));
    } catch (const MissingKeyFieldError&) {
      return false;
    } catch (const InvalidKeyError&) {
      return true;
    }
    return false;
  };
  CHECK(invalid_not_missing(order, {}));                      // no pointer at all
  CHECK(invalid_not_missing(order, {"order/id"}));            // no leading '/'
  CHECK(invalid_not_missing(order, {"/order~2id"}));          // '~' must be ~0 or ~1
  CHECK(invalid_not_missing(json{{"s", "caf\xc3"}}, {"/s"})); // invalid UTF-8
  CHECK(invalid_not_missing(json{{"x", std::nan("")}}, {"/x"}));
}

TEST_CASE("key_from takes pointers from configuration (a vector of strings)", "[key_from]") {
  const std::vector<std::string> pointers{"/order/id", "/customer"};
  CHECK(key_from(order, pointers) == key_from(order, {"/order/id", "/customer"}));
}

TEST_CASE("a retry with the same fields replays through the executor", "[key_from]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  int runs = 0;
  const auto place = [&] { return ++runs; };
  const json retry = json::parse(R"({"customer": "c-7", "order": {"id": 42}, "note": "again"})");
  CHECK(exec.execute(key_from(order, {"/order/id", "/customer"}), place) == 1);
  CHECK(exec.execute(key_from(retry, {"/order/id", "/customer"}), place) == 1);
  CHECK(runs == 1);
}
