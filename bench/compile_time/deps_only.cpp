// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// Compile-time baseline: a translation unit that includes only the core's dependencies.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

int main() { return 0; }
