// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
#pragma once
// The HTTP face of the library: the `Idempotency-Key` request header
// (draft-ietf-httpapi-idempotency-key-header), framework-neutral. Given a request and a
// handler, the layer claims (client, method, path, key), fingerprints the body, runs the
// handler once, stores its response, and answers every retry with that response again plus
// `Idempotent-Replayed: true`. Errors are RFC 9457 problem details, as the draft shows them.
// An adapter for cpp-httplib is in <idempotency/http/httplib.hpp>.

#include <idempotency/errors.hpp>
#include <idempotency/executor.hpp>
#include <idempotency/fingerprint.hpp>
#include <idempotency/http/message.hpp>
#include <idempotency/json_codec.hpp>
#include <idempotency/key.hpp>
#include <idempotency/key_from.hpp>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace idempotency::http {

/// How the layer treats requests and responses.
struct Options {
  /// No `Idempotency-Key` (and no key derived from the body): `true` answers 400 (the draft's
  /// "Idempotency-Key is missing"); `false` runs the handler without idempotency.
  bool require_key = true;
  /// When the header is missing and this is not empty, the key is made of these fields of a
  /// JSON body (`key_from`, RFC 6901 pointers); a missing field is a 400.
  std::vector<std::string> derive_key_from{};
  /// Which response fields are stored and replayed (case-insensitive). Every field still goes
  /// out with the first response; a replay carries only these (plus `Idempotent-Replayed`).
  std::vector<std::string> replayed_headers{
      "Content-Type", "Content-Language", "Location", "Content-Location", "ETag", "Last-Modified"};
  /// Which responses are recorded. Default: every status below 500 (2xx, 3xx, 4xx); a 5xx
  /// releases the key, so a retry runs the handler again.
  std::function<bool(int status)> record = [](int status) { return status < 500; };
  /// Documentation of the endpoint's idempotency (the draft asks for a link): the `type` of
  /// the 400 / 409 / 422 problems and their `Link: <…>; rel="describedby"` field. Empty: the
  /// draft itself (`draft_url`).
  std::string docs_url{};
};

/// The fields the layer adds or reads.
inline constexpr std::string_view key_header = "Idempotency-Key";
inline constexpr std::string_view replayed_header = "Idempotent-Replayed";

/// The longest client key: the record's key is 33 bytes of (client, method, path) hash and a
/// ':' before it, within the 255 bytes of the key rules.
inline constexpr std::size_t max_client_key_size = max_key_size - 33;

/// Where the draft's error scenarios are documented: the default problem `type` of its three
/// errors (400, 409, 422), as the draft's own examples use one documentation URI for them.
inline constexpr std::string_view draft_url =
    "https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/";

/// An RFC 9457 problem (`application/problem+json`: type, title, status, detail). The draft's
/// errors (400, 409, 422) have `Options::docs_url` (default `draft_url`) as their type and a
/// `Link: <…>; rel="describedby"` field; the layer's others (500, 503) are `about:blank`
/// problems, whose title is the status phrase.
[[nodiscard]] inline Response problem(int status, std::string_view title, std::string_view detail,
                                      const Options& options) {
  Response r;
  r.status = status;
  const bool draft = status == 400 || status == 409 || status == 422;
  const std::string type = !draft                     ? std::string("about:blank")
                           : options.docs_url.empty() ? std::string(draft_url)
                                                      : options.docs_url;
  const nlohmann::json body = {
      {"type", type}, {"title", title}, {"status", status}, {"detail", detail}};
  r.body = body.dump();
  r.headers.emplace_back("Content-Type", "application/problem+json");
  r.headers.emplace_back("Content-Language", "en");
  if (draft) r.headers.emplace_back("Link", "<" + type + ">; rel=\"describedby\"");
  return r;
}

/// The fingerprint of a request body: SHA-256 of the RFC 8785 canonical JSON when the media
/// type is JSON (`application/json`, `…+json`) and the body parses, so a retry that reorders
/// members or respaces is the same request; else of the raw bytes.
[[nodiscard]] inline Fingerprint fingerprint_of(const Request& request) {
  std::string_view media = request.content_type.substr(0, request.content_type.find(';'));
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  const bool json = iequals(media, "application/json") ||
                    (media.size() > 5 && iequals(media.substr(media.size() - 5), "+json"));
  if (json) {
    const nlohmann::json parsed = nlohmann::json::parse(request.body, nullptr, false);
    if (!parsed.is_discarded()) {
      try {
        return Fingerprint::of(parsed);
      } catch (const InvalidFingerprintError&) {
        // no canonical form: the raw bytes identify it
      }
    }
  }
  return Fingerprint::of_bytes(request.body);
}

/// The layer: one per endpoint (or per service), over an executor and its store.
///
/// Example:
///
///     idempotency::http::Layer layer{exec};
///     idempotency::http::Response r = layer.handle(request, [&](const auto& req) {
///       return idempotency::http::Response{201, {{"Content-Type", "application/json"}},
///                                          charge(req.body)};
///     });
template <class S>
class Layer {
 public:
  explicit Layer(IdempotencyExecutor<S>& exec, Options options = {})
      : exec_(&exec), options_(std::move(options)) {}

  [[nodiscard]] const Options& options() const noexcept { return options_; }

