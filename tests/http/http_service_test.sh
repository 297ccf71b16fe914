#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# The payments example driven by a real HTTP client (curl) on 127.0.0.1, every row of the
# README's status table, then a burst: 8 curl processes x 200 requests over 100 keys (each key
# sent 16 times, concurrently; each charge takes 30 ms so requests for one key overlap),
# retrying a 409 as a client would. The service counts the
# charges it ran per key: each key must have run exactly once, and every client must have
# seen the same body for a key.
#   http_service_test.sh <http_service binary>
# Env: IDEMPOTENCY_REDIS_URL_FILE (a file holding a redis:// URL): the service runs on
# RedisStore instead of SQLite; IDEMPOTENCY_HTTP_BURST: requests per burst process (200).
set -euo pipefail
bin="$1"
per_process="${IDEMPOTENCY_HTTP_BURST:-200}"
keys=$(( per_process / 2 )) # every key sent twice by each process: 16 times in all
store_args=()
if [[ -n "${IDEMPOTENCY_REDIS_URL_FILE:-}" ]]; then
  if [[ ! -s "$IDEMPOTENCY_REDIS_URL_FILE" ]]; then
    echo "no Redis (no URL in $IDEMPOTENCY_REDIS_URL_FILE): skipped"
    [[ -n "${IDEMPOTENCY_REQUIRE_SERVERS:-}" ]] && exit 1
    exit 77
  fi
  store_args=(--redis "$(cat "$IDEMPOTENCY_REDIS_URL_FILE")")
fi
run="$(date +%s%N)" # keys of this run only (a shared Redis keeps other runs' records)
if ! command -v curl >/dev/null; then
  echo "curl not found: skipped"
  [[ -n "${IDEMPOTENCY_REQUIRE_SERVERS:-}" ]] && exit 1
  exit 77
fi
dir="$(mktemp -d)"
pid=""
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$bin" --port 0 --port-file "$dir/port" --db "$dir/payments.db" "${store_args[@]}" > "$dir/service.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [[ -s "$dir/port" ]] && break; sleep 0.1; done
[[ -s "$dir/port" ]] || { echo "the service did not start"; cat "$dir/service.log"; exit 1; }
url="http://127.0.0.1:$(cat "$dir/port")"
fail=0
check() { # check <what> <expected> <actual>
  if [[ "$2" == "$3" ]]; then echo "ok   $1: $3"; else echo "FAIL $1: expected $2, got $3"; fail=1; fi
}
post() { # post <name> <key header line or ""> <body>; writes $dir/<name>.{h,b}, prints the status
  local args=(-s -o "$dir/$1.b" -D "$dir/$1.h" -w '%{http_code}' -X POST
              -H 'Content-Type: application/json' --data "$3" "$url/payments")
  [[ -n "$2" ]] && args+=(-H "$2")
  curl "${args[@]}"
}
header() { grep -i "^$2:" "$dir/$1.h" | head -1 | cut -d' ' -f2- | tr -d '\r'; }

