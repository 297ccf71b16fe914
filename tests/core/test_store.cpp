// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/detail/backoff.hpp>
#include <idempotency/detail/random.hpp>
#include <idempotency/store.hpp>

#include "support/catch.hpp"

#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace {
using idempotency::ClaimResult;
using idempotency::Token;
using Ms = std::chrono::milliseconds;

// A complete store shape (never run): every operation present.
struct Complete {
  ClaimResult claim(std::string_view, std::string_view, Ms) { return {}; }
  bool complete(std::string_view, const Token&, std::string_view, Ms) { return false; }
  bool fail(std::string_view, const Token&, std::string_view, Ms) { return false; }
  bool release(std::string_view, const Token&) { return false; }
  bool renew(std::string_view, const Token&, Ms) { return false; }
  std::string_view name() const { return "complete"; }
};

// The usual mistake: a check, then a set, instead of one atomic claim.
struct CheckThenSet {
  std::optional<std::string> get(std::string_view) { return std::nullopt; }
  void set_processing(std::string_view) {}
  bool complete(std::string_view, const Token&, std::string_view, Ms) { return false; }
  bool fail(std::string_view, const Token&, std::string_view, Ms) { return false; }
  bool release(std::string_view, const Token&) { return false; }
  bool renew(std::string_view, const Token&, Ms) { return false; }
  std::string_view name() const { return "check-then-set"; }
};

// Unfenced: complete takes no token, so a stale holder could overwrite.
struct Unfenced {
  ClaimResult claim(std::string_view, std::string_view, Ms) { return {}; }
  bool complete(std::string_view, std::string_view, Ms) { return false; }
  bool fail(std::string_view, const Token&, std::string_view, Ms) { return false; }
  bool release(std::string_view, const Token&) { return false; }
  bool renew(std::string_view, const Token&, Ms) { return false; }
  std::string_view name() const { return "unfenced"; }
};

struct NoRenew {
  ClaimResult claim(std::string_view, std::string_view, Ms) { return {}; }
  bool complete(std::string_view, const Token&, std::string_view, Ms) { return false; }
  bool fail(std::string_view, const Token&, std::string_view, Ms) { return false; }
  bool release(std::string_view, const Token&) { return false; }
  std::string_view name() const { return "no-renew"; }
};

// claim returns the wrong type (a bool "did I get it?" loses the live record)
struct BoolClaim {
  bool claim(std::string_view, std::string_view, Ms) { return false; }
  bool complete(std::string_view, const Token&, std::string_view, Ms) { return false; }
  bool fail(std::string_view, const Token&, std::string_view, Ms) { return false; }
  bool release(std::string_view, const Token&) { return false; }
  bool renew(std::string_view, const Token&, Ms) { return false; }
  std::string_view name() const { return "bool-claim"; }
};

struct WithWait : Complete {
  void wait_for_change(std::string_view, Ms) {}
};

static_assert(idempotency::Store<Complete>);
static_assert(!idempotency::Store<CheckThenSet>);
static_assert(!idempotency::HasAtomicClaim<CheckThenSet>);
static_assert(!idempotency::Store<Unfenced>);
static_assert(!idempotency::HasFencedTransitions<Unfenced>);
static_assert(!idempotency::Store<NoRenew>);
static_assert(!idempotency::Store<BoolClaim>);
static_assert(!idempotency::Store<int>);
static_assert(!idempotency::WaitableStore<Complete>);
static_assert(idempotency::WaitableStore<WithWait>);
static_assert(!idempotency::PurgeableStore<Complete>);
static_assert(!idempotency::TransactionalStore<Complete>);
} // namespace

