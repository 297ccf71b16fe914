// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#include "delay_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <stdexcept>

namespace bench {

namespace {

using Clock = std::chrono::steady_clock;

void set_nodelay_nonblocking(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int connect_to(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return -1;
  int fd = -1;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    fd = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (::connect(fd, a->ai_addr, a->ai_addrlen) == 0) break;
    ::close(fd);
    fd = -1;
  }
  ::freeaddrinfo(res);
  return fd;
}

timespec to_timespec(Clock::duration d) {
  const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
  return ts;
}

} // namespace

// Both directions of one proxied connection; the sockets close when both pumps are done.
struct DelayProxy::Connection {
  int client = -1;
  int server = -1;
  ~Connection() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
  }
};

DelayProxy::DelayProxy(std::string upstream_host, int upstream_port,
                       std::chrono::microseconds one_way)
    : host_(std::move(upstream_host)), upstream_port_(upstream_port), one_way_(one_way) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error("delay proxy: socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0; // ephemeral
  socklen_t len = sizeof a;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(listen_fd_, 128) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 ||
      ::pipe2(wake_, O_CLOEXEC) != 0) {
    ::close(listen_fd_);
    throw std::runtime_error("delay proxy: bind/listen");
  }
  port_ = ntohs(a.sin_port);
  acceptor_ = std::thread([this] { accept_loop(); });
}

DelayProxy::~DelayProxy() {
  stop_.store(true);
  const char c = 's';
  if (::write(wake_[1], &c, 1) != 1) std::abort(); // never read: wakes every poll for good
  acceptor_.join();
  // the acceptor is gone: nobody adds pumps any more
  for (auto& t : pumps_) t.join();
  ::close(listen_fd_);
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void DelayProxy::accept_loop() {
  for (;;) {
    pollfd fds[2] = {{wake_[0], POLLIN, 0}, {listen_fd_, POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (stop_.load() || (fds[0].revents & POLLIN) != 0) return;
    if ((fds[1].revents & POLLIN) == 0) continue;
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    auto conn = std::make_shared<Connection>();
    conn->client = client;
    conn->server = connect_to(host_, upstream_port_);
    if (conn->server < 0) continue; // the client sees its connection closed
    set_nodelay_nonblocking(conn->client);
    set_nodelay_nonblocking(conn->server);
    std::lock_guard lock(mutex_);
    pumps_.emplace_back([this, conn] { pump(conn, true); });
    pumps_.emplace_back([this, conn] { pump(conn, false); });
  }
}

// Moves bytes in one direction (client -> server when `upstream`), each chunk held until
// its read time + one_way_. On end of input it delivers what it holds, then half-closes.
void DelayProxy::pump(std::shared_ptr<Connection> conn, bool upstream) {
  // the default 50 µs timer slack would add up to 50 µs to every delay
  ::prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
  const int from = upstream ? conn->client : conn->server;
  const int to = upstream ? conn->server : conn->client;
  struct Chunk {
    Clock::time_point due;
    std::string bytes;
    std::size_t sent = 0;
  };
  std::deque<Chunk> held;
  bool eof = false;
  std::string buf(64 * 1024, '\0');
  while (!stop_.load()) {
    // deliver every chunk that is due, as far as the receiver takes it
    bool blocked = false;
    while (!held.empty() && held.front().due <= Clock::now()) {
      Chunk& c = held.front();
      const ssize_t n = ::send(to, c.bytes.data() + c.sent, c.bytes.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        blocked = true;
        break;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) { // the receiver is gone: tear the connection down both ways
        ::shutdown(from, SHUT_RDWR);
        ::shutdown(to, SHUT_RDWR);
        return;
      }
      c.sent += static_cast<std::size_t>(n);
      if (c.sent == c.bytes.size()) held.pop_front();
    }
    if (eof && held.empty()) {
      ::shutdown(to, SHUT_WR);
      return;
    }
    pollfd fds[3];
    nfds_t nfds = 0;
    fds[nfds++] = {wake_[0], POLLIN, 0};
    if (!eof) fds[nfds++] = {from, POLLIN, 0};
    if (blocked) fds[nfds++] = {to, POLLOUT, 0};
    timespec ts{};
    const timespec* timeout = nullptr;
    if (!blocked && !held.empty()) {
      ts = to_timespec(std::max(Clock::duration::zero(), held.front().due - Clock::now()));
      timeout = &ts;
    }
    if (::ppoll(fds, nfds, timeout, nullptr) < 0 && errno != EINTR) return;
    if ((fds[0].revents & POLLIN) != 0) return; // shutting down
    if (!eof && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const ssize_t n = ::read(from, buf.data(), buf.size());
      const auto now = Clock::now();
      if (n > 0) {
        held.push_back({now + one_way_, buf.substr(0, static_cast<std::size_t>(n)), 0});
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        eof = true;
      }
    }
  }
}

std::pair<std::string, int> redis_url_endpoint(const std::string& url) {
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) throw std::runtime_error("not a redis:// URL: " + url);
  std::string rest = url.substr(scheme.size());
  if (const auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  rest = rest.substr(0, rest.find('/'));
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos) return {rest, 6379};
  return {rest.substr(0, colon), std::stoi(rest.substr(colon + 1))};
}

std::string redis_url_via(const std::string& url, int port) {
  const std::string scheme = "redis://";
  const std::string rest = url.substr(scheme.size());
  const auto at = rest.rfind('@');
  const std::string auth = at == std::string::npos ? "" : rest.substr(0, at + 1);
  const std::string after = at == std::string::npos ? rest : rest.substr(at + 1);
  const auto slash = after.find('/');
  const std::string db = slash == std::string::npos ? "" : after.substr(slash);
  return scheme + auth + "127.0.0.1:" + std::to_string(port) + db;
}

} // namespace bench
