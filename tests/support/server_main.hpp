// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// main() for a test binary that needs a server (Redis, PostgreSQL).
//
// Include this in exactly one .cpp of the binary, after defining
//   bool idempotency_test_server_available(std::string& why);
// If the server is not available the binary prints a visible SKIPPED message and exits 77
// (ctest reports the test as skipped: SKIP_RETURN_CODE 77) — unless IDEMPOTENCY_REQUIRE_SERVERS
// is set (CI sets it), in which case it fails with exit 1.
#include <cstdio>
#include <cstdlib>
#include <string>

#if defined(IDEMPOTENCY_CATCH2_V3)
#include <catch2/catch_session.hpp>
#else
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#endif

bool idempotency_test_server_available(std::string& why);

int main(int argc, char* argv[]) {
  std::string why;
  if (!idempotency_test_server_available(why)) {
    const char* required = std::getenv("IDEMPOTENCY_REQUIRE_SERVERS");
    if (required != nullptr && *required != '\0' && std::string(required) != "0") {
      std::fprintf(stderr, "FAILED: server required (IDEMPOTENCY_REQUIRE_SERVERS) but %s\n",
                   why.c_str());
      return 1;
    }
    std::fprintf(stderr, "SKIPPED: %s (set IDEMPOTENCY_REQUIRE_SERVERS=1 to make this a failure)\n",
                 why.c_str());
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
