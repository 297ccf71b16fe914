// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// A payments service on cpp-httplib with the Idempotency-Key layer: POST /payments charges
// once per key; every retry gets the recorded response with `Idempotent-Replayed: true`.
//
//   http_service [--port N] [--port-file F] [--db PATH | --redis URL]
//
// --port 0 (the default) picks a free port; the port is printed and, with --port-file,
// written to F once the server listens. The store is SQLite (--db, default
// ./payments.db) or Redis (--redis, when built with RedisStore). For the tests, the body may
// ask for {"fail_first": true} (the first attempt of a key answers 500, as a processor outage
// would) or {"delay_ms": N} (a slow charge). GET /stats counts the charges run per key.
#include <idempotency/http/httplib.hpp>
#include <idempotency/stores/sqlite_store.hpp>
#if IDEMPOTENCY_EXAMPLE_REDIS
#include <idempotency/stores/redis_store.hpp>
#endif

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <string_view>
#include <thread>

namespace {

httplib::Server* running = nullptr;

void stop(int) {
  if (running != nullptr) running->stop();
}

// The business: charges, counted per Idempotency-Key (what the tests check against).
class Payments {
 public:
  void charge(const httplib::Request& req, httplib::Response& res) {
    const nlohmann::json body = nlohmann::json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.contains("amount") || !body["amount"].is_number_integer()) {
      res.status = 400;
      res.set_content(R"({"error":"amount (an integer) is required"})", "application/json");
      return;
    }
    const std::string key = req.get_header_value("Idempotency-Key");
    int n = 0;
    {
      const std::lock_guard lock(mutex_);
      ++runs_[key];
      if (body.value("fail_first", false) && failed_once_.insert(key).second) {
        res.status = 500;
        res.set_content(R"({"error":"payment processor unavailable, retry"})", "application/json");
        return;
      }
      n = ++charges_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(body.value("delay_ms", 0)));
    const std::string id = "pay_" + std::to_string(n);
    const nlohmann::json out = {{"id", id},
                                {"amount", body["amount"]},
                                {"currency", body.value("currency", "eur")},
                                {"status", "succeeded"}};
    res.status = 201;
    res.set_header("Location", "/payments/" + id);
    res.set_content(out.dump(), "application/json");
  }

  [[nodiscard]] std::string stats() {
    const std::lock_guard lock(mutex_);
    return nlohmann::json{{"charges", charges_}, {"runs", runs_}}.dump();
  }

 private:
  std::mutex mutex_;
  std::map<std::string, int> runs_;
  std::set<std::string> failed_once_;
  int charges_ = 0;
};

template <class Store>
int serve(Store& store, int port, const std::string& port_file) {
  idempotency::IdempotencyExecutor exec{store,
                                        idempotency::Options{.lease = std::chrono::seconds(10)}};
  idempotency::http::Layer layer{exec};
  Payments payments;
  httplib::Server server;
  server.Post("/payments", idempotency::http::httplib_handler(
                               layer, [&](const httplib::Request& req, httplib::Response& res) {
                                 payments.charge(req, res);
                               }));
  server.Get("/stats", [&](const httplib::Request&, httplib::Response& res) {
    res.set_content(payments.stats(), "application/json");
  });
  if (port == 0) {
    port = server.bind_to_any_port("127.0.0.1");
  } else if (!server.bind_to_port("127.0.0.1", port)) {
    port = -1;
  }
  if (port < 0) {
    std::fprintf(stderr, "http_service: cannot listen on 127.0.0.1\n");
    return 1;
  }
  std::printf("http_service: listening on http://127.0.0.1:%d\n", port);
  std::fflush(stdout);
  if (!port_file.empty()) {
    const std::string tmp = port_file + ".tmp";
    std::ofstream(tmp) << port << "\n";
    std::rename(tmp.c_str(), port_file.c_str()); // appears whole
  }
  running = &server;
  std::signal(SIGTERM, stop);
  std::signal(SIGINT, stop);
  server.listen_after_bind();
  running = nullptr;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string port_file, db = "payments.db", redis;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i];
    if (flag == "--port")
      port = std::stoi(argv[i + 1]);
    else if (flag == "--port-file")
      port_file = argv[i + 1];
    else if (flag == "--db")
      db = argv[i + 1];
    else if (flag == "--redis")
      redis = argv[i + 1];
    else {
      std::fprintf(stderr, "usage: %s [--port N] [--port-file F] [--db PATH | --redis URL]\n",
                   argv[0]);
      return 2;
    }
  }
  if (!redis.empty()) {
#if IDEMPOTENCY_EXAMPLE_REDIS
    idempotency::RedisStore store{redis};
    return serve(store, port, port_file);
#else
    std::fprintf(stderr, "http_service: built without RedisStore (hiredis not found)\n");
    return 2;
#endif
  }
  idempotency::SqliteStore store{db};
  return serve(store, port, port_file);
}
