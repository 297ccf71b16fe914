// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// The README's first example: a charge inside a retry loop happens once.
#include <idempotency/idempotency.hpp>

#include <fmt/format.h>

#include <stdexcept>
#include <string>

struct Receipt {
  std::string id;
  long amount_cents = 0;
};
// results are stored as JSON: give your type to_json / from_json (nlohmann's ADL hooks)
void to_json(nlohmann::json& j, const Receipt& r) {
  j = {{"id", r.id}, {"amount", r.amount_cents}};
}
void from_json(const nlohmann::json& j, Receipt& r) {
  j.at("id").get_to(r.id);
  j.at("amount").get_to(r.amount_cents);
}

int main() {
  using namespace std::chrono_literals;
  idempotency::InMemoryStore store;
  idempotency::IdempotencyExecutor exec{store, {.result_ttl = 1h, .lease = 60s}};

  int charges = 0;
  auto charge = [&] {
    ++charges;
    return Receipt{"rcpt-" + std::to_string(charges), 4200};
  };

  // the client retries: the first response is "lost", so it sends the same request again
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto [receipt, replayed] = exec.execute_outcome("order-1001", charge);
    fmt::print("attempt {}: receipt {} for {} cents ({})\n", attempt, receipt.id,
               receipt.amount_cents, replayed ? "replayed" : "charged");
  }
  fmt::print("card charged {} time(s)\n", charges);
  return charges == 1 ? 0 : 1;
}
