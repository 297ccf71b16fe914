#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
#
# ctest fixture: start / stop a throw-away redis-server on 127.0.0.1.
#   redis_server.sh start DIR   starts one on a free port, data in DIR, writes DIR/url
#   redis_server.sh stop DIR    stops it and removes DIR
# Without redis-server installed, `start` exits 0 and writes no URL: the test binary then
# skips with a visible message (or fails when IDEMPOTENCY_REQUIRE_SERVERS is set).
set -u
action=${1:?start or stop}
dir=${2:?directory}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case "$action" in
  start)
    rm -rf "$dir"
    mkdir -p "$dir"
    server=$(command -v redis-server || true)
    if [ -z "$server" ]; then
      echo "redis-server not found: Redis tests will be skipped" >&2
      exit 0
    fi
    for _ in $(seq 1 40); do
      port=$(( 20000 + RANDOM % 30000 ))
      port_busy "$port" && continue
      "$server" --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --appendonly yes --save "" \
        --maxmemory-policy noeviction >/dev/null 2>&1 || continue
      for _ in $(seq 1 100); do
        if [ -s "$dir/redis.pid" ] && port_busy "$port"; then
          echo "$port" >"$dir/port"
          echo "redis://127.0.0.1:$port" >"$dir/url.tmp"
          mv "$dir/url.tmp" "$dir/url"
          echo "redis-server started on 127.0.0.1:$port (pid $(cat "$dir/redis.pid"), dir $dir)"
          exit 0
        fi
        sleep 0.05
      done
      [ -s "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
      rm -f "$dir/redis.pid"
    done
    echo "could not start redis-server; see $dir/redis.log" >&2
    exit 1
    ;;
  stop)
    if [ -s "$dir/redis.pid" ]; then
      pid=$(cat "$dir/redis.pid")
      kill -CONT "$pid" 2>/dev/null # a fault test killed mid-SIGSTOP leaves it stopped
      kill "$pid" 2>/dev/null
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -9 "$pid" 2>/dev/null
      echo "redis-server (pid $pid) stopped"
    fi
    rm -rf "$dir"
    exit 0
    ;;
  *)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