  /// Answers `request`: the handler's response (run at most once per key while it is
  /// recorded), its replay, or a problem. `handler(const Request&)` returns a `Response`;
  /// an exception from it releases the key and propagates.
  ///
  /// - first request: the handler's response;
  /// - retry after it completed: the recorded status, headers and body, and
  ///   `Idempotent-Replayed: true`;
  /// - retry while it runs: 409 with `Retry-After`;
  /// - same key, another body: 422;
  /// - no key where one is required, a key breaking the key rules, two key fields: 400;
  /// - the store cannot be reached: 503 with `Retry-After` (the handler did not run).
  template <class H>
  [[nodiscard]] Response handle(const Request& request, H&& handler) {
    std::string key;
    if (std::optional<Response> bad = resolve_key(request, key)) return std::move(*bad);
    if (key.empty()) return std::invoke(handler, request); // no key, and none required
    // an exception of the handler's own (even one of this library) is not the layer's: it
    // goes out as it came, after the key is released
    std::exception_ptr handler_error;
    try {
      auto attempt =
          exec_->template begin<Response>(storage_key(request, key), fingerprint_of(request));
      if (attempt.replayed()) {
        Response r = std::move(attempt.value());
        r.set_header(replayed_header, "true");
        return r;
      }
      Response r;
      try {
        r = std::invoke(handler, request);
      } catch (...) {
        handler_error = std::current_exception();
      }
      if (!handler_error) {
        if (options_.record && options_.record(r.status)) {
          try {
            attempt.guard().commit(stored(r));
          } catch (const ResultNotRecordedError&) {
            // the handler ran: its response is the truth; the claim stays (a retry meets 409
            // until the lease ends)
          } catch (const LeaseLostError&) {
            // the handler ran, but the claim was taken over: the client gets what it did
          } catch (const PayloadTooLargeError&) {
            // over the executor's max_payload: not recorded, the key is released
          }
        } else {
          try {
            attempt.guard().release(); // a retry runs the handler again
          } catch (const StoreError&) {
            // not released: the lease ends by itself
          }
        }
        return r;
      }
      // the guard goes out of scope uncommitted: the key is released
    } catch (const InProgressError& e) {
      Response r = problem(409, "A request is outstanding for this Idempotency-Key",
                           "A request with the same Idempotency-Key for the same operation is "
                           "being processed; retry after the time in Retry-After.",
                           options_);
      r.headers.emplace_back("Retry-After", std::to_string(seconds(e.retry_after())));
      return r;
    } catch (const FingerprintMismatchError&) {
      return problem(422, "Idempotency-Key is already used",
                     "This Idempotency-Key was used with a different request payload; a key "
                     "must not be reused across different payloads of this operation.",
                     options_);
    } catch (const InvalidKeyError& e) {
      return problem(400, "Idempotency-Key is invalid", e.what(), options_);
    } catch (const StoreError&) {
      Response r = problem(503, "Service Unavailable",
                           "The idempotency store could not be reached; the request was not "
                           "processed. Retry it with the same Idempotency-Key.",
                           options_);
      r.headers.emplace_back("Retry-After", "1");
      return r;
    } catch (const Error& e) { // a stored response that cannot be read, a recorded failure
      return problem(500, "Internal Server Error",
                     std::string("The recorded response cannot be replayed: ") + e.what(),
                     options_);
    }
    std::rethrow_exception(handler_error);
  }

 private:
  static long long seconds(std::chrono::milliseconds ms) {
    const long long s = (ms.count() + 999) / 1000;
    return s < 1 ? 1 : s;
  }

  // The response as stored: the replayed fields only.
  Response stored(const Response& r) const {
    Response s;
    s.status = r.status;
    s.body = r.body;
    for (const auto& h : r.headers)
      for (const auto& keep : options_.replayed_headers)
        if (iequals(h.first, keep)) {
          s.headers.push_back(h);
          break;
        }
    return s;
  }

  // (client, method, path) hashed into 32 hex digits, then ':' and the client's key:
  // injective (fixed width; each part length-prefixed inside the hash).
  static std::string storage_key(const Request& request, const std::string& key) {
    std::string identity;
    for (std::string_view part : {request.client, request.method, request.path}) {
      identity += std::to_string(part.size());
      identity += ':';
      identity += part;
    }
    std::string k = detail::to_hex(detail::Sha256::hash(identity)).substr(0, 32);
    k += ':';
    k += key;
    return k;
  }

  // The key of `request` into `key` ("" when none and none is required), or the problem to
  // answer instead.
  std::optional<Response> resolve_key(const Request& request, std::string& key) const {
    if (request.key_headers.size() > 1) {
      return problem(400, "Idempotency-Key is invalid",
                     "The request has more than one Idempotency-Key field.", options_);
    }
    if (request.key_headers.size() == 1) {
      try {
        key = parse_key_header(request.key_headers.front());
      } catch (const InvalidKeyError& e) {
        return problem(400, "Idempotency-Key is invalid", e.what(), options_);
      }
      if (key.size() > max_client_key_size) {
        return problem(400, "Idempotency-Key is invalid",
                       "The key is " + std::to_string(key.size()) +
                           " bytes, over this service's limit of " +
                           std::to_string(max_client_key_size) + ".",
                       options_);
      }
      return std::nullopt;
    }
    if (!options_.derive_key_from.empty()) {
      const nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
      try {
        if (body.is_discarded())
          throw MissingKeyFieldError(options_.derive_key_from.front(),
                                     "the body is not JSON, so no key can be made of it");
        key = key_from(body, options_.derive_key_from);
        return std::nullopt;
      } catch (const InvalidKeyError& e) {
        return problem(
            400, "Idempotency-Key is missing",
            std::string("No Idempotency-Key, and none can be made of the body: ") + e.what(),
            options_);
      }
    }
    if (!options_.require_key) return std::nullopt;
    return problem(400, "Idempotency-Key is missing",
                   "This operation is idempotent and it requires correct usage of "
                   "Idempotency Key.",
                   options_);
  }

  IdempotencyExecutor<S>* exec_;
  Options options_;
};

} // namespace idempotency::http
