// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// A user-written store: the smallest thing that satisfies idempotency::Store. One std::map
// behind one mutex; every operation is one critical section, which is what makes the claim
// atomic. tests/core/test_custom_store_example.cpp runs the conformance suite against it.

#include <idempotency/store.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>

namespace example {

class MapStore {
 public:
  using clock_fn = std::function<std::chrono::steady_clock::time_point()>;

  explicit MapStore(clock_fn clock = {}) : clock_(std::move(clock)) {}

  std::string_view name() const { return "MapStore"; }

  idempotency::ClaimResult claim(std::string_view key, std::string_view fingerprint,
                                 std::chrono::milliseconds lease) {
    std::lock_guard lock(mutex_);
    const auto now = this->now();
    auto it = records_.find(key);
    if (it != records_.end()) {
      Record& r = it->second;
      const bool in_progress = r.status == idempotency::ClaimStatus::in_progress;
      const auto until = in_progress ? r.lease_until : r.expires_at;
      if (until > now) { // live: return it as it is
        idempotency::ClaimResult out;
        out.status = r.status;
        out.fingerprint = r.fingerprint;
        out.payload = r.payload;
        out.remaining = std::chrono::ceil<std::chrono::milliseconds>(until - now);
        return out;
      }
      const bool took_over = in_progress;
      r = Record{idempotency::ClaimStatus::in_progress,
                 idempotency::Token::random(),
                 later(now, lease),
                 {},
                 std::string(fingerprint),
                 {}};
      idempotency::ClaimResult out;
      out.token = r.token;
      out.took_over = took_over;
      return out;
    }
    Record r{idempotency::ClaimStatus::in_progress,
             idempotency::Token::random(),
             later(now, lease),
             {},
             std::string(fingerprint),
             {}};
    idempotency::ClaimResult out;
    out.token = r.token;
    records_.emplace(std::string(key), std::move(r));
    return out;
  }

  bool complete(std::string_view key, const idempotency::Token& token, std::string_view payload,
                std::chrono::milliseconds ttl) {
    return finish(key, token, payload, ttl, idempotency::ClaimStatus::completed);
  }

  bool fail(std::string_view key, const idempotency::Token& token, std::string_view payload,
            std::chrono::milliseconds ttl) {
    return finish(key, token, payload, ttl, idempotency::ClaimStatus::failed);
  }

  bool release(std::string_view key, const idempotency::Token& token) {
    std::lock_guard lock(mutex_);
    auto it = records_.find(key);
    if (it == records_.end() || !held(it->second, token)) return false;
    records_.erase(it);
    return true;
  }

  bool renew(std::string_view key, const idempotency::Token& token,
             std::chrono::milliseconds lease) {
    std::lock_guard lock(mutex_);
    auto it = records_.find(key);
    if (it == records_.end() || !held(it->second, token)) return false;
    it->second.lease_until = later(now(), lease);
    return true;
  }

  /// Deletes records whose time has passed (a real store would run this periodically).
  /// In-progress records are kept for an hour past their lease so a slow holder can finish.
  std::size_t purge_expired(std::size_t limit) {
    std::lock_guard lock(mutex_);
    const auto t = now();
    std::size_t n = 0;
    for (auto it = records_.begin(); it != records_.end() && n < limit;) {
      const Record& r = it->second;
      const bool dead = r.status == idempotency::ClaimStatus::in_progress
                            ? r.lease_until + std::chrono::hours(1) <= t
                            : r.expires_at <= t;
      if (dead) {
        it = records_.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }

 private:
  struct Record {
    idempotency::ClaimStatus status;
    idempotency::Token token;
    std::chrono::steady_clock::time_point lease_until;
    std::chrono::steady_clock::time_point expires_at;
    std::string fingerprint;
    std::string payload;
  };

  std::chrono::steady_clock::time_point now() const {
    return clock_ ? clock_() : std::chrono::steady_clock::now();
  }

  // t + d, saturating: a "forever" lease or TTL must not wrap around into the past.
  static std::chrono::steady_clock::time_point later(std::chrono::steady_clock::time_point t,
                                                     std::chrono::milliseconds d) {
    const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::time_point::max() - t);
    return d >= room ? std::chrono::steady_clock::time_point::max() : t + d;
  }

  // Fencing: only the current token, and only while in progress. The lease is NOT checked:
  // a slow holder nobody took over may still finish (design §2).
  static bool held(const Record& r, const idempotency::Token& token) {
    return r.status == idempotency::ClaimStatus::in_progress && r.token == token;
  }

  bool finish(std::string_view key, const idempotency::Token& token, std::string_view payload,
              std::chrono::milliseconds ttl, idempotency::ClaimStatus status) {
    std::lock_guard lock(mutex_);
    auto it = records_.find(key);
    if (it == records_.end() || it->second.token != token) return false;
    // A resend after a lost reply: already finished by this token, so it landed. The record
    // keeps the token that finished it for exactly this check (design §2).
    if (it->second.status == status) return true;
    if (!held(it->second, token)) return false;
    it->second.status = status;
    it->second.payload.assign(payload);
    it->second.expires_at = later(now(), ttl);
    return true;
  }

  clock_fn clock_;
  std::mutex mutex_;
  std::map<std::string, Record, std::less<>> records_;
};

static_assert(idempotency::Store<MapStore>);
static_assert(idempotency::PurgeableStore<MapStore>);

} // namespace example
