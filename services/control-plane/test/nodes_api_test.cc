// Nodes, the scheduler and the NodePlan feed end to end on a real server and
// a real PostgreSQL: enrollment, the plan long-poll waking on a scale change,
// status reports and the views they feed, credentials per node, cordon and
// drain, and the reasons `vt instances` shows.
#include <gtest/gtest.h>

#include <algorithm>
#include <future>
#include <map>
#include <set>
#include <thread>
#include <tuple>

#include "api_test_support.h"
#include "projections.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;
using testsupport::Reply;

class NodesApiTest : public ApiTest {
 protected:
  // An env of a fresh app, deployed with a `web` process of `memory_mb`.
  struct Env {
    std::string org, app, env, release, deploy;
  };
  Env deployedEnv(const std::string& name, int memory_mb = 256) {
    Env e;
    e.org = makeOrg(name);
    e.app = makeApp(e.org, "web");
    e.env = makeEnv(e.app, "prod");
    e.release = makeReleaseWith(e.app, webManifest(1, memory_mb));
    auto dep = callJson("POST", "/v1/envs/" + e.env + "/deploys", {{"release_id", e.release}});
    EXPECT_EQ(dep.status, 201) << dep.raw;
    e.deploy = dep.body.value("id", "");
    return e;
  }

  Reply plan(const std::string& node, const std::string& token, int64_t after, int wait) {
    return call("GET",
                "/v1/nodes/" + node + "/plan?after=" + std::to_string(after) +
                    "&wait=" + std::to_string(wait),
                "", token);
  }

  // What an agent sends to POST /v1/nodes/enroll.
  static json::Json enrollBody(const std::string& hostname) {
    return {{"hostname", hostname},
            {"cores", 2},
            {"memory_mb", 2048},
            {"disk_mb", 0},
            {"wireguard_public_key", std::string(43, 'k') + "="},
            {"underlay_address", "192.0.2.10"},
            {"runtimes", {"qemu"}}};
  }

  Reply report(const std::string& node, const std::string& token, const std::string& inst,
               const json::Json& body) {
    return callJson("POST", "/v1/nodes/" + node + "/instances/" + inst + "/status", body, token);
  }
};

