// The log relay end to end (docs/specs/runtime/logs.md): a real control plane
// on a real PostgreSQL relays from the real agent log endpoint
// (services/node-agent/src/agent/log_endpoint.h) serving files the agent's
// InstanceLog wrote, over TLS pinned to the certificate the heartbeat
// reported, with requests the control plane signs. The node's side
// (enrollment, plan, heartbeat with its agent_url and certificate) goes
// through the API like an agent's.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "agent/instance_log.h"
#include "agent/log_endpoint.h"
#include "api_test_support.h"
#include "plfm/http/pki.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;
using testsupport::Reply;

constexpr uint64_t kSec = 1'000'000'000;
constexpr uint64_t kT0 = uint64_t{1'796'000'000} * kSec;  // 2026-11-30

class LogsApiTest : public ApiTest {
 protected:
  void configure(Config& cfg) override { cfg.max_log_followers_per_org = 2; }
  void SetUp() override {
    ApiTest::SetUp();
    agent_dir_ = std::make_unique<plfm::testing::TempDir>("plfm-logs");
    std::filesystem::create_directories(agent_dir_->path() + "/logs");
    auto pki = http::writeLocalPki(agent_dir_->path(), {"localhost"});
    ASSERT_TRUE(pki) << pki.error().toString();
    auto fp = http::certificateSha256(pki->server_cert);
    ASSERT_TRUE(fp);
    cert_sha256_ = *fp;
    http::ServerOptions opts;
    opts.listen = {"[::1]:0"};
    opts.tls = http::ServerTlsOptions{pki->server_cert, pki->server_key};
    agent_http_ = std::make_unique<http::Server>(opts, [this](http::Request& req) {
      if (agent::LogEndpoint::matches(req)) return endpoint_.serve(req);
      return http::Response::text(404, "no");
    });
    ASSERT_TRUE(agent_http_->start());
    agent_url_ = "https://" + agent_http_->endpoints()[0];
  }
  void TearDown() override {
    stopping_ = true;
    if (agent_http_) agent_http_->stop(std::chrono::milliseconds(200));
    ApiTest::TearDown();
  }

  // An env with `count` web instances placed on an enrolled node whose
  // agent heartbeats its log endpoint; returns the instance ids, sorted.
  std::vector<std::string> deployOnNode(int count) {
    // The agent listens on [::1]: a node registered there.
    auto [node, token] = enrollNode("logs.example", 4, 4096, "::1");
    node_ = node;
    node_token_ = token;
    // The agent pins the key the control plane tells it (as at enrollment)
    // and checks requests against its own node id.
    auto hello = callJson("POST", "/v1/nodes/" + node + "/heartbeat", json::Json::object(), token);
    auto pinned = relay::PublicKey::parse(hello.body["relay_public_key"].get<std::string>());
    EXPECT_TRUE(pinned) << hello.raw;
    endpoint_ =
        agent::LogEndpoint{agent_dir_->path() + "/logs",
                           std::make_shared<agent::RelayVerifier>(node, *pinned), &stopping_};
    const std::string org = makeOrg("logs");
    const std::string app = makeApp(org, "web");
    env_ = makeEnv(app, "prod");
    const std::string release = makeReleaseWith(app, webManifest(1, 256));
    EXPECT_EQ(callJson("POST", "/v1/envs/" + env_ + "/deploys", {{"release_id", release}}).status,
              201);
    EXPECT_EQ(
        callJson("PUT", "/v1/envs/" + env_ + "/scale", {{"processes", {{"web", count}}}}).status,
        200);
    auto beat = callJson("POST", "/v1/nodes/" + node + "/heartbeat",
                         {{"agent_version", "0.1.0"},
                          {"agent_url", agent_url_},
                          {"agent_cert_sha256", cert_sha256_}},
                         token);
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

  std::unique_ptr<plfm::testing::TempDir> agent_dir_;
  std::string cert_sha256_;
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

// GET /v1/instances/{id} (what `vt instances get` shows) relays the
// instance's last lines the same way, and only that instance's.
TEST_F(LogsApiTest, DescribingAnInstanceShowsItsLastLines) {
  auto ids = deployOnNode(2);
  ASSERT_EQ(ids.size(), 2U);
  const std::string a = ids[0];
  const std::string b = ids[1];
  logOf(a).append("stdout", kT0, "a1\na2\n");
  logOf(b).append("stdout", kT0 + kSec, "b1\n");
  logOf(a).append("stderr", kT0 + 2 * kSec, "a3\n");
  auto tailOf = [](const Reply& r) {
    Reply logs;
    logs.body = r.body["logs"];
    return lines(logs);
  };
  auto d = call("GET", "/v1/instances/" + a + "?log_lines=2");
  ASSERT_EQ(d.status, 200) << d.raw;
  EXPECT_EQ(d.body["logs"]["unavailable"], nullptr) << d.raw;
  EXPECT_EQ(tailOf(d), (std::vector<std::string>{a + " a2", a + " a3"}));
  EXPECT_EQ(d.body["logs"]["items"][1]["stream"], "stderr");
  auto all = call("GET", "/v1/instances/" + b);
  EXPECT_EQ(tailOf(all), (std::vector<std::string>{b + " b1"}));
}

TEST_F(LogsApiTest, OtherOrgsSeeNothingAndAnotherCertificateMakesTheInstanceUnavailable) {
  auto ids = deployOnNode(1);
  ASSERT_EQ(ids.size(), 1U);
  logOf(ids[0]).append("stdout", kT0, "secret-free line\n");
  auto [user, token] = makeUser("stranger");
  EXPECT_EQ(call("GET", "/v1/envs/" + env_ + "/logs", "", token).status, 404);
  EXPECT_EQ(call("GET", "/v1/envs/" + env_ + "/logs?since=yesterday").status, 400);
  EXPECT_EQ(call("GET", "/v1/envs/" + env_ + "/logs?cursor=zz").status, 400);

  // A heartbeat without the endpoint keeps it; one reporting another
  // certificate makes the relay refuse the agent (a man in the middle).
  EXPECT_EQ(callJson("POST", "/v1/nodes/" + node_ + "/heartbeat", {{"agent_version", "0.1.0"}},
                     node_token_)
                .status,
            200);
  EXPECT_EQ(lines(call("GET", "/v1/envs/" + env_ + "/logs")).size(), 1U);
  EXPECT_EQ(callJson("POST", "/v1/nodes/" + node_ + "/heartbeat",
                     {{"agent_url", agent_url_}, {"agent_cert_sha256", std::string(64, 'f')}},
                     node_token_)
                .status,
            200);
  auto r = call("GET", "/v1/envs/" + env_ + "/logs");
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["items"].size(), 0U);
  ASSERT_EQ(r.body["unavailable"].size(), 1U) << r.raw;
  EXPECT_EQ(r.body["unavailable"][0]["instance_id"], ids[0]);
  EXPECT_NE(r.body["unavailable"][0]["reason"].get<std::string>().find("pinned"), std::string::npos)
      << r.raw;
}

TEST_F(LogsApiTest, AnAgentThatPinnedAnotherKeyAnswers401) {
  auto ids = deployOnNode(1);
  ASSERT_EQ(ids.size(), 1U);
  logOf(ids[0]).append("stdout", kT0, "line\n");
  auto other = relay::SigningKey::fromSeed(std::string(32, 'o'));
  ASSERT_TRUE(other);
  endpoint_.verifier = std::make_shared<agent::RelayVerifier>(node_, other->publicKey());
  auto r = call("GET", "/v1/envs/" + env_ + "/logs");
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.body["unavailable"].size(), 1U) << r.raw;
  EXPECT_NE(r.body["unavailable"][0]["reason"].get<std::string>().find("401"), std::string::npos);
  // Nor does another node id work with the right key.
  auto pinned = relay::PublicKey::parse(
      callJson("POST", "/v1/nodes/" + node_ + "/heartbeat", json::Json::object(), node_token_)
          .body["relay_public_key"]
          .get<std::string>());
  ASSERT_TRUE(pinned);
  endpoint_.verifier = std::make_shared<agent::RelayVerifier>("node_someone_else", *pinned);
  auto n = call("GET", "/v1/envs/" + env_ + "/logs");
  ASSERT_EQ(n.body["unavailable"].size(), 1U) << n.raw;
}

TEST_F(LogsApiTest, HeartbeatsRefuseARelayKeyAndAnAgentUrlOffTheRegisteredAddress) {
  // Named copies: clang-tidy's clang (14) cannot capture structured bindings.
  const auto enrolled = enrollNode("hb.example", 4, 4096, "2001:db8::10");
  const std::string node = enrolled.first;
  const std::string token = enrolled.second;
  auto beat = [&](const json::Json& body) {
    return callJson("POST", "/v1/nodes/" + node + "/heartbeat", body, token);
  };
  const std::string fp(64, 'a');
  auto key = beat({{"agent_url", "https://[2001:db8::10]:9102"},
                   {"agent_cert_sha256", fp},
                   {"relay_key", std::string(64, 'f')}});
  EXPECT_EQ(key.status, 400) << key.raw;
  EXPECT_EQ(key.body["error"]["details"]["field"], "relay_key") << key.raw;
  for (const std::string url :
       {"https://[2001:db8::11]:9102", "https://[::1]:9102", "https://127.0.0.1:9102",
        "https://evil.example:9102", "https://[2001:db8::10]:9102/x", "https://[2001:db8::10]",
        "http://[2001:db8::10]:9102", "https://[2001:db8::10]:9102?x", "ftp://[2001:db8::10]:1"}) {
    auto r = beat({{"agent_url", url}, {"agent_cert_sha256", fp}});
    EXPECT_EQ(r.status, 400) << url << " " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], "agent_url") << url << " " << r.raw;
  }
  auto nocert = beat({{"agent_url", "https://[2001:db8::10]:9102"}});
  EXPECT_EQ(nocert.body["error"]["details"]["field"], "agent_cert_sha256") << nocert.raw;
  auto badcert = beat({{"agent_url", "https://[2001:db8::10]:9102"}, {"agent_cert_sha256", "AB"}});
  EXPECT_EQ(badcert.body["error"]["details"]["field"], "agent_cert_sha256") << badcert.raw;
  // The registered address, written another way, is the same address.
  auto good = beat({{"agent_url", "https://[2001:0db8:0::10]:9102"}, {"agent_cert_sha256", fp}});
  EXPECT_EQ(good.status, 200) << good.raw;
  EXPECT_EQ(good.body["relay_public_key"].get<std::string>().rfind("ed25519:", 0), 0U);
  // A loopback node may report a plain loopback URL, without a certificate.
  auto [local, local_token] = enrollNode("local.example", 4, 4096, "::1");
  auto plain = callJson("POST", "/v1/nodes/" + local + "/heartbeat",
                        {{"agent_url", "http://[::1]:9102"}}, local_token);
  EXPECT_EQ(plain.status, 200) << plain.raw;
  auto plain_cert =
      callJson("POST", "/v1/nodes/" + local + "/heartbeat",
               {{"agent_url", "http://[::1]:9102"}, {"agent_cert_sha256", fp}}, local_token);
  EXPECT_EQ(plain_cert.status, 400) << plain_cert.raw;
}

