// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// Counts the heap allocations (global operator new) of the calling thread. The replacement
// operator new is allocation_counter.cpp, linked into test_core_allocations only.

#include <cstddef>

namespace idempotency_test {

/// Allocations made by this thread so far.
std::size_t allocations_on_this_thread() noexcept;

/// Allocations per call of `op(i)`, i = 0..n-1, on this thread.
template <class Op>
double allocations_per_call(std::size_t n, Op&& op) {
  const std::size_t before = allocations_on_this_thread();
  for (std::size_t i = 0; i < n; ++i) op(i);
  return static_cast<double>(allocations_on_this_thread() - before) / static_cast<double>(n);
}

} // namespace idempotency_test
