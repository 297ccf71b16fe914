# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# Warnings for the project's own tests, examples and benchmarks (never forced on users).
add_library(idempotency_warnings INTERFACE)
target_compile_options(idempotency_warnings INTERFACE
  $<$<CXX_COMPILER_ID:GNU,Clang,AppleClang>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion
    -Wsign-conversion -Wnon-virtual-dtor -Wold-style-cast -Woverloaded-virtual>
  $<$<BOOL:${IDEMPOTENCY_WERROR}>:-Werror>)