TEST_F(NodesApiTest, EnrollPlanLongPollStatusAndViews) {
  auto [node, token] = enrollNode("n1.example", 4, 4096);
  ASSERT_FALSE(node.empty());
  auto got = call("GET", "/v1/nodes/" + node);
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.body["state"], "active");
  EXPECT_EQ(got.body["ipv6_prefix"], "fd7a:5c00:0:1::/64");  // the first /64, never subnet 0
  EXPECT_EQ(got.body["runtimes"], json::Json({"qemu"}));

  const Env e = deployedEnv("planco");
  auto first = plan(node, token, 0, 0);
  ASSERT_EQ(first.status, 200) << first.raw;
  EXPECT_EQ(first.body["instances"].size(), 0U);
  const int64_t v0 = first.body["version"];
  EXPECT_GT(v0, 0);

  // The agent waits on its plan; a scale change wakes it.
  auto waiting =
      std::async(std::launch::async, [&, n = node, t = token] { return plan(n, t, v0, 30); });
  ASSERT_EQ(waiting.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
      << "the long-poll answered before anything changed";
  auto sc = callJson("PUT", "/v1/envs/" + e.env + "/scale", {{"processes", {{"web", 2}}}});
  ASSERT_EQ(sc.status, 200) << sc.raw;
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(20)), std::future_status::ready);
  Reply woke = waiting.get();
  ASSERT_EQ(woke.status, 200) << woke.raw;
  const int64_t v1 = woke.body["version"];
  EXPECT_GT(v1, v0);
  ASSERT_EQ(woke.body["instances"].size(), 2U) << woke.raw;
  std::set<std::string> addresses;
  for (const auto& spec : woke.body["instances"]) {
    EXPECT_EQ(spec["desired"], "run");
    EXPECT_EQ(spec["generation"], 1);
    EXPECT_EQ(spec["release_id"], e.release);
    EXPECT_EQ(spec["deploy_id"], e.deploy);
    EXPECT_EQ(spec["image"]["digest"], "sha256:" + std::string(64, 'b'));
    EXPECT_EQ(spec["command"], json::Json({"/hello", "--port", "8443"}));
    EXPECT_EQ(spec["env"]["GREETING"], "hi");
    EXPECT_EQ(spec["resources"]["memory_mb"], 256);
    EXPECT_EQ(spec["network"]["gateway"], "fe80::1");
    EXPECT_EQ(spec["checks"][0]["port"], 8443);
    addresses.insert(spec["network"]["address"].get<std::string>());
  }
  // The node's /64, the org's tag (its first, 1) in bits 64..95, numbers from 2
  // (docs/specs/networking/mesh.md, Addressing).
  EXPECT_EQ(addresses, (std::set<std::string>{"fd7a:5c00:0:1:0:1:0:2", "fd7a:5c00:0:1:0:1:0:3"}));
  // Every plan validates against api/schemas/node-plan.json.
  EXPECT_EQ(testsupport::validateAgainstSchemaFile("node-plan.json", woke.body), std::nullopt);
  // Nothing new: a poll with the current version times out with the same plan.
  auto same = plan(node, token, v1, 0);
  EXPECT_EQ(same.body["version"], v1);

  auto list = call("GET", "/v1/envs/" + e.env + "/instances");
  ASSERT_EQ(list.status, 200) << list.raw;
  ASSERT_EQ(list.body["items"].size(), 2U);
  EXPECT_EQ(list.body["items"][0]["node_id"], node);
  EXPECT_EQ(list.body["items"][0]["current_state"], "allocated");
  EXPECT_NE(list.body["items"][0]["reason"].get<std::string>().find("on " + node),
            std::string::npos)
      << list.raw;
  EXPECT_EQ(list.body["summary"][0]["desired"], 2);
  EXPECT_EQ(list.body["summary"][0]["current"], 0);
  EXPECT_NE(list.body["summary"][0]["reason"].get<std::string>(), "");

  // Status reports: booting, then healthy with boot timings.
  for (const auto& spec : woke.body["instances"]) {
    const std::string inst = spec["instance_id"];
    auto r = report(node, token, inst, {{"generation", 1}, {"seq", 1}, {"phase", "booting"}});
    ASSERT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(r.body["applied"], true);
    r = report(
        node, token, inst,
        {{"generation", 1}, {"seq", 2}, {"phase", "healthy"}, {"timings", {{"boot_ms", 1480}}}});
    EXPECT_EQ(r.body["applied"], true);
    EXPECT_NE(r.header("X-Event-Seq"), "0");
    // A duplicate and a stale report are accepted and change nothing.
    auto dup = report(
        node, token, inst,
        {{"generation", 1}, {"seq", 2}, {"phase", "healthy"}, {"timings", {{"boot_ms", 1480}}}});
    EXPECT_EQ(dup.status, 200);
    EXPECT_EQ(dup.body["applied"], false);
    EXPECT_EQ(dup.header("X-Event-Seq"), "0");
    auto stale = report(node, token, inst, {{"generation", 1}, {"seq", 1}, {"phase", "booting"}});
    EXPECT_EQ(stale.body["applied"], false);
  }
  EXPECT_EQ(countEvents("instance.status_reported"), 4);

  list = call("GET", "/v1/envs/" + e.env + "/instances");
  EXPECT_EQ(list.body["summary"][0]["current"], 2) << list.raw;
  EXPECT_EQ(list.body["summary"][0]["reason"], "") << list.raw;
  EXPECT_EQ(list.body["items"][0]["current_state"], "healthy");
  EXPECT_EQ(list.body["items"][0]["timings"]["boot_ms"], 1480);
  // With both healthy the scheduler finishes the deploy.
  EXPECT_EQ(call("GET", "/v1/deploys/" + e.deploy).body["status"], "succeeded");
  EXPECT_EQ(call("GET", "/v1/envs/" + e.env).body["current_release_id"], e.release);
  auto n = call("GET", "/v1/nodes/" + node);
  EXPECT_EQ(n.body["allocated"], json::Json({{"instances", 2}, {"vcpus", 2}, {"memory_mb", 512}}));
  EXPECT_EQ(n.body["plan_version"], v1);

  // Every event validates against its schema, and the views rebuild identically.
  auto conn = connect();
  auto events = EventStore::readAfter(conn, 0, 10'000);
  ASSERT_TRUE(events.has_value());
  std::set<std::string> types;
  for (const auto& ev : *events) {
    types.insert(ev.event_type);
    auto env = json::parse(EventStore::envelopeJson(ev));
    auto err = testsupport::validateAgainstSchemaFile("event-envelope.json", *env);
    EXPECT_FALSE(err.has_value()) << ev.event_type << ": " << err.value_or("");
    err = testsupport::validateAgainstSchemaFile("events/" + ev.event_type + ".json",
                                                 (*env)["payload"]);
    EXPECT_FALSE(err.has_value()) << ev.event_type << ": " << err.value_or("");
  }
  for (const char* t : {"node.enrollment_created", "node.enrolled", "instance.allocated",
                        "instance.status_reported", "deploy.status_changed"}) {
    EXPECT_TRUE(types.contains(t)) << t;
  }
  const std::string before = dumpViews(conn);
  ASSERT_TRUE(rebuildViews(conn).has_value());
  EXPECT_EQ(dumpViews(conn), before);
}

TEST_F(NodesApiTest, EnrollmentRetryReissuesTheCredentialOnce) {
  const std::string enrollment = makeEnrollmentToken();
  const json::Json body = enrollBody("n1.example");
  auto first = callJson("POST", "/v1/nodes/enroll", body, enrollment);
  ASSERT_EQ(first.status, 201) << first.raw;
  EXPECT_EQ(first.body["reissued"], false);
  const std::string node = first.body["node_id"];
  const std::string old_token = first.body["token"];
  // The agent lost the answer and retries: same node and prefix, new credential.
  auto again = callJson("POST", "/v1/nodes/enroll", body, enrollment);
  ASSERT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.body["node_id"], node);
  EXPECT_EQ(again.body["ipv6_prefix"], first.body["ipv6_prefix"]);
  EXPECT_EQ(again.body["reissued"], true);
  const std::string new_token = again.body["token"];
  EXPECT_NE(new_token, old_token);
  // The same token from another host is refused; so is a made-up one.
  json::Json other = body;
  other["hostname"] = "n2.example";
  auto refused = callJson("POST", "/v1/nodes/enroll", other, enrollment);
  EXPECT_EQ(refused.status, 409) << refused.raw;
  EXPECT_EQ(refused.body["error"]["code"], "failed_precondition");
  EXPECT_EQ(callJson("POST", "/v1/nodes/enroll", body, "vt_" + std::string(52, 'q')).status, 401);
  auto hb = [&](const std::string& tok) {
    return callJson("POST", "/v1/nodes/" + node + "/heartbeat", json::Json::object(), tok);
  };
  EXPECT_EQ(hb(old_token).status, 401);
  auto ok = hb(new_token);
  EXPECT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.body["state"], "active");
  EXPECT_EQ(ok.header("X-Event-Seq"), "0");  // heartbeats are not events
  // Once the node's credential was used, the enrollment token is spent.
  auto replay = callJson("POST", "/v1/nodes/enroll", body, enrollment);
  EXPECT_EQ(replay.status, 401) << replay.raw;
  EXPECT_FALSE(replay.body.contains("token"));
  EXPECT_EQ(countEvents("node.enrolled"), 1);
  EXPECT_EQ(countEvents("token.created"), 3);  // the admin's first, and the node's two
  // Neither token appears in any event or idempotency record.
  auto conn = connect();
  auto rs = conn.exec(
      "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%' OR "
      "payload::text LIKE '%' || $2 || '%' OR payload::text LIKE '%' || $3 || '%') + "
      "(SELECT count(*) FROM idempotency_keys WHERE response_body LIKE '%' || $1 || '%')",
      {enrollment, new_token, old_token});
  ASSERT_TRUE(rs.has_value());
  EXPECT_EQ(*rs->int64(0, 0), 0);
  // An enrollment replayed by its Idempotency-Key does not show the token again.
  http::Headers h;
  h.set("Idempotency-Key", "enroll-1");
  auto e1 = call("POST", "/v1/nodes/enrollments", "{}", std::nullopt, h);
  auto e2 = call("POST", "/v1/nodes/enrollments", "{}", std::nullopt, h);
  EXPECT_TRUE(e1.body["token"].is_string());
  EXPECT_TRUE(e2.body["token"].is_null());
  EXPECT_EQ(e2.body["token_redacted"], true);
}

