// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// Allocations per replay (issue 16, target 3): the executor's replay allocates no more than the
// store's own answer plus the decode. A binary of its own, because it replaces the global
// operator new (allocation_counter.cpp); the sanitizer presets, which replace it themselves,
// do not build it.
#include <idempotency/json_codec.hpp>

#include <idempotency/executor.hpp>
#include <idempotency/stores/in_memory_store.hpp>

#include "allocation_counter.hpp"
#include "receipt_codec.hpp"
#include "support/catch.hpp"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

using namespace idempotency;

TEST_CASE("the allocation counter counts this thread's allocations", "[allocations]") {
  const double per_call = idempotency_test::allocations_per_call(10, [](std::size_t) {
    auto p = std::make_unique<std::string>(100, 'x');
    CHECK(p->size() == 100);
  });
  CHECK(per_call >= 2.0); // the string object and its 100-byte buffer
}

TEST_CASE("a replay allocates nothing beyond the store's answer and the decoded value",
          "[allocations]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  std::vector<std::string> keys;
  for (int i = 0; i < 64; ++i) keys.push_back("replay-key-longer-than-sso-" + std::to_string(i));
  for (const auto& k : keys)
    (void)exec.execute(k, [] {
      return custom_codec_test::Receipt{7, "captured, and more than 16 bytes", 12345};
    });
  const auto lease = exec.options().lease;
  std::int64_t sum = 0;
  const auto replay = [&](std::size_t i) {
    sum += exec.execute(keys[i % keys.size()], [] { return custom_codec_test::Receipt{}; }).id;
  };
  const auto floor = [&](std::size_t i) {
    const ClaimResult c = store.claim(keys[i % keys.size()], "", lease);
    sum += Codec<custom_codec_test::Receipt>::decode(c.payload).id;
  };
  replay(0); // warm up (thread-locals, the store's first touch)
  floor(0);
  const double executor = idempotency_test::allocations_per_call(1000, replay);
  const double baseline = idempotency_test::allocations_per_call(1000, floor);
  CAPTURE(executor, baseline);
  CHECK(executor <= baseline);
  CHECK(sum == 7 * 2002);

  // a scoped executor too (the scope prefix and a long key still fit on the stack)
  IdempotencyExecutor scoped{store,
                             {.scope = {.tenant = std::string(64, 't'),
                                        .operation = std::string(64, 'o'),
                                        .version = std::string(64, 'v')}}};
  const std::string long_key(255, 'k');
  (void)scoped.execute(long_key, [] { return custom_codec_test::Receipt{1, "x", 1}; });
  const std::string skey = scoped.storage_key(long_key);
  const double scoped_replay = idempotency_test::allocations_per_call(100, [&](std::size_t) {
    sum += scoped.execute(long_key, [] { return custom_codec_test::Receipt{}; }).id;
  });
  const double scoped_floor = idempotency_test::allocations_per_call(100, [&](std::size_t) {
    sum += Codec<custom_codec_test::Receipt>::decode(store.claim(skey, "", lease).payload).id;
  });
  CHECK(scoped_replay <= scoped_floor);
}

namespace json_codec_test {
struct Receipt {
  std::int64_t id = 0;
  std::string status;
  std::int64_t amount_cents = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Receipt, id, status, amount_cents)
};
} // namespace json_codec_test

TEST_CASE("a JSON replay allocates no more than the store's claim and the decode",
          "[allocations]") {
  using json_codec_test::Receipt;
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  std::vector<std::string> keys;
  for (int i = 0; i < 64; ++i) keys.push_back("json-replay-key-" + std::to_string(i)); // >= 16
  for (const auto& k : keys) (void)exec.execute(k, [] { return Receipt{7, "captured", 12345}; });
  const auto lease = exec.options().lease;
  std::int64_t sum = 0;
  const auto replay = [&](std::size_t i) {
    sum += exec.execute(keys[i % keys.size()], [] { return Receipt{}; }).id;
  };
  const auto floor = [&](std::size_t i) {
    const ClaimResult c = store.claim(keys[i % keys.size()], "", lease);
    sum += Codec<Receipt>::decode(c.payload).id;
  };
  replay(0);
  floor(0);
  const double executor = idempotency_test::allocations_per_call(1000, replay);
  const double baseline = idempotency_test::allocations_per_call(1000, floor);
  CAPTURE(executor, baseline);
  CHECK(executor <= baseline);
  CHECK(sum == 7 * 2002);
}