TEST_F(LogsApiTest, FollowersPerOrgAreCappedWith429) {
  auto ids = deployOnNode(1);
  ASSERT_EQ(ids.size(), 1U);
  const std::string follow = "/v1/envs/" + env_ + "/logs?follow=true&wait=2";
  // max_log_followers_per_org is 2 here (configure): two held, the third refused.
  std::vector<std::thread> held;
  held.reserve(2);
  std::atomic<int> ok{0};
  for (int i = 0; i < 2; ++i) {
    held.emplace_back([&] {
      if (call("GET", follow).status == 200) ++ok;
    });
  }
  // Until both hold their slot (each answers only after `wait`).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  Reply third;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    third = call("GET", "/v1/envs/" + env_ + "/logs?follow=true&wait=0");
  } while (third.status == 200 && std::chrono::steady_clock::now() < deadline);
  EXPECT_EQ(third.status, 429) << third.raw;
  EXPECT_EQ(third.body["error"]["code"], "too_many_log_followers") << third.raw;
  // A plain read is not a follower.
  EXPECT_EQ(call("GET", "/v1/envs/" + env_ + "/logs").status, 200);
  for (auto& t : held) t.join();
  EXPECT_EQ(ok.load(), 2);
  // The slots are back.
  EXPECT_EQ(call("GET", "/v1/envs/" + env_ + "/logs?follow=true&wait=0").status, 200);
}

}  // namespace
}  // namespace plfm::cp