TEST_F(NodesApiTest, NodeCredentialsReachOnlyTheirOwnNode) {
  auto [a, token_a] = enrollNode("a.example");
  auto [b, token_b] = enrollNode("b.example");
  EXPECT_EQ(call("GET", "/v1/nodes/" + a + "/plan?wait=0", "", token_a).status, 200);
  // Another node's routes look missing.
  EXPECT_EQ(call("GET", "/v1/nodes/" + b + "/plan?wait=0", "", token_a).status, 404);
  EXPECT_EQ(callJson("POST", "/v1/nodes/" + b + "/heartbeat", json::Json::object(), token_a).status,
            404);
  // Users cannot use node routes, nodes cannot use user or admin routes.
  EXPECT_EQ(call("GET", "/v1/nodes/" + a + "/plan?wait=0").status, 403);
  EXPECT_EQ(call("GET", "/v1/orgs", "", token_a).status, 403);
  EXPECT_EQ(call("GET", "/v1/nodes", "", token_a).status, 403);
  auto [userId, user] = makeUser("plainuser");
  EXPECT_EQ(callJson("POST", "/v1/nodes/enrollments", json::Json::object(), user).status, 403);
  // A report for an instance that is not on this node is not found.
  auto r = callJson("POST", "/v1/nodes/" + a + "/instances/inst_01jdq3v7k2m9x4c8r6t0w5y1zb/status",
                    {{"generation", 1}, {"seq", 1}, {"phase", "booting"}}, token_a);
  EXPECT_EQ(r.status, 404) << r.raw;
  // Prefixes are distinct /64s.
  EXPECT_EQ(call("GET", "/v1/nodes/" + b).body["ipv6_prefix"], "fd7a:5c00:0:2::/64");
}

TEST_F(NodesApiTest, AgentInputIsCheckedFieldByField) {
  const std::string enrollment = makeEnrollmentToken();
  const json::Json good = enrollBody("n1");
  const std::vector<std::pair<std::string, json::Json>> bad = {
      {"hostname", "bad host"},
      {"cores", 0},
      {"memory_mb", "lots"},
      {"wireguard_public_key", "short"},
      {"runtimes", json::Json::array()},
      {"labels", {{"zone", 1}}},
  };
  for (const auto& [field, value] : bad) {
    json::Json body = good;
    body[field] = value;
    auto r = callJson("POST", "/v1/nodes/enroll", body, enrollment);
    EXPECT_EQ(r.status, 400) << field << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << r.raw;
  }
  auto [node, token] = enrollNode("n2.example");
  const Env e = deployedEnv("badreports");
  ASSERT_EQ(callJson("PUT", "/v1/envs/" + e.env + "/scale", {{"processes", {{"web", 1}}}}).status,
            200);
  auto p = plan(node, token, 0, 0);
  ASSERT_EQ(p.body["instances"].size(), 1U) << p.raw;
  const std::string inst = p.body["instances"][0]["instance_id"];
  const std::vector<std::pair<json::Json, std::string>> reports = {
      {{{"generation", 1}, {"seq", 1}, {"phase", "allocated"}}, "phase"},
      {{{"generation", 1}, {"seq", 1}, {"phase", "exited"}}, "exit_code"},
      {{{"generation", 1}, {"seq", 0}, {"phase", "booting"}}, "seq"},
      {{{"generation", 1}, {"seq", 1}, {"phase", "booting"}, {"timings", {{"boot", 1}}}},
       "timings.boot"},
  };
  for (const auto& [body, field] : reports) {
    auto r = report(node, token, inst, body);
    EXPECT_EQ(r.status, 400) << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << r.raw;
  }
  auto future = report(node, token, inst, {{"generation", 2}, {"seq", 1}, {"phase", "booting"}});
  EXPECT_EQ(future.status, 409) << future.raw;
  // An exit report becomes the instance's reason.
  auto exited = report(node, token, inst,
                       {{"generation", 1}, {"seq", 1}, {"phase", "exited"}, {"exit_code", 3}});
  EXPECT_EQ(exited.body["applied"], true);
  auto list = call("GET", "/v1/envs/" + e.env + "/instances");
  ASSERT_GE(list.body["items"].size(), 1U);
  bool seen = false;
  for (const auto& i : list.body["items"]) {
    if (i["id"] == inst) {
      seen = true;
      // The scheduler restarts it at once, as generation 2, after a backoff.
      EXPECT_EQ(i["generation"], 2) << list.raw;
      EXPECT_EQ(i["restarts"], 1);
      EXPECT_TRUE(i["not_before"].is_string());
      EXPECT_NE(i["reason"].get<std::string>().find("exited with code 3; restart 1"),
                std::string::npos)
          << list.raw;
    }
  }
  EXPECT_TRUE(seen);
}

