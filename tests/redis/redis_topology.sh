#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
#
# ctest fixtures: Redis topologies on 127.0.0.1, started for real and stopped.
#   redis_topology.sh cluster DIR   3 masters + 3 replicas (cluster-node-timeout 1 s);
#                                   DIR/url = redis+cluster://…, DIR/node-PORT.pid per node
#   redis_topology.sh sentinel DIR  1 primary + 1 replica + 3 sentinels (quorum 2);
#                                   DIR/url = redis+sentinel://…/mymaster, DIR/primary.port,
#                                   DIR/node-PORT.pid
#   redis_topology.sh tls DIR       redis-server on a TLS port and a Unix socket only (no plain
#                                   TCP), a certificate made now with openssl, and stunnel as
#                                   the client-side sidecar; DIR/url = redis://127.0.0.1:<stunnel>,
#                                   DIR/unix_url = unix://…/redis.sock
#   redis_topology.sh stop DIR      stops everything started in DIR and removes it
# Without redis-server (or stunnel/openssl for tls) a start writes no URL and exits 0: the test
# binary then skips visibly (or fails when IDEMPOTENCY_REQUIRE_SERVERS is set).
set -u
action=${1:?cluster, sentinel, tls or stop}
dir=${2:?directory}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# a port nobody listens on now (another fixture may take it before we do: node() retries)
free_port() {
  local p
  for _ in $(seq 1 200); do
    p=$(( 20000 + RANDOM % 25000 ))
    port_busy "$p" && continue
    grep -qx "$p" "$dir/ports" 2>/dev/null && continue
    echo "$p" >>"$dir/ports"
    echo "$p"
    return 0
  done
  return 1
}
cli() { redis-cli -h 127.0.0.1 "$@"; }
wait_for() { # seconds (of wall-clock time), then a command that must succeed
  local until=$((SECONDS + $1)); shift
  while ((SECONDS < until)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  "$@" >/dev/null 2>&1
}
die() { echo "redis_topology: $*" >&2; "$0" stop "$dir" >/dev/null; mkdir -p "$dir"; exit 1; }
node() { # port, extra args… (@PORT@ stands for the port): a redis-server daemon, data in DIR/node-PORT
  local port=$1; shift
  set -- "${@//@PORT@/$port}"
  mkdir -p "$dir/node-$port"
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir/node-$port" --daemonize yes \
    --pidfile "$dir/node-$port.pid" --logfile "$dir/node-$port.log" --save "" \
    --appendonly no --maxmemory-policy noeviction "$@" >/dev/null 2>&1 || return 1
  if [ -z "${ping_socket:-}" ]; then
    wait_for 10 cli -p "$port" ping && return 0
  else
    wait_for 10 redis-cli -s "$ping_socket" ping && return 0
  fi
  # it lost a race for its port: stop it, the caller picks another
  [ -s "$dir/node-$port.pid" ] && kill -9 "$(cat "$dir/node-$port.pid")" 2>/dev/null
  rm -f "$dir/node-$port.pid"
  return 1
}
# start_node VAR extra args…: node() on free ports until one starts; the port goes to VAR
start_node() {
  local _var=$1; shift
  local _port
  for _ in 1 2 3 4 5 6 7 8; do
    _port=$(free_port) || break
    if node "$_port" "$@"; then printf -v "$_var" '%s' "$_port"; return 0; fi
  done
  die "no redis-server would start (see $dir/node-*.log)"
}
case "$action" in
  cluster)
    rm -rf "$dir"; mkdir -p "$dir"
    command -v redis-server >/dev/null || { echo "redis-server not found: skipped" >&2; exit 0; }
    ports=()
    for _ in 1 2 3 4 5 6; do
      bus=$(free_port) || die "no free port"
      start_node p --cluster-enabled yes --cluster-port "$bus" --cluster-node-timeout 1000 \
        --cluster-config-file nodes.conf
      ports+=("$p")
    done
    addrs=(); for p in "${ports[@]}"; do addrs+=("127.0.0.1:$p"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
      >"$dir/create.log" 2>&1 || die "redis-cli --cluster create failed: $(tail -5 "$dir/create.log")"
    ok() {
      for p in "${ports[@]}"; do
        cli -p "$p" cluster info | grep -q 'cluster_state:ok' || return 1
        info=$(cli -p "$p" info replication)
        if grep -q 'role:slave' <<<"$info"; then grep -q 'master_link_status:up' <<<"$info" || return 1; fi
      done
    }
    wait_for 90 ok || die "the cluster did not become ready"
    # every node must know the same 6 nodes before tests start moving slots
    known() { for p in "${ports[@]}"; do [ "$(cli -p "$p" cluster nodes | wc -l)" -eq 6 ] || return 1; done; }
    wait_for 30 known || die "the cluster nodes do not all know each other"
    url="redis+cluster://$(IFS=,; echo "${addrs[*]:0:3}")"
    echo "$url" >"$dir/url.tmp" && mv "$dir/url.tmp" "$dir/url"
    echo "Redis Cluster ready: $url (6 nodes, ${SECONDS} s)"
    ;;
  sentinel)
    rm -rf "$dir"; mkdir -p "$dir"
    command -v redis-server >/dev/null || { echo "redis-server not found: skipped" >&2; exit 0; }
    start_node primary
    start_node replica --replicaof 127.0.0.1 "$primary"
    wait_for 20 bash -c "redis-cli -p $replica info replication | grep -q master_link_status:up" ||
      die "the replica did not sync"
    sentinels=()
    for _ in 1 2 3; do
      s=$(free_port) || die "no free port"
      sentinels+=("127.0.0.1:$s")
      cat >"$dir/sentinel-$s.conf" <<CONF
