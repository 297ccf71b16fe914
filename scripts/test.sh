#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# The whole test suite: every workflow preset (ThreadSanitizer, ASan+UBSan, clang -Werror,
# clang with libc++, then the default g++ build whose ctest summary closes the output).
# Servers (Redis, PostgreSQL) are started on 127.0.0.1 by ctest fixtures and stopped after.
# Usage: scripts/test.sh [preset…]      (default: tsan asan clang libcxx default)
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh all || exit 1
presets=("$@")
((${#presets[@]})) || presets=(tsan asan clang libcxx default)
scripts/check-format.sh || exit 1
failed=()
for p in "${presets[@]}"; do
  echo "=== preset $p ==="
  if ! cmake --workflow --preset "$p" --fresh; then failed+=("$p"); fi
done
if ((${#failed[@]})); then
  echo "FAILED presets: ${failed[*]}"
  exit 1
fi
