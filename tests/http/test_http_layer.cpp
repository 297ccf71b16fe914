// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// The framework-neutral Idempotency-Key layer (<idempotency/http.hpp>) over an InMemoryStore:
// every row of its status table, the header's two forms, what is stored and replayed, the
// record's identity, and a race of threads on one key that counts handler runs.
#include <idempotency/http.hpp>
#include <idempotency/stores/in_memory_store.hpp>
#include <idempotency/testing/fault_injecting_store.hpp>

#include "support/catch.hpp"

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace idempotency;
using namespace std::chrono_literals;
using http::Request;
using http::Response;

namespace {

Request post(std::string_view body, std::vector<std::string_view> keys,
             std::string_view content_type = "application/json") {
  Request r;
  r.method = "POST";
  r.path = "/payments";
  r.content_type = content_type;
  r.body = body;
  r.key_headers = std::move(keys);
  return r;
}

struct Service {
  std::atomic<int> runs{0};
  Response operator()(const Request& r) {
    const int n = ++runs;
    return Response{
        201,
        {{"Content-Type", "application/json"},
         {"Location", "/payments/" + std::to_string(n)},
         {"X-Request-Trace", "t" + std::to_string(n)}},
        std::string(R"({"id":)") + std::to_string(n) + ",\"echo\":" + std::string(r.body) + "}"};
  }
};

nlohmann::json problem_of(const Response& r) {
  REQUIRE(r.header("Content-Type") == "application/problem+json");
  const auto j = nlohmann::json::parse(r.body);
  CHECK(j.at("status") == r.status);
  CHECK(j.at("type").get<std::string>().size() > 0);
  return j;
}

} // namespace

TEST_CASE("first request runs; a retry replays status, stored headers and body", "[http]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  http::Layer layer{exec};
  Service svc;
  const Response first = layer.handle(post(R"({"amount":100})", {"\"k-1\""}), std::ref(svc));
  CHECK(first.status == 201);
  CHECK(first.header("X-Request-Trace") == "t1"); // goes out with the first response
  CHECK_FALSE(first.header("Idempotent-Replayed"));
  const Response again = layer.handle(post(R"({"amount":100})", {"\"k-1\""}), std::ref(svc));
  CHECK(svc.runs == 1);
  CHECK(again.status == 201);
  CHECK(again.body == first.body);
  CHECK(again.header("Location") == "/payments/1");
  CHECK(again.header("Content-Type") == "application/json");
  CHECK(again.header("Idempotent-Replayed") == "true");
  CHECK_FALSE(again.header("X-Request-Trace")); // not in replayed_headers: not stored
}

