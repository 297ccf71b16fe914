// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// The replacement global operator new of the allocation tests: counts per thread, then
// forwards to malloc. One per program, so only in test_core_allocations.
#include "allocation_counter.hpp"

#include <cstddef>
#include <cstdlib>
#include <new>

namespace {
thread_local std::size_t allocations = 0;
} // namespace

namespace idempotency_test {
std::size_t allocations_on_this_thread() noexcept { return allocations; }
} // namespace idempotency_test

void* operator new(std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
  ++allocations;
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
