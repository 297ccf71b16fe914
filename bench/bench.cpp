// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// idempotency_bench: what a call costs, measured side by side with the floor it cannot avoid
// (a locked hash map, a raw round trip) and with the usual check-then-set algorithm. Every
// figure is measured in the same run as its baseline, interleaved rep by rep, and reported as
// the ratio of medians; absolute times are shown, never asserted. See docs/bench.md.
//
//   idempotency_bench [--quick] [--json FILE] [--only CASE,...] [--redis URL]
//                     [--postgres CONNINFO]
//
// CASE: memory, inmemory, executor, redis, sqlite, postgres, compile.
#include <idempotency/idempotency.hpp>
#include <idempotency/testing/manual_clock.hpp>

#include <nlohmann/json.hpp>

#if defined(IDEMPOTENCY_BENCH_HAVE_REDIS) && __has_include(<idempotency/stores/redis_store.hpp>)
#include <idempotency/stores/redis_store.hpp>
#define IDEMPOTENCY_BENCH_REDIS 1
#endif
#if defined(IDEMPOTENCY_BENCH_HAVE_SQLITE) && __has_include(<idempotency/stores/sqlite_store.hpp>)
#include <idempotency/stores/sqlite_store.hpp>
#define IDEMPOTENCY_BENCH_SQLITE 1
#endif
#if defined(IDEMPOTENCY_BENCH_HAVE_POSTGRES) && __has_include(<idempotency/stores/postgres_store.hpp>)
#include <idempotency/stores/postgres_store.hpp>
#define IDEMPOTENCY_BENCH_POSTGRES 1
#endif

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// Options, results, output

struct Config {
  bool quick = false;
  std::string json_path;
  std::set<std::string> only;
  std::string redis_url;
  std::string postgres_conninfo;
  int reps = 5; ///< interleaved repetitions per pair; the median of each side is reported
  double seconds_per_rep = 0.20; ///< time budget of one side of one repetition (server stores)

  [[nodiscard]] bool wants(const std::string& c) const { return only.empty() || only.count(c); }
};

struct Row {
  std::string name;
  std::optional<double> ns_per_op;
  std::string baseline;
  std::optional<double> baseline_ns_per_op;
  std::optional<double> ratio;
  nlohmann::json extra = nlohmann::json::object(); ///< commands_per_op, bytes_per_record, ...
  std::string target;                              ///< the issue's target, if one applies
  std::optional<bool> met;
  std::string note;
  std::string skipped; ///< non-empty: the case was not run, and why
};

std::vector<Row> g_rows;
std::uint64_t g_sink = 0; // defeats dead-code elimination of measured loops

void sink(std::size_t v) { g_sink += v; }

