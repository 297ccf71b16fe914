// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// SIGSTOPs a server process (and, for PostgreSQL, every child of its postmaster: the backends
// serve the connections) for the lifetime of the object; SIGCONT on destruction, also when an
// assertion failed in between. A stopped server accepts TCP connections (the kernel does) but
// answers nothing: the "stalled server, no RST" fault.

#include <signal.h>
#include <sys/types.h>

#include <dirent.h>

#include <idempotency/errors.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace idempotency::test {

/// The pids whose parent is `parent` (from /proc/<pid>/stat).
inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat("/proc/" + name + "/stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    const auto close = line.rfind(')'); // the command name may hold spaces
    if (close == std::string::npos) continue;
    std::istringstream rest(line.substr(close + 2));
    char state = 0;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  ::closedir(d);
  return out;
}

class StoppedServer {
 public:
  StoppedServer(pid_t pid, bool with_children) {
    pids_.push_back(pid);
    if (with_children)
      for (const pid_t c : children_of(pid)) pids_.push_back(c);
    for (const pid_t p : pids_) ::kill(p, SIGSTOP);
  }
  StoppedServer(const StoppedServer&) = delete;
  StoppedServer& operator=(const StoppedServer&) = delete;
  ~StoppedServer() { resume(); }
  void resume() noexcept {
    for (const pid_t p : pids_) ::kill(p, SIGCONT);
    pids_.clear();
  }
  [[nodiscard]] std::size_t stopped() const noexcept { return pids_.size(); }

 private:
  std::vector<pid_t> pids_;
};

/// Runs `f` (one store call); returns whether it threw `StoreError`, and how long it took.
template <class F>
std::pair<bool, std::chrono::steady_clock::duration> timed_store_call(F&& f) {
  const auto t0 = std::chrono::steady_clock::now();
  bool store_error = false;
  try {
    f();
  } catch (const idempotency::StoreError&) {
    store_error = true;
  }
  return {store_error, std::chrono::steady_clock::now() - t0};
}

/// The first line of a pid file as a pid; 0 if unreadable.
inline pid_t read_pid_file(const std::string& path) {
  std::ifstream in(path);
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

} // namespace idempotency::test
