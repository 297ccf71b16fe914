// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// A userspace TCP delay proxy for the network cases: listens on 127.0.0.1 (an ephemeral port)
// and forwards every connection to `host:port`, holding every chunk of bytes it reads, in each
// direction, for `one_way` before passing it on (in order, at read time + delay). A round trip
// through it therefore costs about 2 x one_way more than a direct one; no bandwidth limit.
//
// Two threads per connection, one per direction; each polls its source with a timeout that
// ends when the oldest held chunk is due. The destructor wakes and joins every thread and
// closes every socket.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace bench {

class DelayProxy {
 public:
  DelayProxy(std::string upstream_host, int upstream_port, std::chrono::microseconds one_way);
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;
  ~DelayProxy();

  [[nodiscard]] int port() const noexcept { return port_; }
  [[nodiscard]] std::chrono::microseconds one_way() const noexcept { return one_way_; }

 private:
  struct Connection;
  void accept_loop();
  void pump(std::shared_ptr<Connection> conn, bool upstream);

  std::string host_;
  int upstream_port_;
  std::chrono::microseconds one_way_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1}; ///< written once on shutdown; every poll watches the read end
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

/// The host and port of a `redis://[user:password@]host[:port][/db]` URL (port 6379 if absent).
std::pair<std::string, int> redis_url_endpoint(const std::string& url);
/// The same URL with its host and port replaced by 127.0.0.1:`port` (a proxy in front of it).
std::string redis_url_via(const std::string& url, int port);

} // namespace bench
