// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The stop token an operation may take first (`execute(key, [](idempotency::stop_token st) {…})`)
// and its source and callback. Where the standard library has <stop_token> (it defines
// `__cpp_lib_jthread`: libstdc++ 10+, libc++ 17+ with -fexperimental-library) these are the
// std types themselves; elsewhere (libc++ before 17, Apple's toolchains) they are the small
// implementation of the same interface in <idempotency/detail/fallback_stop.hpp>.
//
// Portable code names `idempotency::stop_token` rather than `std::stop_token`:
// - idempotency::stop_source, idempotency::stop_token
// - idempotency::stop_callback<F> (with the deduction guide: `stop_callback cb(token, fn);`)
// - idempotency::nostopstate_t, idempotency::nostopstate
// On libstdc++ `idempotency::stop_token` and `std::stop_token` are the same type.

#include <version>

#if defined(__cpp_lib_jthread)
#include <stop_token>
#else
#include <idempotency/detail/fallback_stop.hpp>
#endif

namespace idempotency {

#if defined(__cpp_lib_jthread)
/// True where the stop types are the standard library's.
inline constexpr bool stop_token_is_std = true;
using std::nostopstate;
using std::nostopstate_t;
using std::stop_callback;
using std::stop_source;
using std::stop_token;
#else
/// True where the stop types are the standard library's.
inline constexpr bool stop_token_is_std = false;
using detail::fallback_stop::nostopstate;
using detail::fallback_stop::nostopstate_t;
using detail::fallback_stop::stop_callback;
using detail::fallback_stop::stop_source;
using detail::fallback_stop::stop_token;
#endif

} // namespace idempotency
