// Describing one instance and one release (GET /v1/instances/{id}, GET
// /v1/releases/{id}) on a real server and a real PostgreSQL: desired vs
// current state, the status changes with their reasons from the event log,
// the last check verdict, the release's envs, bad input naming its field,
// and 404 for a member of another org. The log tail from a real agent is in
// logs_api_test.cc.
#include <gtest/gtest.h>

#include "api_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;
using testsupport::Reply;

class InstancesApiTest : public ApiTest {
 protected:
  // An org with an app `web`, env prod and a release deployed with one
  // `web` instance placed on an enrolled node.
  void placeOne(const std::string& name) {
    auto enrolled = enrollNode(name + ".example", 4, 4096);
    node_ = enrolled.first;
    node_token_ = enrolled.second;
    org_ = makeOrg(name);
    app_ = makeApp(org_, "web");
    env_ = makeEnv(app_, "prod");
    release_ = makeReleaseWith(app_, webManifest(1, 256));
    auto dep = callJson("POST", "/v1/envs/" + env_ + "/deploys", {{"release_id", release_}});
    ASSERT_EQ(dep.status, 201) << dep.raw;
    deploy_ = dep.body["id"];
    auto sc = callJson("PUT", "/v1/envs/" + env_ + "/scale", {{"processes", {{"web", 1}}}});
    ASSERT_EQ(sc.status, 200) << sc.raw;
    auto plan = call("GET", "/v1/nodes/" + node_ + "/plan?after=0&wait=0", "", node_token_);
    ASSERT_EQ(plan.body["instances"].size(), 1U) << plan.raw;
    inst_ = plan.body["instances"][0]["instance_id"];
  }

  Reply report(int seq, const std::string& phase, const std::string& reason = "",
               const json::Json& timings = json::Json::object()) {
    json::Json body = {{"generation", 1}, {"seq", seq}, {"phase", phase}, {"timings", timings}};
    if (!reason.empty()) body["reason"] = reason;
    return callJson("POST", "/v1/nodes/" + node_ + "/instances/" + inst_ + "/status", body,
                    node_token_);
  }

  static std::vector<std::string> types(const json::Json& events) {
    std::vector<std::string> out;
    for (const auto& e : events) {
      out.push_back(e["event_type"].get<std::string>() +
                    (e["phase"].is_string() ? " " + e["phase"].get<std::string>() : ""));
    }
    return out;
  }

  std::string node_, node_token_, org_, app_, env_, release_, deploy_, inst_;
};

