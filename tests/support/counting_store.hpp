// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// A Store wrapper for tests: counts every call and can be switched "down" (every call then
// throws StoreError, as a store whose server is unreachable does).

#include <idempotency/errors.hpp>
#include <idempotency/store.hpp>

#include <atomic>
#include <chrono>
#include <string_view>

namespace idempotency::test {

template <Store Inner>
class CountingStore {
 public:
  explicit CountingStore(Inner& inner) : inner_(&inner) {}

  std::atomic<int> claims{0};
  std::atomic<int> completes{0};
  std::atomic<int> fails{0};
  std::atomic<int> releases{0};
  std::atomic<int> renews{0};
  std::atomic<bool> down{false};

  [[nodiscard]] std::string_view name() const noexcept { return "CountingStore"; }

  ClaimResult claim(std::string_view k, std::string_view fp, std::chrono::milliseconds d) {
    claims.fetch_add(1);
    check("claim");
    return inner_->claim(k, fp, d);
  }
  bool complete(std::string_view k, const Token& t, std::string_view p,
                std::chrono::milliseconds d) {
    completes.fetch_add(1);
    check("complete");
    return inner_->complete(k, t, p, d);
  }
  bool fail(std::string_view k, const Token& t, std::string_view p, std::chrono::milliseconds d) {
    fails.fetch_add(1);
    check("fail");
    return inner_->fail(k, t, p, d);
  }
  bool release(std::string_view k, const Token& t) {
    releases.fetch_add(1);
    check("release");
    return inner_->release(k, t);
  }
  bool renew(std::string_view k, const Token& t, std::chrono::milliseconds d) {
    renews.fetch_add(1);
    check("renew");
    return inner_->renew(k, t, d);
  }

 private:
  void check(const char* op) const {
    if (down.load()) throw StoreError("CountingStore", op, "connection refused (simulated)");
  }
  Inner* inner_;
};

} // namespace idempotency::test
