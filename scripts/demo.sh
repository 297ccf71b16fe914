#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# Builds and runs the demo: client processes retrying charges over a lossy network against a
# payment service on the embedded SQLite store — with the library, then without it.
# Usage: scripts/demo.sh [--clients N] [--requests N] [--loss P] [--seed S]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh demo
cmake -S . -B build/demo -G Ninja -DCMAKE_BUILD_TYPE=Release -DIDEMPOTENCY_BUILD_TESTS=OFF \
  -DIDEMPOTENCY_BUILD_BENCH=OFF -DIDEMPOTENCY_INSTALL=OFF >/dev/null
cmake --build build/demo --target idempotency_demo >/dev/null
exec build/demo/examples/demo/idempotency_demo "$@"
