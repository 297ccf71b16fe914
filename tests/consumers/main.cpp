// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// The program every consumer project builds: it must compile against the library as the
// consumer got it, and run the operation once across three attempts.
#include <idempotency/idempotency.hpp>
#ifdef CONSUMER_HAS_SQLITE
#include <idempotency/stores/sqlite_store.hpp>
#endif

#include <cstdio>

int main() {
  idempotency::InMemoryStore store;
  idempotency::IdempotencyExecutor exec{store};
  int runs = 0;
  for (int i = 0; i < 3; ++i) (void)exec.execute("consumer-key", [&] { return ++runs; });
  std::printf("%s: operation ran %d time(s) in 3 attempts\n", CONSUMER_NAME, runs);
  return runs == 1 ? 0 : 1;
}