// The heartbeat's mesh figures (mesh.md, "Operator view and the bench"):
// shown by GET /v1/nodes, replaced by each heartbeat, cleared by one without,
// no event; a bad value is refused naming the field and changes nothing.
TEST_F(NodesApiTest, HeartbeatMeshFiguresShowInTheNodeList) {
  const auto enrolled = enrollNode("m1.example");
  const std::string node = enrolled.first;
  const std::string token = enrolled.second;
  const json::Json mesh = {{"peers", 2},
                           {"peers_up", 1},
                           {"latest_handshake_at", "2026-12-06T18:00:00.000000Z"},
                           {"rx_bytes", 1234},
                           {"tx_bytes", 5678}};
  auto beat = [&](const json::Json& body) {
    return callJson("POST", "/v1/nodes/" + node + "/heartbeat", body, token);
  };
  auto ok = beat({{"agent_version", "t"}, {"mesh", mesh}});
  ASSERT_EQ(ok.status, 200) << ok.raw;
  EXPECT_EQ(ok.header("X-Event-Seq"), "0");  // liveness data, no event
  auto one = call("GET", "/v1/nodes/" + node);
  ASSERT_EQ(one.status, 200) << one.raw;
  EXPECT_EQ(one.body["mesh"], mesh) << one.raw;
  auto list = call("GET", "/v1/nodes");
  ASSERT_EQ(list.status, 200) << list.raw;
  ASSERT_EQ(list.body["items"].size(), 1U);
  EXPECT_EQ(list.body["items"][0]["mesh"], mesh);

  const std::vector<std::pair<json::Json, std::string>> bad = {
      {"yes", "mesh"},
      {{{"peers", 1}}, "mesh.peers_up"},
      {{{"peers", -1}, {"peers_up", 0}}, "mesh.peers"},
      {{{"peers", 1}, {"peers_up", 2}, {"rx_bytes", 0}, {"tx_bytes", 0}}, "mesh.peers_up"},
      {{{"peers", 1}, {"peers_up", 1}, {"rx_bytes", "many"}, {"tx_bytes", 0}}, "mesh.rx_bytes"},
      {{{"peers", 1}, {"peers_up", 1}, {"rx_bytes", 0}, {"tx_bytes", 0}},
       "mesh.latest_handshake_at"},
      {{{"peers", 1},
        {"peers_up", 1},
        {"rx_bytes", 0},
        {"tx_bytes", 0},
        {"latest_handshake_at", "yesterday"}},
       "mesh.latest_handshake_at"},
      {{{"peers", 1},
        {"peers_up", 1},
        {"rx_bytes", 0},
        {"tx_bytes", 0},
        {"latest_handshake_at", nullptr},
        {"extra", 1}},
       "mesh"},
  };
  for (const auto& [value, field] : bad) {
    auto r = beat({{"mesh", value}});
    EXPECT_EQ(r.status, 400) << field << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << r.raw;
  }
  EXPECT_EQ(call("GET", "/v1/nodes/" + node).body["mesh"], mesh);  // unchanged

  // A heartbeat without figures (no mesh interface now): shown as null.
  ASSERT_EQ(beat(json::Json::object()).status, 200);
  EXPECT_TRUE(call("GET", "/v1/nodes/" + node).body["mesh"].is_null());
}

TEST_F(NodesApiTest, CapacityReasonsAndDrainingANode) {
  const Env e = deployedEnv("capacity", 1024);
  ASSERT_EQ(callJson("PUT", "/v1/envs/" + e.env + "/scale", {{"processes", {{"web", 2}}}}).status,
            200);
  auto list = call("GET", "/v1/envs/" + e.env + "/instances");
  EXPECT_EQ(list.body["summary"][0]["reason"], "waiting for capacity: the cluster has no nodes")
      << list.raw;
  auto [a, token_a] = enrollNode("a.example", 4, 2048);
  list = call("GET", "/v1/envs/" + e.env + "/instances");
  ASSERT_EQ(list.body["items"].size(), 2U) << list.raw;
  for (const auto& i : list.body["items"]) EXPECT_EQ(i["node_id"], a);

  auto [b, token_b] = enrollNode("b.example", 4, 2048);
  auto cordon = callJson("PUT", "/v1/nodes/" + a + "/scheduling", {{"cordoned", true}});
  ASSERT_EQ(cordon.status, 200) << cordon.raw;
  EXPECT_EQ(cordon.body, json::Json({{"node_id", a}, {"cordoned", true}, {"draining", false}}));
  auto drain = callJson("PUT", "/v1/nodes/" + a + "/scheduling", {{"draining", true}});
  ASSERT_EQ(drain.status, 200) << drain.raw;
  auto node = call("GET", "/v1/nodes/" + a);
  EXPECT_EQ(node.body["cordoned"], true);
  EXPECT_EQ(node.body["draining"], true);
  // Rolling: new instances on b first; the ones on a drain once those are healthy.
  list = call("GET", "/v1/envs/" + e.env + "/instances");
  int on_b = 0;
  for (const auto& i : list.body["items"]) on_b += i["node_id"] == b ? 1 : 0;
  EXPECT_GE(on_b, 1) << list.raw;
  auto pb = plan(b, token_b, 0, 0);
  for (const auto& spec : pb.body["instances"]) {
    report(b, token_b, spec["instance_id"], {{"generation", 1}, {"seq", 1}, {"phase", "healthy"}});
  }
  list = call("GET", "/v1/envs/" + e.env + "/instances");  // waits for the scheduler
  auto pa = plan(a, token_a, 0, 0);
  int draining = 0;
  for (const auto& spec : pa.body["instances"]) draining += spec["desired"] == "drain" ? 1 : 0;
  EXPECT_GE(draining, 1) << pa.raw;
  // Uncordon clears both flags.
  auto un =
      callJson("PUT", "/v1/nodes/" + a + "/scheduling", {{"cordoned", false}, {"draining", false}});
  EXPECT_EQ(un.body, json::Json({{"node_id", a}, {"cordoned", false}, {"draining", false}}));
  EXPECT_EQ(countEvents("node.scheduling_changed"), 3);
  EXPECT_EQ(callJson("PUT", "/v1/nodes/" + a + "/scheduling", json::Json::object()).status, 400);
}

