// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// Where a RedisStore connects: the URL forms of a single node (TCP or Unix socket), a Redis
// Cluster and a Sentinel-watched primary. No hiredis here: parsing only.

#include <idempotency/errors.hpp>

#include <charconv>
#include <string>
#include <string_view>
#include <vector>

namespace idempotency {

/// One Redis server: a TCP host and port, or a Unix socket path.
struct RedisAddress {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string unix_path{}; ///< non-empty: connect to this Unix socket (host and port unused)

  /// `host:port` or `unix:<path>`, for messages and as a map key.
  [[nodiscard]] std::string str() const {
    return unix_path.empty() ? host + ":" + std::to_string(port) : "unix:" + unix_path;
  }
  friend bool operator==(const RedisAddress&, const RedisAddress&) = default;
};

/// How the servers of a RedisStore are arranged.
enum class RedisTopology {
  single,   ///< `redis://` or `unix://`: one server
  cluster,  ///< `redis+cluster://`: a Redis Cluster, found from seed nodes
  sentinel, ///< `redis+sentinel://`: the primary of a named master, asked of Sentinels
};

/// A parsed RedisStore URL. The forms:
///  - `redis://[[user]:password@]host[:port][/db]`
///  - `unix://[[user]:password@]/path/to/redis.sock[?db=N]`
///  - `redis+cluster://[[user]:password@]host:port[,host:port...]` (seed nodes; no db)
///  - `redis+sentinel://[[user]:password@]host:port[,host:port...]/master-name[/db]`
///    (the sentinels' addresses; the credentials and db are the primary's, the sentinels
///    are asked without AUTH)
///
/// Host names and IPv4 addresses only (no IPv6 literal, no percent-decoding). `rediss://` is
/// refused with an explanation: Debian 12's hiredis 0.14 has no TLS (see the README's TLS
/// recipe). Every error is a `StoreError` (operation "parse url") whose message never
/// contains the password.
struct RedisUrl {
  RedisTopology topology = RedisTopology::single;
  std::vector<RedisAddress> nodes{}; ///< the server; the cluster's seeds; the sentinels
  std::string master_name{};         ///< sentinel: the monitored master's name
  std::string user{};                ///< Redis 6+ ACL user; empty: `AUTH password`
  std::string password{};            ///< empty: no AUTH
  int db = 0;                        ///< SELECT index; 0 sends no SELECT

