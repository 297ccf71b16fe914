// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include "common.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string_view>
#include <thread>

namespace bench {

namespace {

std::vector<Row> g_rows;
std::atomic<std::uint64_t> g_sink{0};

// Pads `s` to `width` characters (UTF-8 aware: the ranges use an en dash).
std::string pad(std::string s, std::size_t width) {
  std::size_t chars = 0;
  for (const char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++chars;
  if (chars < width) s.append(width - chars, ' ');
  return s;
}

struct Unit {
  double scale;
  const char* name;
  int prec;
};

Unit unit_for(double ns) {
  if (ns >= 1e9) return {1e9, "s", 2};
  if (ns >= 1e6) return {1e6, "ms", 2};
  if (ns >= 1e4) return {1e3, "us", 1};
  return {1, "ns", 0};
}

std::string in_unit(double ns, Unit u) { return fmt_num(ns / u.scale, u.prec); }

// "412–449–502 ns": min–median–max in the unit the median reads best in; each with its own
// unit when they span more than one ("80 ns–431 ns–2.98 ms").
std::string fmt_range(const std::optional<Stats>& s) {
  if (!s) return "-";
  const Unit u = unit_for(s->median);
  const std::string dash = "\u2013";
  if (s->min == s->max) return in_unit(s->median, u) + " " + u.name;
  const Unit lo = unit_for(s->min), hi = unit_for(s->max);
  if (std::string_view(lo.name) == u.name && std::string_view(hi.name) == u.name)
    return in_unit(s->min, u) + dash + in_unit(s->median, u) + dash + in_unit(s->max, u) + " " +
           u.name;
  return in_unit(s->min, lo) + " " + lo.name + dash + in_unit(s->median, u) + " " + u.name + dash +
         in_unit(s->max, hi) + " " + hi.name;
}

std::string fmt_ratio(const Row& r) {
  if (!r.ratio) return "-";
  std::string s = fmt_num(*r.ratio) + "x";
  if (r.ratio_min && r.ratio_max)
    s += " [" + fmt_num(*r.ratio_min) + "\u2013" + fmt_num(*r.ratio_max) + "]";
  return s;
}

nlohmann::json stats_json(const Stats& s) {
  return {{"min", s.min}, {"median", s.median}, {"max", s.max}};
}

} // namespace

void sink(std::size_t v) noexcept { g_sink.fetch_add(v, std::memory_order_relaxed); }
std::uint64_t sink_value() noexcept { return g_sink.load(std::memory_order_relaxed); }

std::string rtt_label(int rtt_us) {
  return rtt_us == 0 ? std::string("loopback") : "rtt" + std::to_string(rtt_us) + "us";
}

std::string fmt_num(double v, int prec) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*f", prec, v);
  return buf;
}

std::string fmt_ns(double ns) { return fmt_range(single(ns)); }

Stats stats_of(std::vector<double> v) {
  if (v.empty()) return {};
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  const double med = n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
  return {v.front(), med, v.back()};
}

double median(std::vector<double> v) { return stats_of(std::move(v)).median; }

void print_header(const Config& cfg) {
  std::printf(
      "idempotency_bench%s: ratio = ns_per_op / baseline_ns_per_op (ratio of the medians "
      "of %d interleaved repetitions; [min\u2013max] of the per-repetition ratios) unless "
      "the row says otherwise; times are min\u2013median\u2013max and informative only\n",
      cfg.quick ? " --quick" : "", cfg.reps);
  std::printf("%s\n", (pad("case", 46) + " " + pad("subject", 26) + " " + pad("baseline", 38) +
                       " " + pad("baseline time", 26) + " " + pad("ratio [min\u2013max]", 22) +
                       " " + pad("goal", 5) + " extra")
                          .c_str());
}

void add(Row r) {
  if (!r.skipped.empty()) {
    std::printf("%s NOT RUN: %s\n", pad(r.name, 46).c_str(), r.skipped.c_str());
  } else {
    if (!r.target.empty() && !r.met) {
      std::fprintf(stderr, "bench bug: row %s has a target but no computed verdict\n",
                   r.name.c_str());
      std::abort();
    }
    std::string extra;
    for (const auto& [k, v] : r.extra.items()) {
      if (!extra.empty()) extra += ", ";
      extra += k + "=" + (v.is_number_float() ? fmt_num(v.get<double>()) : v.dump());
    }
    std::string line = pad(r.name, 46) + " " + pad(fmt_range(r.subject_ns), 26) + " " +
                       pad(r.baseline, 38) + " " + pad(fmt_range(r.baseline_ns), 26) + " " +
                       pad(fmt_ratio(r), 22) + " " +
                       pad(!r.met ? "" : (*r.met ? "MET" : "MISS"), 5) + " " + extra;
    if (!r.target.empty()) line += "  [target: " + r.target + "]";
    if (!r.ratio_definition.empty()) line += "  (ratio = " + r.ratio_definition + ")";
    if (!r.note.empty()) line += "  (" + r.note + ")";
    std::printf("%s\n", line.c_str());
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

const std::vector<Row>& rows() { return g_rows; }

nlohmann::json to_json(const Row& r) {
  nlohmann::json j;
  j["case"] = r.name;
  if (!r.skipped.empty()) {
    j["skipped"] = r.skipped;
    return j;
  }
  auto opt = [](const std::optional<double>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json();
  };
  j["ns_per_op"] = r.subject_ns ? nlohmann::json(r.subject_ns->median) : nlohmann::json();
  if (r.subject_ns) j["subject_ns"] = stats_json(*r.subject_ns);
  j["baseline"] = r.baseline;
  j["baseline_ns_per_op"] =
      r.baseline_ns ? nlohmann::json(r.baseline_ns->median) : nlohmann::json();
  if (r.baseline_ns) j["baseline_ns"] = stats_json(*r.baseline_ns);
  j["ratio"] = opt(r.ratio);
  if (r.ratio_min) j["ratio_min"] = *r.ratio_min;
  if (r.ratio_max) j["ratio_max"] = *r.ratio_max;
  if (r.ratio)
    j["ratio_definition"] =
        r.ratio_definition.empty() ? "ns_per_op / baseline_ns_per_op" : r.ratio_definition;
  if (r.reps > 0) j["reps"] = r.reps;
  for (const auto& [k, v] : r.extra.items()) j[k] = v;
  if (!r.target.empty()) {
    j["target"] = r.target;
    j["met"] = *r.met;
  }
  if (!r.note.empty()) j["note"] = r.note;
  return j;
}

// ---------------------------------------------------------------------------------------------
// Measuring

double elapsed_ns(Clock::time_point t0) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count();
}

PairResult measure_pair(int reps, const Side& subject, const Side& baseline) {
  PairResult p;
  reps = std::max(reps, 5);
  for (int i = 0; i < reps; ++i) {
    const bool subject_first = i % 2 == 0;
    for (int k = 0; k < 2; ++k) {
      const bool run_subject = (k == 0) == subject_first;
      const auto [ns, ops] = run_subject ? subject() : baseline();
      (run_subject ? p.subject : p.baseline).push_back(ns / ops);
    }
  }
  return p;
}

Row pair_row(std::string name, std::string baseline, const PairResult& p) {
  Row r;
  r.name = std::move(name);
  r.baseline = std::move(baseline);
  r.subject_ns = p.subject_stats();
  r.baseline_ns = p.baseline_stats();
  r.ratio = r.subject_ns->median / r.baseline_ns->median;
  std::vector<double> per_rep;
  for (std::size_t i = 0; i < p.subject.size(); ++i)
    per_rep.push_back(p.subject[i] / p.baseline[i]);
  const Stats s = stats_of(per_rep);
  r.ratio_min = s.min;
  r.ratio_max = s.max;
  r.reps = static_cast<int>(p.subject.size());
  return r;
}

Row speedup_row(std::string name, std::string baseline, const PairResult& p,
                std::string definition) {
  Row r = pair_row(std::move(name), std::move(baseline), p);
  r.ratio = r.baseline_ns->median / r.subject_ns->median;
  std::vector<double> per_rep;
  for (std::size_t i = 0; i < p.subject.size(); ++i)
    per_rep.push_back(p.baseline[i] / p.subject[i]);
  const Stats s = stats_of(per_rep);
  r.ratio_min = s.min;
  r.ratio_max = s.max;
  r.ratio_definition = std::move(definition);
  return r;
}

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

Side threaded_side(int threads, double seconds, std::function<void(int, std::size_t)> op) {
  return [threads, seconds, op = std::move(op)]() -> std::pair<double, double> {
    std::atomic<std::uint64_t> total{0};
    const double ns = run_threads(threads, [&](int t) {
      const double n = timed_loop(
          seconds, [&](std::size_t i) { op(t, i); }, 1);
      total.fetch_add(static_cast<std::uint64_t>(n));
    });
    return {ns, static_cast<double>(total.load())};
  };
}

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

std::string make_key(std::size_t i, std::size_t len, char tag) {
  std::string digits = std::to_string(i);
  std::string k(len, '0');
  k[0] = tag;
  std::copy(digits.begin(), digits.end(), k.end() - static_cast<std::ptrdiff_t>(digits.size()));
  return k;
}

std::vector<std::string> make_keys(std::size_t n, std::size_t len, char tag) {
  std::vector<std::string> keys;
  keys.reserve(n);
  for (std::size_t i = 0; i < n; ++i) keys.push_back(make_key(i, len, tag));
  return keys;
}

std::size_t rss_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  f >> pages >> resident;
  return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

double allocations_per_op(std::size_t calls, const std::function<void(std::size_t)>& op) {
  count_allocations(true);
  const std::uint64_t a0 = allocations();
  for (std::size_t i = 0; i < calls; ++i) op(i);
  const std::uint64_t a1 = allocations();
  count_allocations(false);
  return static_cast<double>(a1 - a0) / static_cast<double>(calls);
}

} // namespace bench
