// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// The smallest useful TU: the executor, the in-memory store and a codec of the user's own.
// core.no_nlohmann_no_fmt compiles it with -H and fails if any nlohmann/ or fmt/ header is
// parsed (issue 16: such a TU must not pay for either).
#include <idempotency/executor.hpp>
#include <idempotency/stores/in_memory_store.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

struct Money {
  long long cents = 0;
};

template <>
struct idempotency::Codec<Money> {
  static std::string encode(const Money& m) { return std::to_string(m.cents); }
  static Money decode(std::string_view bytes) {
    std::size_t used = 0;
    const std::string s(bytes);
    const Money m{std::stoll(s, &used)};
    if (used != s.size()) throw std::invalid_argument("not a number of cents");
    return m;
  }
};

int main() {
  idempotency::InMemoryStore store;
  idempotency::IdempotencyExecutor exec{store,
                                        {.on_exception = idempotency::OnException::remember}};
  const Money m = exec.execute("order-1", [] { return Money{4200}; });
  exec.execute("void-1", [] {});
  return exec.execute("order-1", [] { return Money{0}; }).cents == m.cents ? 0 : 1;
}
