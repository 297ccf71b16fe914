// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// MUST NOT COMPILE: a store with "check, then set" instead of an atomic claim.
// tests/core/CMakeLists.txt expects the compiler to fail with the readable message.
#include <idempotency/executor.hpp>

#include <optional>

struct CheckThenSetStore {
  std::optional<std::string> get(std::string_view) { return std::nullopt; }
  void set_processing(std::string_view) {}
  bool complete(std::string_view, const idempotency::Token&, std::string_view,
                std::chrono::milliseconds) {
    return false;
  }
  bool fail(std::string_view, const idempotency::Token&, std::string_view,
            std::chrono::milliseconds) {
    return false;
  }
  bool release(std::string_view, const idempotency::Token&) { return false; }
  bool renew(std::string_view, const idempotency::Token&, std::chrono::milliseconds) {
    return false;
  }
  std::string_view name() const { return "bad"; }
};

int main() {
  CheckThenSetStore store;
  idempotency::IdempotencyExecutor exec{store};
  return exec.execute("k", [] { return 1; });
}
