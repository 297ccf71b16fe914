// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// The body of the strict-warnings consumer (strict_warnings.cmake puts an #include of every
// public header above it): a user's code, compiled with the user's warning flags, that makes
// the executor's templates instantiate.
#include <chrono>
#include <string>

namespace strict_consumer {
struct Receipt {
  std::string id;
  long cents = 0;
};
inline void to_json(nlohmann::json& j, const Receipt& r) { j = {{"id", r.id}, {"cents", r.cents}}; }
inline void from_json(const nlohmann::json& j, Receipt& r) {
  j.at("id").get_to(r.id);
  j.at("cents").get_to(r.cents);
}

inline int use() {
  using namespace std::chrono_literals;
  idempotency::InMemoryStore store;
  idempotency::IdempotencyExecutor exec{store, {.lease = 30s, .renew_lease = true}};
  int runs = exec.execute("plain", [] { return 1; });
  runs += exec.execute("stoppable",
                       [](idempotency::stop_token st) { return st.stop_requested() ? 0 : 1; });
  const Receipt r = exec.execute("json", [] { return Receipt{"r-1", 250}; });
  auto attempt = exec.begin<int>("two-phase");
  if (!attempt.replayed()) attempt.guard().commit(2);
  return runs + static_cast<int>(r.cents);
}
} // namespace strict_consumer
