// Key rotation's pure parts (mesh.md, "Contract for key rotation"): the
// plan's new fields parsed at the edge (absent is null/false, hostile values
// refused naming the field), a peer with `next` configured with its next
// key and endpoint (config and drift agree), the rotation record, the
// second slot's default name and the key generator.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <set>

#include "netdev/mesh.h"
#include "netdev/mesh_rotation.h"
#include "netdev/mesh_status.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/mesh_sections.h"

namespace plfm::netdev {
namespace {
using nlohmann::json;

json rotationSection() {
  return testing::meshSection(
      9, 1,
      json::array({testing::meshPeer(2, testing::meshTestKey(2), "[fd00:5c::b]:51820"),
                   testing::meshPeer(3, testing::meshTestKey(3), "[fd00:5c::c]:51820")}));
}

TEST(MeshPlan, RotationFieldsAbsentAreNullAndFalse) {
  auto p = parseMeshPlan(rotationSection());
  ASSERT_TRUE(p) << p.error().toString();
  EXPECT_FALSE(p->plan.self.public_key);
  EXPECT_FALSE(p->plan.self.next_public_key);
  EXPECT_FALSE(p->plan.self.next_listen_port);
  EXPECT_FALSE(p->plan.self.rotate);
  EXPECT_FALSE(p->plan.peers[0].next);
  // Explicit nulls too (the control plane sends every field).
  json s = rotationSection();
  s["self"]["public_key"] = nullptr;
  s["self"]["next_public_key"] = nullptr;
  s["self"]["next_listen_port"] = nullptr;
  s["self"]["rotate"] = false;
  s["peers"][0]["next"] = nullptr;
  p = parseMeshPlan(s);
  ASSERT_TRUE(p) << p.error().toString();
  EXPECT_TRUE(p->skipped.empty());
  EXPECT_FALSE(p->plan.peers[0].next);
}

TEST(MeshPlan, RotationFieldsParseAndRoundTrip) {
  json s = rotationSection();
  s["self"]["public_key"] = testing::meshTestKey(1);
  s["self"]["next_public_key"] = testing::meshTestKey(11);
  s["self"]["next_listen_port"] = 51821;
  s["self"]["rotate"] = true;
  s["peers"][1]["next"] = {{"public_key", testing::meshTestKey(13)},
                           {"endpoint", "[FD00:5C::C]:51821"}};
  auto p = parseMeshPlan(s);
  ASSERT_TRUE(p) << p.error().toString();
  ASSERT_TRUE(p->skipped.empty()) << p->skipped[0].toString();
  const MeshPlan& m = p->plan;
  EXPECT_EQ(m.self.public_key->base64(), testing::meshTestKey(1));
  EXPECT_EQ(m.self.next_public_key->base64(), testing::meshTestKey(11));
  EXPECT_EQ(*m.self.next_listen_port, 51821);
  EXPECT_TRUE(m.self.rotate);
  ASSERT_TRUE(m.peers[1].next);
  EXPECT_EQ(m.peers[1].next->endpoint.str(), "[fd00:5c::c]:51821");
  auto again = parseMeshPlan(m.toJson());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->plan.toJson(), m.toJson());
  EXPECT_EQ(again->plan.peers[1].next, m.peers[1].next);
}

TEST(MeshPlan, HostileSelfRotationFieldsAreRefusedNamingTheField) {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& s) { s["public_key"] = "x"; }, "self.public_key"},
      {[](json& s) { s["public_key"] = 7; }, "self.public_key"},
      {[](json& s) {
         s["next_public_key"] = testing::meshTestKey(5) + "\nListenPort = 1";
         s["next_listen_port"] = 51821;
       },
       "self.next_public_key"},
      {[](json& s) {
         s["next_public_key"] = testing::meshTestKey(5);
         s["next_listen_port"] = 0;
       },
       "self.next_listen_port"},
      {[](json& s) {
         s["next_public_key"] = testing::meshTestKey(5);
         s["next_listen_port"] = 65536;
       },
       "self.next_listen_port"},
      {[](json& s) {
         s["next_public_key"] = testing::meshTestKey(5);
         s["next_listen_port"] = "51821";
       },
       "self.next_listen_port"},
      {[](json& s) { s["next_public_key"] = testing::meshTestKey(5); }, "self.next_listen_port"},
      {[](json& s) { s["next_listen_port"] = 51821; }, "self.next_public_key"},
      {[](json& s) {
         s["next_public_key"] = testing::meshTestKey(5);
         s["next_listen_port"] = 51820;  // the current port
       },
       "self.next_listen_port"},
      {[](json& s) { s["rotate"] = "yes"; }, "self.rotate"},
      {[](json& s) { s["rotate"] = 1; }, "self.rotate"},
  };
  for (const auto& [mutate, field] : cases) {
    json s = rotationSection();
    mutate(s["self"]);
    auto p = parseMeshPlan(s);
    ASSERT_FALSE(p) << field;
    EXPECT_EQ(p.error().detail("field"), field) << p.error().toString();
  }
}