check "first call" 201 "$(post first "Idempotency-Key: \"order-1-$run\"" '{"amount":100,"currency":"eur"}')"
check "retry" 201 "$(post retry "Idempotency-Key: \"order-1-$run\"" '{"amount":100,"currency":"eur"}')"
check "retry body byte-identical" same "$(cmp -s "$dir/first.b" "$dir/retry.b" && echo same || echo differs)"
check "retry Idempotent-Replayed" true "$(header retry Idempotent-Replayed)"
check "retry Location" "$(header first Location)" "$(header retry Location)"
check "first has no Idempotent-Replayed" "" "$(header first Idempotent-Replayed)"
check "bare key, JSON respaced: replayed" 201 "$(post bare "Idempotency-Key: order-1-$run" '{ "currency": "eur", "amount": 100 }')"
check "bare key Idempotent-Replayed" true "$(header bare Idempotent-Replayed)"
check "same key, other body" 422 "$(post other "Idempotency-Key: \"order-1-$run\"" '{"amount":999}')"
check "422 is a problem" application/problem+json "$(header other Content-Type)"
check "no key" 400 "$(post nokey '' '{"amount":100}')"
check "400 is a problem" application/problem+json "$(header nokey Content-Type)"
check "invalid key" 400 "$(post badkey 'Idempotency-Key: "has space"' '{"amount":100}')"
post slow "Idempotency-Key: \"order-slow-$run\"" '{"amount":5,"delay_ms":1500}' > "$dir/slow.status" &
slow=$!
sleep 0.4
check "same key while it runs" 409 "$(post busy "Idempotency-Key: \"order-slow-$run\"" '{"amount":5,"delay_ms":1500}')"
check "409 has Retry-After" yes "$([[ "$(header busy Retry-After)" =~ ^[0-9]+$ ]] && echo yes || echo "no ($(header busy Retry-After))")"
wait "$slow"
check "the slow first call" 201 "$(cat "$dir/slow.status")"
check "5xx from the handler" 500 "$(post f1 "Idempotency-Key: \"order-flaky-$run\"" '{"amount":7,"fail_first":true}')"
check "its retry runs again" 201 "$(post f2 "Idempotency-Key: \"order-flaky-$run\"" '{"amount":7,"fail_first":true}')"
check "the retry of the retry replays" true "$(post f3 "Idempotency-Key: \"order-flaky-$run\"" '{"amount":7,"fail_first":true}' > /dev/null; header f3 Idempotent-Replayed)"
curl -s "$url/stats" > "$dir/stats1.json"
check "runs of order-1" 1 "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["runs"]["\"order-1-"+sys.argv[2]+"\""])' "$dir/stats1.json" "$run")"
check "runs of order-flaky (500, then 201)" 2 "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["runs"]["\"order-flaky-"+sys.argv[2]+"\""])' "$dir/stats1.json" "$run")"

# --- the burst ---------------------------------------------------------------------------------
burst() { # burst <process>: 200 requests over keys b0..b99 (two rounds, its own order)
  local p="$1" i k out code conflicts=0
  for i in $(seq 0 $((per_process - 1))); do
    k=$(( (i * 37 + p * 11) % keys ))
    while :; do
      out=$(curl -s -w ' %{http_code}' -X POST -H 'Content-Type: application/json' \
              -H "Idempotency-Key: \"b$k-$run\"" --data "{\"amount\":$k,\"delay_ms\":30}" \
              "$url/payments")
      code="${out##* }"
      if [[ "$code" == 409 ]] && ((++conflicts < 2000)); then sleep 0.01; continue; fi
      break
    done
    echo "b$k $code ${out% *}" >> "$dir/burst.$p.log"
  done
  echo "$conflicts" > "$dir/burst.$p.conflicts"
}
start=$(date +%s.%N)
workers=()
for p in $(seq 0 7); do burst "$p" & workers+=($!); done
wait "${workers[@]}"
end=$(date +%s.%N)
cat "$dir"/burst.*.log > "$dir/burst.all"
check "burst responses" $((8 * per_process)) "$(wc -l < "$dir/burst.all")"
check "burst statuses all 201" $((8 * per_process)) "$(awk '$2 == 201' "$dir/burst.all" | wc -l)"
check "one body per key" "$keys" "$(awk '{print $1, $3}' "$dir/burst.all" | sort -u | wc -l)"
curl -s "$url/stats" > "$dir/stats2.json"
check "keys charged in the burst" "$keys" "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["runs"]; print(sum(1 for k in r if k.startswith("\"b")))' "$dir/stats2.json")"
check "keys charged more than once" 0 "$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["runs"]; print(sum(1 for k,v in r.items() if k.startswith("\"b") and v != 1))' "$dir/stats2.json")"
echo "burst: 8 processes x $per_process requests, $keys keys, $(cat "$dir"/burst.*.conflicts | paste -sd+ | bc) answered 409 and retried, $(awk -v s="$start" -v e="$end" 'BEGIN{printf "%.1f", e-s}') s"
exit "$fail"
