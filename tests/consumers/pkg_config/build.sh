#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# A Make/Meson-style user: no CMake, only pkg-config and g++ against an installed copy.
# Usage: build.sh <install prefix> <work dir> <main.cpp>
set -euo pipefail
prefix="$1" work="$2" main="$3"
export PKG_CONFIG_PATH="$prefix/share/pkgconfig"
pkg-config --exists --print-errors idempotency
pkg-config --validate idempotency
echo "idempotency $(pkg-config --modversion idempotency), requires: $(pkg-config --print-requires idempotency | tr '\n' ' ')"
flags="$(pkg-config --cflags --libs idempotency)"
echo "pkg-config --cflags --libs idempotency: $flags"
# the headers come from the installed prefix
[[ " $flags " == *" -I$prefix/include "* ]] || { echo "no -I$prefix/include in: $flags" >&2; exit 1; }
# shellcheck disable=SC2086 # the flags are words
g++ -std=c++20 -DCONSUMER_NAME='"pkg_config"' "$main" $flags -o "$work/consumer"
"$work/consumer"
