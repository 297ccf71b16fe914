// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"

#include <chrono>
#include <functional>

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

TEST_CASE("ManualClock also serves as a system_clock for stores that take a wall clock",
          "[clock]") {
  idempotency::testing::ManualClock clock;
  const auto w0 = clock.system_now();
  CHECK(w0 == std::chrono::system_clock::time_point(std::chrono::seconds(1'767'225'600)));
  clock.advance(90s);
  CHECK(clock.system_now() - w0 == 90s);
  const std::function<std::chrono::system_clock::time_point()> source = clock.system_source();
  CHECK(source() == clock.system_now());
}
