// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// Checks a recorded `History` against the guarantees (README, "Guarantees and honest limits"):
//
//   P1  at most one result is recorded per record life;
//   P2  every replay returns exactly the recorded result;
//   P3  a holder whose key was taken over (or forgotten) never changes the record;
//   L   no claim acquires a key while another holder's lease is certainly live, nor while a
//       recorded result certainly is;
//   T   what a caller was told matches the store: a recorded result is never called lost,
//       an unrecorded one never called recorded, a replay is a value some run produced;
//   R   nothing runs while its key's result is stored;
//   P4  (only with `at_most_once`) the side effect runs at most once per record life.
//
// Records of different threads overlap in time; a violation is reported only where the order
// is certain (one record ended before the other started, by `History::tick()`), and times are
// compared with `margin` of slack (the store's clock is not the recorder's). A simulation runs
// one thread at a time on one clock and can use a margin of zero.

#include <idempotency/testing/history.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace idempotency::testing {

struct CheckOptions {
  /// The `result_ttl` the executor calls used (for what callers were told).
  std::chrono::milliseconds ttl = std::chrono::hours(1);
  /// Slack when comparing the recorder's times with the store's durations.
  std::chrono::milliseconds margin{0};
  /// Also check P4: every holder finished within its lease and no caller died between its
  /// effect and `complete` (or the store is transactional).
  bool at_most_once = false;
  /// Turns a stored payload into the value the caller saw; default: the executor's encoding
  /// of a `std::string` result (a JSON string).
  std::function<std::string(std::string_view)> decode{};
};

struct Violation {
  std::string property; ///< "P1", "P2", "P3", "L", "T", "R" or "P4"
  std::string key;
  std::string what;
};

namespace detail {

inline std::string default_decode(std::string_view payload) {
  const auto j = nlohmann::json::parse(payload, nullptr, false);
  if (j.is_string()) return j.get<std::string>();
  return std::string(payload);
}

inline std::string describe(const StoreCall& c) {
  return std::string(to_string(c.op)) + " by caller " + std::to_string(c.caller) + " token " +
         c.token.to_hex().substr(0, 8) + " [" + std::to_string(c.start_seq) + ".." +
         std::to_string(c.end_seq) + "]";
}

inline bool finishes(const StoreCall& c) {
  return c.landed && c.ok &&
         (c.op == StoreOp::complete || c.op == StoreOp::fail || c.op == StoreOp::transaction);
}
inline bool transition(const StoreCall& c) {
  return c.landed && c.ok && c.op != StoreOp::claim && c.op != StoreOp::forget;
}

/// The checks of one key.
class KeyChecker {
 public:
  KeyChecker(const std::string& key, const CheckOptions& o, std::vector<Violation>& out)
      : key_(key), o_(o), out_(out) {}

  std::vector<const StoreCall*> store;
  std::vector<const Call*> calls;
  std::vector<const Effect*> effects;

  void run() {
    for (const StoreCall* c : store) {
      if (c->op == StoreOp::claim && c->landed && c->ok) acq_.push_back(c);
      if (finishes(*c)) all_fin_.push_back(c);
      // a finish resent by its token changes nothing (the TTL runs from the first landing)
      if (finishes(*c) && std::none_of(fin_.begin(), fin_.end(),
                                       [&](const StoreCall* f) { return f->token == c->token; }))
        fin_.push_back(c);
      if (c->op == StoreOp::forget && c->landed && c->ok) forgets_.push_back(c);
    }
    stale_holders();
    one_result_per_life();
    replays_match_store();
    exclusive_claims();
    callers_told_the_truth();
    no_run_while_stored();
    if (o_.at_most_once) at_most_once();
  }

