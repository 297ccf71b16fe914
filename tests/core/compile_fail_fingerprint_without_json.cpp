// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// Must NOT compile: Fingerprint::of(json) without json_codec.hpp gets one readable message.
#include <idempotency/fingerprint.hpp>

#include <nlohmann/json.hpp>

int main() {
  return static_cast<int>(idempotency::Fingerprint::of(nlohmann::json{{"a", 1}}).hex().size());
}
