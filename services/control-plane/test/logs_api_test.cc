// The log relay end to end (docs/specs/runtime/logs.md): a real control plane
// on a real PostgreSQL relays from the real agent log endpoint
// (services/node-agent/src/agent/log_endpoint.h) serving files the agent's
// InstanceLog wrote. The node's side (enrollment, plan, heartbeat with its
// agent_url and relay key) goes through the API like an agent's.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "agent/instance_log.h"
#include "agent/log_endpoint.h"
#include "api_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;
using testsupport::Reply;

constexpr uint64_t kSec = 1'000'000'000;
constexpr uint64_t kT0 = uint64_t{1'796'000'000} * kSec;  // 2026-11-30

class LogsApiTest : public ApiTest {
 protected:
  void SetUp() override {
    ApiTest::SetUp();
    agent_dir_ = std::make_unique<testing::TempDir>("plfm-logs");
    std::filesystem::create_directories(agent_dir_->path() + "/logs");
    auto key = agent::loadOrCreateRelayKey(agent_dir_->path());
    ASSERT_TRUE(key);
    key_ = *key;
    endpoint_ = agent::LogEndpoint{agent_dir_->path() + "/logs", key_, &stopping_};
    http::ServerOptions opts;
    opts.listen = {"[::1]:0"};
    agent_http_ = std::make_unique<http::Server>(opts, [this](http::Request& req) {
      if (agent::LogEndpoint::matches(req)) return endpoint_.serve(req);
      return http::Response::text(404, "no");
    });
    ASSERT_TRUE(agent_http_->start());
    agent_url_ = "http://" + agent_http_->endpoints()[0];
  }
  void TearDown() override {
    stopping_ = true;
    if (agent_http_) agent_http_->stop(std::chrono::milliseconds(200));
    ApiTest::TearDown();
  }

  // An env with `count` web instances placed on an enrolled node whose
  // agent heartbeats its log endpoint; returns the instance ids, sorted.
  std::vector<std::string> deployOnNode(int count) {
    auto [node, token] = enrollNode("logs.example");
    node_ = node;
    node_token_ = token;
    const std::string org = makeOrg("logs");
    const std::string app = makeApp(org, "web");
    env_ = makeEnv(app, "prod");
    const std::string release = makeReleaseWith(app, webManifest(1, 256));
    EXPECT_EQ(callJson("POST", "/v1/envs/" + env_ + "/deploys", {{"release_id", release}}).status,
              201);
    EXPECT_EQ(
        callJson("PUT", "/v1/envs/" + env_ + "/scale", {{"processes", {{"web", count}}}}).status,
        200);
    auto beat = callJson(
        "POST", "/v1/nodes/" + node + "/heartbeat",
        {{"agent_version", "0.1.0"}, {"agent_url", agent_url_}, {"relay_key", key_}}, token);
    EXPECT_EQ(beat.status, 200) << beat.raw;
    auto plan = call("GET", "/v1/nodes/" + node + "/plan?after=0&wait=0", "", token);
    std::vector<std::string> ids;
    for (const auto& spec : plan.body["instances"]) ids.push_back(spec["instance_id"]);
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  agent::InstanceLog& logOf(const std::string& id) {
    auto& l = logs_[id];
    if (!l) {
      l = std::make_unique<agent::InstanceLog>(agent_dir_->path() + "/logs/" + id + ".log", id,
                                               1 << 20);
    }
    return *l;
  }

  static std::vector<std::string> lines(const Reply& r) {
    std::vector<std::string> out;
    for (const auto& l : r.body["items"]) {
      out.push_back(l["instance_id"].get<std::string>() + " " + l["line"].get<std::string>());
    }
    return out;
  }

  std::unique_ptr<testing::TempDir> agent_dir_;
  std::string key_;
  std::atomic<bool> stopping_{false};
  agent::LogEndpoint endpoint_;
  std::unique_ptr<http::Server> agent_http_;
  std::string agent_url_;
  std::string node_, node_token_, env_;
  std::map<std::string, std::unique_ptr<agent::InstanceLog>> logs_;
};

TEST_F(LogsApiTest, MergesInstancesInTimestampOrderAndFollowsWithACursor) {
  auto ids = deployOnNode(2);
  ASSERT_EQ(ids.size(), 2U);
  const std::string a = ids[0];
  const std::string b = ids[1];
  logOf(b).append("stdout", kT0, "b1\n");
  logOf(a).append("stdout", kT0 + kSec, "a1\na2\n");  // one chunk: one ts
  logOf(b).append("stderr", kT0 + kSec, "b2\n");      // the same ts: a before b
  logOf(a).append("stdout", kT0 + 2 * kSec, "a3\n");

  auto all = call("GET", "/v1/envs/" + env_ + "/logs");
  ASSERT_EQ(all.status, 200) << all.raw;
  EXPECT_EQ(lines(all),
            (std::vector<std::string>{b + " b1", a + " a1", a + " a2", b + " b2", a + " a3"}));
  EXPECT_EQ(all.body["items"][3]["stream"], "stderr");
  EXPECT_EQ(all.body["items"][0]["process_type"], "web");
  EXPECT_EQ(all.body["unavailable"].size(), 0U);

  auto tail = call("GET", "/v1/envs/" + env_ + "/logs?tail=2");
  EXPECT_EQ(lines(tail), (std::vector<std::string>{b + " b2", a + " a3"}));
  auto one = call("GET", "/v1/envs/" + env_ + "/logs?instance=" + b);
  EXPECT_EQ(lines(one), (std::vector<std::string>{b + " b1", b + " b2"}));
  EXPECT_EQ(lines(call("GET", "/v1/envs/" + env_ + "/logs?process=worker")).size(), 0U);
  auto since = call("GET", "/v1/envs/" + env_ + "/logs?since=2026-11-30T00:53:22Z");
  EXPECT_EQ(lines(since), (std::vector<std::string>{a + " a3"})) << since.raw;

  // A page cut inside a run of equal timestamps resumes exactly after it.
  auto first = call("GET", "/v1/envs/" + env_ + "/logs?limit=2");
  EXPECT_EQ(lines(first), (std::vector<std::string>{b + " b1", a + " a1"}));
  auto rest =
      call("GET", "/v1/envs/" + env_ + "/logs?cursor=" + first.body["cursor"].get<std::string>());
  EXPECT_EQ(lines(rest), (std::vector<std::string>{a + " a2", b + " b2", a + " a3"}));

  // Follow: the held request answers with the next line only.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    logOf(b).append("stdout", kT0 + 3 * kSec, "b3\n");
  });
  auto held = call("GET", "/v1/envs/" + env_ + "/logs?follow=true&wait=10&cursor=" +
                              rest.body["cursor"].get<std::string>());
  writer.join();
  ASSERT_EQ(held.status, 200) << held.raw;
  EXPECT_EQ(lines(held), (std::vector<std::string>{b + " b3"}));
  auto quiet = call("GET", "/v1/envs/" + env_ + "/logs?follow=true&wait=1&cursor=" +
                               held.body["cursor"].get<std::string>());
  EXPECT_EQ(lines(quiet).size(), 0U);
  EXPECT_EQ(quiet.body["cursor"], held.body["cursor"]);
}