 private:
  void report(const char* property, std::string what) {
    out_.push_back({property, key_, std::move(what)});
  }
  std::string value_of(const StoreCall& c) const {
    return o_.decode ? o_.decode(c.payload) : default_decode(c.payload);
  }
  // a forget certainly between the end of record `a` and the start of record `b`
  bool forgotten_between(std::uint64_t a_end, std::uint64_t b_start) const {
    return std::any_of(forgets_.begin(), forgets_.end(), [&](const StoreCall* f) {
      return f->start_seq > a_end && f->end_seq < b_start;
    });
  }
  const StoreCall* acquisition_of(const Token& t) const {
    for (const StoreCall* a : acq_)
      if (a->token == t) return a;
    return nullptr;
  }

  // P3: a transition succeeds only for the current holder.
  void stale_holders() {
    for (const StoreCall* t : store) {
      if (!transition(*t)) continue;
      const StoreCall* mine = acquisition_of(t->token);
      if (mine == nullptr) {
        report("P3", describe(*t) + " succeeded with a token no claim handed out");
        continue;
      }
      for (const StoreCall* a : acq_)
        if (a != mine && a->start_seq > mine->end_seq && a->end_seq < t->start_seq) {
          report("P3", describe(*t) + " succeeded after the key was taken over by " + describe(*a));
          break;
        }
      if (forgotten_between(mine->end_seq, t->start_seq))
        report("P3", describe(*t) + " succeeded after its record was forgotten");
    }
  }

  // P1: two results by different tokens, neither possibly recorded after the other expired.
  void one_result_per_life() {
    for (std::size_t i = 0; i < fin_.size(); ++i)
      for (std::size_t j = i + 1; j < fin_.size(); ++j) {
        const StoreCall& a = *fin_[i];
        const StoreCall& b = *fin_[j];
        if (a.token == b.token) continue;
        const bool b_after_a = b.end + o_.margin >= a.start + a.duration;
        const bool a_after_b = a.end + o_.margin >= b.start + b.duration;
        if (!b_after_a && !a_after_b &&
            !forgotten_between(std::min(a.end_seq, b.end_seq), std::max(a.start_seq, b.start_seq)))
          report("P1",
                 "two results recorded in one record life: " + describe(a) + " and " + describe(b));
      }
  }

  // P2: a claim that found a result returns one that may be the latest recorded.
  void replays_match_store() {
    for (const StoreCall* c : store) {
      if (c->op != StoreOp::claim || !c->landed) continue;
      if (c->status != ClaimStatus::completed && c->status != ClaimStatus::failed) continue;
      bool found = false;
      for (const StoreCall* f : all_fin_) {
        if (f->start_seq > c->end_seq) continue; // certainly after the claim
        const bool superseded = std::any_of(fin_.begin(), fin_.end(), [&](const StoreCall* g) {
          return g != f && g->token != f->token && g->start_seq > f->end_seq &&
                 g->end_seq < c->start_seq;
        });
        if (superseded) continue;
        const bool kind_matches = (c->status == ClaimStatus::failed) == (f->op == StoreOp::fail);
        if (kind_matches && f->payload == c->payload) found = true;
      }
      if (!found)
        report("P2", describe(*c) + " returned a " +
                         (c->status == ClaimStatus::failed ? "failure" : "result") +
                         " that is not the one recorded: '" + c->payload.substr(0, 64) + "'");
    }
  }

  // L: a claim acquires only when the previous holder's lease has passed (or it finished),
  // and never over a result still live.
  void exclusive_claims() {
    for (const StoreCall* b : acq_) {
      for (const StoreCall* a : acq_) {
        if (a == b || a->end_seq >= b->start_seq) continue;
        const bool finished = std::any_of(store.begin(), store.end(), [&](const StoreCall* t) {
          return transition(*t) && t->op != StoreOp::renew && t->token == a->token &&
                 t->start_seq < b->end_seq;
        });
        if (finished || forgotten_between(a->end_seq, b->start_seq)) continue;
        auto live_until = a->start + a->duration;
        for (const StoreCall* r : store)
          if (r->op == StoreOp::renew && r->landed && r->ok && r->token == a->token &&
              r->end_seq < b->start_seq)
            live_until = std::max(live_until, r->start + r->duration);
        if (b->end + o_.margin < live_until)
          report("L", describe(*b) + " acquired while the lease of " + describe(*a) + " was live");
      }
      for (const StoreCall* f : fin_)
        if (f->end_seq < b->start_seq && b->end + o_.margin < f->start + f->duration &&
            !forgotten_between(f->end_seq, b->start_seq))
          report("L", describe(*b) + " acquired while the result of " + describe(*f) + " was live");
    }
  }

