// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// What the core needs of nlohmann_json (the JSON type for `Options::classify_result`, the
// canonical text for `Fingerprint::of`) without including it: `json_hook` is declared here
// and defined by <idempotency/json_codec.hpp>. Templates name it through an argument of
// their own, so it is looked up where they are used, after that header was included.

namespace idempotency::detail {

template <class Any>
struct json_hook;

/// True once <idempotency/json_codec.hpp> has been included.
template <class Any>
concept JsonHookReady = requires {
  typename json_hook<Any>::json;
};

template <class>
inline constexpr bool dependent_false = false;

} // namespace idempotency::detail
