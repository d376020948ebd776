// The plan's mesh section parsed at the edge (netdev/mesh_plan.h): the
// contract's example, hostile values refused with the field named, bad
// peers skipped while the rest is kept.
#include "netdev/mesh_plan.h"

#include <gtest/gtest.h>

#include "support/mesh_sections.h"

namespace plfm::netdev {
namespace {
using nlohmann::json;

std::string keyText(uint8_t fill) { return testing::meshTestKey(fill); }

json peer(uint32_t number, uint8_t key, const std::string& endpoint, std::string prefix) {
  json p = testing::meshPeer(number, keyText(key), endpoint);
  p["allowed_ips"] = json::array({std::move(prefix)});
  return p;
}

json section() {
  return testing::meshSection(
      1187, 1,
      json::array({peer(3, 3, "node-c.example:51820", "fd7a:5c00:0:3::/64"),
                   peer(2, 2, "[FD00:5C:0::B]:51820", "fd7a:5c00:0:2::/64")}));
}

TEST(MeshPlan, ParsesTheContractShape) {
  auto p = parseMeshPlan(section());
  ASSERT_TRUE(p) << p.error().toString();
  EXPECT_TRUE(p->skipped.empty());
  const MeshPlan& m = p->plan;
  EXPECT_EQ(m.version, 1187);
  EXPECT_EQ(m.cluster_prefix.str(), "fd7a:5c00::/48");
  EXPECT_EQ(m.self.node_number, 1U);
  EXPECT_EQ(ipv6Text(m.self.address), "fd7a:5c00:0:1::1");
  EXPECT_EQ(m.self.listen_port, 51820);
  ASSERT_EQ(m.peers.size(), 2U);
  EXPECT_EQ(m.peers[0].node_number, 2U);                       // ordered by node number
  EXPECT_EQ(m.peers[0].endpoint.str(), "[fd00:5c::b]:51820");  // canonical
  EXPECT_EQ(m.peers[1].endpoint.str(), "node-c.example:51820");
  EXPECT_EQ(m.peers[1].public_key.base64(), keyText(3));
  // toJson round-trips through the parser (STATE/mesh/plan.json).
  auto again = parseMeshPlan(m.toJson());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->plan.toJson(), m.toJson());
}

TEST(MeshPlan, PeersMayBeEmptyAndRoleIsOptional) {
  json s = section();
  s["peers"] = json::array();
  s["self"].erase("role");
  auto p = parseMeshPlan(s);
  ASSERT_TRUE(p) << p.error().toString();
  EXPECT_TRUE(p->plan.peers.empty());
  EXPECT_EQ(p->plan.self.role, "worker");
}

TEST(MeshPlan, ABadSectionNamesTheField) {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& s) { s = json::array(); }, "mesh"},
      {[](json& s) { s.erase("version"); }, "mesh.version"},
      {[](json& s) { s["version"] = -1; }, "mesh.version"},
      {[](json& s) { s["version"] = "1"; }, "mesh.version"},
      {[](json& s) { s["cluster_prefix"] = "fd7a:5c00::/64"; }, "mesh.cluster_prefix"},
      {[](json& s) { s["cluster_prefix"] = "fd7a:5c00::1/48"; }, "mesh.cluster_prefix"},
      {[](json& s) { s["self"]["node_number"] = 0; }, "mesh.self.node_number"},
      {[](json& s) { s["self"]["node_number"] = 65535; }, "mesh.self.node_number"},
      {[](json& s) { s["self"]["prefix"] = "fd7a:5c01:0:1::/64"; }, "mesh.self.prefix"},
      {[](json& s) { s["self"]["prefix"] = "fd7a:5c00:0:1::/80"; }, "mesh.self.prefix"},
      {[](json& s) { s["self"]["address"] = "fd7a:5c00:0:2::1"; }, "mesh.self.address"},
      {[](json& s) { s["self"]["address"] = "fd7a:5c00:0:1::1\n"; }, "mesh.self.address"},
      {[](json& s) { s["self"]["listen_port"] = 0; }, "mesh.self.listen_port"},
      {[](json& s) { s["self"]["listen_port"] = 70000; }, "mesh.self.listen_port"},
      {[](json& s) { s["self"]["role"] = "admin"; }, "mesh.self.role"},
      {[](json& s) { s["peers"] = json::object(); }, "mesh.peers"},
  };
  for (const auto& [mutate, field] : cases) {
    json s = section();
    mutate(s);
    auto p = parseMeshPlan(s);
    ASSERT_FALSE(p) << field;
    EXPECT_NE(p.error().message().find(field), std::string::npos)
        << field << ": " << p.error().message();
  }
}