// Enrollment replay on a clock the test moves: a retry is accepted only
// within seconds of the first use, and never re-issues a node identity later.
class EnrollmentReplayTest : public NodesApiTest {
 protected:
  const Clock* serverClock() override { return &fake_; }
  FakeClock fake_;
};

TEST_F(EnrollmentReplayTest, ReplayedEnrollmentIsUnauthenticated) {
  const std::string enrollment = makeEnrollmentToken();
  const json::Json body = enrollBody("n1.example");
  auto first = callJson("POST", "/v1/nodes/enroll", body, enrollment);
  ASSERT_EQ(first.status, 201) << first.raw;
  const std::string node = first.body["node_id"];
  const std::string token = first.body["token"];
  // Later than the retry window, with the credential never used: refused.
  fake_.advance(std::chrono::seconds(11));
  auto late = callJson("POST", "/v1/nodes/enroll", body, enrollment);
  EXPECT_EQ(late.status, 401) << late.raw;
  EXPECT_EQ(late.body["error"]["code"], "unauthenticated");
  EXPECT_FALSE(late.body.contains("token"));
  // The node keeps its one identity and its credential still works.
  auto hb = callJson("POST", "/v1/nodes/" + node + "/heartbeat", json::Json::object(), token);
  EXPECT_EQ(hb.status, 200) << hb.raw;
  EXPECT_EQ(countEvents("node.enrolled"), 1);
  EXPECT_EQ(countEvents("token.created"), 2);  // the admin's and the node's
}
// The same server on a clock the test moves, so that heartbeat timeouts and
// the unreachable grace period pass without waiting for them. The scheduler
// still runs on its own thread; its timer is short, and the test waits
// (bounded) for each reaction.
class NodeLossTest : public NodesApiTest {
 protected:
  const Clock* serverClock() override { return &fake_; }
  void configure(Config& cfg) override {
    cfg.scheduler_interval = std::chrono::milliseconds(50);
    cfg.heartbeat_timeout = std::chrono::seconds(30);
    cfg.unreachable_grace = std::chrono::seconds(60);
    cfg.node_down_after = std::chrono::seconds(600);
    cfg.restart_backoff_base = std::chrono::milliseconds(1000);
    cfg.max_deploy_failures = 3;
  }