TEST_CASE("the key is accepted as a Structured Field string and as a bare key", "[http]") {
  CHECK(http::parse_key_header("\"8e03978e-40d5-43e8-bc93-6894a57f9324\"") ==
        "8e03978e-40d5-43e8-bc93-6894a57f9324");
  CHECK(http::parse_key_header("  8e03978e-40d5  ") == "8e03978e-40d5");
  CHECK(http::parse_key_header(R"("a\"b\\c")") == R"(a"b\c)");
  CHECK_THROWS_AS(http::parse_key_header("\"unterminated"), InvalidKeyError);
  CHECK_THROWS_AS(http::parse_key_header(R"("bad\escape")"), InvalidKeyError);
  CHECK_THROWS_AS(http::parse_key_header("\"k\";param=1"), InvalidKeyError);
  CHECK_THROWS_AS(http::parse_key_header("\"has space\""), InvalidKeyError); // key rules
  CHECK_THROWS_AS(http::parse_key_header("\"\""), InvalidKeyError);
  CHECK_THROWS_AS(http::parse_key_header(""), InvalidKeyError);
  CHECK_THROWS_AS(http::parse_key_header("\"caf\xc3\xa9\""), InvalidKeyError);
  // the quoted and the bare form name one record
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  http::Layer layer{exec};
  Service svc;
  (void)layer.handle(post("{}", {"\"same\""}), std::ref(svc));
  CHECK(layer.handle(post("{}", {"same"}), std::ref(svc)).header("Idempotent-Replayed"));
  CHECK(svc.runs == 1);
}

TEST_CASE("problems: 400 missing / invalid / two keys, 422 other body, 409 in progress", "[http]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  http::Layer layer{exec};
  Service svc;

  Response r = layer.handle(post("{}", {}), std::ref(svc));
  CHECK(r.status == 400);
  CHECK(problem_of(r).at("title") == "Idempotency-Key is missing");

  r = layer.handle(post("{}", {"\"has space\""}), std::ref(svc));
  CHECK(r.status == 400);
  CHECK(problem_of(r).at("title") == "Idempotency-Key is invalid");

  r = layer.handle(post("{}", {"a", "b"}), std::ref(svc));
  CHECK(r.status == 400);
  r = layer.handle(post("{}", {std::string(http::max_client_key_size + 1, 'k')}), std::ref(svc));
  CHECK(r.status == 400);
  CHECK(svc.runs == 0);

  (void)layer.handle(post(R"({"amount":100})", {"k"}), std::ref(svc));
  r = layer.handle(post(R"({"amount":200})", {"k"}), std::ref(svc));
  CHECK(r.status == 422);
  CHECK(problem_of(r).at("title") == "Idempotency-Key is already used");
  // the same JSON written differently is the same request
  r = layer.handle(post(R"( { "amount" : 1e2 } )", {"k"}), std::ref(svc));
  CHECK(r.status == 201);
  CHECK(r.header("Idempotent-Replayed") == "true");
  CHECK(svc.runs == 1);

  // 409 while the first holder runs, with Retry-After in whole seconds
  std::atomic<bool> inside{false}, release{false};
  std::thread holder([&] {
    (void)layer.handle(post("{}", {"slow"}), [&](const Request&) {
      inside = true;
      while (!release) std::this_thread::sleep_for(1ms);
      return Response{200, {}, "done"};
    });
  });
  while (!inside) std::this_thread::sleep_for(1ms);
  r = layer.handle(post("{}", {"slow"}), std::ref(svc));
  release = true;
  holder.join();
  CHECK(r.status == 409);
  CHECK(problem_of(r).at("title") == "A request is outstanding for this Idempotency-Key");
  REQUIRE(r.header("Retry-After"));
  const int retry_after = std::stoi(std::string(*r.header("Retry-After")));
  CHECK(retry_after >= 1);
  CHECK(retry_after <= 60); // the default lease is 60 s
}

TEST_CASE("5xx releases the key: the retry runs the handler again; 4xx is recorded", "[http]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  http::Layer layer{exec};
  int runs = 0;
  auto flaky = [&](const Request&) {
    ++runs;
    return runs == 1 ? Response{502, {}, "upstream down"} : Response{201, {}, "charged"};
  };
  CHECK(layer.handle(post("{}", {"p"}), flaky).status == 502);
  CHECK(layer.handle(post("{}", {"p"}), flaky).status == 201);
  CHECK(layer.handle(post("{}", {"p"}), flaky).status == 201);
  CHECK(runs == 2);

  int declined = 0;
  auto decline = [&](const Request&) {
    ++declined;
    return Response{402, {}, "card declined"};
  };
  CHECK(layer.handle(post("{}", {"d"}), decline).status == 402);
  const Response again = layer.handle(post("{}", {"d"}), decline);
  CHECK(again.status == 402);
  CHECK(again.body == "card declined");
  CHECK(declined == 1);
}

TEST_CASE("a handler's exception releases the key and propagates unchanged", "[http]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  http::Layer layer{exec};
  // even an exception of this library's own type is the handler's, not a 409
  auto throwing = [](const Request&) -> Response {
    throw InProgressError("from inside the handler", 5s);
  };
  CHECK_THROWS_AS(layer.handle(post("{}", {"x"}), throwing), InProgressError);
  Service svc;
  CHECK(layer.handle(post("{}", {"x"}), std::ref(svc)).status == 201); // released: runs
  CHECK(svc.runs == 1);
}

TEST_CASE("the record is (client, method, path, key): no key reaches another's response",
          "[http]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  http::Layer layer{exec};
  Service svc;
  Request a = post("{}", {"k"});
  (void)layer.handle(a, std::ref(svc));
  Request other_client = a;
  other_client.client = "acct-2";
  Request other_path = a;
  other_path.path = "/refunds";
  Request other_method = a;
  other_method.method = "PUT";
  for (const Request* r : {&other_client, &other_path, &other_method}) {
    const Response resp = layer.handle(*r, std::ref(svc));
    CHECK(resp.status == 201);
    CHECK_FALSE(resp.header("Idempotent-Replayed"));
  }
  CHECK(svc.runs == 4);
  // each part is length-prefixed in the hash: moving bytes across a part's boundary (even
  // with a separator inside a part) is another record
  Request split1 = a, split2 = a;
  split1.client = "acct:7";
  split1.method = "POST";
  split2.client = "acct";
  split2.method = "7:POST";
  (void)layer.handle(split1, std::ref(svc));
  CHECK_FALSE(layer.handle(split2, std::ref(svc)).header("Idempotent-Replayed"));
  CHECK(svc.runs == 6);
}

TEST_CASE("no key: optional pass-through, or a key made of body fields", "[http]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  Service svc;
  http::Layer optional{exec, {.require_key = false}};
  CHECK(optional.handle(post("{}", {}), std::ref(svc)).status == 201);
  CHECK(optional.handle(post("{}", {}), std::ref(svc)).status == 201);
  CHECK(svc.runs == 2); // no key: no idempotency

  http::Layer derived{exec, {.derive_key_from = {"/order/id"}}};
  CHECK(derived.handle(post(R"({"order":{"id":7},"n":1})", {}), std::ref(svc)).status == 201);
  const Response replay = derived.handle(post(R"({"n":1,"order":{"id":7}})", {}), std::ref(svc));
  CHECK(replay.header("Idempotent-Replayed") == "true");
  CHECK(svc.runs == 3);
  Response r = derived.handle(post(R"({"order":{}})", {}), std::ref(svc));
  CHECK(r.status == 400);
  CHECK(problem_of(r).at("detail").get<std::string>().find("/order/id") != std::string::npos);
  CHECK(derived.handle(post("not json", {}, "text/plain"), std::ref(svc)).status == 400);
  CHECK(svc.runs == 3);
}

TEST_CASE("fingerprints: canonical JSON for JSON media types, raw bytes otherwise", "[http]") {
  CHECK(http::fingerprint_of(post(R"({"a":1,"b":2})", {})) ==
        http::fingerprint_of(post(R"({"b":2.0, "a":1})", {}, "application/merge-patch+json")));
  CHECK(http::fingerprint_of(post(R"({"a":1})", {}, "application/json; charset=utf-8")) ==
        http::fingerprint_of(post(R"({ "a": 1 })", {})));
  CHECK(http::fingerprint_of(post(R"({"a":1})", {}, "text/plain")) !=
        http::fingerprint_of(post(R"({ "a": 1 })", {}, "text/plain")));
  // a JSON media type with a body that does not parse: its bytes
  CHECK(http::fingerprint_of(post("{oops", {})) == Fingerprint::of_bytes("{oops"));
}

TEST_CASE("a stored response round-trips exactly, binary bodies included", "[http]") {
  Response r{207, {{"Content-Type", "application/octet-stream"}, {"X-A", ""}}, std::string()};
  for (int i = 0; i < 256; ++i) r.body += static_cast<char>(i);
  CHECK(Codec<Response>::decode(Codec<Response>::encode(r)) == r);
  const std::string bytes = Codec<Response>::encode(r);
  CHECK_THROWS(Codec<Response>::decode(bytes.substr(0, bytes.size() - 1)));
  CHECK_THROWS(Codec<Response>::decode(bytes + "x"));
  CHECK_THROWS(Codec<Response>::decode("HTTP2" + bytes.substr(5)));
  CHECK_THROWS(Codec<Response>::decode(""));
}

TEST_CASE("the store failing: 503 with Retry-After, and the handler did not run", "[http]") {
  InMemoryStore inner;
  testing::FaultInjectingStore store{inner, {.seed = 3, .error_before = 1.0}};
  IdempotencyExecutor exec{store};
  http::Layer layer{exec};
  Service svc;
  const Response r = layer.handle(post("{}", {"k"}), std::ref(svc));
  CHECK(r.status == 503);
  CHECK(r.header("Retry-After") == "1");
  CHECK(problem_of(r).at("title") == "Service Unavailable");
  CHECK(problem_of(r).at("type") == "about:blank"); // not one of the draft's errors
  CHECK(svc.runs == 0);
}

TEST_CASE("the draft's link: docs_url is the problem type and a Link field", "[http]") {
  {
    InMemoryStore store;
    IdempotencyExecutor exec{store};
    http::Layer layer{exec};
    Service svc;
    const Response r = layer.handle(post("{}", {}), std::ref(svc));
    CHECK(problem_of(r).at("type") == http::draft_url); // by default: the draft itself
    CHECK(r.header("Link") == "<" + std::string(http::draft_url) + ">; rel=\"describedby\"");
  }
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  http::Layer layer{exec, {.docs_url = "https://api.example.com/docs/idempotency"}};
  Service svc;
  const Response r = layer.handle(post("{}", {}), std::ref(svc));
  CHECK(problem_of(r).at("type") == "https://api.example.com/docs/idempotency");
  CHECK(r.header("Link") == "<https://api.example.com/docs/idempotency>; rel=\"describedby\"");
}

TEST_CASE("8 threads x 200 requests over 50 keys: each key's handler runs once", "[http]") {
  InMemoryStore store;
  IdempotencyExecutor exec{store};
  http::Layer layer{exec};
  constexpr int keys = 50;
  std::vector<std::atomic<int>> runs(keys);
  std::vector<std::string> first_body(keys);
  std::atomic<int> replays{0}, conflicts{0}, mismatched{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < 8; ++t) {
    pool.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        const int k = (i * 7 + t) % keys;
        const std::string key = "key-" + std::to_string(k);
        const std::string body = R"({"n":)" + std::to_string(k) + "}";
        for (;;) { // a client retries a 409
          const Response r = layer.handle(post(body, {key}), [&](const Request&) {
            runs[static_cast<std::size_t>(k)].fetch_add(1);
            std::this_thread::sleep_for(100us);
            return Response{201, {}, "body-" + std::to_string(k)};
          });
          if (r.status == 409) {
            ++conflicts;
            std::this_thread::yield();
            continue;
          }
          if (r.status != 201 || r.body != "body-" + std::to_string(k)) ++mismatched;
          if (r.header("Idempotent-Replayed")) ++replays;
          break;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  for (int k = 0; k < keys; ++k) CHECK(runs[static_cast<std::size_t>(k)] == 1);
  CHECK(mismatched == 0);
  CHECK(replays == 8 * 200 - keys);
}
