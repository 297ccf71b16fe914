// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// Catch2 v2 (Debian's 2.13) or v3, whichever the build found (IDEMPOTENCY_CATCH2_V2/V3).
// Catch2 v2's assertions are NOT thread-safe: worker threads record into atomics or
// vectors, and the test thread asserts after join().
#if defined(IDEMPOTENCY_CATCH2_V3)
#include <catch2/catch_template_test_macros.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
#else
#include <catch2/catch.hpp>
#endif
