// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// Must NOT compile: the result type converts to JSON, but the TU includes executor.hpp and not
// json_codec.hpp. The test passes when the one static_assert names both remedies.
#include <idempotency/executor.hpp>
#include <idempotency/stores/in_memory_store.hpp>

#include <nlohmann/json.hpp>

struct Receipt {
  int cents = 0;
};
void to_json(nlohmann::json& j, const Receipt& r) { j = r.cents; }
void from_json(const nlohmann::json& j, Receipt& r) { r.cents = j.get<int>(); }

int main() {
  idempotency::InMemoryStore store;
  idempotency::IdempotencyExecutor exec{store};
  return exec.execute("k", [] { return Receipt{42}; }).cents;
}
