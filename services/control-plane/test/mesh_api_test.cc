// The control plane's side of the mesh (docs/specs/networking/mesh.md,
// "Contracts for increments 1 to 3") on a real server and PostgreSQL:
// enrollment's mesh facts, the NodePlan's mesh section and the long-poll
// waking on a join or a leave, edge-only nodes, and org-tagged addresses.
#include <gtest/gtest.h>

#include <future>
#include <set>
#include <thread>

#include "mesh_api_support.h"
#include "plfm/core/clock.h"
#include "plfm/reconcile/ipv6.h"

namespace plfm::cp {
namespace {

using testsupport::MeshApiTest;
using testsupport::Reply;

TEST_F(MeshApiTest, TwoNodesListEachOtherAsPeers) {
  const Node n1 = enroll("n1.example", 'a', "2001:db8::1");
  const Node n2 = enroll("n2.example", 'b', "192.0.2.2", {{"mesh_port", 51999}});
  auto p1 = plan(n1, 0, 0);
  ASSERT_EQ(p1.status, 200) << p1.raw;
  EXPECT_EQ(testsupport::validateAgainstSchemaFile("node-plan.json", p1.body), std::nullopt);
  const json::Json& mesh = p1.body["mesh"];
  EXPECT_EQ(mesh["cluster_prefix"], "fd7a:5c00::/48");
  EXPECT_EQ(mesh["self"], json::Json({{"node_number", 1},
                                      {"prefix", "fd7a:5c00:0:1::/64"},
                                      {"address", "fd7a:5c00:0:1::1"},
                                      {"listen_port", 51820},
                                      {"role", "worker"},
                                      {"public_key", MeshApiTest::keyOf('a')},
                                      {"next_public_key", nullptr},
                                      {"next_listen_port", nullptr},
                                      {"rotate", false}}));
  ASSERT_EQ(mesh["peers"].size(), 1U) << p1.raw;
  EXPECT_EQ(mesh["peers"][0], json::Json({{"node_id", n2.id},
                                          {"node_number", 2},
                                          {"public_key", MeshApiTest::keyOf('b')},
                                          {"endpoint", "192.0.2.2:51999"},
                                          {"allowed_ips", {"fd7a:5c00:0:2::/64"}},
                                          {"role", "worker"},
                                          {"next", nullptr}}));
  EXPECT_GE(p1.body["version"].get<int64_t>(), mesh["version"].get<int64_t>());

  auto p2 = plan(n2, 0, 0);
  ASSERT_EQ(p2.status, 200) << p2.raw;
  EXPECT_EQ(p2.body["mesh"]["self"]["listen_port"], 51999);
  ASSERT_EQ(p2.body["mesh"]["peers"].size(), 1U) << p2.raw;
  EXPECT_EQ(p2.body["mesh"]["peers"][0]["endpoint"], "[2001:db8::1]:51820");
  EXPECT_EQ(p2.body["mesh"]["version"], mesh["version"]);

  auto got = call("GET", "/v1/nodes/" + n2.id);
  EXPECT_EQ(got.body["mesh_port"], 51999);
  EXPECT_EQ(got.body["role"], "worker");
}

TEST_F(MeshApiTest, AJoinWakesEveryWaitingPlanWithinTwoSeconds) {
  const Node n1 = enroll("n1.example", 'a', "2001:db8::1");
  const Node n2 = enroll("n2.example", 'b', "2001:db8::2");
  Node n3;
  Reply woke = wokenBy(n1, [&] { n3 = enroll("n3.example", 'c', "node-c.example"); });
  ASSERT_EQ(woke.body["mesh"]["peers"].size(), 2U) << woke.raw;
  EXPECT_EQ(woke.body["mesh"]["peers"][1]["node_id"], n3.id);
  EXPECT_EQ(woke.body["mesh"]["peers"][1]["endpoint"], "node-c.example:51820");
  EXPECT_EQ(peersOf(n2), (std::vector<std::string>{n1.id, n3.id}));
}

TEST_F(MeshApiTest, RemovedAndDownNodesLeaveThePeersUnreachableOnesStay) {
  const Node n1 = enroll("n1.example", 'a', "2001:db8::1");
  const Node n2 = enroll("n2.example", 'b', "2001:db8::2");
  const Node n3 = enroll("n3.example", 'c', "2001:db8::3");

  // n3 goes quiet: unreachable, and still a peer (it may come back).
  for (int i = 0; i < 2; ++i) {
    fake_.advance(std::chrono::seconds(20));
    heartbeat(n1);
    heartbeat(n2);
  }
  ASSERT_TRUE(eventually([&] { return state(n3) == "unreachable"; }));
  EXPECT_EQ(peersOf(n1), (std::vector<std::string>{n2.id, n3.id}));

  // `vt nodes rm n2`: gone from n1's peers, and n1's waiting poll wakes.
  Reply woke = wokenBy(n1, [&] { EXPECT_EQ(call("DELETE", "/v1/nodes/" + n2.id).status, 200); });
  ASSERT_EQ(woke.body["mesh"]["peers"].size(), 1U) << woke.raw;
  EXPECT_EQ(woke.body["mesh"]["peers"][0]["node_id"], n3.id);

  // n3 down (unreachable past down_after): it leaves too.
  woke = wokenBy(n1, [&] {
    for (int i = 0; i < 31; ++i) {
      fake_.advance(std::chrono::seconds(20));
      heartbeat(n1);
    }
  });
  ASSERT_TRUE(eventually([&] { return state(n3) == "down"; }));
  EXPECT_EQ(peersOf(n1), std::vector<std::string>{});
}

TEST_F(MeshApiTest, EdgeNodesAreMeshMembersWithoutInstances) {
  const Node edge = enroll("edge.example", 'e', "2001:db8::e", {{"role", "edge"}});
  const std::string env = deploy("edgeco", 2);
  ASSERT_TRUE(eventually([&] {
    auto l = call("GET", "/v1/envs/" + env + "/instances");
    const std::string reason = l.body["summary"][0].value("reason", "");
    return reason.find("1 is edge-only") != std::string::npos;
  })) << call("GET", "/v1/envs/" + env + "/instances").raw;
  EXPECT_EQ(plan(edge, 0, 0).body["instances"].size(), 0U);

  const Node worker = enroll("w.example", 'w', "2001:db8::7");
  ASSERT_TRUE(eventually([&] { return plan(worker, 0, 0).body["instances"].size() == 2U; }));
  EXPECT_EQ(plan(edge, 0, 0).body["instances"].size(), 0U);
  auto p = plan(worker, 0, 0);
  ASSERT_EQ(p.body["mesh"]["peers"].size(), 1U) << p.raw;
  EXPECT_EQ(p.body["mesh"]["peers"][0]["role"], "edge");
  EXPECT_EQ(plan(edge, 0, 0).body["mesh"]["self"]["role"], "edge");
  EXPECT_EQ(call("GET", "/v1/nodes/" + edge.id).body["role"], "edge");
}

TEST_F(MeshApiTest, OrgTagsAreUniqueAndInstanceAddressesCarryThem) {
  const Node n = enroll("n1.example", 'a', "2001:db8::1");
  const std::string env_a = deploy("tagsa", 2);
  deploy("tagsb", 2);
  ASSERT_TRUE(eventually([&] { return plan(n, 0, 0).body["instances"].size() == 4U; }));

  auto conn = connect();
  auto tags = conn.exec("SELECT org_id, net_tag FROM org_net_tags ORDER BY net_tag");
  ASSERT_TRUE(tags.has_value());
  std::map<std::string, int64_t> tag_of;
  for (int i = 0; i < tags->rows(); ++i) {
    const int64_t t = tags->int64(i, 1).value_or(0);
    EXPECT_GE(t, 1);
    EXPECT_LE(t, 4294967294);
    tag_of[std::string(tags->text(i, 0))] = t;
  }
  std::set<int64_t> distinct;
  for (const auto& [org, t] : tag_of) distinct.insert(t);
  EXPECT_EQ(distinct.size(), tag_of.size());

  std::set<std::string> addresses;
  const Reply placed = plan(n, 0, 0);
  for (const auto& spec : placed.body["instances"]) {
    const std::string address = spec["network"]["address"];
    addresses.insert(address);
    auto a = reconcile::parseIpv6(address);
    ASSERT_TRUE(a.has_value()) << address;
    // address & ::ffff:ffff:0:0 is the org's tag; numbers start at 2.
    EXPECT_EQ(static_cast<int64_t>(a->lo >> 32), tag_of.at(spec["org_id"])) << address;
    EXPECT_GE(a->lo & 0xffffffffULL, 2U) << address;
    EXPECT_EQ(a->hi, reconcile::parseIpv6("fd7a:5c00:0:1::")->hi) << address;
  }
  EXPECT_EQ(addresses.size(), 4U);

  // An org gets its tag when it is created, env or not (the scheduler only
  // tags orgs that have envs).
  const std::string bare = makeOrg("bare");
  auto bare_tag = conn.exec("SELECT net_tag FROM org_net_tags WHERE org_id = $1", {bare});
  ASSERT_TRUE(bare_tag.has_value());
  EXPECT_EQ(bare_tag->rows(), 1);

  // An org without a tag (none of the paths should leave one) gets a new
  // one from the scheduler; a tag is never reused.
  const std::string org_a = call("GET", "/v1/envs/" + env_a).body.value("org_id", "");
  ASSERT_FALSE(org_a.empty());
  const int64_t old_tag = tag_of.at(org_a);
  ASSERT_TRUE(conn.exec("DELETE FROM org_net_tags WHERE org_id = $1", {org_a}).has_value());
  ASSERT_EQ(callJson("PUT", "/v1/envs/" + env_a + "/scale", {{"processes", {{"web", 3}}}}).status,
            200);
  ASSERT_TRUE(eventually([&] {
    auto rs = conn.exec("SELECT net_tag FROM org_net_tags WHERE org_id = $1", {org_a});
    return rs && rs->rows() == 1 && rs->int64(0, 0).value_or(0) > old_tag;
  }));
}

TEST_F(MeshApiTest, EnrollmentMeshFieldsAreCheckedFieldByField) {
  const std::string enrollment = makeEnrollmentToken();
  const json::Json good = enrollBody("n1", 'a', "2001:db8::1");
  const std::vector<std::pair<std::string, json::Json>> bad = {
      {"mesh_port", 0},
      {"mesh_port", 65536},
      {"mesh_port", "51820"},
      {"role", "boss"},
      {"role", 1},
      {"underlay_address", "[2001:db8::1]"},
      {"underlay_address", "a=b"},
      {"underlay_address", "host name"},
      {"underlay_address", "-leading.example"},
      {"underlay_address", "2001:db8::1%eth0"},
      // Not canonical base64: the same 32 bytes as keyOf('a') (docs/security.md).
      {"wireguard_public_key", std::string(43, 'a') + "="},
      {"wireguard_public_key", std::string(43, 'k') + "=="},
  };
  for (const auto& [field, value] : bad) {
    json::Json body = good;
    body[field] = value;
    auto r = callJson("POST", "/v1/nodes/enroll", body, enrollment);
    EXPECT_EQ(r.status, 400) << field << "=" << json::dump(value) << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << r.raw;
  }
  EXPECT_EQ(countEvents("node.enrolled"), 0);
}

// The services feed (mesh.md, "Internal names"): a node sees the services of
// the orgs it hosts only, each process with its healthy instances'
// addresses; the version moves when an instance's serving state changes,
// and a waiting poll wakes.
TEST_F(MeshApiTest, TheServicesFeedListsHostedOrgsHealthyAddressesAndWakesOnHealth) {
  const Node n1 = enroll("n1.example", 'a', "2001:db8::1");
  const std::string env_a = deploy("dnsa", 2);
  ASSERT_TRUE(eventually([&] { return plan(n1, 0, 0).body["instances"].size() == 2U; }));
  ASSERT_EQ(callJson("PUT", "/v1/nodes/" + n1.id + "/scheduling", {{"cordoned", true}}).status,
            200);
  const Node n2 = enroll("n2.example", 'b', "2001:db8::2");
  deploy("dnsb", 1);
  ASSERT_TRUE(eventually([&] { return plan(n2, 0, 0).body["instances"].size() == 1U; }));

  auto services = [this](const Node& n, int64_t after, int wait) {
    return call("GET",
                "/v1/nodes/" + n.id + "/services?after=" + std::to_string(after) +
                    "&wait=" + std::to_string(wait),
                "", n.token);
  };
  auto report = [this](const Node& n, const json::Json& spec, int seq, const std::string& phase) {
    auto r = callJson(
        "POST",
        "/v1/nodes/" + n.id + "/instances/" + spec["instance_id"].get<std::string>() + "/status",
        {{"generation", spec["generation"]}, {"seq", seq}, {"phase", phase}}, n.token);
    EXPECT_EQ(r.status, 200) << r.raw;
  };
  const json::Json specs = plan(n1, 0, 0).body["instances"];
  const std::string org_a = call("GET", "/v1/envs/" + env_a).body.value("org_id", "");
  auto conn = connect();
  auto tag = conn.exec("SELECT net_tag FROM org_net_tags WHERE org_id = $1", {org_a});
  ASSERT_TRUE(tag.has_value());
  const int64_t tag_a = tag->int64(0, 0).value_or(0);

  // Nothing healthy yet: the process is listed without addresses.
  Reply s1 = services(n1, 0, 0);
  ASSERT_EQ(s1.status, 200) << s1.raw;
  const int64_t v0 = s1.body.value("version", int64_t{-1});
  EXPECT_EQ(s1.body["services"],
            json::Json::parse(R"([{"org_tag":)" + std::to_string(tag_a) +
                              R"(,"app":"web","env":"prod","process":"web","addresses":[]}])"));

  // A healthy report wakes a waiting poll and lists the address.
  auto waiting = std::async(std::launch::async, [&] { return services(n1, v0, 30); });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  report(n1, specs[0], 1, "healthy");
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(2)), std::future_status::ready);
  Reply woke = waiting.get();
  ASSERT_EQ(woke.status, 200) << woke.raw;
  const int64_t v1 = woke.body.value("version", int64_t{0});
  EXPECT_GT(v1, v0);
  ASSERT_EQ(woke.body["services"].size(), 1U) << woke.raw;
  EXPECT_EQ(woke.body["services"][0]["addresses"],
            json::Json::array({specs[0]["network"]["address"]}));