  void heartbeat(const std::string& node, const std::string& token) {
    auto r = callJson("POST", "/v1/nodes/" + node + "/heartbeat", json::Json::object(), token);
    EXPECT_EQ(r.status, 200) << r.raw;
  }
  // Moves the clock by `total` in steps shorter than the heartbeat timeout;
  // after each step every node in `alive` heartbeats, the others stay quiet.
  void advance(std::chrono::seconds total,
               const std::vector<std::pair<std::string, std::string>>& alive) {
    while (total.count() > 0) {
      const auto step = std::min(total, std::chrono::seconds(20));
      fake_.advance(step);
      total -= step;
      for (const auto& [node, token] : alive) heartbeat(node, token);
    }
  }
  // Polls `pred` for up to 20 s of real time (the scheduler's reaction).
  template <class P>
  bool eventually(P pred) {
    for (int i = 0; i < 400; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return pred();
  }
  // The node's plan entries, by instance id.
  std::map<std::string, json::Json> planOf(const std::string& node, const std::string& token) {
    std::map<std::string, json::Json> out;
    auto p = plan(node, token, 0, 0);
    EXPECT_EQ(p.status, 200) << p.raw;
    for (const auto& spec : p.body.value("instances", json::Json::array())) {
      out[spec["instance_id"].get<std::string>()] = spec;
    }
    return out;
  }
  void reportHealthy(const std::string& node, const std::string& token) {
    for (const auto& [inst, spec] : planOf(node, token)) {
      if (spec["desired"] != "run") continue;
      auto r = report(node, token, inst,
                      {{"generation", spec["generation"]}, {"seq", 1}, {"phase", "healthy"}});
      EXPECT_EQ(r.status, 200) << r.raw;
    }
  }
  std::string deployStatus(const std::string& deploy) {
    return call("GET", "/v1/deploys/" + deploy).body.value("status", "");
  }
  // Node a runs both instances of a new env's web, healthy and deployed;
  // then an empty node b joins, and running instances are not moved to it.
  struct TwoNodes {
    std::string a, token_a, b, token_b;
    Env env;
    std::map<std::string, json::Json> on_a;
  };
  void webOnAThenEmptyB(const std::string& org, TwoNodes& n) {
    std::tie(n.a, n.token_a) = enrollNode("a.example", 4, 4096);
    n.env = deployedEnv(org);
    ASSERT_EQ(
        callJson("PUT", "/v1/envs/" + n.env.env + "/scale", {{"processes", {{"web", 2}}}}).status,
        200);
    n.on_a = planOf(n.a, n.token_a);
    ASSERT_EQ(n.on_a.size(), 2U);
    reportHealthy(n.a, n.token_a);
    ASSERT_TRUE(eventually([&] { return deployStatus(n.env.deploy) == "succeeded"; }));
    std::tie(n.b, n.token_b) = enrollNode("b.example", 4, 4096);
    EXPECT_EQ(planOf(n.b, n.token_b).size(), 0U) << "running instances are not moved";
  }

  FakeClock fake_;
};

// Node loss (docs/specs/scheduler/reconciler.md, "Node loss"): a node with instances goes quiet,
// becomes unreachable, its instances are replaced on another node once the grace period has passed,
// and when it comes back its plan tells it to stop the stale copies.
TEST_F(NodeLossTest, UnreachableNodeIsReplacedAfterGraceAndStopsStaleInstancesOnReturn) {
  TwoNodes two;
  ASSERT_NO_FATAL_FAILURE(webOnAThenEmptyB("lossco", two));
  const std::string& a = two.a;  // lambdas capture these (not bindings)
  const std::string& token_a = two.token_a;
  const std::string& b = two.b;
  const std::string& token_b = two.token_b;
  const Env& e = two.env;
  const auto& on_a = two.on_a;

  // a stops heartbeating; b goes on. Past the timeout a is unreachable, but
  // within the grace period its instances stay where they are.
  advance(std::chrono::seconds(31), {{b, token_b}});
  ASSERT_TRUE(
      eventually([&] { return call("GET", "/v1/nodes/" + a).body["state"] == "unreachable"; }));
  EXPECT_EQ(call("GET", "/v1/nodes/" + b).body["state"], "active");
  auto list = call("GET", "/v1/envs/" + e.env + "/instances");
  ASSERT_EQ(list.body["items"].size(), 2U) << list.raw;
  EXPECT_NE(list.body["summary"][0]["reason"].get<std::string>().find("unreachable"),
            std::string::npos)
      << list.raw;
  EXPECT_EQ(planOf(b, token_b).size(), 0U);
  EXPECT_EQ(countEvents("instance.lost"), 0);

  // Past the grace period (60 s after it became unreachable): replaced on b.
  advance(std::chrono::seconds(61), {{b, token_b}});
  ASSERT_TRUE(eventually([&] { return planOf(b, token_b).size() == 2U; }));
  EXPECT_EQ(countEvents("instance.lost"), 2);
  reportHealthy(b, token_b);
  ASSERT_TRUE(eventually([&] {
    auto l = call("GET", "/v1/envs/" + e.env + "/instances");
    return l.body["summary"][0]["current"] == 2;
  }));
  list = call("GET", "/v1/envs/" + e.env + "/instances");
  int lost_on_a = 0;
  for (const auto& i : list.body["items"]) {
    if (on_a.contains(i["id"].get<std::string>())) {
      ++lost_on_a;
      EXPECT_EQ(i["node_id"], a);
    } else {
      EXPECT_EQ(i["node_id"], b) << list.raw;
      EXPECT_EQ(i["current_state"], "healthy") << list.raw;
    }
  }
  EXPECT_EQ(lost_on_a, 2) << list.raw;
  EXPECT_EQ(countEvents("instance.stop_requested"), 0) << "a cannot be told while unreachable";

  // a returns: one heartbeat, and its plan asks it to stop the stale copies.
  heartbeat(a, token_a);
  EXPECT_EQ(call("GET", "/v1/nodes/" + a).body["state"], "active");
  ASSERT_TRUE(eventually([&] {
    auto p = planOf(a, token_a);
    return p.size() == 2U && std::all_of(p.begin(), p.end(), [](const auto& kv) {
             return kv.second["desired"] == "stop";
           });
  })) << plan(a, token_a, 0, 0).raw;
  for (const auto& [inst, spec] : planOf(a, token_a)) EXPECT_TRUE(on_a.contains(inst)) << inst;
  EXPECT_EQ(countEvents("instance.stop_requested"), 2);
  list = call("GET", "/v1/envs/" + e.env + "/instances");
  for (const auto& i : list.body["items"]) {
    if (i["node_id"] != a) continue;
    EXPECT_EQ(i["desired_state"], "stop");
    EXPECT_NE(i["reason"].get<std::string>().find("was replaced while it was unreachable"),
              std::string::npos)
        << list.raw;
  }
  // b's replacements keep serving; nothing else moves.
  EXPECT_EQ(planOf(b, token_b).size(), 2U);
  EXPECT_EQ(call("GET", "/v1/nodes/" + b).body["state"], "active");
}

// A deploy whose every new instance exits with 1, on node n1, over a first
// release that serves one `web` instance there.
struct CrashingDeploy {
  std::string node, token, deploy, bad;
  std::map<std::string, json::Json> old_instances;
};

class DeployFailureTest : public NodeLossTest {
 protected:
  // Deploys a fresh env's first release (`web` x1, healthy), then a release
  // of `manifest`, and plays the agent (each generation exits with 1) until
  // that deploy fails.
  void crashUntilFailed(const std::string& org, const json::Json& manifest, CrashingDeploy& c,
                        Env& e) {
    std::tie(c.node, c.token) = enrollNode("n1.example", 4, 4096);
    e = deployedEnv(org);
    ASSERT_EQ(callJson("PUT", "/v1/envs/" + e.env + "/scale", {{"processes", {{"web", 1}}}}).status,
              200);
    reportHealthy(c.node, c.token);
    ASSERT_TRUE(eventually([&] { return deployStatus(e.deploy) == "succeeded"; }));
    c.old_instances = planOf(c.node, c.token);
    ASSERT_EQ(c.old_instances.size(), 1U);

    c.bad = makeReleaseWith(e.app, manifest);
    auto dep = callJson("POST", "/v1/envs/" + e.env + "/deploys", {{"release_id", c.bad}});
    ASSERT_EQ(dep.status, 201) << dep.raw;
    c.deploy = dep.body["id"];
    std::set<std::string> reported;
    auto fresh = [&] {
      for (const auto& [inst, spec] : planOf(c.node, c.token)) {
        if (spec["release_id"] != c.bad || spec["desired"] != "run") continue;
        if (!reported.contains(inst + "/" + std::to_string(spec["generation"].get<int>()))) {
          return true;
        }
      }
      return deployStatus(c.deploy) == "failed";
    };
    for (int round = 0; round < 12 && deployStatus(c.deploy) != "failed"; ++round) {
      for (const auto& [inst, spec] : planOf(c.node, c.token)) {
        if (spec["release_id"] != c.bad || spec["desired"] != "run") continue;
        const std::string key = inst + "/" + std::to_string(spec["generation"].get<int>());
        if (!reported.insert(key).second) continue;
        auto r = report(c.node, c.token, inst,
                        {{"generation", spec["generation"]},
                         {"seq", 1},
                         {"phase", "exited"},
                         {"exit_code", 1}});
        EXPECT_EQ(r.status, 200) << r.raw;
      }
      // Past the restart backoff (1 s, doubling), with the node alive.
      advance(std::chrono::seconds(20), {{c.node, c.token}});
      (void)eventually(fresh);
    }
    ASSERT_TRUE(eventually([&] { return deployStatus(c.deploy) == "failed"; }));
  }

