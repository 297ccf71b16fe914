// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"

using namespace std::chrono_literals;

TEST_CASE("the manual clock moves only when advanced", "[clock]") {
  idempotency::testing::ManualClock clock;
  const auto t0 = clock.now();
  CHECK(clock.now() == t0);
  clock.advance(1500ms);
  CHECK(clock.now() - t0 == 1500ms);
  auto source = clock.source();
  CHECK(source() == clock.now());
}