std::string fmt_ns(std::optional<double> ns) {
  if (!ns) return "-";
  char buf[32];
  if (*ns >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2f ms", *ns / 1e6);
  else if (*ns >= 1e4)
    std::snprintf(buf, sizeof buf, "%.1f us", *ns / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0f ns", *ns);
  return buf;
}

std::string fmt_num(double v, int prec = 2) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

void add(Row r) {
  // print as we go: a long run shows progress, and a crash keeps what was measured
  std::string extra;
  for (const auto& [k, v] : r.extra.items()) {
    if (!extra.empty()) extra += ", ";
    extra += k + "=" + (v.is_number_float() ? fmt_num(v.get<double>()) : v.dump());
  }
  if (!r.skipped.empty()) {
    std::printf("%-46s NOT RUN: %s\n", r.name.c_str(), r.skipped.c_str());
  } else {
    std::printf(
        "%-46s %10s  %-34s %10s  %6s  %-5s %s%s%s\n", r.name.c_str(), fmt_ns(r.ns_per_op).c_str(),
        r.baseline.c_str(), fmt_ns(r.baseline_ns_per_op).c_str(),
        r.ratio ? (fmt_num(*r.ratio) + "x").c_str() : "-", !r.met ? "" : (*r.met ? "MET" : "MISS"),
        extra.c_str(), r.target.empty() ? "" : ("  [target: " + r.target + "]").c_str(),
        r.note.empty() ? "" : ("  (" + r.note + ")").c_str());
  }
  std::fflush(stdout);
  g_rows.push_back(std::move(r));
}

void skip(std::string name, std::string why) {
  Row r;
  r.name = std::move(name);
  r.skipped = std::move(why);
  add(std::move(r));
}

nlohmann::json to_json(const Row& r) {
  nlohmann::json j;
  j["case"] = r.name;
  if (!r.skipped.empty()) {
    j["skipped"] = r.skipped;
    return j;
  }
  j["ns_per_op"] = r.ns_per_op ? nlohmann::json(*r.ns_per_op) : nlohmann::json();
  j["baseline"] = r.baseline;
  j["baseline_ns_per_op"] =
      r.baseline_ns_per_op ? nlohmann::json(*r.baseline_ns_per_op) : nlohmann::json();
  j["ratio"] = r.ratio ? nlohmann::json(*r.ratio) : nlohmann::json();
  for (const auto& [k, v] : r.extra.items()) j[k] = v;
  if (!r.target.empty()) {
    j["target"] = r.target;
    j["met"] = r.met ? nlohmann::json(*r.met) : nlohmann::json();
  }
  if (!r.note.empty()) j["note"] = r.note;
  return j;
}

// ---------------------------------------------------------------------------------------------
// Measuring

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double elapsed_ns(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

/// One side of one repetition: runs its operations (after any untimed setup) and returns
/// {timed nanoseconds, operations}.
using Side = std::function<std::pair<double, double>()>;

struct PairResult {
  double subject_ns = 0;  ///< median ns per op
  double baseline_ns = 0; ///< median ns per op
  [[nodiscard]] double ratio() const { return subject_ns / baseline_ns; }
};

/// Runs subject and baseline alternately `reps` times (so load drift hits both alike; the
/// side that goes first alternates too) and returns the median ns/op of each.
PairResult measure_pair(int reps, const Side& subject, const Side& baseline) {
  std::vector<double> s, b;
  for (int i = 0; i < reps; ++i) {
    const bool subject_first = i % 2 == 0;
    for (int k = 0; k < 2; ++k) {
      const bool run_subject = (k == 0) == subject_first;
      const auto [ns, ops] = run_subject ? subject() : baseline();
      (run_subject ? s : b).push_back(ns / ops);
    }
  }
  return {median(s), median(b)};
}

/// Runs `body(thread_index)` on `threads` threads released together; returns the wall time.
double run_threads(int threads, const std::function<void(int)>& body) {
  if (threads == 1) {
    const auto t0 = Clock::now();
    body(0);
    return elapsed_ns(t0);
  }
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      body(t);
    });
  while (ready.load() < threads) std::this_thread::yield();
  const auto t0 = Clock::now();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  return elapsed_ns(t0);
}

/// Runs one side in `procs` forked processes released together. `setup(i)` runs in child i
/// before the start signal and returns the timed loop, which returns its operation count.
/// Returns {wall ns from the first start to the last end, total operations}.
std::pair<double, double> run_processes(int procs,
                                        const std::function<std::function<double()>(int)>& setup) {
  int ready[2], go[2], out[2];
  if (pipe(ready) != 0 || pipe(go) != 0 || pipe(out) != 0) std::abort();
  std::vector<pid_t> kids;
  for (int i = 0; i < procs; ++i) {
    const pid_t pid = fork();
    if (pid < 0) std::abort();
    if (pid == 0) {
      double msg[3] = {0, 0, -1};
      try {
        auto loop = setup(i);
        char c = 'r';
        if (write(ready[1], &c, 1) != 1) _exit(2);
        if (read(go[0], &c, 1) != 1) _exit(2);
        const auto t0 = Clock::now();
        const double ops = loop();
        const auto t1 = Clock::now();
        msg[0] = std::chrono::duration<double, std::nano>(t0.time_since_epoch()).count();
        msg[1] = std::chrono::duration<double, std::nano>(t1.time_since_epoch()).count();
        msg[2] = ops;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench child %d: %s\n", i, e.what());
        char c = 'r';
        if (write(ready[1], &c, 1) != 1) _exit(2);
      }
      if (write(out[1], msg, sizeof msg) != static_cast<ssize_t>(sizeof msg)) _exit(2);
      _exit(0);
    }
    kids.push_back(pid);
  }
  char c = 0;
  for (int i = 0; i < procs; ++i)
    if (read(ready[0], &c, 1) != 1) std::abort();
  for (int i = 0; i < procs; ++i)
    if (write(go[1], "g", 1) != 1) std::abort();
  double first = 1e300, last = 0, ops = 0;
  bool failed = false;
  for (int i = 0; i < procs; ++i) {
    double msg[3];
    if (read(out[0], msg, sizeof msg) != static_cast<ssize_t>(sizeof msg)) std::abort();
    if (msg[2] < 0) failed = true;
    first = std::min(first, msg[0]);
    last = std::max(last, msg[1]);
    ops += msg[2];
  }
  for (pid_t k : kids) waitpid(k, nullptr, 0);
  for (int fd : {ready[0], ready[1], go[0], go[1], out[0], out[1]}) close(fd);
  if (failed) throw std::runtime_error("a benchmark child process failed (see stderr)");
  return {last - first, ops};
}

/// Key number `i` as `len` visible-ASCII bytes: "k" + zero-padded decimal, e.g. k00000000000042.
std::string make_key(std::size_t i, std::size_t len, char tag = 'k') {
  std::string digits = std::to_string(i);
  std::string k(len, '0');
  k[0] = tag;
  std::copy(digits.begin(), digits.end(), k.end() - static_cast<std::ptrdiff_t>(digits.size()));
  return k;
}

std::vector<std::string> make_keys(std::size_t n, std::size_t len, char tag = 'k') {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (std::size_t i = 0; i < n; ++i) keys.push_back(make_key(i, len, tag));
  return keys;
}

/// Runs `op(i)` for i = 0, 1, ... until `seconds` passed (checked every 16 ops); returns ops.
template <class Op>
double timed_loop(double seconds, Op&& op) {
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  std::size_t i = 0;
  for (;;) {
    for (int k = 0; k < 16; ++k) op(i++);
    if (Clock::now() >= until) break;
  }
  return static_cast<double>(i);
}

std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// ---------------------------------------------------------------------------------------------
// (1) InMemoryStore against a std::unordered_map behind one std::mutex

/// The floor: the same find / insert, with the same keys and payloads, behind one mutex.
struct LockedMap {
  std::mutex mutex;
  std::unordered_map<std::string, std::string> map;
};

const std::string kNoFingerprint;

void bench_in_memory(const Config& cfg) {
  const std::size_t prefill = cfg.quick ? 10'000 : 100'000;
  const std::size_t replay_ops = cfg.quick ? 20'000 : 200'000;
  for (std::size_t key_len : {16u, 64u}) {
    const auto keys = make_keys(prefill, key_len);
    for (std::size_t payload_len : {64u, 4096u}) {
      const std::string payload(payload_len, 'p');
      // first executions: a fresh store and map per repetition; keep 4 KiB runs under ~100 MB
      const std::size_t first_ops =
          payload_len > 1000 ? (cfg.quick ? 2'000 : 10'000) : (cfg.quick ? 5'000 : 50'000);
      const auto fresh_keys = make_keys(first_ops, key_len, 'n');
      for (int threads : {1, 2}) {
        const std::string label =
            fmt::format("k{}/p{}/t{}", key_len, payload_len == 4096 ? "4K" : "64", threads);
        // --- replay: a claim that finds a completed record
        {
          idempotency::InMemoryStore store;
          LockedMap floor;
          for (const auto& k : keys) {
            auto c = store.claim(k, kNoFingerprint, 60s);
            if (!store.complete(k, c.token, payload, 1h)) std::abort();
            floor.map.emplace(k, payload);
          }
          const std::size_t per_thread = replay_ops / static_cast<std::size_t>(threads);
          auto subject = [&]() -> std::pair<double, double> {
            const double ns = run_threads(threads, [&](int t) {
              std::size_t j = static_cast<std::size_t>(t) * 7919, acc = 0;
              for (std::size_t i = 0; i < per_thread; ++i, ++j) {
                const auto r = store.claim(keys[j % prefill], kNoFingerprint, 60s);
                acc += r.payload.size();
              }
              sink(acc);
            });
            return {ns, static_cast<double>(per_thread * static_cast<std::size_t>(threads))};
          };
          auto baseline = [&]() -> std::pair<double, double> {
            const double ns = run_threads(threads, [&](int t) {
              std::size_t j = static_cast<std::size_t>(t) * 7919, acc = 0;
              for (std::size_t i = 0; i < per_thread; ++i, ++j) {
                std::string out;
                {
                  std::lock_guard lock(floor.mutex);
                  auto it = floor.map.find(keys[j % prefill]);
                  if (it != floor.map.end()) out = it->second;
                }
                acc += out.size();
              }
              sink(acc);
            });
            return {ns, static_cast<double>(per_thread * static_cast<std::size_t>(threads))};
          };
          const auto p = measure_pair(cfg.reps, subject, baseline);
          Row r;
          r.name = "inmemory.replay " + label;
          r.ns_per_op = p.subject_ns;
          r.baseline = "unordered_map+mutex find+copy";
          r.baseline_ns_per_op = p.baseline_ns;
          r.ratio = p.ratio();
          r.target = "<= 1.5x";
          r.met = p.ratio() <= 1.5;
          add(std::move(r));
        }
        // --- first execution: claim + complete of a new key
        {
          const std::size_t per_thread = first_ops / static_cast<std::size_t>(threads);
          auto subject = [&]() -> std::pair<double, double> {
            idempotency::InMemoryStore store;
            const double ns = run_threads(threads, [&](int t) {
              const std::size_t base = static_cast<std::size_t>(t) * per_thread;
              for (std::size_t i = 0; i < per_thread; ++i) {
                const std::string& k = fresh_keys[base + i];
                const auto c = store.claim(k, kNoFingerprint, 60s);
                if (!store.complete(k, c.token, payload, 1h)) std::abort();
              }
            });
            return {ns, static_cast<double>(per_thread * static_cast<std::size_t>(threads))};
          };
          auto baseline = [&]() -> std::pair<double, double> {
            LockedMap floor;
            const double ns = run_threads(threads, [&](int t) {
              const std::size_t base = static_cast<std::size_t>(t) * per_thread;
              for (std::size_t i = 0; i < per_thread; ++i) {
                std::lock_guard lock(floor.mutex);
                floor.map.emplace(fresh_keys[base + i], payload);
              }
            });
            return {ns, static_cast<double>(per_thread * static_cast<std::size_t>(threads))};
          };
          const auto p = measure_pair(cfg.reps, subject, baseline);
          Row r;
          r.name = "inmemory.first " + label;
          r.ns_per_op = p.subject_ns;
          r.baseline = "unordered_map+mutex insert";
          r.baseline_ns_per_op = p.baseline_ns;
          r.ratio = p.ratio();
          r.note = "no target; claim+complete = 2 locked lookups + token";
          add(std::move(r));
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// (2) executor replay against (store replay + JSON decode) alone

} // namespace

namespace bench_types {
struct Receipt {
  std::int64_t id = 0;
  std::string status;
  std::int64_t amount_cents = 0;
  NLOHMANN_DEFINE_TYPE_INTRUSIVE(Receipt, id, status, amount_cents)
};
} // namespace bench_types

namespace {

void bench_executor(const Config& cfg) {
  using bench_types::Receipt;
  const std::size_t n = 10'000;
  const std::size_t ops = cfg.quick ? 20'000 : 200'000;
  const auto keys = make_keys(n, 16);
  idempotency::InMemoryStore store;
  idempotency::IdempotencyExecutor exec{store};
  std::size_t runs = 0;
  for (std::size_t i = 0; i < n; ++i)
    (void)exec.execute(keys[i], [&] {
      ++runs;
      return Receipt{static_cast<std::int64_t>(i), "captured", 12'345};
    });
  const auto lease = exec.options().lease;
  auto subject = [&]() -> std::pair<double, double> {
    const auto t0 = Clock::now();
    std::size_t acc = 0;
    for (std::size_t i = 0; i < ops; ++i) {
      const Receipt r = exec.execute(keys[i % n], [&] {
        ++runs;
        return Receipt{};
      });
      acc += r.status.size();
    }
    sink(acc);
    return {elapsed_ns(t0), static_cast<double>(ops)};
  };
  auto baseline = [&]() -> std::pair<double, double> {
    const auto t0 = Clock::now();
    std::size_t acc = 0;
    for (std::size_t i = 0; i < ops; ++i) {
      const auto c = store.claim(keys[i % n], kNoFingerprint, lease);
      const Receipt r = idempotency::codec::decode<Receipt>(c.payload, keys[i % n]);
      acc += r.status.size();
    }
    sink(acc);
    return {elapsed_ns(t0), static_cast<double>(ops)};
  };
  const auto p = measure_pair(cfg.reps, subject, baseline);
  if (runs != n) std::abort(); // a replay must never run the operation
  Row r;
  r.name = "executor.replay Receipt{int,string,int}";
  r.ns_per_op = p.subject_ns;
  r.baseline = "store.claim + codec::decode";
  r.baseline_ns_per_op = p.baseline_ns;
  r.ratio = p.ratio();
  r.target = "<= 1.15x";
  r.met = p.ratio() <= 1.15;
  add(std::move(r));
}

// ---------------------------------------------------------------------------------------------
// (7) memory per record, and after expiry + purge

void bench_memory(const Config& cfg) {
  // --quick: 200,000 records (the per-record figure barely depends on the count)
  const std::size_t n = cfg.quick ? 200'000 : 1'000'000;
  const std::size_t key_len = 16, payload_len = 64;
  const std::string payload(payload_len, 'p');
  idempotency::testing::ManualClock clock;
  std::size_t rss_before = 0, rss_full = 0, heap_before = 0, heap_full = 0;
  double fill_ns = 0;
  std::size_t after_purge = 0, purged = 0;
  std::size_t rss_purged = 0, rss_trimmed = 0;
  {
    // keys are generated one at a time: the only memory that grows is the store's
    malloc_trim(0);
    rss_before = rss_bytes();
    heap_before = mallinfo2().uordblks;
    idempotency::InMemoryStore store{{.clock = clock.source()}};
    const auto t0 = Clock::now();
    std::string k;
    for (std::size_t i = 0; i < n; ++i) {
      k = make_key(i, key_len);
      const auto c = store.claim(k, kNoFingerprint, 60s);
      if (!store.complete(k, c.token, payload, 1h)) std::abort();
    }
    fill_ns = elapsed_ns(t0) / static_cast<double>(n);
    k = std::string();
    rss_full = rss_bytes();
    heap_full = mallinfo2().uordblks;
    clock.advance(2h);
    purged = store.purge_expired();
    after_purge = store.size();
    rss_purged = rss_bytes();
    malloc_trim(0);
    rss_trimmed = rss_bytes();
  }
  // the floor's heap bytes per record, measured the same way (mallinfo2, not RSS: the store's
  // freed pages are still mapped)
  std::size_t floor_heap = 0;
  {
    const std::size_t h0 = mallinfo2().uordblks;
    std::unordered_map<std::string, std::string> floor;
    for (std::size_t i = 0; i < n; ++i) floor.emplace(make_key(i, key_len), payload);
    floor_heap = mallinfo2().uordblks - h0;
  }
  malloc_trim(0);
  const double per_record = static_cast<double>(rss_full - rss_before) / static_cast<double>(n);
  const double raw = static_cast<double>(key_len + payload_len);
  Row r;
  r.name = fmt::format("memory.bytes_per_record {}k x (k16,p64)", n / 1000);
  r.ns_per_op = fill_ns;
  r.baseline = "key+payload bytes";
  r.ratio = per_record / raw;
  r.extra["bytes_per_record"] = per_record;
  r.extra["baseline_bytes_per_record"] = raw;
  r.extra["heap_bytes_per_record"] =
      static_cast<double>(heap_full - heap_before) / static_cast<double>(n);
  r.extra["floor_map_heap_bytes_per_record"] =
      static_cast<double>(floor_heap) / static_cast<double>(n);
  r.target = "<= key+payload+100 = " + fmt_num(raw + 100, 0) + " B";
  r.met = per_record <= raw + 100;
  r.note = "ns_per_op = claim+complete fill; ratio = bytes_per_record / (key+payload)";
  add(std::move(r));

  Row e;
  e.name = "memory.after_expiry_and_purge";
  e.baseline = "0 records";
  e.extra["records_after_purge"] = after_purge;
  e.extra["records_purged"] = purged;
  e.extra["rss_delta_after_purge_mb"] =
      static_cast<double>(rss_purged - rss_before) / (1024.0 * 1024.0);
  e.extra["rss_delta_after_malloc_trim_mb"] =
      (static_cast<double>(rss_trimmed) - static_cast<double>(rss_before)) / (1024.0 * 1024.0);
  e.extra["rss_delta_full_mb"] = static_cast<double>(rss_full - rss_before) / (1024.0 * 1024.0);
  e.target = "0 records after purge";
  e.met = after_purge == 0;
  e.note = "ManualClock advanced 2 h past a 1 h TTL, then purge_expired()";
  add(std::move(e));
}

// ---------------------------------------------------------------------------------------------
// (8) compile time

#if defined(IDEMPOTENCY_BENCH_CXX)
double time_compile(const std::string& cmd) {
  const auto t0 = Clock::now();
  const int rc = std::system(cmd.c_str());
  if (rc != 0) throw std::runtime_error("compiler failed: " + cmd);
  return elapsed_ns(t0);
}
#endif

void bench_compile(const Config& cfg) {
#if defined(IDEMPOTENCY_BENCH_CXX)
  if (cfg.quick && cfg.only.count("compile") == 0) {
    skip("compile.umbrella_header",
         "skipped by --quick (each compile takes several seconds); add --only compile");
    return;
  }
  const std::string src = IDEMPOTENCY_BENCH_SOURCE_DIR "/compile_time/";
  const std::string base = std::string(IDEMPOTENCY_BENCH_CXX) + " " + IDEMPOTENCY_BENCH_CXX_FLAGS +
                           " -O2 -I" + IDEMPOTENCY_BENCH_INCLUDE_DIR + " -c -o /dev/null ";
  const int runs = 3;
  std::vector<double> lib, deps;
  for (int i = 0; i < runs; ++i) { // interleaved, as every other pair
    lib.push_back(time_compile(base + src + "with_idempotency.cpp"));
    deps.push_back(time_compile(base + src + "deps_only.cpp"));
  }
  Row r;
  r.name = "compile.umbrella_header";
  r.ns_per_op = median(lib);
  r.baseline = "TU with only fmt + nlohmann_json";
  r.baseline_ns_per_op = median(deps);
  r.ratio = *r.ns_per_op / *r.baseline_ns_per_op;
  r.extra["runs"] = runs;
  r.note = std::string("median wall time of ") + IDEMPOTENCY_BENCH_CXX + " -O2 -c";
  add(std::move(r));
#else
  skip("compile.umbrella_header", "compiler path not configured by bench/CMakeLists.txt");
  (void)cfg;
#endif
}

// ---------------------------------------------------------------------------------------------
// (3) + (4) Redis

#if defined(IDEMPOTENCY_BENCH_REDIS)
struct Redis {
  redisContext* c = nullptr;
  explicit Redis(const std::string& url) {
    const auto ep = idempotency::RedisEndpoint::parse(url);
    c = redisConnect(ep.host.c_str(), ep.port);
    if (c == nullptr || c->err) throw std::runtime_error("cannot connect to " + url);
    if (!ep.password.empty()) {
      auto* r = static_cast<redisReply*>(
          ep.user.empty() ? redisCommand(c, "AUTH %s", ep.password.c_str())
                          : redisCommand(c, "AUTH %s %s", ep.user.c_str(), ep.password.c_str()));
      if (r == nullptr || r->type == REDIS_REPLY_ERROR) throw std::runtime_error("AUTH failed");
      freeReplyObject(r);
    }
    if (ep.db != 0) freeReplyObject(redisCommand(c, "SELECT %d", ep.db));
  }
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;
  ~Redis() { redisFree(c); }

  /// Sends one command (binary-safe arguments); returns the reply, throws on failure.
  template <class... A>
  redisReply* cmd(const A&... args) {
    const std::string_view a[] = {std::string_view(args)...};
    const char* argv[sizeof...(A)];
    std::size_t len[sizeof...(A)];
    for (std::size_t i = 0; i < sizeof...(A); ++i) {
      argv[i] = a[i].data();
      len[i] = a[i].size();
    }
    auto* r =
        static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(sizeof...(A)), argv, len));
    if (r == nullptr) throw std::runtime_error("redis: connection error");
    if (r->type == REDIS_REPLY_ERROR) {
      std::string e(r->str, r->len);
      freeReplyObject(r);
      throw std::runtime_error("redis: " + e);
    }
    return r;
  }
  template <class... A>
  std::size_t call(const A&... args) { // returns the reply's string length (or 0)
    redisReply* r = cmd(args...);
    const std::size_t n = r->type == REDIS_REPLY_STRING ? r->len : 0;
    freeReplyObject(r);
    return n;
  }
  template <class... A>
  bool is_nil(const A&... args) {
    redisReply* r = cmd(args...);
    const bool nil = r->type == REDIS_REPLY_NIL;
    freeReplyObject(r);
    return nil;
  }

  /// INFO commandstats as {command: calls}.
  std::map<std::string, double> commandstats() {
    redisReply* r = cmd("INFO", "commandstats");
    std::istringstream in(std::string(r->str, r->len));
    freeReplyObject(r);
    std::map<std::string, double> out;
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("cmdstat_", 0) != 0) continue;
      const auto colon = line.find(':');
      const auto calls = line.find("calls=");
      if (colon == std::string::npos || calls == std::string::npos) continue;
      out[line.substr(8, colon - 8)] = std::stod(line.substr(calls + 6));
    }
    return out;
  }
};

/// Commands per op between two commandstats snapshots: {top-level (sent by the client), all
/// (including commands run inside scripts), breakdown}. INFO itself is left out.
struct CommandCount {
  double client = 0, all = 0;
  std::string breakdown;
};

CommandCount per_op(const std::map<std::string, double>& before,
                    const std::map<std::string, double>& after, double ops,
                    const std::set<std::string>& top) {
  CommandCount c;
  for (const auto& [name, calls] : after) {
    if (name == "info") continue;
    const auto it = before.find(name);
    const double d = calls - (it == before.end() ? 0 : it->second);
    if (d <= 0) continue;
    c.all += d / ops;
    c.breakdown += (c.breakdown.empty() ? "" : " ") + name + "=" + fmt_num(d / ops);
    if (top.count(name)) c.client += d / ops;
  }
  return c;
}

void bench_redis(const Config& cfg) {
  const char* cases[] = {"redis.replay", "redis.first", "redis.check_then_set"};
  if (cfg.redis_url.empty()) {
    for (const char* c : cases)
      skip(c, "no Redis server given (--redis URL or IDEMPOTENCY_BENCH_REDIS)");
    return;
  }
  std::unique_ptr<Redis> raw;
  std::unique_ptr<idempotency::RedisStore> store;
  const std::string prefix = "idempotency-bench:" + std::to_string(getpid()) + ":";
  try {
    raw = std::make_unique<Redis>(cfg.redis_url);
    store = std::make_unique<idempotency::RedisStore>(
        idempotency::RedisStoreOptions{.url = cfg.redis_url, .key_prefix = prefix});
  } catch (const std::exception& e) {
    for (const char* c : cases)
      skip(c, std::string("Redis at ") + cfg.redis_url + " not reachable: " + e.what());
    return;
  }
  const std::string payload(64, 'p');
  const std::size_t n = 1000;
  const auto keys = make_keys(n, 16);
  for (const auto& k : keys) {
    const auto c = store->claim(k, kNoFingerprint, 60s);
    if (c.acquired() && !store->complete(k, c.token, payload, 1h)) std::abort();
  }
  // raw baselines: GET of a key holding the same payload, EVALSHA of a trivial script
  const std::string get_key = prefix + "raw-get";
  raw->call("SET", get_key, payload);
  redisReply* loaded = raw->cmd("SCRIPT", "LOAD", "return 1");
  const std::string sha(loaded->str, loaded->len);
  freeReplyObject(loaded);
  const double secs = cfg.seconds_per_rep;

  // measures commands/op of `op` over `count` calls (outside the timed runs)
  // `top`: the commands the client itself sends; anything else ran inside a script
  const std::set<std::string> scripts = {"evalsha", "eval"};
  auto count_commands = [&](double count, const std::function<void(std::size_t)>& op,
                            const std::set<std::string>& top) {
    const auto before = raw->commandstats();
    for (std::size_t i = 0; i < static_cast<std::size_t>(count); ++i) op(i);
    return per_op(before, raw->commandstats(), count, top);
  };

  // --- replay vs EVALSHA and GET
  auto replay = [&](std::size_t i) {
    const auto r = store->claim(keys[i % n], kNoFingerprint, 60s);
    sink(r.payload.size());
  };
  auto evalsha = [&](std::size_t) { raw->call("EVALSHA", sha, "0"); };
  auto get = [&](std::size_t) { sink(raw->call("GET", get_key)); };
  auto side = [&](const std::function<void(std::size_t)>& op) -> Side {
    return [&, op]() -> std::pair<double, double> {
      const auto t0 = Clock::now();
      const double ops = timed_loop(secs, op);
      return {elapsed_ns(t0), ops};
    };
  };
  const std::uint64_t sent0 = store->commands_sent();
  const auto replay_cmds = count_commands(200, replay, scripts);
  const double replay_sent = static_cast<double>(store->commands_sent() - sent0) / 200;
  {
    const auto p = measure_pair(cfg.reps, side(replay), side(evalsha));
    Row r;
    r.name = "redis.replay vs EVALSHA";
    r.ns_per_op = p.subject_ns;
    r.baseline = "raw hiredis EVALSHA 'return 1'";
    r.baseline_ns_per_op = p.baseline_ns;
    r.ratio = p.ratio();
    r.extra["commands_per_op"] = replay_cmds.client;
    r.extra["commands_per_op_incl_scripted"] = replay_cmds.all;
    r.extra["round_trips_per_op"] = replay_sent;
    r.extra["commandstats"] = replay_cmds.breakdown;
    r.target = "1 command; <= 1.2x EVALSHA";
    r.met = replay_cmds.client <= 1.0 && p.ratio() <= 1.2;
    add(std::move(r));
  }
  {
    const auto p = measure_pair(cfg.reps, side(replay), side(get));
    Row r;
    r.name = "redis.replay vs GET";
    r.ns_per_op = p.subject_ns;
    r.baseline = "raw hiredis GET (64 B value)";
    r.baseline_ns_per_op = p.baseline_ns;
    r.ratio = p.ratio();
    r.extra["commands_per_op"] = replay_cmds.client;
    add(std::move(r));
  }

  // --- first execution: RedisStore claim+complete vs the hand-written check-then-set
  std::size_t serial = 0; // fresh keys across every repetition
  auto first = [&](std::size_t) {
    const std::string k = make_key(++serial, 16, 'f');
    const auto c = store->claim(k, kNoFingerprint, 60s);
    if (!c.acquired() || !store->complete(k, c.token, payload, 1h)) std::abort();
  };
  auto check_then_set = [&](std::size_t) {
    // the usual algorithm: GET result; SETEX processing flag; run; SETEX result; DEL flag
    const std::string k = prefix + "cts:" + make_key(++serial, 16, 'f');
    if (!raw->is_nil("GET", k)) std::abort();
    raw->call("SETEX", k + ":lock", "60", "1");
    raw->call("SETEX", k, "3600", payload);
    raw->call("DEL", k + ":lock");
  };
  auto cts_replay = [&](std::size_t) { sink(raw->call("GET", get_key)); };
  const std::uint64_t sent1 = store->commands_sent();
  const auto first_cmds = count_commands(200, first, scripts);
  const double first_sent = static_cast<double>(store->commands_sent() - sent1) / 200;
  const auto cts_cmds = count_commands(200, check_then_set, {"get", "setex", "del"});
  const auto cts_replay_cmds = count_commands(200, cts_replay, {"get"});
  const auto p = measure_pair(cfg.reps, side(first), side(check_then_set));
  {
    const auto q = measure_pair(cfg.reps, side(first), side(evalsha));
    Row r;
    r.name = "redis.first vs EVALSHA";
    r.ns_per_op = q.subject_ns;
    r.baseline = "raw hiredis EVALSHA 'return 1'";
    r.baseline_ns_per_op = q.baseline_ns;
    r.ratio = q.ratio();
    r.extra["commands_per_op"] = first_cmds.client;
    r.extra["commands_per_op_incl_scripted"] = first_cmds.all;
    r.extra["round_trips_per_op"] = first_sent;
    r.extra["commandstats"] = first_cmds.breakdown;
    r.target = "2 commands";
    r.met = first_cmds.client <= 2.0;
    add(std::move(r));
  }
  {
    Row r;
    r.name = "redis.first vs check_then_set";
    r.ns_per_op = p.subject_ns;
    r.baseline = "hand-written GET/SETEX/SETEX/DEL";
    r.baseline_ns_per_op = p.baseline_ns;
    r.ratio = p.ratio();
    r.extra["commands_per_op"] = first_cmds.client;
    r.extra["baseline_commands_per_op"] = cts_cmds.client;
    r.extra["throughput_vs_baseline"] = 1.0 / p.ratio();
    r.target = "throughput >= 1.8x check-then-set";
    r.met = 1.0 / p.ratio() >= 1.8;
    add(std::move(r));
  }
  {
    Row r;
    r.name = "redis.check_then_set commands";
    r.baseline = "RedisStore";
    r.extra["first_commands_per_op"] = cts_cmds.client;
    r.extra["replay_commands_per_op"] = cts_replay_cmds.client;
    r.extra["store_first_commands_per_op"] = first_cmds.client;
    r.extra["store_replay_commands_per_op"] = replay_cmds.client;
    r.note = "check-then-set also races: two callers can both see GET miss and both run";
    add(std::move(r));
  }
  // leave the server as we found it
  for (;;) {
    redisReply* s = raw->cmd("SCAN", "0", "MATCH", prefix + "*", "COUNT", "100000");
    std::vector<std::string> doomed;
    if (s->type == REDIS_REPLY_ARRAY && s->elements == 2)
      for (std::size_t i = 0; i < s->element[1]->elements; ++i)
        doomed.emplace_back(s->element[1]->element[i]->str, s->element[1]->element[i]->len);
    freeReplyObject(s);
    if (doomed.empty()) break;
    for (const auto& d : doomed) raw->call("DEL", d);
  }
}
#else
void bench_redis(const Config&) {
  for (const char* c : {"redis.replay", "redis.first", "redis.check_then_set"})
    skip(c, "RedisStore not built (hiredis not found, or redis_store.hpp missing)");
}
#endif

// ---------------------------------------------------------------------------------------------
// (5) SQLite

#if defined(IDEMPOTENCY_BENCH_SQLITE)
/// The floor: one prepared statement on a plain table, same WAL + synchronous setting.
struct RawSqlite {
  sqlite3* db = nullptr;
  sqlite3_stmt* select = nullptr;
  sqlite3_stmt* insert = nullptr;
  RawSqlite(const std::string& path, bool full) {
    if (sqlite3_open(path.c_str(), &db) != SQLITE_OK) throw std::runtime_error("sqlite open");
    sqlite3_busy_timeout(db, 10'000);
    exec("PRAGMA journal_mode=WAL");
    exec(full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec("CREATE TABLE IF NOT EXISTS raw(key BLOB PRIMARY KEY, payload BLOB) WITHOUT ROWID");
    prepare("SELECT payload FROM raw WHERE key = ?1", &select);
    prepare("INSERT INTO raw(key, payload) VALUES (?1, ?2)", &insert);
  }
  RawSqlite(const RawSqlite&) = delete;
  RawSqlite& operator=(const RawSqlite&) = delete;
  ~RawSqlite() {
    sqlite3_finalize(select);
    sqlite3_finalize(insert);
    sqlite3_close(db);
  }
  void exec(const char* sql) {
    if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db));
  }
  void prepare(const char* sql, sqlite3_stmt** s) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, s, nullptr) != SQLITE_OK)
      throw std::runtime_error(std::string("sqlite: ") + sqlite3_errmsg(db));
  }
  std::size_t get(std::string_view key) {
    sqlite3_bind_blob(select, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    std::string out;
    if (sqlite3_step(select) == SQLITE_ROW)
      out.assign(static_cast<const char*>(sqlite3_column_blob(select, 0)),
                 static_cast<std::size_t>(sqlite3_column_bytes(select, 0)));
    sqlite3_reset(select);
    return out.size();
  }
  void put(std::string_view key, std::string_view payload) {
    sqlite3_bind_blob(insert, 1, key.data(), static_cast<int>(key.size()), SQLITE_STATIC);
    sqlite3_bind_blob(insert, 2, payload.data(), static_cast<int>(payload.size()), SQLITE_STATIC);
    if (sqlite3_step(insert) != SQLITE_DONE)
      throw std::runtime_error(std::string("sqlite insert: ") + sqlite3_errmsg(db));
    sqlite3_reset(insert);
  }
};

void bench_sqlite(const Config& cfg) {
  char tmpl[] = "/tmp/idempotency-bench-sqlite-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) {
    skip("sqlite", "cannot create a temp dir");
    return;
  }
  const std::string dir = tmpl;
  const std::string payload(64, 'p');
  const std::size_t n = cfg.quick ? 100 : 500; // FULL: each prefill commit is an fsync
  const double secs = cfg.seconds_per_rep;
  const int reps = std::max(3, cfg.reps - 2);
  int generation = 0; // fresh keys per side and repetition
  for (bool full : {false, true}) {
    const std::string sync = full ? "FULL" : "NORMAL";
    const std::string store_path = dir + "/store-" + sync + ".db";
    const std::string raw_path = dir + "/raw-" + sync + ".db";
    const idempotency::SqliteStoreOptions opts{.durability =
                                                   full ? idempotency::SqliteDurability::full
                                                        : idempotency::SqliteDurability::normal};
    {
      idempotency::SqliteStore store{store_path, opts};
      RawSqlite raw{raw_path, full};
      for (std::size_t i = 0; i < n; ++i) {
        const std::string k = make_key(i, 16);
        const auto c = store.claim(k, kNoFingerprint, 60s);
        if (c.acquired() && !store.complete(k, c.token, payload, 1h)) std::abort();
        raw.put(k, payload);
      }
    } // no connection is open across fork()
    for (int procs : {1, 2}) {
      const std::string label = fmt::format("sync={} procs={}", sync, procs);
      auto store_side = [&](bool first_exec) -> Side {
        return [&, first_exec]() {
          const int gen = ++generation;
          return run_processes(procs, [&, gen, first_exec](int proc) -> std::function<double()> {
            auto store = std::make_shared<idempotency::SqliteStore>(store_path, opts);
            return [store, first_exec, gen, proc, &payload, secs, n]() {
              return timed_loop(secs, [&](std::size_t i) {
                if (first_exec) {
                  const std::string k =
                      make_key(i, 16, 's') + "-" + std::to_string(gen) + "-" + std::to_string(proc);
                  const auto c = store->claim(k, kNoFingerprint, 60s);
                  if (!c.acquired() || !store->complete(k, c.token, payload, 1h)) std::abort();
                } else {
                  const auto r =
                      store->claim(make_key((i * 7 + static_cast<std::size_t>(proc)) % n, 16),
                                   kNoFingerprint, 60s);
                  if (r.status != idempotency::ClaimStatus::completed) {
                    std::fprintf(stderr, "sqlite replay found status %d\n",
                                 static_cast<int>(r.status));
                    std::abort();
                  }
                  sink(r.payload.size());
                }
              });
            };
          });
        };
      };
      auto raw_side = [&](bool first_exec) -> Side {
        return [&, first_exec]() {
          const int gen = ++generation;
          return run_processes(procs, [&, gen, first_exec](int proc) -> std::function<double()> {
            auto raw = std::make_shared<RawSqlite>(raw_path, full);
            return [raw, first_exec, gen, proc, &payload, secs, n]() {
              return timed_loop(secs, [&](std::size_t i) {
                if (first_exec) {
                  raw->put(
                      make_key(i, 16, 's') + "-" + std::to_string(gen) + "-" + std::to_string(proc),
                      payload);
                } else {
                  sink(raw->get(make_key((i * 7 + static_cast<std::size_t>(proc)) % n, 16)));
                }
              });
            };
          });
        };
      };
      for (bool first_exec : {false, true}) {
        const auto p = measure_pair(reps, store_side(first_exec), raw_side(first_exec));
        Row r;
        r.name = std::string("sqlite.") + (first_exec ? "first " : "replay ") + label;
        r.ns_per_op = p.subject_ns;
        r.baseline = first_exec ? "raw sqlite3 INSERT (1 autocommit tx)"
                                : "raw sqlite3 SELECT by primary key";
        r.baseline_ns_per_op = p.baseline_ns;
        r.ratio = p.ratio();
        r.extra["transactions_per_op"] = first_exec ? 2 : 1;
        r.note = procs > 1 ? "ns_per_op = wall time / ops of both processes" : "";
        add(std::move(r));
      }
    }
  }
  std::string rm = "rm -rf '" + dir + "'";
  if (std::system(rm.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir.c_str());
}
#else
void bench_sqlite(const Config&) {
  skip("sqlite", "SqliteStore not built (SQLite3 not found, or sqlite_store.hpp missing)");
}
#endif

// ---------------------------------------------------------------------------------------------
// (6) PostgreSQL

#if defined(IDEMPOTENCY_BENCH_POSTGRES)
struct Pg {
  PGconn* c = nullptr;
  explicit Pg(const std::string& conninfo) : c(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(c) != CONNECTION_OK)
      throw std::runtime_error(std::string("cannot connect: ") + PQerrorMessage(c));
  }
  Pg(const Pg&) = delete;
  Pg& operator=(const Pg&) = delete;
  ~Pg() { PQfinish(c); }
  std::string value(const char* sql) {
    PGresult* r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
      std::string e = PQresultErrorMessage(r);
      PQclear(r);
      throw std::runtime_error("postgres: " + e);
    }
    std::string v = PQgetvalue(r, 0, 0);
    PQclear(r);
    return v;
  }
  /// The next transaction id the server will assign (read without assigning one).
  double next_xid() {
    return std::stod(value("SELECT pg_snapshot_xmax(pg_current_snapshot())::text"));
  }
};

