// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The store fault matrix (issue: a lost reply is not a lost lease). For every store operation
// (claim, complete, fail, release, renew) and every fault of the FaultProxy, one call goes
// through the proxy; afterwards the caller's answer is compared with what the store really
// holds, read through a second store that does not pass the proxy:
//  - every call ends within the command timeout plus a margin (never blocks);
//  - a call that said "done" (acquired / true) really is done in the store;
//  - a call that failed with StoreError has an unknown outcome: the same call resent without
//    a fault must then say "done" (transitions are idempotent per token), never "lost";
//  - a request that arrives late (stall) never changes a record someone else holds since;
//  - through the executor: a fault on the complete never makes the caller lose a recorded
//    result, and the operation never runs twice while its result is stored.
//
// Harness contract: `proxied()` is a store reaching the server through `proxy()` with one
// pooled connection and a command timeout of `timeout()`; `truth()` reaches it directly;
// `warm()` makes the proxied store's connection ready for every operation (so the armed fault
// hits the operation's own request, not a connection setup).

#include <idempotency/errors.hpp>
#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/store.hpp>

#include "support/catch.hpp"
#include "support/fault_proxy.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <thread>

namespace idempotency::test {

inline constexpr Fault all_faults[] = {Fault::delay_reply, Fault::drop_reply, Fault::reset_before,
                                       Fault::stall};

enum class Op { claim, complete, fail, release, renew };
inline const char* to_string(Op o) noexcept {
  switch (o) {
    case Op::claim: return "claim";
    case Op::complete: return "complete";
    case Op::fail: return "fail";
    case Op::release: return "release";
    case Op::renew: return "renew";
  }
  return "?";
}

/// What the caller was told: `done` (acquired / true), `refused` (false / not acquired), or
/// `store_error` (outcome unknown).
enum class Told { done, refused, store_error };

/// `requests`: how many consecutive requests each fault takes. 1: the store's own resend (on
/// a new connection) gets through; 2: it meets the fault too, so the caller sees StoreError
/// and its own resend must find the effect.
template <class Harness>
void run_store_fault_matrix(Harness& h, const std::string& key_prefix, int requests) {
  using namespace std::chrono_literals;
  using Ms = std::chrono::milliseconds;
  auto& proxied = h.proxied();
  auto& truth = h.truth();
  const Ms timeout = h.timeout();
  const Ms late = 3 * timeout; // delay_reply / stall: past the command timeout
  // every call ends within this (a resend and its reconnect included)
  const Ms bound = requests * timeout + 3s;
  const Ms lease = 60s;
  int n = 0;
  for (const Fault fault : all_faults) {
    for (const Op op : {Op::claim, Op::complete, Op::fail, Op::release, Op::renew}) {
      const std::string key =
          key_prefix + to_string(fault) + "/" + to_string(op) + "/" + std::to_string(n++);
      INFO("fault " << to_string(fault) << " on " << to_string(op) << ", key " << key);
      Token held{};
      if (op != Op::claim) {
        const ClaimResult c = truth.claim(key, "fp", op == Op::renew ? Ms(5s) : lease);
        REQUIRE(c.acquired());
        held = c.token;
      }
      h.warm();
      h.proxy().arm(fault, late, requests);
      Told told = Told::store_error;
      Token acquired{};
      const auto t0 = std::chrono::steady_clock::now();
      const auto call = [&]() -> Told {
        switch (op) {
          case Op::claim: {
            const ClaimResult r = proxied.claim(key, "fp", lease);
            acquired = r.token;
            return r.acquired() ? Told::done : Told::refused;
          }
          case Op::complete:
            return proxied.complete(key, held, "result", 1h) ? Told::done : Told::refused;
          case Op::fail: return proxied.fail(key, held, "failure", 1h) ? Told::done : Told::refused;
          case Op::release: return proxied.release(key, held) ? Told::done : Told::refused;
          case Op::renew: return proxied.renew(key, held, 10min) ? Told::done : Told::refused;
        }
        return Told::refused;
      };
      try {
        told = call();
      } catch (const StoreError&) {
        told = Told::store_error;
      }
      const auto elapsed = std::chrono::steady_clock::now() - t0;
      h.proxy().disarm(); // a store that did not resend leaves the second request armed
      CHECK(h.proxy().fired());
      CHECK(elapsed < bound);
      // a fault never turns into "refused": nobody else touched the key
      CHECK(told != Told::refused);
      // outcome unknown: the resend (no fault now) must find its own effect or make it
      if (told == Told::store_error && op != Op::claim) {
        h.warm();
        try {
          told = call();
        } catch (const StoreError& e) {
          FAIL("the resend after the fault failed too: " << e.what());
        }
        if (op == Op::release) {
          // a lost release reply: the resend finds nothing to delete (released or not, the
          // key is free now); false is the honest answer, true is fine too
          told = Told::done;
        }
        CHECK(told == Told::done);
      }
      // compare with what the store really holds
      const ClaimResult now = truth.claim(key, "fp", lease);
      switch (op) {
        case Op::claim:
          if (told == Told::done) {
            // told acquired: the store holds exactly that token
            CHECK(now.status == ClaimStatus::in_progress);
            CHECK(proxied.complete(key, acquired, "mine", 1h));
          }
          break;
        case Op::complete:
          CHECK(now.status == ClaimStatus::completed);
          CHECK(now.payload == "result");
          break;
        case Op::fail:
          CHECK(now.status == ClaimStatus::failed);
          CHECK(now.payload == "failure");
          break;
        case Op::release:
          CHECK(now.acquired()); // free again
          break;
        case Op::renew:
          CHECK(now.status == ClaimStatus::in_progress);
          CHECK(now.remaining > Ms(5min));
          break;
      }
      if (fault == Fault::stall) {
        // the stalled request arrives late: it must not change what the store holds now
        std::this_thread::sleep_for(late + 200ms);
        const ClaimResult after = truth.claim(key, "fp", lease);
        if (op == Op::release) {
          CHECK(after.status == ClaimStatus::in_progress); // the new holder (`now`) keeps it
          CHECK(truth.complete(key, now.token, "new holder", 1h));
        } else if (op == Op::complete || op == Op::fail) {
          CHECK(after.status == now.status);
          CHECK(after.payload == now.payload);
        }
      }
    }
  }
}

/// Through the executor: a fault on the complete (armed from inside the operation, i.e.
/// between claim and complete) never loses a recorded result nor runs the operation twice.
template <class Harness>
void run_executor_fault_matrix(Harness& h, const std::string& key_prefix, int requests) {
  using namespace std::chrono_literals;
  using Store = std::remove_reference_t<decltype(h.proxied())>;
  Options o;
  o.lease = 30s;
  o.completion_retry.initial_backoff = 10ms;
  o.completion_retry.max_backoff = 50ms;
  IdempotencyExecutor<Store> exec{h.proxied(), o};
  int n = 0;
  for (const Fault fault : all_faults) {
    const std::string key = key_prefix + "exec/" + to_string(fault) + "/" + std::to_string(n++);
    INFO("fault " << to_string(fault) << " on the complete, key " << key);
    int runs = 0;
    const auto op = [&] {
      ++runs;
      h.proxy().arm(fault, 3 * h.timeout(), requests);
      return std::string("receipt-") + to_string(fault);
    };
    h.warm();
    std::optional<std::string> first;
    try {
      first = exec.execute(key, op);
    } catch (const ResultNotRecordedError& e) {
      FAIL("the result was called not recorded: " << e.what());
    } catch (const LeaseLostError& e) {
      FAIL("a landed result was called lease lost: " << e.what());
    }
    h.proxy().disarm();
    CHECK(h.proxy().fired());
    REQUIRE(first.has_value());
    CHECK(*first == std::string("receipt-") + to_string(fault));
    const ClaimResult stored = h.truth().claim(key, "", 1min);
    CHECK(stored.status == ClaimStatus::completed);
    h.warm();
    const auto again = exec.execute_outcome(key, op);
    CHECK(again.replayed);
    CHECK(again.value == *first);
    CHECK(runs == 1);
  }
}

} // namespace idempotency::test
