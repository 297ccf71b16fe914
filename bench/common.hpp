// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The shared part of idempotency_bench: options, result rows and their output (table and JSON),
// and every timing and statistics helper. The case files only describe what they run; how it is
// timed, repeated and summarised lives here, once.

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Options

struct Config {
  bool quick = false;
  std::string json_path;
  std::set<std::string> only; ///< case groups to run; empty = all
  std::string redis_url;
  std::string redis_cluster_url; ///< --redis-cluster URL: the cluster case
  std::string postgres_conninfo;
  std::optional<int> rtt_us;     ///< --rtt-us N: the only round-trip time the network cases use
  int reps = 5;                  ///< interleaved repetitions per pair (never fewer than 5)
  double seconds_per_rep = 0.20; ///< one side of one repetition (server stores)
  double network_seconds_per_rep = 0.30; ///< the same for the cases at a round-trip time

  [[nodiscard]] bool wants(const std::string& group) const {
    return only.empty() || only.count(group) != 0;
  }
  /// Round-trip times (µs) of the network cases; 0 = loopback, no proxy.
  [[nodiscard]] std::vector<int> rtts_us() const {
    if (rtt_us) return {*rtt_us};
    if (quick) return {0, 1000};
    return {0, 500, 1000};
  }
  [[nodiscard]] bool loopback() const {
    const auto r = rtts_us();
    return std::find(r.begin(), r.end(), 0) != r.end();
  }
};

/// "loopback" or "rtt1000us": the part of a network case's name that says where it ran.
std::string rtt_label(int rtt_us);

// ---------------------------------------------------------------------------------------------
// Results

/// min, median and max of a set of samples (ns per op, or bytes, ...).
struct Stats {
  double min = 0;
  double median = 0;
  double max = 0;
};

Stats stats_of(std::vector<double> samples);
double median(std::vector<double> samples);
/// One measurement: min = median = max.
inline Stats single(double v) { return {v, v, v}; }

struct Row {
  std::string name;
  std::optional<Stats> subject_ns; ///< ns per op of the subject (median = `ns_per_op`)
  std::string baseline;            ///< what the subject is compared with
  std::optional<Stats> baseline_ns;
  std::optional<double> ratio;                ///< of the medians
  std::optional<double> ratio_min, ratio_max; ///< over the repetitions (each rep's own ratio)
  /// How `ratio` is defined when it is not `ns_per_op / baseline_ns_per_op`.
  std::string ratio_definition;
  int reps = 0;
  nlohmann::json extra = nlohmann::json::object(); ///< commands_per_op, bytes_per_record, ...
  std::string target; ///< the issue's target, if one applies (then `met` must be set)
  std::optional<bool> met;
  std::string note;
  std::string skipped; ///< non-empty: the case was not run, and why
};

/// Prints the row (as it is measured: a long run shows progress) and keeps it for --json.
void add(Row r);
void skip(std::string name, std::string why);
nlohmann::json to_json(const Row& r);
const std::vector<Row>& rows();
void print_header(const Config& cfg);

std::string fmt_num(double v, int prec = 2);
std::string fmt_ns(double ns);

/// Defeats dead-code elimination of measured loops (thread-safe).
void sink(std::size_t v) noexcept;
std::uint64_t sink_value() noexcept;

// ---------------------------------------------------------------------------------------------
// Measuring

double elapsed_ns(Clock::time_point t0);

/// One side of one repetition: runs its operations (after any untimed setup) and returns
/// {timed nanoseconds, operations}.
using Side = std::function<std::pair<double, double>()>;

struct PairResult {
  std::vector<double> subject; ///< ns per op, one per repetition
  std::vector<double> baseline;
  [[nodiscard]] Stats subject_stats() const { return stats_of(subject); }
  [[nodiscard]] Stats baseline_stats() const { return stats_of(baseline); }
};

/// Runs subject and baseline alternately `reps` times (at least 5; the side that goes first
/// alternates too), so load drift hits both alike.
PairResult measure_pair(int reps, const Side& subject, const Side& baseline);

/// A row from a pair: ratio = subject / baseline (time per op, lower is better).
Row pair_row(std::string name, std::string baseline, const PairResult& p);
/// A row from a pair where the ratio is baseline / subject (how many times faster or how much
/// more throughput the subject has): ratio, ratio_min and ratio_max are all inverted.
Row speedup_row(std::string name, std::string baseline, const PairResult& p,
                std::string definition);

/// Runs `body(thread_index)` on `threads` threads released together; returns the wall time.
double run_threads(int threads, const std::function<void(int)>& body);

/// Runs one side in `procs` forked processes released together. `setup(i)` runs in child i
/// before the start signal and returns the timed loop, which returns its operation count.
/// Returns {wall ns from the first start to the last end, total operations}.
std::pair<double, double> run_processes(int procs,
                                        const std::function<std::function<double()>(int)>& setup);

/// Runs `op(i)` for i = 0, 1, ... until `seconds` passed (checked every `every` ops).
template <class Op>
double timed_loop(double seconds, Op&& op, std::size_t every = 16) {
  const auto until = Clock::now() + std::chrono::duration<double>(seconds);
  std::size_t i = 0;
  for (;;) {
    for (std::size_t k = 0; k < every; ++k) op(i++);
    if (Clock::now() >= until) break;
  }
  return static_cast<double>(i);
}

/// A side that runs `op(thread, i)` on `threads` threads, each for `seconds` (the clock is read
/// after every op: for server round trips); returns {wall ns, total ops}.
Side threaded_side(int threads, double seconds, std::function<void(int, std::size_t)> op);

/// Key number `i` as `len` visible-ASCII bytes: "k" + zero-padded decimal, e.g. k00000000000042.
std::string make_key(std::size_t i, std::size_t len, char tag = 'k');
std::vector<std::string> make_keys(std::size_t n, std::size_t len, char tag = 'k');

std::size_t rss_bytes();

// ---------------------------------------------------------------------------------------------
// Allocation counter (the global operator new replacements are in main.cpp)

/// Allocations (any operator new) made while counting was on, by every thread.
std::uint64_t allocations() noexcept;
void count_allocations(bool on) noexcept;

/// Heap allocations per call of `op(i)`, over `calls` calls, counted outside any timed run.
double allocations_per_op(std::size_t calls, const std::function<void(std::size_t)>& op);

// ---------------------------------------------------------------------------------------------
// The cases, one file each; main.cpp runs them in this order (memory first: RSS deltas are only
// meaningful before other cases grew the heap).

inline const std::string kNoFingerprint;

void bench_memory(const Config& cfg);        // memory.cpp
void bench_sweep(const Config& cfg);         // memory.cpp
void bench_in_memory(const Config& cfg);     // inmemory.cpp
void bench_executor(const Config& cfg);      // executor.cpp
void bench_cache(const Config& cfg);         // cache.cpp
void bench_redis(const Config& cfg);         // redis.cpp
void bench_redis_cluster(const Config& cfg); // redis_cluster.cpp
void bench_sqlite(const Config& cfg);        // sqlite.cpp
void bench_postgres(const Config& cfg);      // postgres.cpp
void bench_compile(const Config& cfg);       // compile.cpp

} // namespace bench
