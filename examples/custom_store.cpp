// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// Writing your own store: MapStore (custom_store.hpp) is ~150 lines and passes the same
// conformance suite as the shipped stores (tests/core/test_custom_store_example.cpp).
#include "custom_store.hpp"

#include <idempotency/idempotency.hpp>

#include <fmt/format.h>

int main() {
  using namespace std::chrono_literals;
  example::MapStore store;
  idempotency::IdempotencyExecutor exec{store, {.result_ttl = 1h, .lease = 30s}};

  int emails_sent = 0;
  auto send_welcome = [&](const std::string& to) {
    ++emails_sent;
    return fmt::format("welcome mail #{} to {}", emails_sent, to);
  };
  for (int attempt = 1; attempt <= 3; ++attempt) {
    const auto out =
        exec.execute_outcome("signup-7f3a", send_welcome, std::string("ada@example.org"));
    fmt::print("attempt {}: {} ({})\n", attempt, out.value, out.replayed ? "replayed" : "executed");
  }
  fmt::print("emails sent: {}\n", emails_sent);
  return emails_sent == 1 ? 0 : 1;
}
