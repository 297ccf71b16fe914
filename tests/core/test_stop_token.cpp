// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// idempotency::stop_token and the stand-in behind it where the standard library has no
// <stop_token> (detail::fallback_stop). Every case runs on the stand-in directly (so it is
// tested under every preset, ThreadSanitizer included) and on idempotency::stop_token (the std
// types on libstdc++, which checks the cases themselves against the standard library's).
#include <idempotency/detail/fallback_stop.hpp>
#include <idempotency/stop_token.hpp>

#include "support/catch.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct Fallback {
  using source = idempotency::detail::fallback_stop::stop_source;
  using token = idempotency::detail::fallback_stop::stop_token;
  template <class F>
  using callback = idempotency::detail::fallback_stop::stop_callback<F>;
  static constexpr auto nostopstate = idempotency::detail::fallback_stop::nostopstate;
};
struct Alias {
  using source = idempotency::stop_source;
  using token = idempotency::stop_token;
  template <class F>
  using callback = idempotency::stop_callback<F>;
  static constexpr auto nostopstate = idempotency::nostopstate;
};

// A callback that counts its runs and records the thread it ran on.
struct Probe {
  std::atomic<int> runs{0};
  std::atomic<std::thread::id> thread{};
  void hit() {
    thread.store(std::this_thread::get_id());
    runs.fetch_add(1);
  }
};

} // namespace

TEST_CASE("stop_token: the alias is the std type exactly where the library has <stop_token>",
          "[stop_token]") {
#if defined(__cpp_lib_jthread)
  STATIC_REQUIRE(idempotency::stop_token_is_std);
  STATIC_REQUIRE(std::is_same_v<idempotency::stop_token, std::stop_token>);
  STATIC_REQUIRE(std::is_same_v<idempotency::stop_source, std::stop_source>);
#else
  STATIC_REQUIRE_FALSE(idempotency::stop_token_is_std);
  STATIC_REQUIRE(
      std::is_same_v<idempotency::stop_token, idempotency::detail::fallback_stop::stop_token>);
#endif
#if defined(_LIBCPP_VERSION) && _LIBCPP_VERSION < 170000
  // the libcxx preset: libc++ 14 has no <stop_token>, so the stand-in is what users get
  STATIC_REQUIRE_FALSE(idempotency::stop_token_is_std);
#endif
  // the deduction guide, as a user writes it
  idempotency::stop_source source;
  int runs = 0;
  const idempotency::stop_callback cb(source.get_token(), [&] { ++runs; });
  CHECK(source.request_stop());
  CHECK(runs == 1);
}

TEMPLATE_TEST_CASE("stop_token: stop_possible and stop_requested", "[stop_token]", Fallback,
                   Alias) {
  using source_t = typename TestType::source;
  using token_t = typename TestType::token;

  const token_t none;
  CHECK_FALSE(none.stop_possible());
  CHECK_FALSE(none.stop_requested());

  source_t empty{TestType::nostopstate};
  CHECK_FALSE(empty.stop_possible());
  CHECK_FALSE(empty.request_stop());
  CHECK_FALSE(empty.get_token().stop_possible());

  token_t orphan;
  {
    source_t s;
    orphan = s.get_token();
    CHECK(orphan.stop_possible());
    source_t copy = s; // a copy keeps the state possible after s is gone
    source_t moved = std::move(s);
    CHECK(moved.stop_possible());
    CHECK(moved == copy);
    CHECK(moved.get_token() == orphan);
  }
  CHECK_FALSE(orphan.stop_possible()); // no source left and no stop: nobody can stop it now
  CHECK_FALSE(orphan.stop_requested());

  token_t stopped;
  {
    source_t s;
    stopped = s.get_token();
    CHECK_FALSE(stopped.stop_requested());
    CHECK(s.request_stop());
    CHECK_FALSE(s.request_stop()); // only the first request stops
    CHECK(s.stop_requested());
  }
  CHECK(stopped.stop_requested());
  CHECK(stopped.stop_possible()); // once requested, possible for good
  CHECK_FALSE(stopped == orphan);

  source_t a;
  source_t b;
  const token_t ta = a.get_token();
  a.swap(b);
  CHECK(b.get_token() == ta);
  CHECK_FALSE(a.get_token() == ta);
}

TEMPLATE_TEST_CASE("stop_token: callbacks run once, on the requesting thread or at registration",
                   "[stop_token]", Fallback, Alias) {
  using source_t = typename TestType::source;
  using token_t = typename TestType::token;
  const auto probe_fn = [](Probe& p) { return [&p] { p.hit(); }; };
  using cb_t = typename TestType::template callback<decltype(probe_fn(std::declval<Probe&>()))>;

  source_t s;
  Probe before;
  Probe removed;
  Probe none;
  std::optional<cb_t> keep(std::in_place, s.get_token(), probe_fn(before));
  std::optional<cb_t> gone(std::in_place, s.get_token(), probe_fn(removed));
  gone.reset(); // unregistered before the stop: never runs
  { const cb_t never(token_t{}, probe_fn(none)); }

  std::thread stopper([&] { s.request_stop(); });
  const auto stopper_id = stopper.get_id();
  stopper.join();
  CHECK(before.runs.load() == 1);
  CHECK(before.thread.load() == stopper_id);
  CHECK(removed.runs.load() == 0);
  CHECK(none.runs.load() == 0);

  Probe after;
  {
    const cb_t late(s.get_token(), probe_fn(after)); // already stopped: runs right here
    CHECK(after.runs.load() == 1);
    CHECK(after.thread.load() == std::this_thread::get_id());
  }
  CHECK_FALSE(s.request_stop());
  CHECK(before.runs.load() == 1);
  CHECK(after.runs.load() == 1);
}

