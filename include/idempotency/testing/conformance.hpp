// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// The store conformance suite: prove that a store honours the Store contract (design §2-3).
// Every store in this repository passes it; run it against your own store the same way.
//
// Requires Catch2 (v2 or v3) in the including translation unit's include path. Link the
// CMake target `idempotency::conformance`, or include Catch2 yourself.
//
// Example:
//
//     #include <idempotency/testing/conformance.hpp>
//     struct MyHarness {
//       using store_type = MyStore;
//       MyStore store_{...};                        // a fresh store (or namespace) per harness
//       MyStore& store() { return store_; }
//       std::chrono::milliseconds unit() const { return std::chrono::milliseconds(200); }
//       void advance(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }
//     };
//     IDEMPOTENCY_STORE_CONFORMANCE("MyStore", MyHarness)
//
// The harness contract:
//  - default constructible; constructed anew for every section of the suite;
//  - `store()` returns the store under test;
//  - `unit()` is a duration the store's clock resolves with margin (manual clocks: any;
//    real clocks: large enough that a few calls take well under one unit);
//  - `advance(d)` returns once the store's clock has moved forward by at least `d`.

#include <idempotency/store.hpp>
#include <idempotency/testing/conformance_races.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace idempotency::testing {

/// Runs the whole conformance suite against `Harness` inside the current Catch2 test case.
template <class Harness>
void run_store_conformance() {
  using namespace std::chrono_literals;
  using conformance_detail::fresh_key;
  using Ms = std::chrono::milliseconds;

  Harness h;
  auto& s = h.store();
  static_assert(Store<std::remove_reference_t<decltype(s)>>,
                "the harness's store() must return a type that satisfies idempotency::Store");
  const Ms u = h.unit();
  const Ms lease = 4 * u;
  const Ms ttl = 4 * u;

  SECTION("claim on an absent key acquires with a fresh non-empty token") {
    const auto k = fresh_key("absent");
    const ClaimResult r = s.claim(k, "fp", lease);
    CHECK(r.status == ClaimStatus::acquired);
    CHECK(r.acquired());
    CHECK_FALSE(r.token.empty());
    CHECK_FALSE(r.took_over);
  }

  SECTION("a second claim sees the live in-progress record and its fingerprint") {
    const auto k = fresh_key("live");
    const ClaimResult first = s.claim(k, "fingerprint-1", lease);
    REQUIRE(first.acquired());
    const ClaimResult second = s.claim(k, "fingerprint-2", lease);
    CHECK(second.status == ClaimStatus::in_progress);
    CHECK(second.token.empty());
    CHECK(second.fingerprint == "fingerprint-1");
    CHECK(second.remaining > Ms(0));
    CHECK(second.remaining <= lease);
  }

  SECTION("complete with the holder's token records the result; claims replay it byte for byte") {
    const auto k = fresh_key("complete");
    const std::string fp(32, '\xAB');
    const ClaimResult c = s.claim(k, fp, lease);
    REQUIRE(c.acquired());
    const std::string payload = conformance_detail::binary_payload();
    CHECK(s.complete(k, c.token, payload, ttl));
    for (int i = 0; i < 3; ++i) {
      const ClaimResult r = s.claim(k, "other", lease);
      CHECK(r.status == ClaimStatus::completed);
      CHECK(r.payload == payload);
      CHECK(r.fingerprint == fp);
      CHECK(r.remaining > Ms(0));
      CHECK(r.remaining <= ttl);
    }
    // once completed, nothing changes it any more, not even the holder's token: a resent
    // complete (its first reply was lost) is acknowledged, the others are refused
    CHECK(s.complete(k, c.token, "again", ttl));
    CHECK_FALSE(s.fail(k, c.token, "again", ttl));
    CHECK_FALSE(s.release(k, c.token));
    CHECK_FALSE(s.renew(k, c.token, lease));
    CHECK(s.claim(k, fp, lease).payload == payload);
  }

  SECTION("an empty payload and an empty fingerprint are stored as such") {
    const auto k = fresh_key("empty");
    const ClaimResult c = s.claim(k, "", lease);
    REQUIRE(c.acquired());
    REQUIRE(s.complete(k, c.token, "", ttl));
    const ClaimResult r = s.claim(k, "", lease);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload.empty());
    CHECK(r.fingerprint.empty());
  }

  SECTION("transitions with a wrong token change nothing") {
    const auto k = fresh_key("wrong-token");
    const ClaimResult c = s.claim(k, "fp", lease);
    REQUIRE(c.acquired());
    Token wrong = c.token;
    wrong.lo ^= 1;
    CHECK_FALSE(s.complete(k, wrong, "x", ttl));
    CHECK_FALSE(s.fail(k, wrong, "x", ttl));
    CHECK_FALSE(s.release(k, wrong));
    CHECK_FALSE(s.renew(k, wrong, lease));
    CHECK(s.claim(k, "fp", lease).status == ClaimStatus::in_progress);
    CHECK(s.complete(k, c.token, "right", ttl));
    CHECK(s.claim(k, "fp", lease).payload == "right");
  }

  SECTION("complete resent with the same token (a lost reply) is true and changes nothing") {
    const auto k = fresh_key("resent-complete");
    const ClaimResult c = s.claim(k, "fp", lease);
    REQUIRE(c.acquired());
    CHECK(s.complete(k, c.token, "first", ttl));
    h.advance(ttl - u);
    CHECK(s.complete(k, c.token, "first", ttl));
    CHECK(s.complete(k, c.token, "second", ttl));
    const ClaimResult r = s.claim(k, "fp", lease);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "first");
    CHECK(r.remaining <= u);
    // the resends did not extend the record's TTL: it expires when the first complete said
    h.advance(2 * u);
    CHECK(s.claim(k, "fp", lease).acquired());
  }

  SECTION("fail resent with the same token is true; the other transition stays refused") {
    const auto k = fresh_key("resent-fail");
    const ClaimResult c = s.claim(k, "fp", lease);
    REQUIRE(c.acquired());
    CHECK(s.fail(k, c.token, "boom", ttl));
    CHECK(s.fail(k, c.token, "boom", ttl));
    CHECK_FALSE(s.complete(k, c.token, "value", ttl));
    const ClaimResult r = s.claim(k, "fp", lease);
    CHECK(r.status == ClaimStatus::failed);
    CHECK(r.payload == "boom");
  }

  SECTION("a record finished by one token cannot be finished again by another") {
    const auto k = fresh_key("finished-by-other");
    const ClaimResult stale = s.claim(k, "fp", lease);
    REQUIRE(stale.acquired());
    h.advance(lease + u);
    const ClaimResult fresh = s.claim(k, "fp", lease);
    REQUIRE(fresh.acquired());
    REQUIRE(s.complete(k, fresh.token, "fresh", ttl));
    CHECK_FALSE(s.complete(k, stale.token, "stale", ttl));
    CHECK_FALSE(s.fail(k, stale.token, "stale", ttl));
    CHECK_FALSE(s.release(k, stale.token));
    CHECK_FALSE(s.renew(k, stale.token, lease));
    Token unknown = fresh.token;
    unknown.hi ^= 1;
    CHECK_FALSE(s.complete(k, unknown, "other", ttl));
    CHECK(s.claim(k, "fp", lease).payload == "fresh");
  }

  SECTION("fail records the failure and claims return it") {
    const auto k = fresh_key("fail");
    const ClaimResult c = s.claim(k, "fp", lease);
    REQUIRE(c.acquired());
    CHECK(s.fail(k, c.token, "boom", ttl));
    const ClaimResult r = s.claim(k, "fp", lease);
    CHECK(r.status == ClaimStatus::failed);
    CHECK(r.payload == "boom");
    CHECK(r.fingerprint == "fp");
    CHECK_FALSE(s.complete(k, c.token, "late", ttl));
  }

  SECTION("release deletes the claim; the next claim acquires with another token") {
    const auto k = fresh_key("release");
    const ClaimResult c = s.claim(k, "fp", lease);
    REQUIRE(c.acquired());
    CHECK(s.release(k, c.token));
    CHECK_FALSE(s.release(k, c.token));
    const ClaimResult again = s.claim(k, "fp2", lease);
    CHECK(again.acquired());
    CHECK_FALSE(again.took_over);
    CHECK(again.token != c.token);
    CHECK_FALSE(s.complete(k, c.token, "stale", ttl));
    CHECK(s.complete(k, again.token, "fresh", ttl));
    const ClaimResult r = s.claim(k, "fp2", lease);
    CHECK(r.payload == "fresh");
    CHECK(r.fingerprint == "fp2");
  }

  if constexpr (ForgettableStore<std::remove_reference_t<decltype(s)>>) {
    SECTION("forget deletes a record in any state; a forgotten holder cannot complete") {
      const auto done = fresh_key("forget-done");
      const ClaimResult c = s.claim(done, "fp", lease);
      REQUIRE(c.acquired());
      REQUIRE(s.complete(done, c.token, "result", ttl));
      CHECK(s.forget(done));
      CHECK_FALSE(s.forget(done));
      const ClaimResult again = s.claim(done, "fp", lease);
      CHECK(again.acquired()); // a re-run, as the operator asked
      const auto held = fresh_key("forget-held");
      const ClaimResult h1 = s.claim(held, "fp", lease);
      REQUIRE(h1.acquired());
      CHECK(s.forget(held));
      CHECK_FALSE(s.complete(held, h1.token, "late", ttl));
      CHECK(s.claim(held, "fp", lease).acquired());
      CHECK_FALSE(s.forget(fresh_key("forget-absent")));
    }
  }

  SECTION("a 'forever' lease or TTL saturates: never wraps into the past, never an error") {
    const auto k = fresh_key("forever");
    const Ms forever = Ms::max();
    const ClaimResult c = s.claim(k, "fp", forever);
    REQUIRE(c.acquired());
    CHECK(s.claim(k, "fp", lease).status == ClaimStatus::in_progress);
    CHECK(s.renew(k, c.token, forever));
    CHECK(s.claim(k, "fp", lease).status == ClaimStatus::in_progress);
    CHECK(s.complete(k, c.token, "kept", forever));
    const ClaimResult r = s.claim(k, "fp", lease);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "kept");
  }

  SECTION("transitions on an absent key return false") {
    const auto k = fresh_key("nothing");
    const Token t = Token::random();
    CHECK_FALSE(s.complete(k, t, "x", ttl));
    CHECK_FALSE(s.fail(k, t, "x", ttl));
    CHECK_FALSE(s.release(k, t));
    CHECK_FALSE(s.renew(k, t, lease));
    CHECK(s.claim(k, "fp", lease).acquired());
  }

  SECTION("an in-progress record past its lease is taken over with a new token (fencing)") {
    const auto k = fresh_key("takeover");
    const ClaimResult stale = s.claim(k, "fp", lease);
    REQUIRE(stale.acquired());
    CHECK(s.claim(k, "fp", lease).status == ClaimStatus::in_progress);
    h.advance(lease + u);
    const ClaimResult fresh = s.claim(k, "fp", lease);
    REQUIRE(fresh.acquired());
    CHECK(fresh.took_over);
    CHECK(fresh.token != stale.token);
    // the stale holder can neither overwrite, fail, delete nor extend the new owner's claim
    CHECK_FALSE(s.complete(k, stale.token, "stale", ttl));
    CHECK_FALSE(s.fail(k, stale.token, "stale", ttl));
    CHECK_FALSE(s.release(k, stale.token));
    CHECK_FALSE(s.renew(k, stale.token, lease));
    CHECK(s.claim(k, "fp", lease).status == ClaimStatus::in_progress);
    CHECK(s.complete(k, fresh.token, "fresh", ttl));
    CHECK(s.claim(k, "fp", lease).payload == "fresh");
  }

  SECTION("a slow holder nobody took over still completes after its lease passed") {
    const auto k = fresh_key("slow");
    const ClaimResult c = s.claim(k, "fp", lease);
    REQUIRE(c.acquired());
    h.advance(lease + u);
    CHECK(s.complete(k, c.token, "late but recorded", ttl));
    const ClaimResult r = s.claim(k, "fp", lease);
    CHECK(r.status == ClaimStatus::completed);
    CHECK(r.payload == "late but recorded");
  }

  SECTION("a slow holder nobody took over may still release or renew after its lease passed") {
    const auto k1 = fresh_key("slow-release");
    const auto k2 = fresh_key("slow-renew");
    const ClaimResult c1 = s.claim(k1, "fp", lease);
    const ClaimResult c2 = s.claim(k2, "fp", lease);
    REQUIRE(c1.acquired());
    REQUIRE(c2.acquired());
    h.advance(lease + u);
    CHECK(s.release(k1, c1.token));
    CHECK(s.renew(k2, c2.token, lease));
    CHECK(s.claim(k2, "fp", lease).status == ClaimStatus::in_progress);
  }

  SECTION("renew extends the lease from now") {
    const auto k = fresh_key("renew");
    const ClaimResult c = s.claim(k, "fp", lease); // lease = 4u
    REQUIRE(c.acquired());
    h.advance(3 * u);
    CHECK(s.renew(k, c.token, lease)); // now lives until 3u + 4u
    h.advance(2 * u);                  // 5u: past the first lease, inside the renewed one
    const ClaimResult r = s.claim(k, "fp", lease);
    CHECK(r.status == ClaimStatus::in_progress);
    CHECK(r.remaining <= lease);
    h.advance(3 * u); // 8u: past the renewed lease
    const ClaimResult taken = s.claim(k, "fp", lease);
    CHECK(taken.acquired());
    CHECK(taken.took_over);
  }

  SECTION("a completed record past its TTL counts as absent") {
    const auto k = fresh_key("ttl");
    const ClaimResult c = s.claim(k, "fp", lease);
    REQUIRE(c.acquired());
    REQUIRE(s.complete(k, c.token, "old", 2 * u));
    CHECK(s.claim(k, "fp", lease).status == ClaimStatus::completed);
    h.advance(3 * u);
    const ClaimResult r = s.claim(k, "fp", lease);
    CHECK(r.acquired());
    CHECK_FALSE(r.took_over);
    CHECK(r.token != c.token);
  }

  SECTION("a failed record past its TTL counts as absent") {
    const auto k = fresh_key("fail-ttl");
    const ClaimResult c = s.claim(k, "fp", lease);
    REQUIRE(c.acquired());
    REQUIRE(s.fail(k, c.token, "err", 2 * u));
    CHECK(s.claim(k, "fp", lease).status == ClaimStatus::failed);
    h.advance(3 * u);
    CHECK(s.claim(k, "fp", lease).acquired());
  }

  SECTION("keys are independent, and hostile or long keys are data") {
    const std::vector<std::string> keys = {
        fresh_key("a"),
        fresh_key("b"),
        fresh_key("'; DROP TABLE idempotency; --"),
        fresh_key("back\\slash\"quote'%s%n{}[]*?"),
        fresh_key("lua]]..--[[") + std::string(300, 'x'),
    };
    std::vector<Token> tokens;
    for (const auto& k : keys) {
      const ClaimResult c = s.claim(k, k, lease);
      REQUIRE(c.acquired());
      tokens.push_back(c.token);
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
      // another key's token never works here
      CHECK_FALSE(s.complete(keys[i], tokens[(i + 1) % keys.size()], "wrong", ttl));
      CHECK(s.complete(keys[i], tokens[i], "value of " + keys[i], ttl));
    }
    for (const auto& k : keys) {
      const ClaimResult r = s.claim(k, "", lease);
      CHECK(r.status == ClaimStatus::completed);
      CHECK(r.payload == "value of " + k);
      CHECK(r.fingerprint == k);
    }
  }

  SECTION("a 1 MiB payload round-trips") {
    const auto k = fresh_key("big");
    std::string big(std::size_t{1} << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) & 0xFF);
    const ClaimResult c = s.claim(k, "fp", lease);
    REQUIRE(c.acquired());
    REQUIRE(s.complete(k, c.token, big, ttl));
    CHECK(s.claim(k, "fp", lease).payload == big);
  }

  SECTION("tokens are never reused for a key") {
    const auto k = fresh_key("tokens");
    std::set<std::pair<std::uint64_t, std::uint64_t>> seen;
    for (int i = 0; i < 200; ++i) {
      const ClaimResult c = s.claim(k, "fp", lease);
      REQUIRE(c.acquired());
      CHECK(seen.insert({c.token.hi, c.token.lo}).second);
      REQUIRE(s.release(k, c.token));
    }
  }

  run_race_sections(h, s, lease, ttl, u);
}

} // namespace idempotency::testing

/// Registers the conformance suite for `Harness` as one Catch2 test case named
/// "<name> satisfies the Store contract", tagged [conformance].
#define IDEMPOTENCY_STORE_CONFORMANCE(name, Harness)                 \
  TEST_CASE(name " satisfies the Store contract", "[conformance]") { \
    ::idempotency::testing::run_store_conformance<Harness>();        \
  }
