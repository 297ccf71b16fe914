// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// Helpers of the topology tests (cluster, Sentinel, TLS sidecar, Unix socket): the fixture's
// URL, a raw hiredis connection for the test's own commands, the cluster's nodes, and the
// pid of a server the fixture started (to SIGKILL it).
#include <idempotency/stores/redis_store.hpp>

#include <hiredis/hiredis.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace topology_test {

/// The first line of the file named by environment variable `var` ("" if none).
inline std::string read_env_file(const char* var, const char* name = "url") {
  const char* dir = std::getenv(var);
  if (dir == nullptr) return {};
  std::ifstream in(std::string(dir) + "/" + name);
  std::string line;
  std::getline(in, line);
  return line;
}

/// A plain connection to one node for the test's own commands.
class Raw {
 public:
  explicit Raw(const idempotency::RedisAddress& a) {
    timeval tv{3, 0};
    c_.reset(a.unix_path.empty() ? redisConnectWithTimeout(a.host.c_str(), a.port, tv)
                                 : redisConnectUnixWithTimeout(a.unix_path.c_str(), tv));
    if (c_ && c_->err == 0) (void)redisSetTimeout(c_.get(), tv);
  }
  [[nodiscard]] bool ok() const { return c_ && c_->err == 0; }

  /// The reply as text (arrays: elements joined by '\n'; nested arrays flattened); "" on I/O
  /// failure; errors as "ERR-REPLY: <text>".
  std::string run(const std::vector<std::string>& args) {
    if (!ok()) return {};
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    void* raw = redisCommandArgv(c_.get(), static_cast<int>(argv.size()), argv.data(), lens.data());
    if (raw == nullptr) return {};
    const idempotency::detail::redis::ReplyPtr r(static_cast<redisReply*>(raw));
    return flatten(r.get());
  }

 private:
  static std::string flatten(const redisReply* r) {
    if (r->type == REDIS_REPLY_INTEGER) return std::to_string(r->integer);
    if (r->type == REDIS_REPLY_ERROR) {
      return "ERR-REPLY: " + std::string(idempotency::detail::redis::text(r));
    }
    if (r->type == REDIS_REPLY_ARRAY) {
      std::string joined;
      for (std::size_t i = 0; i < r->elements; ++i) joined += flatten(r->element[i]) + "\n";
      return joined;
    }
    return std::string(idempotency::detail::redis::text(r));
  }
  idempotency::detail::redis::ContextPtr c_;
};

/// One line of CLUSTER NODES.
struct Node {
  std::string id;
  idempotency::RedisAddress address;
  bool master = false;
  bool failed = false;
  std::string master_id; ///< replicas: their master
  std::vector<std::pair<int, int>> slots;
  [[nodiscard]] bool serves(int slot) const {
    for (const auto& [a, b] : slots) {
      if (slot >= a && slot <= b) return true;
    }
    return false;
  }
};

inline std::vector<Node> cluster_nodes(const idempotency::RedisAddress& any) {
  Raw raw(any);
  std::istringstream in(raw.run({"CLUSTER", "NODES"}));
  std::vector<Node> out;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    Node n;
    std::string addr, flags, ping, pong, epoch, link;
    f >> n.id >> addr >> flags >> n.master_id >> ping >> pong >> epoch >> link;
    if (n.id.empty()) continue;
    const auto colon = addr.find(':');
    const auto at = addr.find('@');
    n.address.host = addr.substr(0, colon);
    n.address.port = std::atoi(addr.substr(colon + 1, at - colon - 1).c_str());
    n.master = flags.find("master") != std::string::npos;
    n.failed = flags.find("fail") != std::string::npos && flags.find("fail?") == std::string::npos;
    std::string range;
    while (f >> range) {
      if (range.front() == '[') continue; // a slot being migrated
      const auto dash = range.find('-');
      const int a = std::atoi(range.substr(0, dash).c_str());
      const int b = dash == std::string::npos ? a : std::atoi(range.substr(dash + 1).c_str());
      n.slots.emplace_back(a, b);
    }
    out.push_back(n);
  }
  return out;
}

/// The pid of the server the fixture started on `port` (0 if unknown).
inline pid_t pid_of(const char* dir_var, int port) {
  const char* dir = std::getenv(dir_var);
  if (dir == nullptr) return 0;
  std::ifstream in(std::string(dir) + "/node-" + std::to_string(port) + ".pid");
  long pid = 0;
  in >> pid;
  return static_cast<pid_t>(pid);
}

} // namespace topology_test
