// The agent's log endpoint (docs/specs/runtime/logs.md): reading the bounded
// files with cursors, and the HTTP endpoint with its relay-key check.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/instance_log.h"
#include "agent/log_endpoint.h"
#include "agent/log_reader.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::agent {
namespace {

using nlohmann::json;
constexpr uint64_t kSec = 1'000'000'000;
constexpr uint64_t kT0 = uint64_t{1'796'000'000} * kSec;

std::vector<std::string> texts(const LogPage& p) {
  std::vector<std::string> out;
  for (const auto& j : p.lines) out.push_back(j["line"].get<std::string>());
  return out;
}

TEST(LogReader, ReadsTheRotatedGenerationFirstAndResumesAtACursor) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/inst_x.log";
  // Small files: every few lines rotate into .log.1.
  InstanceLog log(path, "inst_x", 300);
  log.append("stdout", kT0, "a\nb\n");  // one chunk: a and b share a ts
  log.append("stderr", kT0 + kSec, "c\n");
  log.append("stdout", kT0 + 2 * kSec, "d\ne\n");
  ASSERT_TRUE(std::filesystem::exists(path + ".1"));

  auto all = readInstanceLog(path, {}, {});
  ASSERT_TRUE(all);
  // .log.1 keeps one older generation only; what is there is in order.
  auto got = texts(*all);
  ASSERT_GE(got.size(), 2U);
  EXPECT_EQ(got.back(), "e");

  // A cursor in the middle of a run of equal timestamps.
  auto first = readInstanceLog(path, {}, {.limit = 1});
  ASSERT_TRUE(first);
  ASSERT_EQ(first->lines.size(), 1U);
  EXPECT_TRUE(first->more);
  auto rest = readInstanceLog(path, first->next, {});
  ASSERT_TRUE(rest);
  std::vector<std::string> joined = texts(*first);
  for (auto& t : texts(*rest)) joined.push_back(t);
  EXPECT_EQ(joined, got);
  EXPECT_FALSE(rest->more);

  auto again = readInstanceLog(path, rest->next, {});
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->lines.empty());
  EXPECT_EQ(again->next.ts, rest->next.ts);
  EXPECT_EQ(again->next.skip, rest->next.skip);

  auto tail = readInstanceLog(path, {}, {.limit = 2, .tail = true});
  ASSERT_TRUE(tail);
  EXPECT_EQ(texts(*tail), (std::vector<std::string>{"d", "e"}));
  EXPECT_EQ(tail->next.ts, rest->next.ts);
  EXPECT_EQ(tail->next.skip, 2);
}

TEST(LogReader, APartialLastLineWaitsAndAMissingFileIsEmpty) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/inst_y.log";
  auto none = readInstanceLog(path, {}, {});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->lines.empty());
  {
    std::ofstream out(path);
    out << R"({"ts":"2026-12-03T06:30:00.000001Z","instance_id":"inst_y","stream":"stdout","line":"done"})"
        << "\n"
        << R"({"ts":"2026-12-03T06:30:00.000002Z","instance_id":"inst_y","stream":"stdout","li)";
  }
  auto page = readInstanceLog(path, {}, {});
  ASSERT_TRUE(page);
  EXPECT_EQ(texts(*page), (std::vector<std::string>{"done"}));
}

TEST(LogEndpoint, ServesLinesToTheRelayKeyOnlyAndLongPolls) {
  testing::TempDir dir;
  auto key = loadOrCreateRelayKey(dir.path());
  ASSERT_TRUE(key);
  EXPECT_EQ(key->size(), 64U);
  EXPECT_EQ(*loadOrCreateRelayKey(dir.path()), *key);  // stable across restarts
  std::filesystem::create_directories(dir.path() + "/logs");
  InstanceLog log(dir.path() + "/logs/inst_z.log", "inst_z", 1 << 20);
  log.append("stdout", kT0, "hello\n");

  std::atomic<bool> stopping{false};
  LogEndpoint ep{dir.path() + "/logs", *key, &stopping};
  http::ServerOptions opts;
  opts.listen = {"[::1]:0"};
  http::Server server(opts, [&](http::Request& req) {
    if (LogEndpoint::matches(req)) return ep.serve(req);
    return http::Response::text(404, "no");
  });
  ASSERT_TRUE(server.start());
  const std::string base = "http://" + server.endpoints()[0];
  http::Client client(base);

  auto anon = client.send("GET", "/v1/instances/inst_z/logs");
  ASSERT_TRUE(anon);
  EXPECT_EQ(anon->status, 401);
  http::Headers wrong;
  wrong.set("Authorization", "Bearer " + std::string(64, '0'));
  EXPECT_EQ(client.send("GET", "/v1/instances/inst_z/logs", wrong)->status, 401);

  http::Headers auth;
  auth.set("Authorization", "Bearer " + *key);
  EXPECT_EQ(client.send("GET", "/v1/instances/..%2Fnode/logs", auth)->status, 400);
  auto r = client.send("GET", "/v1/instances/inst_z/logs", auth);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json::parse(r->body);
  ASSERT_EQ(j["lines"].size(), 1U);
  EXPECT_EQ(j["lines"][0]["line"], "hello");
  const std::string after = j["next"]["after"];
  const std::string target = "/v1/instances/inst_z/logs?after=" + after +
                             "&skip=" + std::to_string(j["next"]["skip"].get<int64_t>());

  // Follow: a held request answers as soon as a line is written.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    log.append("stderr", kT0 + kSec, "later\n");
  });
  auto held = client.send("GET", target + "&wait=10", auth);
  writer.join();
  ASSERT_TRUE(held);
  auto h = json::parse(held->body);
  ASSERT_EQ(h["lines"].size(), 1U) << held->body;
  EXPECT_EQ(h["lines"][0]["line"], "later");
  EXPECT_EQ(h["lines"][0]["stream"], "stderr");
  server.stop(std::chrono::milliseconds(100));
}

}  // namespace
}  // namespace plfm::agent