TEST_F(InstancesApiTest, DescribesStateHistoryCheckAndLogs) {
  ASSERT_NO_FATAL_FAILURE(placeOne("describe"));
  auto fresh = call("GET", "/v1/instances/" + inst_);
  ASSERT_EQ(fresh.status, 200) << fresh.raw;
  EXPECT_EQ(fresh.body["instance"]["id"], inst_);
  EXPECT_EQ(fresh.body["instance"]["desired_state"], "run");
  EXPECT_EQ(fresh.body["instance"]["current_state"], "allocated");
  EXPECT_EQ(fresh.body["last_check"], nullptr);
  ASSERT_EQ(fresh.body["events"].size(), 1U) << fresh.raw;
  const json::Json& allocated = fresh.body["events"][0];
  EXPECT_EQ(allocated["event_type"], "instance.allocated");
  EXPECT_EQ(allocated["node_id"], node_);
  EXPECT_NE(allocated["reason"].get<std::string>().find("on " + node_), std::string::npos)
      << allocated;
  // The release's check for `web`, as its canonical manifest holds it.
  ASSERT_EQ(fresh.body["checks"].size(), 1U);
  EXPECT_EQ(fresh.body["checks"][0]["type"], "tcp");
  EXPECT_EQ(fresh.body["checks"][0]["port"], 8443);
  // This node reported no log endpoint: no lines, and why.
  EXPECT_EQ(fresh.body["logs"]["items"], json::Json::array());
  EXPECT_NE(fresh.body["logs"]["unavailable"].get<std::string>().find("no agent log endpoint"),
            std::string::npos)
      << fresh.raw;

  ASSERT_EQ(report(1, "booting").status, 200);
  ASSERT_EQ(report(2, "healthy", "", {{"boot_ms", 1480}}).status, 200);
  ASSERT_EQ(
      report(3, "unhealthy", "tcp check on port 8443: connection refused", {{"boot_ms", 1480}})
          .status,
      200);
  auto d = call("GET", "/v1/instances/" + inst_);
  ASSERT_EQ(d.status, 200) << d.raw;
  const json::Json& i = d.body["instance"];
  EXPECT_EQ(i["node_id"], node_);
  EXPECT_EQ(i["release_id"], release_);
  EXPECT_EQ(i["deploy_id"], deploy_);
  EXPECT_EQ(i["desired_state"], "run");
  EXPECT_TRUE(i["phase_since"].is_string());
  // The first events of the aggregate, oldest first, then what the
  // scheduler did about the failing check, each with its reason.
  auto history = types(d.body["events"]);
  ASSERT_GE(history.size(), 4U) << d.raw;
  EXPECT_EQ(std::vector<std::string>(history.begin(), history.begin() + 4),
            (std::vector<std::string>{"instance.allocated", "instance.status_reported booting",
                                      "instance.status_reported healthy",
                                      "instance.status_reported unhealthy"}));
  const json::Json& last = d.body["events"].back();
  EXPECT_FALSE(last["reason"].get<std::string>().empty()) << last;
  if (last["event_type"] == "instance.restart_scheduled") {
    EXPECT_EQ(last["generation"], i["generation"]);
    EXPECT_EQ(i["current_state"], "allocated");
    EXPECT_EQ(i["reason"], last["reason"]);
  } else {
    EXPECT_EQ(i["current_state"], "unhealthy");
    EXPECT_EQ(i["timings"]["boot_ms"], 1480);
  }
  EXPECT_EQ(d.body["events"][3]["reason"], "tcp check on port 8443: connection refused");
  EXPECT_EQ(d.body["events"][3]["generation"], 1);
  EXPECT_LT(d.body["events"][0]["seq"].get<int64_t>(), d.body["events"][3]["seq"].get<int64_t>());
  EXPECT_EQ(d.body["last_check"]["status"], "unhealthy");
  EXPECT_EQ(d.body["last_check"]["reason"], "tcp check on port 8443: connection refused");
  EXPECT_EQ(d.body["last_check"]["generation"], 1);
  // Only status and reasons come out of a payload: allocated's secrets
  // version, vcpus and the like stay in the log.
  for (const auto& e : d.body["events"]) {
    EXPECT_FALSE(e.contains("payload")) << e;
    EXPECT_FALSE(e.contains("secrets_version")) << e;
  }

  // Fewer events, and no log relay.
  auto two = call("GET", "/v1/instances/" + inst_ + "?events=2&log_lines=0");
  ASSERT_EQ(two.status, 200) << two.raw;
  ASSERT_EQ(two.body["events"].size(), 2U);
  EXPECT_EQ(two.body["events"][1]["seq"], d.body["events"].back()["seq"]);
  EXPECT_EQ(two.body["logs"],
            json::Json({{"items", json::Json::array()}, {"unavailable", nullptr}}));
}