TEST_F(LogsApiTest, OtherOrgsSeeNothingAndABadKeyMakesTheInstanceUnavailable) {
  auto ids = deployOnNode(1);
  ASSERT_EQ(ids.size(), 1U);
  logOf(ids[0]).append("stdout", kT0, "secret-free line\n");
  auto [user, token] = makeUser("stranger");
  EXPECT_EQ(call("GET", "/v1/envs/" + env_ + "/logs", "", token).status, 404);
  EXPECT_EQ(call("GET", "/v1/envs/" + env_ + "/logs?since=yesterday").status, 400);
  EXPECT_EQ(call("GET", "/v1/envs/" + env_ + "/logs?cursor=zz").status, 400);

  // A heartbeat without the endpoint keeps it; one with another key replaces it.
  EXPECT_EQ(callJson("POST", "/v1/nodes/" + node_ + "/heartbeat", {{"agent_version", "0.1.0"}},
                     node_token_)
                .status,
            200);
  EXPECT_EQ(lines(call("GET", "/v1/envs/" + env_ + "/logs")).size(), 1U);
  EXPECT_EQ(callJson("POST", "/v1/nodes/" + node_ + "/heartbeat",
                     {{"agent_url", agent_url_}, {"relay_key", std::string(64, 'f')}}, node_token_)
                .status,
            200);
  auto r = call("GET", "/v1/envs/" + env_ + "/logs");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["items"].size(), 0U);
  ASSERT_EQ(r.body["unavailable"].size(), 1U) << r.raw;
  EXPECT_EQ(r.body["unavailable"][0]["instance_id"], ids[0]);
  EXPECT_NE(r.body["unavailable"][0]["reason"].get<std::string>().find("401"), std::string::npos);
  // The key is never shown.
  EXPECT_EQ(call("GET", "/v1/nodes/" + node_).raw.find(key_), std::string::npos);
}

}  // namespace
}  // namespace plfm::cp
