// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/format.hpp>

#include "support/catch.hpp"

#include <fmt/format.h>

using namespace idempotency;

TEST_CASE("public enums and records format for logs", "[format]") {
  CHECK(fmt::format("{}", errc::lease_lost) == "lease_lost");
  CHECK(fmt::format("{:>12}", ClaimStatus::completed) == "   completed");
  CHECK(fmt::format("{}", InProgressPolicy::wait) == "wait");
  CHECK(fmt::format("{}", OnException::remember) == "remember");
  const Token t{1, 2};
  CHECK(fmt::format("{}", t) == "00000000000000010000000000000002");
  ClaimResult acquired;
  acquired.token = t;
  acquired.took_over = true;
  CHECK(fmt::format("{}", acquired) ==
        "{acquired, token=00000000000000010000000000000002, took_over}");
  ClaimResult done;
  done.status = ClaimStatus::completed;
  done.payload = "12345";
  done.remaining = std::chrono::milliseconds(1500);
  CHECK(fmt::format("{}", done) == "{completed, remaining=1500ms, payload=5 bytes}");
}
