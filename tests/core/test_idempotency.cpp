// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/idempotency.hpp>

#include "support/catch.hpp"

// The umbrella header alone is enough for the README's quick start.
TEST_CASE("the umbrella header gives the quick start", "[umbrella]") {
  using namespace std::chrono_literals;
  idempotency::InMemoryStore store;
  idempotency::IdempotencyExecutor exec{store, {.result_ttl = 1h, .lease = 60s}};
  int charges = 0;
  for (int attempt = 0; attempt < 3; ++attempt)
    CHECK(exec.execute("req-1", [&] { return ++charges; }) == 1);
  CHECK(charges == 1);
  static_assert(IDEMPOTENCY_VERSION_MAJOR == 0);
}
