// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include <idempotency/observer.hpp>

#include <idempotency/executor.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/stores/in_memory_store.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include "support/catch.hpp"
#include "support/counting_store.hpp"

#include <fmt/format.h> // only to compare with: observer.hpp needs no fmt

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace idempotency;
using idempotency::testing::ManualClock;

namespace {
class Recorder final : public Observer {
 public:
  struct Seen {
    Event event;
    std::string key;
    std::chrono::nanoseconds elapsed;
  };
  void on_event(const ObserverEvent& e) override {
    std::lock_guard lock(mutex_);
    seen_.push_back({e.event, std::string(e.key), e.elapsed});
  }
  std::vector<Seen> take() {
    std::lock_guard lock(mutex_);
    return std::exchange(seen_, {});
  }
  static std::vector<Event> events(const std::vector<Seen>& s) {
    std::vector<Event> out;
    for (const auto& x : s) out.push_back(x.event);
    return out;
  }

 private:
  std::mutex mutex_;
  std::vector<Seen> seen_;
};

class Throwing final : public Observer {
 public:
  void on_event(const ObserverEvent&) override { throw std::runtime_error("observer bug"); }
};
} // namespace

TEST_CASE("every state change reaches the observer with the storage key and time taken",
          "[observer]") {
  ManualClock clock;
  InMemoryStore inner{{.clock = clock.source()}};
  test::CountingStore store{inner};
  Recorder rec;
  IdempotencyExecutor exec{store, {.lease = 10s, .scope = {"acme", "pay", "v1"}, .observer = &rec}};
  using V = std::vector<Event>;

  (void)exec.execute("a", [] {
    std::this_thread::sleep_for(5ms);
    return 1;
  });
  auto s = rec.take();
  CHECK(Recorder::events(s) == V{Event::claimed, Event::completed});
  REQUIRE(s.size() == 2);
  CHECK(s[0].key ==
        "\x1e"
        "acme\x1f"
        "pay\x1f"
        "v1\x1f"
        "a");                 // the storage key
  CHECK(s[1].elapsed >= 5ms); // claim to completion includes the operation

  (void)exec.execute("a", [] { return 2; });
  CHECK(Recorder::events(rec.take()) == V{Event::replayed});

  CHECK_THROWS_AS(exec.execute("a", Fingerprint::of_bytes("x"), [] { return 3; }),
                  FingerprintMismatchError);
  CHECK(Recorder::events(rec.take()) == V{Event::mismatch});

  {
    auto holder = exec.begin<int>("b");
    CHECK(holder.guard().renew());
    CHECK_THROWS_AS(exec.execute("b", [] { return 4; }), InProgressError);
    CHECK(Recorder::events(rec.take()) ==
          V{Event::claimed, Event::lease_renewed, Event::rejected_in_progress});
  } // abandoned: released
  CHECK(Recorder::events(rec.take()) == V{Event::released});

  CHECK_THROWS_AS(exec.execute("c", []() -> int { throw std::runtime_error("blip"); }),
                  std::runtime_error);
  CHECK(Recorder::events(rec.take()) == V{Event::claimed, Event::released});

  IdempotencyExecutor remembering{store, {.on_exception = OnException::remember, .observer = &rec}};
  CHECK_THROWS_AS(remembering.execute("d", []() -> int { throw std::runtime_error("no"); }),
                  std::runtime_error);
  CHECK_THROWS_AS(remembering.execute("d", [] { return 5; }), ReplayedFailureError);
  CHECK(Recorder::events(rec.take()) ==
        V{Event::claimed, Event::failure_remembered, Event::replayed});

  auto stale = exec.begin<int>("e");
  clock.advance(11s);
  (void)exec.execute("e", [] { return 6; }); // takes the key over
  CHECK_THROWS_AS(stale.guard().commit(7), LeaseLostError);
  CHECK(Recorder::events(rec.take()) ==
        V{Event::claimed, Event::claimed, Event::completed, Event::lease_lost});

  store.down = true;
  CHECK_THROWS_AS(exec.execute("f", [] { return 8; }), StoreError);
  store.down = false;
  CHECK(Recorder::events(rec.take()) == V{Event::store_error});
}

TEST_CASE("waiting across processes is reported as waited", "[observer]") {
  InMemoryStore store;
  Recorder rec;
  IdempotencyExecutor a{store};
  IdempotencyExecutor b{
      store, {.in_progress = InProgressPolicy::wait, .wait_deadline = 60s, .observer = &rec}};
  auto holder = a.begin<int>("w");
  std::atomic<int> got{0};
  std::thread waiter([&] { got.store(b.execute("w", [] { return -1; })); });
  std::this_thread::sleep_for(20ms); // let it block (passes either way)
  holder.guard().commit(9);
  waiter.join();
  CHECK(got.load() == 9);
  const auto s = Recorder::events(rec.take());
  // it either waited on the store, or arrived after the commit and replayed
  CHECK((s == std::vector<Event>{Event::waited, Event::replayed} ||
         s == std::vector<Event>{Event::replayed}));
}

TEST_CASE("an observer that throws does not change the outcome", "[observer]") {
  InMemoryStore store;
  Throwing obs;
  IdempotencyExecutor exec{store, {.observer = &obs}};
  CHECK(exec.execute("k", [] { return 1; }) == 1);
  CHECK(exec.execute("k", [] { return 2; }) == 1);
}

