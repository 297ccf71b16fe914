// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// Compile-time case: a translation unit that includes the library's umbrella header.
#include <idempotency/idempotency.hpp>

int main() { return 0; }
