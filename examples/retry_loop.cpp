// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// A retry loop with backoff around a flaky operation: many attempts, one execution.
//
// The store's connection flaps (the first two claims fail, the first completion fails) and
// the client, impatient, retries the whole request once more at the end. The charge runs
// exactly once; every attempt after it gets the same receipt.

#include <idempotency/idempotency.hpp>

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

using namespace std::chrono_literals;

namespace {

struct Receipt {
  std::string id;
  long amount_cents = 0;
};
void to_json(nlohmann::json& j, const Receipt& r) {
  j = {{"id", r.id}, {"amount_cents", r.amount_cents}};
}
void from_json(const nlohmann::json& j, Receipt& r) {
  j.at("id").get_to(r.id);
  j.at("amount_cents").get_to(r.amount_cents);
}

// An in-memory store behind a connection that fails the first `claim_failures` claims and the
// first `complete_failures` completions, as a network to Redis or PostgreSQL sometimes does.
class FlakyStore {
 public:
  FlakyStore(int claim_failures, int complete_failures)
      : claim_failures_(claim_failures), complete_failures_(complete_failures) {}

  [[nodiscard]] std::string_view name() const noexcept { return "FlakyStore"; }

  idempotency::ClaimResult claim(std::string_view k, std::string_view fp,
                                 std::chrono::milliseconds lease) {
    if (claim_failures_-- > 0) {
      fmt::print("    store: claim failed (connection reset)\n");
      throw idempotency::StoreError("FlakyStore", "claim", "connection reset");
    }
    return inner_.claim(k, fp, lease);
  }
  bool complete(std::string_view k, const idempotency::Token& t, std::string_view p,
                std::chrono::milliseconds ttl) {
    if (complete_failures_-- > 0) {
      fmt::print("    store: complete failed (timeout); the executor retries it\n");
      throw idempotency::StoreError("FlakyStore", "complete", "timeout");
    }
    return inner_.complete(k, t, p, ttl);
  }
  bool fail(std::string_view k, const idempotency::Token& t, std::string_view p,
            std::chrono::milliseconds ttl) {
    return inner_.fail(k, t, p, ttl);
  }
  bool release(std::string_view k, const idempotency::Token& t) { return inner_.release(k, t); }
  bool renew(std::string_view k, const idempotency::Token& t, std::chrono::milliseconds lease) {
    return inner_.renew(k, t, lease);
  }

 private:
  idempotency::InMemoryStore inner_;
  int claim_failures_;
  int complete_failures_;
};
static_assert(idempotency::Store<FlakyStore>);

} // namespace

int main() {
  FlakyStore store{2, 1};
  idempotency::CountersObserver counters;
  idempotency::IdempotencyExecutor exec{store,
                                        {.result_ttl = 1h,
                                         .lease = 60s,
                                         .completion_retry = {.initial_backoff = 10ms},
                                         .observer = &counters}};
  int charges = 0;
  auto charge = [&] {
    ++charges;
    fmt::print("    charging the card (execution #{})\n", charges);
    return Receipt{"rcpt-" + std::to_string(1000 + charges), 4999};
  };

  const idempotency::RetryPolicy policy{
      .max_attempts = 6,
      .initial_backoff = 20ms,
      .max_backoff = 200ms,
      .deadline = 10s,
      .on_retry = [](int attempt, std::chrono::milliseconds pause, const std::exception& e) {
        fmt::print("  attempt {} failed: {}\n  retrying in {} ms\n", attempt, e.what(),
                   pause.count());
      }};

  int attempts = 0;
  auto request = [&] {
    ++attempts;
    fmt::print("  attempt {}\n", attempts);
    return exec.execute_outcome("order-8812", charge);
  };

  fmt::print("request 1:\n");
  const auto first = idempotency::retry(policy, request);
  fmt::print("  -> {} ({} cents), {}\n", first.value.id, first.value.amount_cents,
             first.replayed ? "replayed" : "executed now");

  fmt::print("request 1 again (the client timed out and retried):\n");
  const auto again = idempotency::retry(policy, request);
  fmt::print("  -> {} ({} cents), {}\n", again.value.id, again.value.amount_cents,
             again.replayed ? "replayed" : "executed now");

  fmt::print("\n{} attempts, {} execution(s) of the charge, same receipt: {}\n", attempts, charges,
             first.value.id == again.value.id ? "yes" : "NO");
  fmt::print("\nmetrics:\n{}", idempotency::render_prometheus(counters));
  return charges == 1 && first.value.id == again.value.id ? 0 : 1;
}
