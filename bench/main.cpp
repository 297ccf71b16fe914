// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// idempotency_bench: what a call costs, measured side by side with the floor it cannot avoid
// (a locked hash map, a raw round trip) and with the usual check-then-set algorithm. Every
// ratio is measured in the same run as its baseline, interleaved rep by rep, and reported as
// the ratio of medians with the min–median–max of each side; absolute times are shown, never
// asserted. Each target is data in its case and `met` is computed. See docs/bench.md.
//
//   idempotency_bench [--quick] [--json FILE] [--only CASE,...] [--redis URL] [--redis-cluster URL]
//                     [--postgres CONNINFO] [--rtt-us N]
#include "common.hpp"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <string_view>

// ---------------------------------------------------------------------------------------------
// Allocation counter: every replaceable global operator new counts one allocation while
// counting is on (a relaxed atomic; off during timed runs, so it costs them one relaxed load).
// Placement new (`new (ptr) T`) allocates nothing and may not be replaced.

namespace {

std::atomic<bool> g_counting{false};
std::atomic<std::uint64_t> g_allocations{0};

void note_allocation() noexcept {
  if (g_counting.load(std::memory_order_relaxed))
    g_allocations.fetch_add(1, std::memory_order_relaxed);
}

void* allocate(std::size_t n, std::size_t align, bool nothrow) {
  note_allocation();
  if (n == 0) n = 1;
  for (;;) {
    void* p = align <= alignof(std::max_align_t)
                  ? std::malloc(n)
                  : std::aligned_alloc(align, (n + align - 1) / align * align);
    if (p != nullptr) return p;
    const std::new_handler handler = std::get_new_handler();
    if (handler == nullptr) {
      if (nothrow) return nullptr;
      throw std::bad_alloc();
    }
    handler();
  }
}

std::size_t al(std::align_val_t a) { return static_cast<std::size_t>(a); }

} // namespace

void* operator new(std::size_t n) { return allocate(n, 0, false); }
void* operator new[](std::size_t n) { return allocate(n, 0, false); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, 0, true);
  } catch (...) { // a new_handler may throw
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void* operator new(std::size_t n, std::align_val_t a) { return allocate(n, al(a), false); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate(n, al(a), false); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, al(a), true);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& t) noexcept {
  return operator new(n, a, t);
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

namespace bench {
std::uint64_t allocations() noexcept { return g_allocations.load(std::memory_order_relaxed); }
void count_allocations(bool on) noexcept { g_counting.store(on, std::memory_order_relaxed); }
} // namespace bench

// ---------------------------------------------------------------------------------------------

namespace {

using bench::Config;

// memory first: RSS deltas are only meaningful before other cases grew the heap
const std::pair<const char*, void (*)(const Config&)> kCases[] = {
    {"memory", bench::bench_memory},
    {"sweep", bench::bench_sweep},
    {"inmemory", bench::bench_in_memory},
    {"executor", bench::bench_executor},
    {"cache", bench::bench_cache},
    {"redis", bench::bench_redis},
    {"redis_cluster", bench::bench_redis_cluster},
    {"sqlite", bench::bench_sqlite},
    {"postgres", bench::bench_postgres},
    {"compile", bench::bench_compile}};

int usage(const char* argv0) {
  std::fprintf(
      stderr,
      "usage: %s [--quick] [--json FILE] [--only CASE,...] [--redis URL] [--redis-cluster URL] "
      "[--postgres CONNINFO] [--rtt-us N]\n  CASE:",
      argv0);
  for (const auto& c : kCases) std::fprintf(stderr, " %s", c.first);
  std::fprintf(stderr,
               "\n  --rtt-us N: run the network cases at this round-trip time only (0 = "
               "loopback); default: loopback, 500, 1000 (--quick: loopback, 1000)\n"
               "  env: IDEMPOTENCY_BENCH_REDIS, IDEMPOTENCY_BENCH_REDIS_CLUSTER, "
               "IDEMPOTENCY_BENCH_POSTGRES\n");
  return 2;
}

bool known_case(const std::string& name) {
  for (const auto& c : kCases)
    if (name == c.first) return true;
  return false;
}

} // namespace

int main(int argc, char** argv) {
  Config cfg;
  if (const char* e = std::getenv("IDEMPOTENCY_BENCH_REDIS")) cfg.redis_url = e;
  if (const char* e = std::getenv("IDEMPOTENCY_BENCH_REDIS_CLUSTER")) cfg.redis_cluster_url = e;
  if (const char* e = std::getenv("IDEMPOTENCY_BENCH_POSTGRES")) cfg.postgres_conninfo = e;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--quick") {
      cfg.quick = true;
    } else if (a == "--json" && has_value) {
      cfg.json_path = argv[++i];
    } else if (a == "--redis" && has_value) {
      cfg.redis_url = argv[++i];
    } else if (a == "--redis-cluster" && has_value) {
      cfg.redis_cluster_url = argv[++i];
    } else if (a == "--postgres" && has_value) {
      cfg.postgres_conninfo = argv[++i];
    } else if (a == "--rtt-us" && has_value) {
      char* end = nullptr;
      const long v = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || v < 0 || v > 1'000'000) return usage(argv[0]);
      cfg.rtt_us = static_cast<int>(v);
    } else if (a == "--only" && has_value) {
      const std::string list = argv[++i];
      for (std::size_t p = 0; p <= list.size();) {
        const std::size_t q = std::min(list.find(',', p), list.size());
        if (q > p) {
          const std::string name = list.substr(p, q - p);
          if (!known_case(name)) return usage(argv[0]);
          cfg.only.insert(name);
        }
        p = q + 1;
      }
    } else {
      return usage(argv[0]);
    }
  }
  if (cfg.quick) { // still 5 interleaved repetitions, each shorter
    cfg.seconds_per_rep = 0.05;
    cfg.network_seconds_per_rep = 0.10;
  }
  const auto t0 = bench::Clock::now();
  bench::print_header(cfg);
  int rc = 0;
  for (const auto& [name, fn] : kCases) {
    if (!cfg.wants(name)) continue;
    try {
      fn(cfg);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "case %s failed: %s\n", name, e.what());
      bench::skip(name, std::string("failed: ") + e.what());
      rc = 1;
    }
  }
  int met = 0, missed = 0, not_run = 0;
  std::string misses;
  for (const auto& r : bench::rows()) {
    if (!r.skipped.empty()) {
      ++not_run;
    } else if (r.met) {
      ++(*r.met ? met : missed);
      if (!*r.met) misses += "\n  MISS " + r.name + "  [target: " + r.target + "]";
    }
  }
  std::printf("targets: %d met, %d missed; %d rows not run; total %.1f s (sink %llu)%s\n", met,
              missed, not_run, bench::elapsed_ns(t0) / 1e9,
              static_cast<unsigned long long>(bench::sink_value() % 10), misses.c_str());
  if (!cfg.json_path.empty()) {
    nlohmann::json all = nlohmann::json::array();
    for (const auto& r : bench::rows()) all.push_back(bench::to_json(r));
    std::ofstream out(cfg.json_path);
    out << all.dump(2) << '\n';
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", cfg.json_path.c_str());
      return 1;
    }
  }
  return rc;
}