TEST(MeshPlan, APeerWithAHostileNextIsSkippedNamingTheField) {
  const std::vector<std::pair<json, std::string>> cases = {
      {"x", "peers[0].next"},
      {json::array(), "peers[0].next"},
      {{{"endpoint", "[fd00:5c::b]:51821"}}, "peers[0].next.public_key"},
      {{{"public_key", "short"}, {"endpoint", "[fd00:5c::b]:51821"}}, "peers[0].next.public_key"},
      {{{"public_key", testing::meshTestKey(12)}, {"endpoint", "[fd00:5c::b]:51821\n[Peer]"}},
       "peers[0].next.endpoint"},
      {{{"public_key", testing::meshTestKey(12)}}, "peers[0].next.endpoint"},
      {{{"public_key", testing::meshTestKey(2)}, {"endpoint", "[fd00:5c::b]:51821"}},
       "peers[0].next.public_key"},  // its own current key
  };
  for (const auto& [next, field] : cases) {
    json s = rotationSection();
    s["peers"][0]["next"] = next;
    auto p = parseMeshPlan(s);
    ASSERT_TRUE(p) << p.error().toString();
    ASSERT_EQ(p->skipped.size(), 1U) << field;
    EXPECT_EQ(p->skipped[0].detail("field"), field) << p->skipped[0].toString();
    ASSERT_EQ(p->plan.peers.size(), 1U);  // the other peer is kept
  }
  // A next key that is another peer's key: the later peer is left out.
  json s = rotationSection();
  s["peers"][1]["next"] = {{"public_key", testing::meshTestKey(2)},
                           {"endpoint", "[fd00:5c::c]:51821"}};
  auto p = parseMeshPlan(s);
  ASSERT_TRUE(p);
  ASSERT_EQ(p->skipped.size(), 1U);
  EXPECT_EQ(p->skipped[0].detail("field"), "peers[1].next.public_key");
}

MeshPlan rotatingPeerPlan() {
  json s = rotationSection();
  s["peers"][0]["next"] = {{"public_key", testing::meshTestKey(12)},
                           {"endpoint", "[fd00:5c::b]:51821"}};
  auto p = parseMeshPlan(s);
  EXPECT_TRUE(p && p->skipped.empty());
  return p->plan;
}

// Peers' side: the next key at the next endpoint, the old key left out.
TEST(Mesh, APeerWithNextIsConfiguredWithItsNextKeyAndEndpoint) {
  std::array<uint8_t, 32> priv{};
  priv.fill(0x42);
  const std::string conf = renderWgConfig(rotatingPeerPlan(), WgKey::fromBytes(priv));
  EXPECT_NE(conf.find("PublicKey = " + testing::meshTestKey(12) +
                      "\nEndpoint = [fd00:5c::b]:51821\nAllowedIPs = fd7a:5c00:0:2::/64\n"
                      "PersistentKeepalive = 25\n"),
            std::string::npos)
      << conf;
  // The others have none ("off" ends one a finished rotation left).
  EXPECT_NE(conf.find("AllowedIPs = fd7a:5c00:0:3::/64\nPersistentKeepalive = off\n"),
            std::string::npos)
      << conf;
  EXPECT_EQ(conf.find(testing::meshTestKey(2)), std::string::npos) << conf;
  EXPECT_NE(conf.find("PublicKey = " + testing::meshTestKey(3)), std::string::npos);

  // The drift check agrees: the next key is in sync, the old one is a stray.
  const WgKey own = publicKeyOf(WgKey::fromBytes(priv));
  const std::string peer12 =
      testing::meshTestKey(12) + "\t(none)\t[fd00:5c::b]:51821\tfd7a:5c00:0:2::/64\t0\t0\t0\toff\n";
  const std::string peer3 =
      testing::meshTestKey(3) + "\t(none)\t[fd00:5c::c]:51820\tfd7a:5c00:0:3::/64\t0\t0\t0\toff\n";
  const std::string head = "(private)\t" + own.base64() + "\t51820\toff\n";
  const auto routes = parseRouteList(
      "fd7a:5c00:0:2::/64 metric 1024 mtu 1420 pref medium\n"
      "fd7a:5c00:0:3::/64 metric 1024 mtu 1420 pref medium\n");
  auto in_sync = parseWgDump(head + peer12 + peer3);
  ASSERT_TRUE(in_sync) << in_sync.error().toString();
  EXPECT_TRUE(meshDrift(rotatingPeerPlan(), own, *in_sync, routes).empty());
  auto old =
      parseWgDump(head + testing::meshTestKey(2) +
                  "\t(none)\t[fd00:5c::b]:51820\tfd7a:5c00:0:2::/64\t0\t0\t0\toff\n" + peer3);
  ASSERT_TRUE(old);
  const std::vector<std::string> want = {"peer node_01jdq3v7k2m9x4c8r6t0w5y002 is missing",
                                         "unknown peer " + testing::meshTestKey(2)};
  EXPECT_EQ(meshDrift(rotatingPeerPlan(), own, *old, routes), want);
  // `mesh status` names the peer behind its next key.
  auto st = meshStatus("plfm-wg0", rotatingPeerPlan(), *in_sync, routes, 0);
  ASSERT_EQ(st.peers.size(), 2U);
  EXPECT_EQ(st.peers[0].node_number, 2U);
  EXPECT_TRUE(st.peers[0].configured);

  // Routes on one of two interfaces: only the routed peers' count.
  const RoutedPeers only3 = std::set<std::string>{"node_01jdq3v7k2m9x4c8r6t0w5y003"};
  const std::vector<std::string> want_routes = {
      "a route to fd7a:5c00:0:2::/64 names no peer routed here"};
  EXPECT_EQ(meshDrift(rotatingPeerPlan(), own, *in_sync, routes, only3), want_routes);
}

