#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The idempotency authors
# Installs the Debian packages the build, the tests and the demo need — only those missing,
# quietly; the apt log is printed only if the install fails. Usage: scripts/deps.sh [all|demo]
set -euo pipefail
what="${1:-all}"
pkgs=(cmake ninja-build g++ pkg-config libfmt-dev nlohmann-json3-dev libsqlite3-dev)
if [[ "$what" == all ]]; then
  pkgs+=(clang libclang-rt-14-dev libc++-14-dev libc++abi-14-dev clang-format catch2 libhiredis-dev redis-server libpq-dev postgresql spin libcpp-httplib-dev curl stunnel4 openssl)
fi
missing=()
for p in "${pkgs[@]}"; do
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" == ii* ]] || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "deps: installing ${missing[*]}"
log="$(mktemp)"
if ! { "${sudo[@]}" apt-get -qq update &&
       DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -qq -y -o DPkg::Lock::Timeout=300 \
         install --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "deps: apt-get failed" >&2
  exit 1
fi
rm -f "$log"