  // The instances of the env, by id.
  std::map<std::string, json::Json> instancesOf(const Env& e) {
    std::map<std::string, json::Json> out;
    const auto listed = call("GET", "/v1/envs/" + e.env + "/instances");
    for (const auto& i : listed.body["items"]) {
      out[i["id"].get<std::string>()] = i;
    }
    return out;
  }
};

// Issue 16, auto-rollback: a deploy whose new instances keep crashing fails
// once the failures pass max_deploy_failures; the scheduler then creates a
// deploy of the last successful release, which drains the failed instance
// and succeeds, while the old instance serves throughout.
TEST_F(DeployFailureTest, AFailedDeployIsAutoRolledBackToTheLastSuccessfulRelease) {
  CrashingDeploy c;
  Env e;
  ASSERT_NO_FATAL_FAILURE(crashUntilFailed("crashco", webManifest(1, 256), c, e));
  const std::string reason = call("GET", "/v1/deploys/" + c.deploy).body["reason"];
  EXPECT_NE(reason.find("new instances failed 4 times (at most 3 allowed)"), std::string::npos)
      << reason;
  EXPECT_NE(reason.find(e.release + " keeps serving; auto-rollback: dep_"), std::string::npos)
      << reason;

  // The rollback is the env's current deploy, created by the scheduler.
  const std::string rb = call("GET", "/v1/envs/" + e.env).body["current_deploy_id"];
  ASSERT_NE(rb, c.deploy);
  EXPECT_NE(reason.find(rb + " redeploys it"), std::string::npos) << reason;
  // The failed instance is drained (at once: it was not serving); the
  // rollback succeeds once it has stopped.
  ASSERT_TRUE(eventually([&] {
    for (const auto& [inst, spec] : planOf(c.node, c.token)) {
      if (spec["desired"] != "drain") continue;
      EXPECT_EQ(report(c.node, c.token, inst,
                       {{"generation", spec["generation"]}, {"seq", 99}, {"phase", "stopped"}})
                    .status,
                200);
    }
    return deployStatus(rb) == "succeeded";
  }));
  auto r = call("GET", "/v1/deploys/" + rb);
  EXPECT_EQ(r.body["rollback_of"], c.deploy) << r.raw;
  EXPECT_EQ(r.body["release_id"], e.release) << r.raw;
  EXPECT_EQ(r.body["reason"],
            "auto-rollback of " + c.deploy + ": 1 healthy instance of " + e.release + " serving")
      << r.raw;
  EXPECT_EQ(call("GET", "/v1/deploys/" + c.deploy).body["rollback_of"], nullptr);
  EXPECT_EQ(call("GET", "/v1/envs/" + e.env).body["current_release_id"], e.release);
  auto conn = connect();
  auto created = conn.exec(
      "SELECT actor, payload->>'reason' FROM events WHERE event_type = "
      "'deploy.rollback_created' AND "
      "aggregate_id = $1",
      {rb});
  ASSERT_TRUE(created.has_value());
  ASSERT_EQ(created->rows(), 1);
  EXPECT_EQ(created->text(0, 0), "system:scheduler");
  EXPECT_EQ(
      std::string(created->text(0, 1))
          .rfind("auto-rollback after " + c.deploy + " failed: new instances failed 4 times", 0),
      0U)
      << created->text(0, 1);

  // The old instance still serves; the failed one was drained.
  for (const auto& [id, i] : instancesOf(e)) {
    if (c.old_instances.contains(id)) {
      EXPECT_EQ(i["desired_state"], "run") << i.dump();
      EXPECT_EQ(i["current_state"], "healthy") << i.dump();
    } else {
      EXPECT_EQ(i["desired_state"], "drain") << i.dump();
      EXPECT_NE(i["reason"].get<std::string>().find("deploy " + c.deploy +
                                                    " failed; rolling back to " + e.release),
                std::string::npos)
          << i.dump();
    }
  }
  // Every event fits its schema, and the views (rollback_of too) rebuild.
  auto events = EventStore::readAfter(conn, 0, 10'000);
  ASSERT_TRUE(events.has_value());
  for (const auto& ev : *events) {
    auto env = json::parse(EventStore::envelopeJson(ev));
    auto err = testsupport::validateAgainstSchemaFile("events/" + ev.event_type + ".json",
                                                      (*env)["payload"]);
    EXPECT_FALSE(err.has_value()) << ev.event_type << ": " << err.value_or("");
  }
  const std::string before = dumpViews(conn);
  ASSERT_TRUE(rebuildViews(conn).has_value());
  EXPECT_EQ(dumpViews(conn), before);
}

// With [deploy] auto_rollback = false, the failed instance stays (and keeps
// restarting) for inspection, the old one keeps serving, nothing else moves,
// and the reasons say what to run.
TEST_F(DeployFailureTest, WithoutAutoRollbackTheFailedInstanceStaysForInspection) {
  json::Json manifest = webManifest(1, 256);
  manifest["deploy"]["auto_rollback"] = false;
  CrashingDeploy c;
  Env e;
  ASSERT_NO_FATAL_FAILURE(crashUntilFailed("keepco", manifest, c, e));
  const std::string reason = call("GET", "/v1/deploys/" + c.deploy).body["reason"];
  EXPECT_NE(reason.find(e.release +
                        " keeps serving; auto_rollback is off; run `vt rollback` or deploy a fix"),
            std::string::npos)
      << reason;
  EXPECT_EQ(call("GET", "/v1/envs/" + e.env).body["current_deploy_id"], c.deploy);
  EXPECT_EQ(countEvents("deploy.created"), 2);
  EXPECT_EQ(countEvents("deploy.rollback_created"), 0);
  // Past another backoff the failed instance is restarted again, not drained.
  const int64_t restarts = countEvents("instance.restart_scheduled");
  for (const auto& [inst, spec] : planOf(c.node, c.token)) {
    if (spec["release_id"] != c.bad) continue;
    EXPECT_EQ(spec["desired"], "run");
    (void)report(
        c.node, c.token, inst,
        {{"generation", spec["generation"]}, {"seq", 1}, {"phase", "exited"}, {"exit_code", 1}});
  }
  advance(std::chrono::seconds(40), {{c.node, c.token}});
  ASSERT_TRUE(eventually([&] { return countEvents("instance.restart_scheduled") > restarts; }));
  EXPECT_EQ(countEvents("instance.drain_requested"), 0);
  auto list = call("GET", "/v1/envs/" + e.env + "/instances");
  ASSERT_EQ(list.body["items"].size(), 2U) << list.raw;
  for (const auto& i : list.body["items"]) {
    EXPECT_EQ(i["desired_state"], "run") << i.dump();
    if (c.old_instances.contains(i["id"].get<std::string>())) {
      EXPECT_EQ(i["current_state"], "healthy") << i.dump();
    }
  }
  const std::string why = list.body["summary"][0]["reason"];
  EXPECT_NE(why.find("deploy " + c.deploy + " failed and auto_rollback is off: 1 instance of " +
                     c.bad + " kept for inspection"),
            std::string::npos)
      << why;
}

// `vt nodes rm`: the node's credential is refused at once (heartbeat, plan
// poll, a waiting long-poll, an enrollment retry), it leaves the node list,
// and its instances are replaced on another node like those of a lost node.
TEST_F(NodeLossTest, RemovedNodeIsRefusedAtOnceAndItsInstancesAreReplaced) {
  TwoNodes two;
  ASSERT_NO_FATAL_FAILURE(webOnAThenEmptyB("rmco", two));
  const std::string& a = two.a;  // lambdas capture these (not bindings)
  const std::string& token_a = two.token_a;
  const std::string& b = two.b;
  const std::string& token_b = two.token_b;
  const Env& e = two.env;

  // a long-poll of a's plan, waiting when a is removed.
  const int64_t v = plan(a, token_a, 0, 0).body.value("version", int64_t{0});
  auto waiting = std::async(std::launch::async, [&] { return plan(a, token_a, v, 30); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));

  EXPECT_EQ(call("DELETE", "/v1/nodes/" + a, "", token_b).status, 403);
  auto rm = call("DELETE", "/v1/nodes/" + a);
  ASSERT_EQ(rm.status, 200) << rm.raw;
  EXPECT_EQ(rm.body["revoked_tokens"], 1);
  EXPECT_EQ(rm.body["hostname"], "a.example");
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(callJson("POST", "/v1/nodes/" + a + "/heartbeat", json::Json::object(), token_a).status,
            401);
  EXPECT_EQ(plan(a, token_a, 0, 0).status, 401);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(1));
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(waiting.get().status, 401);

  // Gone from the list; removing again changes nothing.
  EXPECT_EQ(call("GET", "/v1/nodes/" + a).status, 404);
  const auto nodes = call("GET", "/v1/nodes");
  for (const auto& n : nodes.body["items"]) EXPECT_NE(n["id"], a);
  auto again = call("DELETE", "/v1/nodes/" + a);
  EXPECT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.body["revoked_tokens"], 0);
  EXPECT_EQ(countEvents("node.removed"), 1);
  EXPECT_EQ(call("DELETE", "/v1/nodes/node_01jdq3v7k2m9x4c8r6t0w5y1zb").status, 404);

  // Its instances are replaced on b, without waiting for a grace period.
  ASSERT_TRUE(eventually([&] { return planOf(b, token_b).size() == 2U; }));
  EXPECT_EQ(countEvents("instance.lost"), 2);
  reportHealthy(b, token_b);
  ASSERT_TRUE(eventually([&] {
    auto l = call("GET", "/v1/envs/" + e.env + "/instances");
    return l.body["summary"][0]["current"] == 2;
  }));
}

}  // namespace
}  // namespace plfm::cp
