// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// The umbrella header: the executor, the Store concept, the in-memory store, errors,
// formatters, the observer, the retry helper, the stop token and the JSON codec
// (nlohmann_json). Store adapters over a client library have headers of their own under
// idempotency/stores/ (sqlite_store.hpp, redis_store.hpp, postgres_store.hpp).

#include <idempotency/attempt.hpp>
#include <idempotency/codec.hpp>
#include <idempotency/errors.hpp>
#include <idempotency/executor.hpp>
#include <idempotency/fingerprint.hpp>
#include <idempotency/format.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/key.hpp>
#include <idempotency/key_from.hpp>
#include <idempotency/new_key.hpp>
#include <idempotency/observer.hpp>
#include <idempotency/options.hpp>
#include <idempotency/retry.hpp>
#include <idempotency/stop_token.hpp>
#include <idempotency/store.hpp>
#include <idempotency/stores/in_memory_store.hpp>

#define IDEMPOTENCY_VERSION_MAJOR 0
#define IDEMPOTENCY_VERSION_MINOR 1
#define IDEMPOTENCY_VERSION_PATCH 0
