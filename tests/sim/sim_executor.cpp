// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// Deterministic simulation of the real IdempotencyExecutor. Each schedule (one seed) draws
// 2-4 logical callers, 1-3 keys, policies, a lease and a TTL; the callers call the executor
// (execute_outcome, or begin / renew / commit) on real threads that run one at a time
// (sim::Scheduler), over an InMemoryStore on a SimClock behind a FaultInjectingStore that
// loses requests and replies, delays and duplicates them. At every store call a caller may be
// switched out, the clock may jump, and (per mode) a caller may die. Every history is checked
// (idempotency/testing/history_checker.hpp).
//
//   safe mode:   leases never pass while a holder runs, callers die only where no result is
//                in flight: P1-P4 must hold (the side effect at most once per record life);
//   unsafe mode: leases pass mid-run, callers die anywhere (between effect and complete too):
//                P1-P3, L, T and R must hold; P4 may not (the README's stated limit).
//
// Usage: sim_executor [--schedules N] [--first SEED] [--seed SEED --trace]
// Env IDEMPOTENCY_SIM_SCHEDULES overrides N. A failing seed is printed; --seed replays it.

#include "support/sim_scheduler.hpp"

#include <idempotency/idempotency.hpp>
#include <idempotency/testing/fault_injecting_store.hpp>
#include <idempotency/testing/history_checker.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using idempotency::testing::Told;

struct SimFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct SimCrash : std::runtime_error {
  using std::runtime_error::runtime_error;
};

using FaultInjected = idempotency::testing::FaultInjectingStore<idempotency::InMemoryStore>;

struct Result {
  std::vector<idempotency::testing::Violation> violations;
  std::string trace; // deterministic: no tokens, no wall times
  std::size_t calls = 0;
  std::size_t store_calls = 0;
  std::size_t effects = 0;
  bool safe = false;
  bool limit_seen = false; // unsafe mode: the checker found P4 broken (the stated limit)
};

std::string trace_of(const idempotency::testing::History& h) {
  std::string out;
  for (const auto& c : h.store_calls())
    out += std::to_string(c.start_seq) + " " + std::string(to_string(c.op)) + " c" +
           std::to_string(c.caller) + " " + c.key + (c.landed ? " landed" : " lost") +
           (c.ok ? " ok" : "") + " st" + std::to_string(static_cast<int>(c.status)) + " " +
           c.payload + " t=" +
           std::to_string(
               std::chrono::duration_cast<std::chrono::milliseconds>(c.start.time_since_epoch())
                   .count()) +
           "\n";
  for (const auto& e : h.effects())
    out += std::to_string(e.seq) + " effect c" + std::to_string(e.caller) + " " + e.key + " " +
           e.value + " t=" +
           std::to_string(
               std::chrono::duration_cast<std::chrono::milliseconds>(e.at.time_since_epoch())
                   .count()) +
           "\n";
  for (const auto& c : h.calls())
    out += std::to_string(c.start_seq) + " call c" + std::to_string(c.caller) + " " + c.key + " " +
           std::string(to_string(c.told)) + " " + c.value + "\n";
  return out;
}

