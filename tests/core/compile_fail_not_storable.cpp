// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// Must NOT compile: the result type has no codec (no Codec<T>, no to_json / from_json). The
// test passes when the compiler's output names both fixes (one static_assert, not a page of
// template errors).
#include <idempotency/executor.hpp>
#include <idempotency/stores/in_memory_store.hpp>

struct Receipt {
  int cents = 0;
};

int main() {
  idempotency::InMemoryStore store;
  idempotency::IdempotencyExecutor exec{store};
  return exec.execute("k", [] { return Receipt{42}; }).cents;
}
