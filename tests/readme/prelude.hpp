// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// What the README's snippets assume without showing: a store, an executor, a request, a
// payments client. Declared only (the README blocks are compiled, never run).
#include <idempotency/http.hpp> // the HTTP section (not in the umbrella header)
#include <idempotency/idempotency.hpp>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

struct Receipt {
  std::string id;
  long amount_cents = 0;
};
inline void to_json(nlohmann::json& j, const Receipt& r) {
  j = {{"id", r.id}, {"amount", r.amount_cents}};
}
inline void from_json(const nlohmann::json& j, Receipt& r) {
  j.at("id").get_to(r.id);
  j.at("amount").get_to(r.amount_cents);
}
struct Order {
  std::string id;
  long cents = 0;
};
struct Payments {
  Receipt charge(const Order& o);
};
struct CardDeclined : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct Chunk {};
using MyStore = idempotency::InMemoryStore; // "your store" in the conformance snippet

extern idempotency::InMemoryStore store;
extern idempotency::IdempotencyExecutor<idempotency::InMemoryStore> exec;
extern Payments payments;
extern Order order;
extern std::string request_id, key, job_id, order_id;
extern long amount;
extern std::vector<Chunk> chunks;
extern nlohmann::json json_body;
void process(const Chunk&);
int summary();
void use(const Receipt&);
inline auto fn = [](const Order& o) { return Receipt{o.id, o.cents}; };
