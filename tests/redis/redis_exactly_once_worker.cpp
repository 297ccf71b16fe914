// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// The second process of the cross-process exactly-once test:
//   redis_exactly_once_worker URL PREFIX KEYS THREADS START_MS OUTFILE
// runs the shared workload and writes one line per event to OUTFILE:
//   <key index> <E (executed) | R (got the recorded result)> <value>
// Errors go to stderr and make the exit code 1.
#include <idempotency/stores/redis_store.hpp>

#include "exactly_once.hpp"

#include <chrono>
#include <cstdio>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

int main(int argc, char* argv[]) {
  if (argc != 7) {
    std::fprintf(stderr, "usage: %s URL PREFIX KEYS THREADS START_MS OUTFILE\n", argv[0]);
    return 2;
  }
  try {
    idempotency::RedisStoreOptions options;
    options.url = argv[1];
    options.key_prefix = ""; // the test passes the full prefix as PREFIX
    idempotency::RedisStore store(options);
    const std::chrono::system_clock::time_point start{
        std::chrono::milliseconds(std::stoll(argv[5]))};
    std::vector<std::string> errors;
    const auto events = idempotency_test::run_exactly_once(
        store, argv[2], static_cast<std::size_t>(std::stoul(argv[3])), std::stoi(argv[4]), start,
        errors);
    std::ofstream out(argv[6]);
    for (const auto& e : events)
      out << e.key << ' ' << (e.executed ? 'E' : 'R') << ' ' << e.value << '\n';
    out.close();
    for (const auto& e : errors) std::fprintf(stderr, "worker error: %s\n", e.c_str());
    return errors.empty() && out ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker failed: %s\n", e.what());
    return 1;
  }
}