Result simulate(std::uint64_t seed) {
  using namespace idempotency;
  sim::Scheduler sched(seed);
  Result res;
  res.safe = sched.chance(0.5);
  const bool safe = res.safe;
  const int callers = static_cast<int>(sched.uniform(2, 4));
  const int keys = static_cast<int>(sched.uniform(1, 3));
  const int calls_each = static_cast<int>(sched.uniform(1, 4));
  const auto lease = safe ? std::chrono::milliseconds(std::chrono::hours(24))
                          : std::chrono::milliseconds(sched.uniform(1000, 3000));
  const auto ttl = std::chrono::milliseconds(sched.uniform(500, 10000));
  const double p_fault = sched.chance(0.3) ? 0.0 : 0.08;
  const double p_jump = static_cast<double>(sched.uniform(0, 3)) * 0.05;
  const double p_crash = sched.chance(0.5) ? 0.0 : 0.05;
  const double p_throw = sched.chance(0.5) ? 0.0 : 0.15;
  const bool remember = sched.chance(0.3);
  const bool classify = sched.chance(0.3);

  testing::SimClock clock;
  InMemoryStore inner{{.shards = 1, .clock = clock.source()}};
  testing::History history(clock.source());
  std::vector<char> dead(static_cast<std::size_t>(callers), 0);
  const auto me = [] { return static_cast<std::size_t>(testing::this_caller()); };
  const auto jump = [&] {
    if (!sched.chance(p_jump)) return;
    // safe mode: the clock jumps only past TTLs (leases are a day); unsafe: past leases too
    const auto span = safe ? ttl * 2 : std::max(ttl, lease) * 2;
    clock.advance(std::chrono::milliseconds(sched.uniform(1, span.count())));
  };
  const auto die_here = [&](bool allowed) {
    if (!allowed || !sched.chance(p_crash)) return false;
    dead[me()] = 1;
    return true;
  };

  testing::FaultOptions fo;
  fo.seed = seed ^ 0x9e3779b97f4a7c15ULL;
  fo.error_before = p_fault;
  fo.error_after = p_fault;
  fo.delay = p_fault;
  fo.duplicate = p_fault;
  fo.max_delay = 50ms;
  fo.wait = [&](std::chrono::milliseconds d) { clock.advance(d); };
  fo.history = &history;
  fo.hook = [&](testing::StoreOp op, std::string_view, bool after) {
    if (dead[me()]) throw StoreError("sim", std::string(to_string(op)), "the caller died");
    sched.yield();
    jump();
    // safe: die only before a claim is sent or after a complete/fail landed (nothing in
    // flight); unsafe: anywhere, also after a claim landed (its holder never finishes)
    const bool nothing_in_flight =
        (!after && op == testing::StoreOp::claim) ||
        (after && (op == testing::StoreOp::complete || op == testing::StoreOp::fail));
    if (die_here(!safe || nothing_in_flight))
      throw StoreError("sim", std::string(to_string(op)), "the caller died");
  };
  FaultInjected store(inner, fo);

  Options o;
  o.lease = lease;
  o.result_ttl = ttl;
  o.on_exception = remember ? OnException::remember : OnException::release;
  o.completion_retry.max_attempts = static_cast<int>(sched.uniform(1, 3));
  o.completion_retry.initial_backoff = 0ms;
  o.completion_retry.max_backoff = 0ms;
  if (classify)
    o.classify_result = [](const nlohmann::json& j) {
      const auto s = j.get<std::string>();
      return s.back() % 3 == 0 ? OnResult::release : OnResult::record;
    };
  IdempotencyExecutor exec(store, o);

  sched.run(callers, [&](int c) {
    int n = 0;
    for (int k = 0; k < calls_each && !dead[me()]; ++k) {
      const std::string key = "k" + std::to_string(sched.uniform(0, keys - 1));
      std::string produced;
      // the operation: maybe renews first (two-phase), maybe fails or dies before its effect,
      // and (unsafe mode) may die between its effect and complete
      const auto op = [&](OwnerGuard<FaultInjected, std::string>* guard) -> std::string {
        sched.yield();
        jump();
        if (guard != nullptr && sched.chance(0.3) && !guard->renew())
          throw SimFailure("the lease was lost before the effect");
        if (sched.chance(p_throw)) throw SimFailure("the operation failed before its effect");
        if (die_here(true)) throw SimCrash("the caller died before its effect");
        const std::string v = "c" + std::to_string(c) + "-" + std::to_string(n++);
        history.effect(key, v);
        produced = v;
        sched.yield();
        jump();
        die_here(!safe);
        return v;
      };
      const bool two_phase = sched.chance(0.4);
      auto call = record_call(
          history, key, produced,
          [&]() -> Outcome<std::string> {
            if (!two_phase) return exec.execute_outcome(key, [&] { return op(nullptr); });
            auto a = exec.begin<std::string>(key);
            if (a.replayed()) return {a.value(), true, a.expires_in()};
            std::string v = op(&a.guard()); // a throw releases (the guard's destructor)
            a.guard().commit(v);
            return {v, false, o.result_ttl};
          },
          remember && !two_phase ? Told::failed : Told::released);
      if (dead[me()]) call.told = Told::crashed;
      history.add(std::move(call));
    }
  });

  testing::CheckOptions co;
  co.ttl = ttl;
  co.at_most_once = safe;
  res.violations = testing::check_history(history, co);
  if (!safe) {
    // the stated limit must be reachable here, or this mode (and the P4 check) is blind
    co.at_most_once = true;
    for (const auto& v : testing::check_history(history, co))
      if (v.property == "P4") res.limit_seen = true;
  }
  res.trace = "ttl " + std::to_string(ttl.count()) + " lease " + std::to_string(lease.count()) +
              "\n" + trace_of(history);
  res.calls = history.calls().size();
  res.store_calls = history.store_calls().size();
  res.effects = history.effects().size();
  return res;
}

} // namespace

