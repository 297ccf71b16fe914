#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# Three consumers of one Redis Streams consumer group share 300 messages. One of them records
# its 40th message and is SIGKILLed before the XACK; that message (and whatever else it had
# read) is redelivered to the others by XAUTOCLAIM. Every message's side effect must be in
# the effects file exactly once, and nothing may stay pending.
#   stream_consumer_test.sh <stream_consumer binary>   (env IDEMPOTENCY_REDIS_URL_FILE)
set -euo pipefail
bin="$1"
url_file="${IDEMPOTENCY_REDIS_URL_FILE:-}"
if [[ -z "$url_file" || ! -s "$url_file" ]]; then
  echo "no Redis (IDEMPOTENCY_REDIS_URL_FILE): skipped"
  [[ -n "${IDEMPOTENCY_REQUIRE_SERVERS:-}" ]] && exit 1
  exit 77
fi
url="$(cat "$url_file")"
hp="${url#redis://}"; host="${hp%:*}"; port="${hp##*:}"; port="${port%%/*}"
cli() { redis-cli -h "$host" -p "$port" "$@"; }
dir="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
stream="orders-$(date +%s%N)"
n=300
cli XGROUP CREATE "$stream" apply '$' MKSTREAM > /dev/null
for i in $(seq 1 $n); do echo "XADD $stream * payload m$i"; done | cli > "$dir/ids"
common=(--redis "$url" --stream "$stream" --group apply --effects "$dir/effects" --claim-idle-ms 1000)
"$bin" "${common[@]}" --consumer a --pause-after 40 --pause-file "$dir/paused" > "$dir/a.log" 2>&1 &
victim=$!; pids+=("$victim")
for _ in $(seq 200); do [[ -s "$dir/paused" ]] && break; sleep 0.05; done
[[ -s "$dir/paused" ]] || { echo "FAIL consumer a never reached its 40th message"; cat "$dir/a.log"; exit 1; }
kill -9 "$victim"; wait "$victim" 2>/dev/null || true
killed_id="$(cat "$dir/paused")"
fail=0
pending_of_a="$(cli XPENDING "$stream" apply - + 100 a | grep -c -- '-' || true)"
echo "consumer a: SIGKILLed after recording $killed_id, before its XACK; $pending_of_a message id(s) pending on it"
grep -q "^$killed_id " "$dir/effects" || { echo "FAIL the killed consumer's side effect is not in the file"; fail=1; }
"$bin" "${common[@]}" --consumer b > "$dir/b.log" 2>&1 & pids+=($!)
"$bin" "${common[@]}" --consumer c > "$dir/c.log" 2>&1 & pids+=($!)
wait "${pids[1]}" "${pids[2]}"
cat "$dir/b.log" "$dir/c.log"
lines=$(wc -l < "$dir/effects")
distinct=$(cut -d' ' -f1 "$dir/effects" | sort -u | wc -l)
dups=$(cut -d' ' -f1 "$dir/effects" | sort | uniq -d | wc -l)
missing=$(comm -23 <(sort "$dir/ids") <(cut -d' ' -f1 "$dir/effects" | sort -u) | wc -l)
pending=$(cli XPENDING "$stream" apply | head -1)
replayed=$(grep -ho 'replayed [0-9]*' "$dir/b.log" "$dir/c.log" | awk '{s += $2} END {print s + 0}')
echo "messages $n, side effects $lines, distinct $distinct, applied twice $dups, never applied $missing, pending $pending, replayed after redelivery $replayed"
[[ "$dups" == 0 && "$missing" == 0 && "$lines" == "$n" ]] || { echo "FAIL not exactly once"; fail=1; }
[[ "$pending" == 0 ]] || { echo "FAIL messages left pending"; fail=1; }
[[ "$replayed" -ge 1 ]] || { echo "FAIL the killed consumer's recorded message was not replayed"; fail=1; }
cli DEL "$stream" > /dev/null
exit "$fail"
