// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// A fault-injecting TCP proxy for tests: listens on 127.0.0.1 (a free port), forwards every
// connection to a real server (redis-server, PostgreSQL) and, when armed, breaks the NEXT
// request that a client sends (one-shot), in one of these ways:
//
//   delay_reply   forward the request; hold the server's reply for `d`, then pass it on
//                 (past the client's command timeout: the write landed, the reply came late)
//   drop_reply    forward the request; throw the reply away and reset both connections
//                 (the write landed, the client sees a broken connection)
//   reset_before  throw the request away and reset both connections (nothing landed)
//   stall         hold the request for `d`, then forward it (a stalled network or peer: the
//                 client times out, and its write may still land later)
//
// "The next request" is the next chunk of bytes any client sends after `arm()` (or the next
// N chunks: a store that resends on a new connection meets the fault again). Tests call
// one store operation at a time on a warm connection, so that chunk is that operation's
// command (hiredis and libpq each send a command in one write).
// One thread does all the forwarding with poll(); the destructor stops it and closes all.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace idempotency::test {

enum class Fault { none, delay_reply, drop_reply, reset_before, stall };

inline const char* to_string(Fault f) noexcept {
  switch (f) {
    case Fault::none: return "none";
    case Fault::delay_reply: return "delay_reply";
    case Fault::drop_reply: return "drop_reply";
    case Fault::reset_before: return "reset_before";
    case Fault::stall: return "stall";
  }
  return "?";
}