TEST(MeshPlan, HostilePeersAreSkippedTheRestKept) {
  const std::vector<std::pair<json, std::string>> bad = {
      {peer(4, 4, "[fd00::4]:51820\n[Peer]", "fd7a:5c00:0:4::/64"), "peers[2].endpoint"},
      {peer(4, 4, "evil.example:51820 = x", "fd7a:5c00:0:4::/64"), "peers[2].endpoint"},
      {peer(4, 4, "[fd00::4]:0", "fd7a:5c00:0:4::/64"), "peers[2].endpoint"},
      {peer(4, 4, "[fd00::4]", "fd7a:5c00:0:4::/64"), "peers[2].endpoint"},
      {peer(4, 4, "-x.example:1", "fd7a:5c00:0:4::/64"), "peers[2].endpoint"},
      {peer(4, 4, "[ff02::1]:51820", "fd7a:5c00:0:4::/64"), "peers[2].endpoint"},
      {peer(4, 4, "224.0.0.1:51820", "fd7a:5c00:0:4::/64"), "peers[2].endpoint"},
      {peer(4, 4, "1.2.3:51820", "fd7a:5c00:0:4::/64"), "peers[2].endpoint"},
      {peer(4, 4, "[fd00::4]:51820", "fd7a:5c01:0:4::/64"), "peers[2].allowed_ips[0]"},
      {peer(4, 4, "[fd00::4]:51820", "fd7a:5c00:0:1::/64"), "peers[2].allowed_ips[0]"},
      {peer(4, 4, "[fd00::4]:51820", "fd7a:5c00::/48"), "peers[2].allowed_ips[0]"},
      {peer(4, 4, "[fd00::4]:51820", "::/0"), "peers[2].allowed_ips[0]"},
      {peer(4, 4, "[fd00::4]:51820", "fd7a:5c00:0:2::/80"), "peers[2].allowed_ips"},
      {peer(4, 4, "[fd00::4]:51820", "fd7a:5c00:0:4::/64\nx"), "peers[2].allowed_ips[0]"},
      {peer(4, 2, "[fd00::4]:51820", "fd7a:5c00:0:4::/64"), "peers[2].public_key"},
      {peer(2, 4, "[fd00::4]:51820", "fd7a:5c00:0:4::/64"), "peers[2].node_number"},
      {peer(1, 4, "[fd00::4]:51820", "fd7a:5c00:0:4::/64"), "peers[2].node_number"},
      {json("x"), "peers[2]"},
  };
  for (const auto& [p, field] : bad) {
    json s = section();
    s["peers"].push_back(p);
    s["peers"].push_back(peer(5, 5, "192.0.2.5:51820", "fd7a:5c00:0:5::/64"));
    auto parsed = parseMeshPlan(s);
    ASSERT_TRUE(parsed) << field;
    ASSERT_EQ(parsed->skipped.size(), 1U) << field;
    EXPECT_NE(parsed->skipped[0].message().find(field), std::string::npos)
        << field << ": " << parsed->skipped[0].message();
    EXPECT_EQ(parsed->plan.peers.size(), 3U) << field;  // the good ones, node 5 included
  }
  // Field by field: keys, node ids, numbers.
  const std::vector<std::pair<std::function<void(json&)>, std::string>> fields = {
      {[](json& p) { p["public_key"] = "AAAA"; }, "public_key"},
      {[](json& p) { p["public_key"] = std::string(43, 'A') + "\n"; }, "public_key"},
      {[](json& p) { p["public_key"] = std::string(42, 'A') + "B="; },
       "public_key"},  // not canonical
      {[](json& p) { p["public_key"] = std::string(43, 'A') + "=="; }, "public_key"},
      {[](json& p) { p["node_id"] = "node_x\n"; }, "node_id"},
      {[](json& p) { p["node_id"] = 7; }, "node_id"},
      {[](json& p) { p["node_number"] = 1.5; }, "node_number"},
      {[](json& p) { p.erase("allowed_ips"); }, "allowed_ips"},
      {[](json& p) { p["allowed_ips"] = json::array(); }, "allowed_ips"},
      {[](json& p) { p["allowed_ips"] = json::array({1}); }, "allowed_ips[0]"},
      {[](json& p) { p["role"] = "root"; }, "role"},
  };
  for (const auto& [mutate, field] : fields) {
    json s = section();
    mutate(s["peers"][0]);
    auto parsed = parseMeshPlan(s);
    ASSERT_TRUE(parsed) << field;
    ASSERT_EQ(parsed->skipped.size(), 1U) << field;
    EXPECT_NE(parsed->skipped[0].message().find("mesh.peers[0]." + field), std::string::npos)
        << parsed->skipped[0].message();
    EXPECT_EQ(parsed->plan.peers.size(), 1U);
  }
}

TEST(MeshPlan, KeysAndEndpoints) {
  const std::string k = "aNNPLrw7PCxMVOBQ9Hb15/RXuz4jazQbfXiEI5RPuEE=";
  auto key = WgKey::parse(k);
  ASSERT_TRUE(key);
  EXPECT_EQ(key->base64(), k);
  EXPECT_FALSE(WgKey::parse(k.substr(0, 43)));
  EXPECT_FALSE(WgKey::parse(k.substr(0, 42) + "*="));
  EXPECT_EQ(parseWgEndpoint("10.0.0.2:51820")->str(), "10.0.0.2:51820");
  EXPECT_EQ(parseWgEndpoint("Node-B.Example:1")->str(), "node-b.example:1");
  EXPECT_EQ(parseWgEndpoint("[fd00:5c::a]:65535")->kind, WgEndpoint::Kind::kIpv6);
  for (const char* bad :
       {"", ":51820", "fd00::a:51820", "[fd00::a]:65536", "host:+1", "host:", "a..b:1", "a b:1",
        "[::]:1", "0.0.0.0:1", "x.example:051820x", "[fd00::a%eth0]:1", "a_b:1"}) {
    EXPECT_FALSE(parseWgEndpoint(bad)) << bad;
  }
}

}  // namespace
}  // namespace plfm::netdev
