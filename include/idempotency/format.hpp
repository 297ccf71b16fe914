// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once

// fmt formatters for the library's public enums and records, so they can be logged:
//   fmt::print("{} {}\n", result.status, result);   // "completed", "{completed, …}"

#include <idempotency/errors.hpp>
#include <idempotency/executor.hpp>
#include <idempotency/store.hpp>

#include <fmt/format.h>

#include <string_view>

namespace idempotency {

constexpr std::string_view to_string(ClaimStatus s) noexcept {
  switch (s) {
    case ClaimStatus::acquired: return "acquired";
    case ClaimStatus::in_progress: return "in_progress";
    case ClaimStatus::completed: return "completed";
    case ClaimStatus::failed: return "failed";
  }
  return "unknown";
}

constexpr std::string_view to_string(InProgressPolicy p) noexcept {
  return p == InProgressPolicy::reject ? "reject" : "wait";
}

constexpr std::string_view to_string(OnException p) noexcept {
  return p == OnException::release ? "release" : "remember";
}

} // namespace idempotency

template <>
struct fmt::formatter<idempotency::errc> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(idempotency::errc v, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(idempotency::to_string(v), ctx);
  }
};

template <>
struct fmt::formatter<idempotency::ClaimStatus> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(idempotency::ClaimStatus v, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(idempotency::to_string(v), ctx);
  }
};

template <>
struct fmt::formatter<idempotency::InProgressPolicy> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(idempotency::InProgressPolicy v, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(idempotency::to_string(v), ctx);
  }
};

template <>
struct fmt::formatter<idempotency::OnException> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(idempotency::OnException v, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(idempotency::to_string(v), ctx);
  }
};

template <>
struct fmt::formatter<idempotency::Token> : fmt::formatter<std::string_view> {
  template <class FormatContext>
  auto format(const idempotency::Token& t, FormatContext& ctx) const {
    return fmt::formatter<std::string_view>::format(t.to_hex(), ctx);
  }
};

/// `{status, token=…, remaining=…ms, payload=N bytes}`; payload bytes are not printed.
template <>
struct fmt::formatter<idempotency::ClaimResult> {
  constexpr auto parse(format_parse_context& ctx) { return ctx.begin(); }
  template <class FormatContext>
  auto format(const idempotency::ClaimResult& r, FormatContext& ctx) const {
    if (r.acquired())
      return fmt::format_to(ctx.out(), "{{acquired, token={}{}}}", r.token,
                            r.took_over ? ", took_over" : "");
    return fmt::format_to(ctx.out(), "{{{}, remaining={}ms, payload={} bytes}}", r.status,
                          r.remaining.count(), r.payload.size());
  }
};