TEMPLATE_TEST_CASE("stop_token: a callback may destroy itself or request the stop again",
                   "[stop_token]", Fallback, Alias) {
  using source_t = typename TestType::source;
  source_t s;
  int runs = 0;
  bool again = true;
  std::function<void()> body; // outside the callback: it destroys the callback object
  struct SelfDestroy {
    std::function<void()>* body;
    void operator()() const { (*body)(); }
  };
  using cb_t = typename TestType::template callback<SelfDestroy>;
  std::optional<cb_t> self;
  body = [&] {
    ++runs;
    again = s.request_stop(); // already requested: false, and no deadlock
    self.reset();             // its own destructor, inside it: must not wait
  };
  self.emplace(s.get_token(), SelfDestroy{&body});
  CHECK(s.request_stop());
  CHECK(runs == 1);
  CHECK_FALSE(again);
  CHECK_FALSE(self.has_value());
}

TEMPLATE_TEST_CASE("stop_token: racing request_stop from many threads, one wins",
                   "[stop_token][race]", Fallback, Alias) {
  using source_t = typename TestType::source;
  for (int round = 0; round < 200; ++round) {
    source_t s;
    Probe p;
    const auto fn = [&p] { p.hit(); };
    const typename TestType::template callback<decltype(fn)> cb(s.get_token(), fn);
    std::atomic<int> winners{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        while (!go.load()) std::this_thread::yield();
        if (s.request_stop()) winners.fetch_add(1);
      });
    go.store(true);
    for (auto& t : threads) t.join();
    REQUIRE(winners.load() == 1);
    REQUIRE(p.runs.load() == 1);
  }
}

TEMPLATE_TEST_CASE("stop_token: callbacks registered and dropped while another thread stops",
                   "[stop_token][race]", Fallback, Alias) {
  using source_t = typename TestType::source;
  struct Cell {
    std::atomic<int> runs{0};
    std::atomic<bool> destroyed{false};
    std::atomic<int> after_destroy{0}; // runs seen after the destructor returned
    bool after_stop = false;           // registered once the stop was visible
  };
  struct Hit {
    Cell* cell;
    void operator()() const {
      if (cell->destroyed.load()) cell->after_destroy.fetch_add(1);
      cell->runs.fetch_add(1);
    }
  };
  using cb_t = typename TestType::template callback<Hit>;
  constexpr int threads_n = 3;
  for (int round = 0; round < 100; ++round) {
    source_t s;
    std::array<std::vector<std::unique_ptr<Cell>>, threads_n> cells;
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < threads_n; ++t)
      threads.emplace_back([&, t] {
        const auto token = s.get_token();
        int extra = 8; // registrations after the stop became visible: each runs in its ctor
        for (int i = 0; extra > 0; ++i) {
          const bool after_stop = token.stop_requested();
          if (after_stop) --extra;
          auto& c = *cells[t].emplace_back(std::make_unique<Cell>());
          c.after_stop = after_stop;
          {
            const cb_t cb(token, Hit{&c});
            if (i % 2 == 0) std::this_thread::yield(); // keep some registered a little longer
            if (i == 0) ready.fetch_add(1);
          }
          c.destroyed.store(true);
        }
      });
    while (ready.load() < threads_n) std::this_thread::yield();
    const bool won = s.request_stop();
    for (auto& t : threads) t.join();
    REQUIRE(won);
    for (const auto& per_thread : cells) {
      for (const auto& c : per_thread) {
        REQUIRE(c->runs.load() <= 1);          // never twice
        REQUIRE(c->after_destroy.load() == 0); // never after its destructor returned
        if (c->after_stop) REQUIRE(c->runs.load() == 1);
      }
    }
  }
}

TEMPLATE_TEST_CASE("stop_token: a destructor on another thread waits for its running callback",
                   "[stop_token][race]", Fallback, Alias) {
  using source_t = typename TestType::source;
  source_t s;
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
  const auto slow = [&] {
    started.store(true);
    std::this_thread::sleep_for(100ms);
    finished.store(true);
  };
  using cb_t = typename TestType::template callback<decltype(slow)>;
  auto cb = std::make_unique<cb_t>(s.get_token(), slow);
  std::thread stopper([&] { s.request_stop(); });
  while (!started.load()) std::this_thread::yield();
  cb.reset(); // must block until `slow` returned
  const bool finished_when_destroyed = finished.load();
  stopper.join();
  CHECK(finished_when_destroyed);
}
