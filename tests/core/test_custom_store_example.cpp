// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// The example's user-written store passes the same conformance suite as the shipped ones.
#include "../../examples/custom_store.hpp"

#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/testing/conformance.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"

namespace {
struct MapStoreHarness {
  using store_type = example::MapStore;
  idempotency::testing::ManualClock clock;
  example::MapStore store_{clock.source()};
  example::MapStore& store() { return store_; }
  std::chrono::milliseconds unit() const { return std::chrono::seconds(1); }
  void advance(std::chrono::milliseconds d) { clock.advance(d); }
};
} // namespace

IDEMPOTENCY_STORE_CONFORMANCE("example::MapStore", MapStoreHarness)

TEST_CASE("example::MapStore purges what expired", "[custom]") {
  MapStoreHarness h;
  auto& s = h.store();
  const auto c = s.claim("k", "", std::chrono::seconds(1));
  REQUIRE(s.complete("k", c.token, "v", std::chrono::seconds(5)));
  CHECK(s.purge_expired(10) == 0);
  h.advance(std::chrono::seconds(6));
  CHECK(s.purge_expired(10) == 1);
  CHECK(s.claim("k", "", std::chrono::seconds(1)).acquired());
}