  // T: what callers were told against what the store holds and what ran.
  void callers_told_the_truth() {
    std::map<std::string, const Effect*> produced;
    for (const Effect* e : effects) produced.emplace(e->value, e);
    for (const Call* c : calls) {
      if (c->told == Told::replayed) {
        if (!produced.count(c->value))
          report("T", "caller " + std::to_string(c->caller) + " was replayed '" + c->value +
                          "', which no run produced");
        for (const Call* p : calls)
          if (p != c && p->value == c->value && !p->value.empty() &&
              (p->told == Told::lease_lost || p->told == Told::released))
            report("T", "caller " + std::to_string(c->caller) + " was replayed '" + c->value +
                            "', whose own caller was told it was not recorded (" +
                            std::string(to_string(p->told)) + ")");
      }
      if (store.empty() || c->value.empty()) continue;
      const StoreCall* landed = nullptr;
      for (const StoreCall* f : all_fin_)
        if (f->op != StoreOp::fail && value_of(*f) == c->value) landed = f;
      if (c->told == Told::recorded && landed == nullptr)
        report("T", "caller " + std::to_string(c->caller) + " was told '" + c->value +
                        "' was recorded; the store never recorded it");
      if ((c->told == Told::lease_lost || c->told == Told::released) && landed != nullptr)
        report("T", "caller " + std::to_string(c->caller) + " was told '" + c->value + "' was " +
                        std::string(to_string(c->told)) + "; the store recorded it");
    }
  }

  // where the call that ran `e` began (a stale holder's effect belongs to an older claim)
  std::uint64_t call_start(const Effect& e) const {
    for (const Call* c : calls)
      if (c->caller == e.caller && c->start_seq < e.seq && e.seq < c->end_seq) return c->start_seq;
    return e.seq;
  }

  // R: a call that began after a result was recorded ran while that result certainly was
  // still live.
  void no_run_while_stored() {
    for (const Effect* e : effects) {
      const std::uint64_t begun = call_start(*e);
      for (const StoreCall* f : fin_)
        if (f->end_seq < begun && e->at + o_.margin < f->start + f->duration &&
            !forgotten_between(f->end_seq, e->seq))
          report("R", "caller " + std::to_string(e->caller) + " ran '" + e->value +
                          "' while the result of " + describe(*f) + " was stored");
      for (const Call* c : calls)
        if (c->told == Told::recorded && c->end_seq < begun &&
            e->at + o_.margin < c->start + o_.ttl && !forgotten_between(c->end_seq, e->seq))
          report("R", "caller " + std::to_string(e->caller) + " ran '" + e->value +
                          "' after caller " + std::to_string(c->caller) + " was told '" + c->value +
                          "' was recorded");
    }
    for (std::size_t i = 0; i < calls.size(); ++i)
      for (std::size_t j = i + 1; j < calls.size(); ++j) {
        const Call& a = *calls[i];
        const Call& b = *calls[j];
        if (a.told != Told::recorded || b.told != Told::recorded || a.value == b.value) continue;
        if (b.end + o_.margin < a.start + o_.ttl && a.end + o_.margin < b.start + o_.ttl &&
            !forgotten_between(std::min(a.end_seq, b.end_seq), std::max(a.start_seq, b.start_seq)))
          report("P1", "callers " + std::to_string(a.caller) + " and " + std::to_string(b.caller) +
                           " were both told their result was recorded: '" + a.value + "', '" +
                           b.value + "'");
      }
  }