int main(int argc, char** argv) {
  std::uint64_t schedules = 2000;
  std::uint64_t first = 1;
  long long only = -1;
  bool trace = false;
  for (int i = 1; i < argc; ++i) {
    const auto arg = [&] { return i + 1 < argc ? std::strtoull(argv[++i], nullptr, 10) : 0ULL; };
    if (std::strcmp(argv[i], "--schedules") == 0)
      schedules = arg();
    else if (std::strcmp(argv[i], "--first") == 0)
      first = arg();
    else if (std::strcmp(argv[i], "--seed") == 0)
      only = static_cast<long long>(arg());
    else if (std::strcmp(argv[i], "--trace") == 0)
      trace = true;
    else {
      std::fprintf(stderr, "usage: %s [--schedules N] [--first SEED] [--seed SEED --trace]\n",
                   argv[0]);
      return 2;
    }
  }
  if (const char* env = std::getenv("IDEMPOTENCY_SIM_SCHEDULES"))
    schedules = std::strtoull(env, nullptr, 10);

  if (only >= 0) {
    const Result a = simulate(static_cast<std::uint64_t>(only));
    const Result b = simulate(static_cast<std::uint64_t>(only));
    if (trace) std::printf("%s", a.trace.c_str());
    std::printf(
        "seed %lld (%s mode): %zu calls, %zu store calls, %zu effects, %zu violations%s%s\n", only,
        a.safe ? "safe" : "unsafe", a.calls, a.store_calls, a.effects, a.violations.size(),
        a.limit_seen ? "; a second run (the stated limit)" : "",
        a.trace == b.trace ? "; replayed identically" : "");
    std::printf("%s", idempotency::testing::describe(a.violations).c_str());
    if (a.trace != b.trace) {
      std::printf("NOT DETERMINISTIC: the second run of the seed differed\n");
      return 1;
    }
    return a.violations.empty() ? 0 : 1;
  }

  std::size_t calls = 0, store_calls = 0, effects = 0, safe = 0, failures = 0, limit = 0;
  for (std::uint64_t s = first; s < first + schedules; ++s) {
    const Result r = simulate(s);
    calls += r.calls;
    store_calls += r.store_calls;
    effects += r.effects;
    safe += r.safe ? 1 : 0;
    limit += r.limit_seen ? 1 : 0;
    if (!r.violations.empty()) {
      if (++failures <= 5)
        std::printf("FAILED seed %llu (%s mode); replay: %s --seed %llu --trace\n%s",
                    static_cast<unsigned long long>(s), r.safe ? "safe" : "unsafe", argv[0],
                    static_cast<unsigned long long>(s),
                    idempotency::testing::describe(r.violations, 5).c_str());
    }
    // every 1000th seed is run twice: the same seed must give the same history
    if (s % 1000 == 0 && simulate(s).trace != r.trace) {
      std::printf("NOT DETERMINISTIC: seed %llu gave two different histories\n",
                  static_cast<unsigned long long>(s));
      ++failures;
    }
  }
  std::printf(
      "simulated %llu schedules (%zu safe, %zu unsafe): %zu executor calls, %zu store "
      "calls, %zu effects checked; %zu failing schedule(s); the stated limit (a second "
      "run after a lease passed or a caller died mid-run) reached in %zu unsafe "
      "schedule(s)\n",
      static_cast<unsigned long long>(schedules), safe, schedules - safe, calls, store_calls,
      effects, failures, limit);
  if (schedules >= 1000 && limit == 0) {
    std::printf("the unsafe mode never reached a second run: the simulation has gone blind\n");
    ++failures;
  }
  return failures == 0 ? 0 : 1;
}