void bench_postgres(const Config& cfg) {
  if (cfg.postgres_conninfo.empty()) {
    skip("postgres",
         "no PostgreSQL server given (--postgres CONNINFO or IDEMPOTENCY_BENCH_POSTGRES)");
    return;
  }
  const std::string table = "idempotency_bench_" + std::to_string(getpid());
  std::unique_ptr<Pg> raw;
  std::unique_ptr<idempotency::PostgresStore> store;
  try {
    raw = std::make_unique<Pg>(cfg.postgres_conninfo);
    store = std::make_unique<idempotency::PostgresStore>(idempotency::PostgresStoreOptions{
        .connection = cfg.postgres_conninfo, .table = table, .pool_size = 1});
    store->ensure_schema();
  } catch (const std::exception& e) {
    skip("postgres", std::string("PostgreSQL not reachable: ") + e.what());
    return;
  }
  PGresult* prep = PQprepare(raw->c, "one", "SELECT 1", 0, nullptr);
  if (PQresultStatus(prep) != PGRES_COMMAND_OK) std::abort();
  PQclear(prep);
  const std::string payload(64, 'p');
  const std::size_t n = 1000;
  const auto keys = make_keys(n, 16);
  for (const auto& k : keys) {
    const auto c = store->claim(k, kNoFingerprint, 60s);
    if (c.acquired() && !store->complete(k, c.token, payload, 1h)) std::abort();
  }
  const double secs = cfg.seconds_per_rep;
  auto select1 = [&](std::size_t) {
    PGresult* r = PQexecPrepared(raw->c, "one", 0, nullptr, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) std::abort();
    sink(static_cast<std::size_t>(PQntuples(r)));
    PQclear(r);
  };
  auto replay = [&](std::size_t i) {
    sink(store->claim(keys[i % n], kNoFingerprint, 60s).payload.size());
  };
  std::size_t serial = 0;
  const std::string raw_table = table + "_raw";
  {
    const std::string ddl =
        "CREATE TABLE \"" + raw_table + "\" (key bytea PRIMARY KEY, payload bytea)";
    PQclear(PQexec(raw->c, ddl.c_str()));
    const std::string ins = "INSERT INTO \"" + raw_table + "\" VALUES ($1::bytea, $2::bytea)";
    PGresult* pi = PQprepare(raw->c, "ins", ins.c_str(), 0, nullptr);
    if (PQresultStatus(pi) != PGRES_COMMAND_OK) std::abort();
    PQclear(pi);
  }
  auto insert = [&](std::size_t) {
    const std::string k = make_key(++serial, 16, 'r');
    const char* values[2] = {k.c_str(), payload.c_str()};
    PGresult* r = PQexecPrepared(raw->c, "ins", 2, values, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) std::abort();
    PQclear(r);
  };
  auto first = [&](std::size_t) {
    const std::string k = make_key(++serial, 16, 'f');
    const auto c = store->claim(k, kNoFingerprint, 60s);
    if (!c.acquired() || !store->complete(k, c.token, payload, 1h)) std::abort();
  };
  auto side = [&](const std::function<void(std::size_t)>& op) -> Side {
    return [&, op]() -> std::pair<double, double> {
      const auto t0 = Clock::now();
      const double ops = timed_loop(secs, op);
      return {elapsed_ns(t0), ops};
    };
  };
  // round trips and transaction ids per op, outside the timed runs
  auto count = [&](const std::function<void(std::size_t)>& op, double m) {
    const std::uint64_t rt0 = store->round_trips();
    const double x0 = raw->next_xid();
    for (std::size_t i = 0; i < static_cast<std::size_t>(m); ++i) op(i);
    const double xids = raw->next_xid() - x0;
    return std::pair{static_cast<double>(store->round_trips() - rt0) / m, xids / m};
  };
  const auto [replay_rt, replay_xids] = count(replay, 200);
  const auto [first_rt, first_xids] = count(first, 200);
  for (bool first_exec : {false, true}) {
    const std::function<void(std::size_t)> op =
        first_exec ? std::function<void(std::size_t)>(first) : replay;
    const auto p = measure_pair(cfg.reps, side(op), side(select1));
    Row r;
    r.name = std::string("postgres.") + (first_exec ? "first" : "replay") + " vs SELECT 1";
    r.ns_per_op = p.subject_ns;
    r.baseline = "prepared SELECT 1 (own connection)";
    r.baseline_ns_per_op = p.baseline_ns;
    r.ratio = p.ratio();
    r.extra["round_trips_per_op"] = first_exec ? first_rt : replay_rt;
    r.extra["xids_assigned_per_op"] = first_exec ? first_xids : replay_xids;
    if (first_exec) {
      r.target = "2 round trips";
      r.met = first_rt <= 2.0;
    } else {
      r.target = "1 round trip, no xid (writes nothing)";
      r.met = replay_rt <= 1.0 && replay_xids == 0.0;
    }
    add(std::move(r));
  }
  {
    const std::function<void(std::size_t)> op = first;
    const auto p = measure_pair(cfg.reps, side(op), side(insert));
    Row r;
    r.name = "postgres.first vs INSERT";
    r.ns_per_op = p.subject_ns;
    r.baseline = "prepared INSERT, autocommit (1 commit)";
    r.baseline_ns_per_op = p.baseline_ns;
    r.ratio = p.ratio();
    r.extra["round_trips_per_op"] = first_rt;
    r.extra["commits_per_op"] = first_xids;
    add(std::move(r));
  }
  try {
    const std::string drop = "DROP TABLE IF EXISTS \"" + table + "\", \"" + table +
                             "_migrations\", \"" + raw_table + "\"";
    PQclear(PQexec(raw->c, drop.c_str()));
  } catch (...) {
  }
}
#else
void bench_postgres(const Config&) {
  skip("postgres", "PostgresStore not built (libpq not found, or postgres_store.hpp missing)");
}
#endif

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--quick] [--json FILE] [--only CASE,...] [--redis URL] "
               "[--postgres CONNINFO]\n  CASE: memory inmemory executor redis sqlite postgres "
               "compile\n  env: IDEMPOTENCY_BENCH_REDIS, IDEMPOTENCY_BENCH_POSTGRES\n",
               argv0);
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  Config cfg;
  if (const char* e = std::getenv("IDEMPOTENCY_BENCH_REDIS")) cfg.redis_url = e;
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
    } else if (a == "--postgres" && has_value) {
      cfg.postgres_conninfo = argv[++i];
    } else if (a == "--only" && has_value) {
      std::string list = argv[++i];
      for (std::size_t p = 0; p <= list.size();) {
        const std::size_t q = std::min(list.find(',', p), list.size());
        if (q > p) cfg.only.insert(list.substr(p, q - p));
        p = q + 1;
      }
    } else {
      return usage(argv[0]);
    }
  }
  if (cfg.quick) {
    cfg.reps = 3;
    cfg.seconds_per_rep = 0.05;
  }
  const auto t0 = Clock::now();
  std::printf(
      "idempotency_bench%s: ratio = ns_per_op / baseline_ns_per_op, medians of %d "
      "interleaved repetitions; absolute times are informative only\n",
      cfg.quick ? " --quick" : "", cfg.reps);
  std::printf("%-46s %10s  %-34s %10s  %6s  %-5s %s\n", "case", "ns/op", "baseline", "base ns/op",
              "ratio", "goal", "extra");
  int rc = 0;
  // memory first: RSS deltas are only meaningful before other cases grew the heap
  const std::pair<const char*, void (*)(const Config&)> cases[] = {
      {"memory", bench_memory},  {"inmemory", bench_in_memory}, {"executor", bench_executor},
      {"redis", bench_redis},    {"sqlite", bench_sqlite},      {"postgres", bench_postgres},
      {"compile", bench_compile}};
  for (const auto& [name, fn] : cases) {
    if (!cfg.wants(name)) continue;
    try {
      fn(cfg);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "case %s failed: %s\n", name, e.what());
      skip(name, std::string("failed: ") + e.what());
      rc = 1;
    }
  }
  std::printf("total %.1f s (sink %llu)\n", elapsed_ns(t0) / 1e9,
              static_cast<unsigned long long>(g_sink % 10));
  if (!cfg.json_path.empty()) {
    nlohmann::json all = nlohmann::json::array();
    for (const Row& r : g_rows) all.push_back(to_json(r));
    std::ofstream out(cfg.json_path);
    out << all.dump(2) << '\n';
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", cfg.json_path.c_str());
      return 1;
    }
  }
  return rc;
}