// `mesh status` shows a running rotation (text and JSON), retiring once the
// new key is current.
TEST(MeshRotation, StatusShowsTheRotation) {
  MeshRotation r;
  r.interface = "plfm-wg1";
  r.listen_port = 51821;
  r.public_key = *WgKey::parse(testing::meshTestKey(4));
  r.since = 1765000000;
  auto s = meshStatus("plfm-wg0", std::nullopt, std::nullopt, {}, 0);
  EXPECT_TRUE(toJson(s)["rotation"].is_null());
  EXPECT_EQ(toText(s).find("rotation"), std::string::npos);
  s.rotation = rotationStatus(r);
  EXPECT_EQ(toJson(s)["rotation"], json({{"phase", "staged"},
                                         {"interface", "plfm-wg1"},
                                         {"since", "2025-12-06T05:46:40.000000Z"}}));
  EXPECT_NE(toText(s).find("rotation: staged, new key on plfm-wg1, since 2025-12-06T05:46:40"),
            std::string::npos)
      << toText(s);
  r.phase = "published";
  EXPECT_EQ(rotationStatus(r).phase, "published");
  r.retire_interface = "plfm-wg0";
  r.retire_after = 1765000030;
  EXPECT_EQ(rotationStatus(r).phase, "retiring");
}

TEST(MeshRotation, SecondSlotNames) {
  EXPECT_EQ(defaultMeshInterface2("plfm-wg0"), "plfm-wg1");
  EXPECT_EQ(defaultMeshInterface2("wg-1a2b3c4d-a"), "wg-1a2b3c4d-a1");  // vt dev's hosts
  EXPECT_EQ(defaultMeshInterface2("wg-1a2b3c4d-10"), "wg-1a2b3c4d-11");
  EXPECT_EQ(defaultMeshInterface2("a23456789012345"), "");  // 16 bytes: name it
  EXPECT_EQ(defaultMeshInterface2("a2345678901234"), "a23456789012341");
}

TEST(MeshRotation, TheRecordRoundTripsAndRefusesBadFields) {
  plfm::testing::TempDir dir;
  auto none = loadMeshRotation(dir.path());
  ASSERT_TRUE(none);
  EXPECT_FALSE(*none);
  MeshRotation r;
  r.interface = "plfm-wg1";
  r.listen_port = 51821;
  r.public_key = *WgKey::parse(testing::meshTestKey(4));
  r.since = 1765000000;
  ASSERT_TRUE(saveMeshRotation(dir.path(), r));
  auto back = loadMeshRotation(dir.path());
  ASSERT_TRUE(back && *back);
  EXPECT_EQ(**back, r);
  r.phase = "published";
  r.retire_interface = "plfm-wg0";
  r.retire_after = 1765000030;
  ASSERT_EQ(parseMeshRotation(r.toJson()).value_or(MeshRotation{}), r);
  for (const auto& [field, value] :
       std::vector<std::pair<std::string, json>>{{"interface", "../x"},
                                                 {"listen_port", 0},
                                                 {"public_key", "k"},
                                                 {"phase", "done"},
                                                 {"retire_interface", "plfm-wg1"},
                                                 {"retire_after", "soon"}}) {
    json j = r.toJson();
    j[field] = value;
    auto bad = parseMeshRotation(j);
    ASSERT_FALSE(bad) << field;
    EXPECT_EQ(bad.error().detail("field"), field);
  }
  ASSERT_TRUE(writeFileAtomic(meshRotationPath(dir.path()), "{", 0600));
  EXPECT_FALSE(loadMeshRotation(dir.path()));
  ASSERT_TRUE(removeMeshRotation(dir.path()));
  ASSERT_TRUE(removeMeshRotation(dir.path()));  // fine when absent
}

TEST(MeshRotation, KeysAreFreshClampedAndWrittenPrivately) {
  const WgKey a = generatePrivateKey();
  const WgKey b = generatePrivateKey();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.bytes()[0] & 7, 0);
  EXPECT_EQ(a.bytes()[31] & 0xc0, 0x40);
  EXPECT_NE(publicKeyOf(a), publicKeyOf(b));
  plfm::testing::TempDir dir;
  const std::string path = meshNextKeyPath(dir.path());
  ASSERT_TRUE(writePrivateKeyFile(path, a));
  namespace fs = std::filesystem;
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(*readFile(path), a.base64() + "\n");
}

}  // namespace
}  // namespace plfm::netdev