  // A report that changes no serving state leaves the version alone.
  report(n1, specs[1], 1, "running");
  EXPECT_EQ(services(n1, 0, 0).body.value("version", int64_t{0}), v1);

  // n2 hosts only org B: it never sees org A's names.
  Reply s2 = services(n2, 0, 0);
  ASSERT_EQ(s2.status, 200) << s2.raw;
  ASSERT_EQ(s2.body["services"].size(), 1U) << s2.raw;
  EXPECT_NE(s2.body["services"][0]["org_tag"], tag_a);
  EXPECT_EQ(s2.body["services"][0]["addresses"], json::Json::array());

  // The healthy instance turns unhealthy: the version moves, the address goes.
  report(n1, specs[0], 2, "unhealthy");
  Reply s3 = services(n1, v1, 5);
  EXPECT_GT(s3.body.value("version", int64_t{0}), v1);
  EXPECT_EQ(s3.body["services"][0]["addresses"], json::Json::array());

  // Another node's feed looks missing; a user cannot read any.
  EXPECT_EQ(call("GET", "/v1/nodes/" + n1.id + "/services?wait=0", "", n2.token).status, 404);
  EXPECT_EQ(call("GET", "/v1/nodes/" + n1.id + "/services?wait=0").status, 403);
}

}  // namespace
}  // namespace plfm::cp