  // P4: a second effect only after the first run's claim was released or its result expired.
  void at_most_once() {
    for (std::size_t i = 1; i < effects.size(); ++i) {
      const Effect& first = *effects[i - 1];
      const Effect& second = *effects[i];
      const bool released = std::any_of(calls.begin(), calls.end(), [&](const Call* c) {
        return c->told == Told::released && c->value == first.value;
      });
      // a claim released in between (no result recorded) ends the life as well
      const bool released_in_store =
          std::any_of(store.begin(), store.end(), [&](const StoreCall* r) {
            return r->op == StoreOp::release && r->landed && r->ok && r->start_seq > first.seq &&
                   r->start_seq < second.seq;
          });
      if (released || released_in_store || forgotten_between(first.seq, second.seq)) continue;
      bool expired = false;
      for (const StoreCall* f : all_fin_)
        if (f->start_seq < second.seq && value_of(*f) == first.value &&
            second.at + o_.margin >= f->start + f->duration)
          expired = true;
      if (!expired)
        report("P4", "the operation ran twice in one record life: '" + first.value + "' (caller " +
                         std::to_string(first.caller) + ") then '" + second.value + "' (caller " +
                         std::to_string(second.caller) + ")");
    }
  }

  const std::string& key_;
  const CheckOptions& o_;
  std::vector<Violation>& out_;
  // fin_: the first finish of each token (where a record life's TTL starts); all_fin_: every
  // landed finish (two copies of one token's finish may race: either payload may be the one)
  std::vector<const StoreCall*> acq_, fin_, all_fin_, forgets_;
};

} // namespace detail

/// Every violation found in `h`, key by key (empty: the history is consistent).
[[nodiscard]] inline std::vector<Violation> check_history(const History& h,
                                                          const CheckOptions& o = {}) {
  const auto store = h.store_calls();
  const auto calls = h.calls();
  const auto effects = h.effects();
  std::map<std::string, std::vector<const StoreCall*>> s;
  std::map<std::string, std::vector<const Call*>> c;
  std::map<std::string, std::vector<const Effect*>> e;
  for (const auto& x : store) s[x.key].push_back(&x);
  for (const auto& x : calls) c[x.key].push_back(&x);
  for (const auto& x : effects) e[x.key].push_back(&x);
  std::vector<std::string> keys;
  for (const auto& [k, v] : s) keys.push_back(k);
  for (const auto& [k, v] : c) keys.push_back(k);
  for (const auto& [k, v] : e) keys.push_back(k);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::vector<Violation> out;
  const auto by_start = [](const auto* a, const auto* b) { return a->start_seq < b->start_seq; };
  for (const std::string& k : keys) {
    detail::KeyChecker kc(k, o, out);
    kc.store = s[k];
    kc.calls = c[k];
    kc.effects = e[k];
    std::sort(kc.store.begin(), kc.store.end(), by_start);
    std::sort(kc.calls.begin(), kc.calls.end(), by_start);
    std::sort(kc.effects.begin(), kc.effects.end(),
              [](const Effect* a, const Effect* b) { return a->seq < b->seq; });
    kc.run();
  }
  return out;
}

/// A printable summary of `violations` (at most `limit` lines).
[[nodiscard]] inline std::string describe(const std::vector<Violation>& violations,
                                          std::size_t limit = 20) {
  std::string out;
  for (std::size_t i = 0; i < violations.size() && i < limit; ++i)
    out +=
        violations[i].property + " key '" + violations[i].key + "': " + violations[i].what + "\n";
  if (violations.size() > limit)
    out += "… and " + std::to_string(violations.size() - limit) + " more\n";
  return out;
}

} // namespace idempotency::testing