  [[nodiscard]] static RedisUrl parse(std::string_view url) {
    RedisUrl u;
    std::string_view rest;
    if (starts(url, "redis://")) {
      rest = url.substr(8);
    } else if (starts(url, "unix://")) {
      rest = url.substr(7);
    } else if (starts(url, "redis+cluster://")) {
      u.topology = RedisTopology::cluster;
      rest = url.substr(16);
    } else if (starts(url, "redis+sentinel://")) {
      u.topology = RedisTopology::sentinel;
      rest = url.substr(17);
    } else if (starts(url, "rediss://")) {
      throw bad(
          "rediss:// needs hiredis built with TLS, which this build does not have (Debian "
          "12 ships hiredis 0.14 without TLS): run stunnel as a client-side TLS sidecar "
          "and connect to it with redis://, as the README's TLS section shows");
    } else {
      throw bad("it must start with redis://, unix://, redis+cluster:// or redis+sentinel://");
    }
    const bool is_unix = starts(url, "unix://");
    // credentials: up to the last '@' before the path (a unix path may not contain '@')
    const auto path_start = is_unix ? rest.find('/') : rest.find('/');
    const auto at =
        rest.substr(0, path_start == std::string_view::npos ? rest.size() : path_start).rfind('@');
    if (at != std::string_view::npos) {
      const std::string_view auth = rest.substr(0, at);
      rest = rest.substr(at + 1);
      const auto colon = auth.find(':');
      if (colon == std::string_view::npos) throw bad("credentials must be [user]:password");
      u.user = std::string(auth.substr(0, colon));
      u.password = std::string(auth.substr(colon + 1));
    }
    if (is_unix) {
      RedisAddress a;
      std::string_view path = rest;
      if (const auto q = rest.find('?'); q != std::string_view::npos) {
        path = rest.substr(0, q);
        const std::string_view query = rest.substr(q + 1);
        if (!starts(query, "db=") || !parse_int(query.substr(3), u.db)) {
          throw bad("the only query a unix:// URL takes is ?db=N");
        }
      }
      if (path.empty() || path.front() != '/') throw bad("a unix:// URL needs an absolute path");
      a.unix_path = std::string(path);
      u.nodes.push_back(std::move(a));
      return u;
    }
    std::string_view hosts = rest;
    std::string_view tail;
    if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
      hosts = rest.substr(0, slash);
      tail = rest.substr(slash + 1);
    }
    if (u.topology == RedisTopology::sentinel) {
      const auto slash = tail.find('/');
      u.master_name = std::string(tail.substr(0, slash));
      if (u.master_name.empty()) throw bad("redis+sentinel:// needs /master-name after the hosts");
      tail = slash == std::string_view::npos ? std::string_view{} : tail.substr(slash + 1);
    }
    if (!tail.empty()) {
      if (u.topology == RedisTopology::cluster) throw bad("a Redis Cluster has only database 0");
      if (!parse_int(tail, u.db)) throw bad("the database must be a number");
    }
    while (!hosts.empty() || u.nodes.empty()) {
      const auto comma = hosts.find(',');
      std::string_view hostport = hosts.substr(0, comma);
      hosts = comma == std::string_view::npos ? std::string_view{} : hosts.substr(comma + 1);
      RedisAddress a;
      if (u.topology == RedisTopology::sentinel) a.port = 26379;
      if (const auto colon = hostport.rfind(':'); colon != std::string_view::npos) {
        if (!parse_int(hostport.substr(colon + 1), a.port) || a.port < 1 || a.port > 65535) {
          throw bad("the port must be a number in 1..65535");
        }
        hostport = hostport.substr(0, colon);
      }
      if (hostport.empty()) throw bad("a host is missing");
      if (hostport.find_first_of("[]?#@") != std::string_view::npos) {
        throw bad("IPv6 literals, queries and fragments are not supported");
      }
      a.host = std::string(hostport);
      u.nodes.push_back(std::move(a));
      if (comma == std::string_view::npos) break;
    }
    if (u.topology == RedisTopology::single && u.nodes.size() != 1) {
      throw bad("redis:// names one server; use redis+cluster:// or redis+sentinel:// for more");
    }
    return u;
  }

 private:
  static bool starts(std::string_view s, std::string_view p) noexcept {
    return s.substr(0, p.size()) == p;
  }
  static StoreError bad(const char* why) {
    return StoreError("redis", "parse url", std::string("invalid Redis URL (") + why + ")");
  }
  static bool parse_int(std::string_view text, int& out) noexcept {
    if (text.empty()) return false;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
    return ec == std::errc() && end == text.data() + text.size() && out >= 0;
  }
};

/// One server as a `redis://` or `unix://` URL names it (a single-node RedisUrl, flattened).
struct RedisEndpoint {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string user{};      ///< Redis 6+ ACL user; empty: `AUTH password` (the default user)
  std::string password{};  ///< empty: no AUTH
  int db = 0;              ///< SELECT index; 0 sends no SELECT
  std::string unix_path{}; ///< non-empty: a Unix socket

  /// Parses a `redis://` or `unix://` URL (see RedisUrl). Throws `StoreError`.
  [[nodiscard]] static RedisEndpoint parse(std::string_view url) {
    RedisUrl u = RedisUrl::parse(url);
    if (u.topology != RedisTopology::single) {
      throw StoreError("redis", "parse url",
                       "invalid Redis URL (RedisEndpoint names one server: redis:// or unix://)");
    }
    RedisEndpoint e;
    e.host = u.nodes.front().host;
    e.port = u.nodes.front().port;
    e.unix_path = u.nodes.front().unix_path;
    e.user = std::move(u.user);
    e.password = std::move(u.password);
    e.db = u.db;
    return e;
  }
};

} // namespace idempotency
