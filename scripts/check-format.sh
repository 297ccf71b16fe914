#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# Fails if any C++ file differs from clang-format 14's output. `--fix` rewrites them.
set -euo pipefail
cd "$(dirname "$0")/.."
cf="$(command -v clang-format-14 || command -v clang-format)"
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.hpp' '*.cpp' | grep -v '^build/')
if [[ "${1:-}" == --fix ]]; then
  "$cf" -i "${files[@]}"
  exit 0
fi
if ! "$cf" --dry-run --Werror "${files[@]}"; then
  echo "check-format: run scripts/check-format.sh --fix" >&2
  exit 1
fi