class FaultProxy {
 public:
  FaultProxy(std::string upstream_host, int upstream_port)
      : host_(std::move(upstream_host)), upstream_port_(upstream_port) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) throw std::runtime_error("fault proxy: socket");
    const int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 64) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("fault proxy: bind/listen");
    }
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      ::close(listen_fd_);
      throw std::runtime_error("fault proxy: pipe");
    }
    thread_ = std::thread([this] { run(); });
  }

  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  ~FaultProxy() {
    stop_.store(true);
    wake();
    thread_.join();
    for (auto& p : pairs_) close_pair(*p, false);
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  [[nodiscard]] int port() const noexcept { return port_; }

  /// Breaks the next `requests` requests clients send (each on whichever connection sends
  /// it: a store's own resend on a new connection is the second). `d` is the delay of
  /// `delay_reply` and `stall`.
  void arm(Fault f, std::chrono::milliseconds d = std::chrono::milliseconds(0), int requests = 1) {
    {
      std::lock_guard lock(mutex_);
      armed_ = f;
      delay_ = d;
      armed_count_ = requests;
    }
    fired_.store(false);
    wake();
  }

  /// Forgets what is still armed (requests already hit stay faulted).
  void disarm() {
    std::lock_guard lock(mutex_);
    armed_ = Fault::none;
    armed_count_ = 0;
  }

  /// True once the armed fault hit a request.
  [[nodiscard]] bool fired() const noexcept { return fired_.load(); }

  /// Connections accepted so far.
  [[nodiscard]] int accepted() const noexcept { return accepted_.load(); }

 private:
  using clock = std::chrono::steady_clock;

  struct Held {
    std::string bytes;
    clock::time_point release_at;
  };

  struct Pair {
    int client = -1;
    int server = -1;
    bool dead = false;
    Fault fault = Fault::none; // the fault this pair carries now
    std::chrono::milliseconds delay{0};
    bool request_seen = false;   // drop_reply / delay_reply: the faulted request went out
    bool reply_held = false;     // delay_reply: the (first chunk of the) reply is held
    std::vector<Held> to_client; // delayed replies
    std::vector<Held> to_server; // stalled requests
  };

  void wake() noexcept {
    const char b = 1;
    (void)!::write(wake_[1], &b, 1);
  }

  static void send_all(int fd, const char* p, std::size_t n) noexcept {
    while (n > 0) {
      const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return; // the peer is gone: what it would have got is lost, as on a network
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

  // rst: close with SO_LINGER 0, so the peer sees a reset, not an orderly end of stream
  static void close_fd(int& fd, bool rst) noexcept {
    if (fd < 0) return;
    if (rst) {
      linger l{1, 0};
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    ::close(fd);
    fd = -1;
  }

  static void close_pair(Pair& p, bool rst) noexcept {
    close_fd(p.client, rst);
    close_fd(p.server, rst);
    p.dead = true;
  }

  int connect_upstream() const {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(upstream_port_));
    ::inet_pton(AF_INET, host_.c_str(), &a.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return -1;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }

  void accept_one() {
    const int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    const int s = connect_upstream();
    if (s < 0) {
      ::close(c);
      return;
    }
    const int one = 1;
    ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    auto p = std::make_unique<Pair>();
    p->client = c;
    p->server = s;
    pairs_.push_back(std::move(p));
    accepted_.fetch_add(1);
  }

  // A chunk from the client: the armed fault (if any) takes this request.
  void from_client(Pair& p, const char* data, std::size_t n) {
    if (p.fault == Fault::none) {
      std::lock_guard lock(mutex_);
      if (armed_ != Fault::none && armed_count_ > 0) {
        p.fault = armed_;
        p.delay = delay_;
        if (--armed_count_ == 0) armed_ = Fault::none;
        fired_.store(true);
      }
    }
    switch (p.fault) {
      case Fault::reset_before: close_pair(p, true); return;
      case Fault::stall:
        p.to_server.push_back({std::string(data, n), clock::now() + p.delay});
        return;
      case Fault::drop_reply:
      case Fault::delay_reply: p.request_seen = true; break;
      case Fault::none: break;
    }
    if (!p.to_server.empty()) { // keep the order behind a stalled request
      p.to_server.push_back({std::string(data, n), clock::now()});
      return;
    }
    send_all(p.server, data, n);
  }

  void from_server(Pair& p, const char* data, std::size_t n) {
    switch (p.fault) {
      case Fault::drop_reply:
        if (p.request_seen)
          close_pair(p, true);
        else
          send_all(p.client, data, n);
        return;
      case Fault::delay_reply:
        if (p.request_seen && !p.reply_held) {
          p.reply_held = true;
          p.to_client.push_back({std::string(data, n), clock::now() + p.delay});
          return;
        }
        break;
      case Fault::none:
      case Fault::reset_before:
      case Fault::stall: break;
    }
    if (!p.to_client.empty()) {
      p.to_client.push_back({std::string(data, n), clock::now()});
      return;
    }
    send_all(p.client, data, n);
  }

  // Releases held bytes whose time came; returns the earliest time still pending.
  static clock::time_point flush_held(Pair& p, clock::time_point now) {
    clock::time_point next = clock::time_point::max();
    const auto flush = [&](std::vector<Held>& q, int fd) {
      std::size_t i = 0;
      while (i < q.size() && q[i].release_at <= now) {
        send_all(fd, q[i].bytes.data(), q[i].bytes.size());
        ++i;
      }
      q.erase(q.begin(), q.begin() + static_cast<std::ptrdiff_t>(i));
      if (!q.empty() && q.front().release_at < next) next = q.front().release_at;
    };
    if (p.dead) return next;
    flush(p.to_server, p.server);
    flush(p.to_client, p.client);
    if (p.client < 0 && p.to_server.empty()) {
      close_pair(p, false); // the late request went out; nobody is left to read its reply
      return next;
    }
    const bool through = p.fault == Fault::stall || (p.fault == Fault::delay_reply && p.reply_held);
    if (through && p.to_server.empty() && p.to_client.empty()) {
      p.fault = Fault::none; // the stalled request or the delayed reply is through
      p.request_seen = p.reply_held = false;
    }
    return next;
  }

  void run() {
    std::vector<char> buf(1 << 16);
    while (!stop_.load()) {
      const auto now = clock::now();
      clock::time_point next = clock::time_point::max();
      for (auto& p : pairs_) {
        const auto t = flush_held(*p, now);
        if (t < next) next = t;
      }
      std::erase_if(pairs_, [](const std::unique_ptr<Pair>& p) { return p->dead; });
      std::vector<pollfd> fds;
      fds.push_back({listen_fd_, POLLIN, 0});
      fds.push_back({wake_[0], POLLIN, 0});
      for (auto& p : pairs_) {
        fds.push_back({p->client, POLLIN, 0});
        fds.push_back({p->server, POLLIN, 0});
      }
      int timeout = 200;
      if (next != clock::time_point::max()) {
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(next - now).count();
        timeout = static_cast<int>(std::max<long long>(0, std::min<long long>(ms, 200)));
      }
      const int n = ::poll(fds.data(), fds.size(), timeout);
      if (n <= 0) continue;
      if ((fds[1].revents & POLLIN) != 0) {
        char drain[64];
        while (::read(wake_[0], drain, sizeof drain) > 0) {
        }
      }
      const std::size_t existing = pairs_.size();
      for (std::size_t i = 0; i < existing; ++i) {
        Pair& p = *pairs_[i];
        for (int side = 0; side < 2 && !p.dead; ++side) {
          const pollfd& f = fds[2 + 2 * i + static_cast<std::size_t>(side)];
          if ((f.revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
          const ssize_t got = ::recv(f.fd, buf.data(), buf.size(), 0);
          if (got <= 0) {
            if (side == 0 && !p.to_server.empty()) {
              close_fd(p.client, false); // the client gave up; its stalled request still goes
              continue;
            }
            close_pair(p, false);
            break;
          }
          if (side == 0)
            from_client(p, buf.data(), static_cast<std::size_t>(got));
          else
            from_server(p, buf.data(), static_cast<std::size_t>(got));
        }
      }
      if ((fds[0].revents & POLLIN) != 0) accept_one();
    }
  }

  std::string host_;
  int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  int wake_[2] = {-1, -1};
  std::mutex mutex_;
  Fault armed_ = Fault::none;
  int armed_count_ = 0;
  std::chrono::milliseconds delay_{0};
  std::atomic<bool> fired_{false};
  std::atomic<int> accepted_{0};
  std::atomic<bool> stop_{false};
  std::vector<std::unique_ptr<Pair>> pairs_; // the proxy thread's alone
  std::thread thread_;
};

} // namespace idempotency::test
