// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The `Idempotency-Key` layer for cpp-httplib (https://github.com/yhirose/cpp-httplib; Debian's
// libcpp-httplib-dev). Needs the CMake target `idempotency::httplib`, defined when cpp-httplib
// is found; no other header of this library includes cpp-httplib.

#include <idempotency/http.hpp>

#include <httplib.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idempotency::http {

/// Who is calling, for the record's identity (e.g. the account an `Authorization` field
/// authenticates). Empty: every caller shares one key space per endpoint.
using HttplibClientOf = std::function<std::string(const httplib::Request&)>;

namespace detail_ {
inline Response from_httplib(httplib::Response& res) {
  if (res.content_provider_)
    throw std::logic_error(
        "idempotency: a streamed cpp-httplib response (a content provider) "
        "cannot be recorded; set the body with set_content");
  Response r;
  r.status = res.status == -1 ? 200 : res.status; // cpp-httplib's default for a routed request
  r.headers.assign(res.headers.begin(), res.headers.end());
  r.body = std::move(res.body);
  return r;
}

inline void to_httplib(Response&& r, httplib::Response& res) {
  res.status = r.status;
  res.headers.clear();
  for (auto& [name, value] : r.headers) res.headers.emplace(std::move(name), std::move(value));
  res.body = std::move(r.body);
}
} // namespace detail_

/// A cpp-httplib handler that runs `handler` (an ordinary cpp-httplib handler,
/// `void(const httplib::Request&, httplib::Response&)`) once per `Idempotency-Key` and
/// answers retries with its recorded response (`Layer::handle`). `layer` must outlive the
/// server. The response must be set with `set_content` (a streamed response is refused).
///
/// Example:
///
///     idempotency::http::Layer layer{exec};
///     server.Post("/payments", idempotency::http::httplib_handler(layer,
///         [&](const httplib::Request& req, httplib::Response& res) {
///           res.status = 201;
///           res.set_content(charge(req.body), "application/json");
///         }));
template <class S, class H>
[[nodiscard]] httplib::Server::Handler httplib_handler(Layer<S>& layer, H handler,
                                                       HttplibClientOf client_of = {}) {
  return [&layer, handler = std::move(handler), client_of = std::move(client_of)](
             const httplib::Request& req, httplib::Response& res) {
    const std::string content_type = req.get_header_value("Content-Type");
    const std::string client = client_of ? client_of(req) : std::string();
    std::vector<std::string> keys;
    const std::size_t count = req.get_header_value_count(std::string(key_header));
    for (std::size_t i = 0; i < count; ++i)
      keys.push_back(req.get_header_value(std::string(key_header), i));
    Request request;
    request.method = req.method;
    request.path = req.path;
    request.content_type = content_type;
    request.body = req.body;
    request.client = client;
    request.key_headers.assign(keys.begin(), keys.end());
    Response out = layer.handle(request, [&](const Request&) {
      httplib::Response inner;
      handler(req, inner);
      return detail_::from_httplib(inner);
    });
    detail_::to_httplib(std::move(out), res);
  };
}

} // namespace idempotency::http