port $s
bind 127.0.0.1
daemonize yes
pidfile $dir/sentinel-$s.pid
logfile $dir/sentinel-$s.log
dir $dir
sentinel monitor mymaster 127.0.0.1 $primary 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 4000
sentinel parallel-syncs mymaster 1
CONF
      redis-server "$dir/sentinel-$s.conf" --sentinel >/dev/null 2>&1 || die "sentinel $s did not start"
    done
    # each sentinel must know the replica and the two other sentinels before a failover works
    ready() {
      for a in "${sentinels[@]}"; do
        p=${a#*:}
        [ "$(cli -p "$p" sentinel replicas mymaster 2>/dev/null | grep -c "^$replica$")" -ge 1 ] || return 1
        [ "$(cli -p "$p" sentinel sentinels mymaster 2>/dev/null | grep -c '^name$')" -ge 2 ] || return 1
      done
    }
    wait_for 60 ready || die "the sentinels did not discover each other and the replica: $(for a in "${sentinels[@]}"; do cli -p "${a#*:}" sentinel master mymaster | tr "\n" " " | head -c 600; done)"
    echo "$primary" >"$dir/primary.port"
    url="redis+sentinel://$(IFS=,; echo "${sentinels[*]}")/mymaster"
    echo "$url" >"$dir/url.tmp" && mv "$dir/url.tmp" "$dir/url"
    echo "Sentinel ready: $url (primary $primary, replica $replica)"
    ;;
  tls)
    rm -rf "$dir"; mkdir -p "$dir"
    for tool in redis-server stunnel4 openssl; do
      command -v "$tool" >/dev/null || { echo "$tool not found: skipped" >&2; exit 0; }
    done
    # a short socket path: sun_path holds 107 bytes, build directories can be deep
    sock_dir=$(mktemp -d /tmp/idempotency-redis.XXXXXX)
    echo "$sock_dir" >"$dir/sock_dir"
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$dir/server.key" -out "$dir/server.crt" >"$dir/openssl.log" 2>&1 ||
      die "openssl could not make a certificate"
    ping_socket="$sock_dir/redis.sock" start_node tls_port --port 0 --tls-port @PORT@ \
      --tls-cert-file "$dir/server.crt" --tls-key-file "$dir/server.key" \
      --tls-ca-cert-file "$dir/server.crt" --tls-auth-clients no \
      --unixsocket "$sock_dir/redis.sock" --unixsocketperm 700
    started=""
    for _ in 1 2 3 4 5; do # another fixture may take the port first: then another one
      plain=$(free_port) || die "no free port"
      cat >"$dir/stunnel.conf" <<CONF
foreground = no
pid = $dir/stunnel.pid
output = $dir/stunnel.log
[redis]
client = yes
accept = 127.0.0.1:$plain
connect = 127.0.0.1:$tls_port
CAfile = $dir/server.crt
verifyChain = yes
checkHost = localhost
sni = localhost
CONF
      if stunnel4 "$dir/stunnel.conf" >"$dir/stunnel.start.log" 2>&1; then started=1; break; fi
    done
    [ -n "$started" ] || die "stunnel did not start: $(tail -3 "$dir/stunnel.log" "$dir/stunnel.start.log" 2>/dev/null)"
    wait_for 10 cli -p "$plain" ping || die "no PING through stunnel (see $dir/stunnel.log)"
    echo "redis://127.0.0.1:$plain" >"$dir/url.tmp" && mv "$dir/url.tmp" "$dir/url"
    echo "unix://$sock_dir/redis.sock" >"$dir/unix_url"
    echo "$tls_port" >"$dir/tls.port"
    echo "TLS sidecar ready: redis://127.0.0.1:$plain -> stunnel -> TLS 127.0.0.1:$tls_port; unix://$sock_dir/redis.sock"
    ;;
  stop)
    for f in "$dir"/*.pid; do
      [ -s "$f" ] || continue
      pid=$(cat "$f")
      kill -CONT "$pid" 2>/dev/null
      kill "$pid" 2>/dev/null
    done
    for f in "$dir"/*.pid; do
      [ -s "$f" ] || continue
      pid=$(cat "$f")
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -9 "$pid" 2>/dev/null
    done
    [ -s "$dir/sock_dir" ] && rm -rf "$(cat "$dir/sock_dir")"
    rm -rf "$dir"
    echo "stopped what ran in $dir"
    ;;
  *) echo "usage: $0 cluster|sentinel|tls|stop DIR" >&2; exit 2 ;;
esac
