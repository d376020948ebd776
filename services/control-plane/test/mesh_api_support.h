// The fixture of the mesh's API tests (mesh_api_test.cc,
// mesh_key_api_test.cc): a server on a fake clock, nodes enrolled with a
// canonical WireGuard key of one repeated character, their plans, and
// long-polls checked to wake.
#pragma once

#include <gtest/gtest.h>

#include <future>
#include <string>
#include <thread>
#include <vector>

#include "api_test_support.h"
#include "plfm/core/clock.h"

namespace plfm::cp::testsupport {

class MeshApiTest : public ApiTest {
 protected:
  const Clock* serverClock() override { return &fake_; }
  void configure(Config& cfg) override {
    cfg.scheduler_interval = std::chrono::milliseconds(50);
    cfg.heartbeat_timeout = std::chrono::seconds(30);
    cfg.node_down_after = std::chrono::seconds(600);
  }

  struct Node {
    std::string id, token;
  };

  // A canonical base64 key (the last character's unused bits zero).
  static std::string keyOf(char c) { return std::string(42, c) + "A="; }

  static json::Json enrollBody(const std::string& hostname, char key, const std::string& underlay) {
    return {{"hostname", hostname},
            {"cores", 4},
            {"memory_mb", 4096},
            {"disk_mb", 0},
            {"wireguard_public_key", keyOf(key)},
            {"underlay_address", underlay},
            {"runtimes", {"qemu"}}};
  }

  Node enroll(const std::string& hostname, char key, const std::string& underlay,
              const json::Json& extra = json::Json::object()) {
    json::Json body = enrollBody(hostname, key, underlay);
    for (const auto& [k, v] : extra.items()) body[k] = v;
    auto r = callJson("POST", "/v1/nodes/enroll", body, makeEnrollmentToken());
    EXPECT_EQ(r.status, 201) << r.raw;
    return {r.body.value("node_id", ""), r.body.value("token", "")};
  }

  Reply plan(const Node& n, int64_t after, int wait) {
    return call("GET",
                "/v1/nodes/" + n.id + "/plan?after=" + std::to_string(after) +
                    "&wait=" + std::to_string(wait),
                "", n.token);
  }

  // The node ids of the plan's mesh peers, in order.
  std::vector<std::string> peersOf(const Node& n) {
    auto p = plan(n, 0, 0);
    EXPECT_EQ(p.status, 200) << p.raw;
    std::vector<std::string> out;
    for (const auto& peer : p.body["mesh"]["peers"]) out.push_back(peer["node_id"]);
    return out;
  }

  void heartbeat(const Node& n) {
    auto r = callJson("POST", "/v1/nodes/" + n.id + "/heartbeat", json::Json::object(), n.token);
    EXPECT_EQ(r.status, 200) << r.raw;
  }

  template <class P>
  bool eventually(P pred) {
    for (int i = 0; i < 400; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred();
  }

  // A long-poll of `n`'s plan beyond its current version, checked to be
  // waiting; `change` runs, and the poll must answer within 2 s.
  template <class F>
  Reply wokenBy(const Node& n, F change) {
    const int64_t v = plan(n, 0, 0).body.value("version", int64_t{0});
    auto waiting = std::async(std::launch::async, [this, n, v] { return plan(n, v, 30); });
    EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
        << "the long-poll answered before anything changed";
    const auto t0 = std::chrono::steady_clock::now();
    change();
    EXPECT_EQ(waiting.wait_for(std::chrono::seconds(2)), std::future_status::ready);
    Reply r = waiting.get();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_GT(r.body.value("version", int64_t{0}), v);
    return r;
  }

  std::string state(const Node& n) { return call("GET", "/v1/nodes/" + n.id).body["state"]; }

  // A new org's env running `count` web instances; returns the env id.
  std::string deploy(const std::string& org_name, int count) {
    const std::string app = makeApp(makeOrg(org_name), "web");
    std::string env = makeEnv(app, "prod");
    const std::string rel = makeReleaseWith(app, webManifest());
    EXPECT_EQ(callJson("POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}}).status, 201);
    EXPECT_EQ(
        callJson("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", count}}}}).status,
        200);
    return env;
  }

  FakeClock fake_;
};

}  // namespace plfm::cp::testsupport