TEST_CASE("CountersObserver counts events and renders the Prometheus text format",
          "[observer][prometheus]") {
  InMemoryStore store;
  CountersObserver counters;
  IdempotencyExecutor exec{store, {.observer = &counters}};
  (void)exec.execute("x", [] { return 1; });
  (void)exec.execute("x", [] { return 1; });
  (void)exec.execute("y", [] { return 1; });
  CHECK(counters.count(Event::claimed) == 2);
  CHECK(counters.count(Event::completed) == 2);
  CHECK(counters.count(Event::replayed) == 1);
  CHECK(counters.count(Event::lease_lost) == 0);
  CHECK(counters.total_time(Event::claimed) >= 0ns);

  const std::string text = render_prometheus(counters);
  CHECK(text.find("# HELP idempotency_events_total ") != std::string::npos);
  CHECK(text.find("# TYPE idempotency_events_total counter\n") != std::string::npos);
  CHECK(text.find("# HELP idempotency_event_seconds_total ") != std::string::npos);
  CHECK(text.find("# TYPE idempotency_event_seconds_total counter\n") != std::string::npos);
  CHECK(text.find("idempotency_events_total{event=\"claimed\"} 2\n") != std::string::npos);
  CHECK(text.find("idempotency_events_total{event=\"replayed\"} 1\n") != std::string::npos);
  CHECK(text.find("idempotency_events_total{event=\"store_error\"} 0\n") != std::string::npos);
  // every line is a comment or a well-formed sample; one sample per event and family
  const std::regex sample(R"(^idempotency_(events_total|event_seconds_total)\{event="[a-z_]+"\} )"
                          R"([0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?$)");
  std::istringstream in(text);
  std::string line;
  int samples = 0;
  int bad = 0;
  while (std::getline(in, line)) {
    if (line.rfind("# ", 0) == 0) continue;
    if (std::regex_match(line, sample))
      ++samples;
    else
      ++bad;
  }
  CHECK(bad == 0);
  CHECK(samples == static_cast<int>(2 * event_count));
  CHECK(render_prometheus(counters, "shop_idem")
            .find("shop_idem_events_total{event=\"claimed\"} 2") != std::string::npos);
}

TEST_CASE("the Prometheus text is what fmt wrote, byte for byte", "[observer][prometheus]") {
  // render_prometheus used fmt::format_to; observer.hpp no longer needs fmt. Every number it
  // writes must read as fmt's "{}" wrote it: counts, and seconds (shortest round-trip text).
  std::vector<double> values = {0.0,     1.0,      1.5,  0.1,   1e-4,   1e-5,
                                1.25e-5, 123.0,    1e15, 1e16,  1.5e16, 9.99e15,
                                2.5e-7,  0.000123, 1e21, 1e100, 5e-324, 1.7976931348623157e308};
  std::mt19937_64 rng(16);
  for (int i = 0; i < 20000; ++i) {
    const std::uint64_t nanos = rng() >> (rng() % 64);
    values.push_back(std::chrono::duration<double>(
                         std::chrono::nanoseconds(static_cast<std::int64_t>(nanos >> 1)))
                         .count());
    std::uint64_t bits = rng();
    double d = 0;
    std::memcpy(&d, &bits, sizeof d);
    if (std::isfinite(d)) values.push_back(std::fabs(d));
  }
  std::size_t differ = 0;
  for (const double v : values) {
    std::string ours;
    detail::append_number(ours, v);
    if (ours != fmt::format("{}", v) && ++differ <= 5) CHECK(ours == fmt::format("{}", v));
  }
  CHECK(differ == 0);
  for (const std::uint64_t v :
       {std::uint64_t{0}, std::uint64_t{7}, std::uint64_t{1} << 63, ~std::uint64_t{0}}) {
    std::string ours;
    detail::append_number(ours, v);
    CHECK(ours == fmt::format("{}", v));
  }
  // and a whole rendering against the one fmt produced
  CountersObserver counters;
  counters.on_event({Event::claimed, "k", std::chrono::nanoseconds(1234567)});
  counters.on_event({Event::replayed, "k", std::chrono::nanoseconds(5)});
  counters.on_event({Event::completed, "k", std::chrono::seconds(3)});
  std::string expected;
  for (const std::string_view family : {"events_total", "event_seconds_total"}) {
    const bool seconds = family == "event_seconds_total";
    fmt::format_to(std::back_inserter(expected), "# HELP {}_{} {}\n# TYPE {}_{} counter\n", "p",
                   family,
                   seconds ? "Time taken by the state changes, by event, in seconds."
                           : "State changes of idempotency keys, by event.",
                   "p", family);
    for (std::size_t i = 0; i < event_count; ++i) {
      const auto e = static_cast<Event>(i);
      if (seconds)
        fmt::format_to(std::back_inserter(expected), "{}_{}{{event=\"{}\"}} {}\n", "p", family,
                       to_string(e), std::chrono::duration<double>(counters.total_time(e)).count());
      else
        fmt::format_to(std::back_inserter(expected), "{}_{}{{event=\"{}\"}} {}\n", "p", family,
                       to_string(e), counters.count(e));
    }
  }
  CHECK(render_prometheus(counters, "p") == expected);
}

TEST_CASE("event names are stable", "[observer]") {
  CHECK(to_string(Event::claimed) == "claimed");
  CHECK(to_string(Event::rejected_in_progress) == "rejected_in_progress");
  CHECK(to_string(Event::store_error) == "store_error");
  CHECK(static_cast<std::size_t>(Event::store_error) + 1 == event_count);
}
