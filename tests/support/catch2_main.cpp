// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// Catch2 v2's main, compiled with the project's flags (IDEMPOTENCY_CATCH2_OWN_MAIN): Debian's
// libCatch2WithMain.a is built for libstdc++ and does not link with -stdlib=libc++.
#if defined(IDEMPOTENCY_CATCH2_V3)
#error "IDEMPOTENCY_CATCH2_OWN_MAIN is for Catch2 v2; with v3 use Catch2::Catch2WithMain"
#endif
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