TEST_CASE("Token hex round-trips and rejects anything else", "[store]") {
  const Token t{0x0123456789abcdefULL, 0xfedcba9876543210ULL};
  CHECK(t.to_hex() == "0123456789abcdeffedcba9876543210");
  const auto back = Token::from_hex(t.to_hex());
  REQUIRE(back.has_value());
  CHECK(*back == t);
  CHECK(Token::from_hex("0123456789ABCDEFFEDCBA9876543210") == t);
  CHECK_FALSE(Token::from_hex("").has_value());
  CHECK_FALSE(Token::from_hex("0123456789abcdeffedcba987654321").has_value());
  CHECK_FALSE(Token::from_hex("0123456789abcdeffedcba98765432100").has_value());
  CHECK_FALSE(Token::from_hex("0123456789abcdeffedcba987654321g").has_value());
  CHECK(Token{}.empty());
  CHECK_FALSE(t.empty());
}

TEST_CASE("random tokens are non-empty and distinct", "[store]") {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i) {
    const Token t = Token::random();
    REQUIRE_FALSE(t.empty());
    REQUIRE(seen.insert(t.to_hex()).second);
  }
}

TEST_CASE("the token generator is xoshiro256** (the reference sequence)", "[store]") {
  // the first outputs of the authors' xoshiro256starstar.c from the state {1, 2, 3, 4}
  idempotency::detail::Xoshiro256 g(1, 2, 3, 4);
  CHECK(g() == 11520U);
  CHECK(g() == 0U);
  CHECK(g() == 1509978240U);
  CHECK(g() == 1215971899390074240U);
}

TEST_CASE("uniform(bound) stays within [0, bound] and reaches both ends", "[store]") {
  idempotency::detail::Xoshiro256 g(20261203);
  for (const std::uint64_t bound : {0ULL, 1ULL, 6ULL, 1000ULL}) {
    std::set<std::uint64_t> seen;
    for (int i = 0; i < 20000; ++i) {
      const std::uint64_t v = g.uniform(bound);
      REQUIRE(v <= bound);
      seen.insert(v);
    }
    CHECK(seen.count(0) == 1);
    CHECK(seen.count(bound) == 1);
    if (bound <= 6) CHECK(seen.size() == bound + 1);
  }
  CHECK(g.uniform(~std::uint64_t{0}) != g.uniform(~std::uint64_t{0}));
  // the jitter of the backoff draws from it: within [0, cap]
  for (int i = 0; i < 1000; ++i) {
    const auto j = idempotency::detail::full_jitter(Ms(5));
    REQUIRE(j >= Ms(0));
    REQUIRE(j <= Ms(5));
  }
  CHECK(idempotency::detail::full_jitter(Ms(0)) == Ms(0));
}

TEST_CASE("two generators seeded from the OS differ", "[store]") {
  idempotency::detail::Xoshiro256 a;
  idempotency::detail::Xoshiro256 b;
  CHECK((a() != b() || a() != b()));
}

TEST_CASE("ClaimResult defaults to acquired with nothing else set", "[store]") {
  const ClaimResult r;
  CHECK(r.acquired());
  CHECK(r.token.empty());
  CHECK(r.payload.empty());
  CHECK(r.remaining == Ms(0));
  CHECK_FALSE(r.took_over);
}

TEST_CASE("a process forked after using Token::random never repeats the parent's tokens",
          "[store]") {
  // The parent draws first, so a generator copied into the child would replay the same
  // sequence (design §2: tokens are never reused, also across fork()).
  (void)Token::random();
  constexpr int n = 64;
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    for (int i = 0; i < n; ++i) {
      const std::string hex = Token::random().to_hex();
      if (::write(fds[1], hex.data(), hex.size()) != static_cast<ssize_t>(hex.size())) _exit(2);
    }
    _exit(0);
  }
  ::close(fds[1]);
  std::set<std::string> parent;
  for (int i = 0; i < n; ++i) parent.insert(Token::random().to_hex());
  std::string from_child;
  char buf[4096];
  for (;;) {
    const ssize_t got = ::read(fds[0], buf, sizeof buf);
    if (got <= 0) break;
    from_child.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(from_child.size() == static_cast<std::size_t>(n) * 32);
  int shared = 0;
  for (int i = 0; i < n; ++i)
    shared += parent.count(from_child.substr(static_cast<std::size_t>(i) * 32, 32)) != 0 ? 1 : 0;
  CHECK(shared == 0);
}
