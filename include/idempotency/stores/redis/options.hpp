// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// RedisStore's options, its counters, and the error of a write too few replicas confirmed.

#include <idempotency/errors.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

namespace idempotency {

/// Options of a RedisStore.
struct RedisStoreOptions {
  /// Where to connect (see RedisUrl): `redis://[[user]:password@]host:port[/db]`,
  /// `unix:///path/redis.sock[?db=N]`, `redis+cluster://host:port[,host:port...]`,
  /// `redis+sentinel://host:port[,host:port...]/master-name[/db]`.
  std::string url = "redis://127.0.0.1:6379";
  /// Prepended to every storage key (binary-safe). Use one per application or environment.
  /// On a Redis Cluster a `{hash tag}` in the prefix puts every record of this store in one
  /// slot (one master); without one, records spread over all slots by their key.
  std::string key_prefix = "idempotency:";
  /// Time allowed to open a TCP connection.
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(2)};
  /// Time allowed for one command's reply; after it the call throws `StoreError`. Also the
  /// time within which a call retries redirections, a failover (TRYAGAIN, CLUSTERDOWN,
  /// LOADING, READONLY, a refused connection) and a new topology before it throws: a call
  /// returns within about `connect_timeout + 2 * command_timeout` (plus, while a cluster's slot
  /// map or Sentinel's answer is read again, up to one `connect_timeout` per server that does
  /// not answer).
  std::chrono::milliseconds command_timeout{std::chrono::seconds(2)};
  /// At most this many connections per server are open at once; a thread that finds none
  /// idle and the pool full waits for one to be returned.
  std::size_t pool_size = 8;
  /// How long an in-progress record outlives its lease, so that a slow holder nobody took
  /// over can still record its result (design §2). Its memory is freed after that.
  std::chrono::milliseconds holder_grace{std::chrono::hours(1)};
  /// By default the store refuses a server whose `maxmemory-policy` is not `noeviction`
  /// (eviction can drop an in-flight or completed record, and the operation runs again), and
  /// a server where `CONFIG GET` is disabled or renamed (the policy cannot be checked). Every
  /// server the store writes to is checked on its first connection.
  /// Set to true to accept either after deciding that the risk is acceptable.
  bool accept_eviction_policy = false;
  /// 0: a write is acknowledged once the primary (master) applied it; replication is
  /// asynchronous, so a failover can lose it. N > 0: a claim that acquired, and every
  /// complete / fail / release / renew, also waits (`WAIT N replica_ack_timeout`, on the same
  /// connection) until N replicas hold the write, and throws `ReplicaAckError` when fewer did
  /// in time. The README's Redis table says what each setting guarantees across a failover.
  std::size_t replica_acks = 0;
  /// How long a write waits for `replica_acks` replicas. Must be below `command_timeout`.
  std::chrono::milliseconds replica_ack_timeout{std::chrono::milliseconds(500)};
};

/// Fewer replicas than `RedisStoreOptions::replica_acks` confirmed a write in time. The write
/// was applied on the primary (so it may survive, or be lost in a failover): the caller does
/// not know which. A claim that acquired is released again before this is thrown, so nothing
/// runs (a retry claims again); a complete/fail that throws this is retried by the executor,
/// and the resend (same token) is acknowledged without changing the record, then waits again.
class ReplicaAckError : public StoreError {
 public:
  ReplicaAckError(const std::string& operation, long long acknowledged, std::size_t required)
      : StoreError("redis", operation,
                   "the write reached " + std::to_string(acknowledged) + " of the " +
                       std::to_string(required) +
                       " replicas required (replica_acks) in time; it is on the primary but "
                       "may be lost in a failover"),
        acknowledged_(acknowledged),
        required_(required) {}
  [[nodiscard]] long long acknowledged() const noexcept { return acknowledged_; }
  [[nodiscard]] std::size_t required() const noexcept { return required_; }

 private:
  long long acknowledged_;
  std::size_t required_;
};

/// What a RedisStore has done so far (for tests, benchmarks and dashboards).
struct RedisStoreStats {
  std::uint64_t commands_sent = 0;      ///< every command, incl. AUTH/SELECT/ASKING/WAIT
  std::uint64_t script_reloads = 0;     ///< NOSCRIPT answered by resending with EVAL
  std::uint64_t moved = 0;              ///< MOVED redirections followed
  std::uint64_t ask = 0;                ///< ASK redirections followed (ASKING + the command)
  std::uint64_t retries = 0;            ///< calls sent again after TRYAGAIN, CLUSTERDOWN, LOADING,
                                        ///< READONLY, MASTERDOWN or an unreachable/broken server
  std::uint64_t topology_refreshes = 0; ///< CLUSTER SLOTS / Sentinel asked again
  std::uint64_t replica_ack_shortfalls = 0; ///< writes that got fewer acks than required
};

} // namespace idempotency
