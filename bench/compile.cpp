// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
//
// Compile time, with the compiler and flags the project is built with (wall time of one
// `c++ -O2 -c` per translation unit): the umbrella header against a TU with only its
// dependencies (fmt + nlohmann_json), every public header compiled alone, and the smallest
// useful TU (executor + InMemoryStore), which should not need fmt or nlohmann_json at all.
#include "common.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace bench {

#if defined(IDEMPOTENCY_BENCH_CXX)

namespace {

constexpr double kUmbrellaTarget = 1.25;
constexpr double kSmallTuSeconds = 1.5;

std::string compiler() {
  return std::string(IDEMPOTENCY_BENCH_CXX) + " " + IDEMPOTENCY_BENCH_CXX_FLAGS + " " +
         IDEMPOTENCY_BENCH_STORE_FLAGS + " -O2 -I" + IDEMPOTENCY_BENCH_INCLUDE_DIR;
}

/// A shell command that feeds `includes` (one #include per entry) to the compiler on stdin.
std::string tu_command(const std::vector<std::string>& includes, const std::string& action) {
  std::string cmd = "printf '%s\\n'";
  for (const auto& h : includes) cmd += " '#include <" + h + ">'";
  return cmd + " 'int main() { return 0; }' | " + compiler() + " -x c++ " + action + " -";
}

/// The first "error:" line of the last failed compile (the full output is discarded).
std::string g_last_error;

/// Wall time of one run of `cmd`; nullopt if it failed (then g_last_error says why).
std::optional<double> time_command(const std::string& cmd) {
  char log[] = "/tmp/idempotency-bench-cc-XXXXXX";
  const int fd = mkstemp(log);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  close(fd);
  const auto t0 = Clock::now();
  const int rc = std::system((cmd + " 2>" + log).c_str());
  const double ns = elapsed_ns(t0);
  std::ifstream in(log);
  std::string line;
  g_last_error.clear();
  while (rc != 0 && std::getline(in, line))
    if (line.find("error") != std::string::npos) {
      g_last_error = line;
      break;
    }
  std::remove(log);
  if (rc != 0) return std::nullopt;
  return ns;
}

/// Thrown by a compile side that failed: the row is reported as not run, with the error.
struct CompileFailed : std::runtime_error {
  using std::runtime_error::runtime_error;
};

Side compile_side(const std::string& cmd) {
  return [cmd]() -> std::pair<double, double> {
    const auto ns = time_command(cmd);
    if (!ns) throw CompileFailed(g_last_error.empty() ? "the compiler failed" : g_last_error);
    return {*ns, 1.0};
  };
}

/// Every header of the preprocessed TU (`-M` lists system headers too; `-MM` would hide
/// fmt and nlohmann_json installed under /usr/include).
std::string dependencies(const std::vector<std::string>& includes) {
  const std::string cmd = tu_command(includes, "-M");
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  char buf[4096];
  while (const std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  if (pclose(p) != 0) throw std::runtime_error("compiler failed: " + cmd);
  return out;
}

void umbrella(const Config& cfg) {
  const std::string src = IDEMPOTENCY_BENCH_SOURCE_DIR "/compile_time/";
  const std::string base = compiler() + " -c -o /dev/null ";
  PairResult p;
  try {
    p = measure_pair(cfg.reps, compile_side(base + src + "with_idempotency.cpp"),
                     compile_side(base + src + "deps_only.cpp"));
  } catch (const CompileFailed& e) {
    skip("compile.umbrella_header", std::string("does not compile: ") + e.what());
    return;
  }
  Row r = pair_row("compile.umbrella_header", "TU with only fmt + nlohmann_json", p);
  r.target = "<= " + fmt_num(kUmbrellaTarget) + "x";
  r.met = *r.ratio <= kUmbrellaTarget;
  r.note = std::string("wall time of ") + IDEMPOTENCY_BENCH_CXX + " -O2 -c";
  add(std::move(r));
}

void small_tu() {
  const std::vector<std::string> includes = {"idempotency/executor.hpp",
                                             "idempotency/stores/in_memory_store.hpp"};
  const std::string cmd = tu_command(includes, "-c -o /dev/null");
  std::vector<double> t;
  for (int i = 0; i < 3; ++i) {
    const auto ns = time_command(cmd);
    if (!ns) {
      skip("compile.executor_inmemory_no_json", "does not compile: " + g_last_error);
      return;
    }
    t.push_back(*ns);
  }
  const std::string deps = dependencies(includes);
  const bool nlohmann = deps.find("/nlohmann/") != std::string::npos;
  const bool fmt = deps.find("/fmt/") != std::string::npos;
  Row r;
  r.name = "compile.executor_inmemory_no_json";
  r.subject_ns = stats_of(t);
  r.baseline = "none (absolute target)";
  r.reps = 3;
  r.extra["parses_nlohmann_json"] = nlohmann;
  r.extra["parses_fmt"] = fmt;
  r.target = "<= " + fmt_num(kSmallTuSeconds, 1) + " s and neither nlohmann/ nor fmt/ parsed";
  r.met = r.subject_ns->median <= kSmallTuSeconds * 1e9 && !nlohmann && !fmt;
  r.note =
      "TU: #include <idempotency/executor.hpp> + <idempotency/stores/in_memory_store.hpp>; "
      "parsed headers from -M";
  add(std::move(r));
}

void per_header() {
  namespace fs = std::filesystem;
  const fs::path root = IDEMPOTENCY_BENCH_INCLUDE_DIR;
  std::vector<std::string> headers;
  for (const auto& e : fs::recursive_directory_iterator(root / "idempotency")) {
    const std::string rel = fs::relative(e.path(), root).generic_string();
    if (e.is_regular_file() && e.path().extension() == ".hpp" &&
        rel.find("/detail/") == std::string::npos)
      headers.push_back(rel);
  }
  std::sort(headers.begin(), headers.end());
  // three rounds over all headers (not three runs of one after the other): drift hits all alike
  std::vector<std::vector<double>> t(headers.size());
  std::vector<std::string> failed(headers.size()); // non-empty: why it does not compile
  for (int round = 0; round < 3; ++round)
    for (std::size_t i = 0; i < headers.size(); ++i) {
      if (!failed[i].empty()) continue;
      const auto ns = time_command(tu_command({headers[i]}, "-c -o /dev/null"));
      if (ns)
        t[i].push_back(*ns);
      else
        failed[i] = g_last_error.empty() ? "the compiler failed" : g_last_error;
    }
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const std::string name = "compile.header " + headers[i].substr(headers[i].find('/') + 1);
    if (!failed[i].empty()) {
      skip(name, "does not compile on its own: " + failed[i]);
      continue;
    }
    Row r;
    r.name = name;
    r.subject_ns = stats_of(t[i]);
    r.baseline = "none (report only)";
    r.reps = 3;
    add(std::move(r));
  }
}

} // namespace

void bench_compile(const Config& cfg) {
  umbrella(cfg);
  small_tu();
  if (cfg.quick && cfg.only.count("compile") == 0)
    skip("compile.header", "per-header rows: full run or --only compile");
  else
    per_header();
}

#else

void bench_compile(const Config&) {
  skip("compile", "compiler path not configured by bench/CMakeLists.txt");
}

#endif

} // namespace bench
