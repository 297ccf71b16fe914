// SPDX-License-Identifier: MIT
// Copyright (c) 2026 The idempotency authors
// An at-least-once consumer made effectively-once: consumers of a Redis Streams consumer group
// (XREADGROUP, XACK, XAUTOCLAIM of messages whose consumer died) apply each message through
// the executor, keyed by the message id, so a redelivered message replays instead of running
// its side effect again (Apache Camel's idempotent consumer, on a broker this project runs).
//
//   stream_consumer --redis URL --stream S --group G --consumer NAME --effects FILE
//                   [--claim-idle-ms 1000] [--pause-after N] [--pause-file F]
//
// The side effect: one line "<message id> <payload>" appended to FILE. The order per message
// is: claim the id, apply, record the result, then XACK; a consumer killed after the record and
// before the XACK (--pause-after N stops there, after its Nth message, and writes the id to
// --pause-file, for a test to SIGKILL it) has its message redelivered to another consumer by
// XAUTOCLAIM, which replays it. The consumer exits once the group has nothing pending and the
// stream has nothing new for 2 s.
//
// What is NOT covered: a consumer killed between the side effect and the record. Its claim
// stays until its lease ends, then another consumer runs the message again. Close that window
// with a side effect in the store's own database (`execute_in_transaction`, SQLite/PostgreSQL).
#include <idempotency/idempotency.hpp>
#include <idempotency/stores/redis_store.hpp>

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

struct Args {
  std::string redis, stream, group, consumer, effects, pause_file;
  long claim_idle_ms = 1000;
  long pause_after = -1;
};

struct Message {
  std::string id;
  std::string payload;
};

using Reply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;

Reply command(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> p;
  std::vector<std::size_t> n;
  for (const auto& a : argv) {
    p.push_back(a.data());
    n.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), p.data(), n.data()));
  if (r == nullptr) {
    std::fprintf(stderr, "stream_consumer: redis: %s\n", c->errstr);
    std::exit(3);
  }
  if (r->type == REDIS_REPLY_ERROR) {
    std::fprintf(stderr, "stream_consumer: %s: %s\n", argv[0].c_str(), r->str);
    std::exit(3);
  }
  return {r, freeReplyObject};
}

// [[id, [field, value, ...]], ...] -> messages (field "payload")
void entries(const redisReply* list, std::vector<Message>& out) {
  if (list == nullptr || list->type != REDIS_REPLY_ARRAY) return;
  for (std::size_t i = 0; i < list->elements; ++i) {
    const redisReply* e = list->element[i];
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2) continue;
    Message m{std::string(e->element[0]->str, e->element[0]->len), {}};
    const redisReply* fields = e->element[1];
    if (fields->type == REDIS_REPLY_ARRAY)
      for (std::size_t f = 0; f + 1 < fields->elements; f += 2)
        if (std::string_view(fields->element[f]->str, fields->element[f]->len) == "payload")
          m.payload.assign(fields->element[f + 1]->str, fields->element[f + 1]->len);
    out.push_back(std::move(m));
  }
}

std::pair<std::string, int> host_port(const std::string& url) {
  std::string rest = url.substr(url.find("://") + 3);
  const auto colon = rest.rfind(':');
  return {rest.substr(0, colon), std::atoi(rest.substr(colon + 1).c_str())};
}

} // namespace

int main(int argc, char** argv) {
  Args a;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view f = argv[i];
    const std::string v = argv[i + 1];
    if (f == "--redis")
      a.redis = v;
    else if (f == "--stream")
      a.stream = v;
    else if (f == "--group")
      a.group = v;
    else if (f == "--consumer")
      a.consumer = v;
    else if (f == "--effects")
      a.effects = v;
    else if (f == "--claim-idle-ms")
      a.claim_idle_ms = std::atol(v.c_str());
    else if (f == "--pause-after")
      a.pause_after = std::atol(v.c_str());
    else if (f == "--pause-file")
      a.pause_file = v;
    else {
      std::fprintf(stderr, "stream_consumer: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (a.redis.empty() || a.stream.empty() || a.group.empty() || a.consumer.empty() ||
      a.effects.empty()) {
    std::fprintf(stderr,
                 "usage: stream_consumer --redis URL --stream S --group G --consumer "
                 "NAME --effects FILE [--claim-idle-ms MS] [--pause-after N --pause-file F]\n");
    return 2;
  }
  const auto [host, port] = host_port(a.redis);
  redisContext* c = redisConnect(host.c_str(), port);
  if (c == nullptr || c->err != 0) {
    std::fprintf(stderr, "stream_consumer: cannot connect to %s\n", a.redis.c_str());
    return 3;
  }
  const int effects = ::open(a.effects.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (effects < 0) return 3;

  idempotency::RedisStore store{a.redis};
  idempotency::IdempotencyExecutor exec{
      store, idempotency::Options{.result_ttl = std::chrono::hours(24),
                                  .lease = std::chrono::seconds(5),
                                  .in_progress = idempotency::InProgressPolicy::wait,
                                  .wait_deadline = std::chrono::seconds(10),
                                  .scope = {.operation = "apply:" + a.stream}}};
  long applied = 0, replayed = 0, done = 0;
  auto last_work = std::chrono::steady_clock::now();
  std::string claim_cursor = "0-0";
  for (;;) {
    std::vector<Message> batch;
    // messages of consumers that died (idle too long in their pending list) first
    Reply claimed = command(c, {"XAUTOCLAIM", a.stream, a.group, a.consumer,
                                std::to_string(a.claim_idle_ms), claim_cursor, "COUNT", "10"});
    claim_cursor = std::string(claimed->element[0]->str, claimed->element[0]->len);
    entries(claimed->element[1], batch);
    if (batch.empty()) {
      Reply read = command(c, {"XREADGROUP", "GROUP", a.group, a.consumer, "COUNT", "10", "BLOCK",
                               "200", "STREAMS", a.stream, ">"});
      if (read->type == REDIS_REPLY_ARRAY && read->elements > 0)
        entries(read->element[0]->element[1], batch);
    }
    if (batch.empty()) {
      Reply pending = command(c, {"XPENDING", a.stream, a.group});
      const bool none = pending->element[0]->integer == 0;
      if (none && std::chrono::steady_clock::now() - last_work > std::chrono::seconds(2)) break;
      if (!none) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    last_work = std::chrono::steady_clock::now();
    for (const Message& m : batch) {
      try {
        const auto outcome = exec.execute_outcome(m.id, [&] {
          const std::string line = m.id + " " + m.payload + "\n";
          if (::write(effects, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
            throw std::runtime_error("cannot write the effects file");
          return true;
        });
        (outcome.replayed ? replayed : applied) += 1;
      } catch (const idempotency::InProgressError&) {
        continue; // another consumer holds it: not acknowledged, it comes back later
      }
      if (++done == a.pause_after) { // recorded, not acknowledged: a test kills us here
        std::ofstream(a.pause_file + ".tmp") << m.id << "\n";
        std::rename((a.pause_file + ".tmp").c_str(), a.pause_file.c_str());
        for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
      }
      command(c, {"XACK", a.stream, a.group, m.id});
    }
  }
  std::printf("%s: applied %ld, replayed %ld\n", a.consumer.c_str(), applied, replayed);
  redisFree(c);
  ::close(effects);
  return 0;
}