TEST_F(InstancesApiTest, AMemberOfAnotherOrgGets404AndBadInputNamesTheField) {
  ASSERT_NO_FATAL_FAILURE(placeOne("owned"));
  ASSERT_EQ(report(1, "unhealthy", "tcp check on port 8443: connection refused").status, 200);
  auto [bob_id, bob] = makeUser("describebob");
  (void)bob_id;
  makeOrg("bobs", bob);
  auto other = call("GET", "/v1/instances/" + inst_, "", bob);
  EXPECT_EQ(other.status, 404) << other.raw;
  EXPECT_EQ(other.body["error"]["code"], "not_found");
  EXPECT_EQ(other.raw.find("connection refused"), std::string::npos) << other.raw;
  EXPECT_EQ(other.raw.find(node_), std::string::npos) << other.raw;
  // Exactly as for an id nobody has.
  auto missing = call("GET", "/v1/instances/inst_01jdq3v7k2m9x4c8r6t0w5y1zb", "", bob);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.body["error"]["message"], "instance inst_01jdq3v7k2m9x4c8r6t0w5y1zb not found");
  auto rel = call("GET", "/v1/releases/" + release_, "", bob);
  EXPECT_EQ(rel.status, 404) << rel.raw;
  EXPECT_EQ(rel.raw.find("\"envs\""), std::string::npos);

  auto bad = call("GET", "/v1/instances/inst_nope");
  EXPECT_EQ(bad.status, 400) << bad.raw;
  EXPECT_EQ(bad.body["error"]["code"], "invalid_id");
  EXPECT_EQ(bad.body["error"]["details"]["field"], "instance_id");
  auto wrong_kind = call("GET", "/v1/instances/" + release_);
  EXPECT_EQ(wrong_kind.status, 400) << wrong_kind.raw;
  EXPECT_EQ(wrong_kind.body["error"]["details"]["field"], "instance_id");
  for (const std::string q :
       {"events=0", "events=201", "events=x", "log_lines=-1", "log_lines=201"}) {
    auto r = call("GET", "/v1/instances/" + inst_ + "?" + q);
    EXPECT_EQ(r.status, 400) << q << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["code"], "invalid_query") << q;
    EXPECT_EQ(r.body["error"]["details"]["field"], q.substr(0, q.find('='))) << q;
  }
}

TEST_F(InstancesApiTest, AReleaseListsTheEnvsThatRunIt) {
  ASSERT_NO_FATAL_FAILURE(placeOne("relenvs"));
  ASSERT_EQ(report(1, "healthy").status, 200);
  ASSERT_EQ(call("GET", "/v1/deploys/" + deploy_).body["status"], "succeeded");
  auto running = call("GET", "/v1/releases/" + release_);
  ASSERT_EQ(running.status, 200) << running.raw;
  EXPECT_EQ(running.body["envs"], json::Json::array({{{"env_id", env_},
                                                      {"name", "prod"},
                                                      {"current", true},
                                                      {"instances", 1},
                                                      {"deploy_status", "succeeded"}}}))
      << running.raw;
  // A release nobody deployed runs nowhere, and an env without the
  // release is not listed.
  makeEnv(app_, "staging");
  const std::string next = makeReleaseWith(app_, webManifest(1, 128));
  auto none = call("GET", "/v1/releases/" + next);
  ASSERT_EQ(none.status, 200) << none.raw;
  EXPECT_EQ(none.body["envs"], json::Json::array());
  // While prod deploys it, both releases run there.
  auto dep = callJson("POST", "/v1/envs/" + env_ + "/deploys", {{"release_id", next}});
  ASSERT_EQ(dep.status, 201) << dep.raw;
  auto deploying = call("GET", "/v1/releases/" + next);
  ASSERT_EQ(deploying.body["envs"].size(), 1U) << deploying.raw;
  EXPECT_EQ(deploying.body["envs"][0]["name"], "prod");
  EXPECT_EQ(deploying.body["envs"][0]["current"], false);
  const std::string status = deploying.body["envs"][0]["deploy_status"];
  EXPECT_TRUE(status == "pending" || status == "in_progress") << status;
  auto previous = call("GET", "/v1/releases/" + release_);
  ASSERT_EQ(previous.body["envs"].size(), 1U) << previous.raw;
  EXPECT_EQ(previous.body["envs"][0]["current"], true);
  EXPECT_EQ(previous.body["envs"][0]["instances"], 1);
  EXPECT_EQ(previous.body["envs"][0]["deploy_status"], nullptr);
}

}  // namespace
}  // namespace plfm::cp
