// The mesh's pure parts (netdev/mesh.h, wg_dump.h): the wg configuration
// file (golden), `wg show dump` and `ip -6 route show` as captured from
// wireguard-go, the drift between them and a plan, and the command
// sequence Mesh runs (a fake runner: no root, no interface).
#include "netdev/mesh.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "netdev/mesh_status.h"
#include "netdev/wg_dump.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/mesh_sections.h"

namespace plfm::netdev {
namespace {
using nlohmann::json;

// Captured from wireguard-go 0.0.2023 and wg 1.0.2021 (the private key
// replaced by another, made-up one).
constexpr std::string_view kDump =
    "kNNPLrw7PCxMVOBQ9Hb15/RXuz4jazQbfXiEI5RPuEE=\taNNPLrw7PCxMVOBQ9Hb15/RXuz4jazQbfXiEI5RPuEE=\t"
    "51999\toff\n"
    "tVfrSC/8VQdhgFDkWA6KdvMnar/7C9sVFSqdAlmhsD8=\t(none)\t192.0.2.7:51820\t"
    "fd7a:5c00:0:3::/64,fd7a:5c00:0:4::/64\t0\t0\t0\toff\n"
    "2IVfXqRw0uQ25k9EEPntx/ooq1jWchwBUXkRyLSWR2g=\t(none)\t[fd00:5c::b]:51820\t"
    "fd7a:5c00:0:2::/64\t1765000000\t1234\t5678\toff\n";

constexpr std::string_view kRoutes =
    "fd7a:5c00:0:1::1 proto kernel metric 256 pref medium\n"
    "fd7a:5c00:0:2::/64 metric 1024 mtu 1420 pref medium\n"
    "fe80::/64 proto kernel metric 256 pref medium\n";

WgKey key(std::string_view text) { return *WgKey::parse(text); }

MeshPlan plan() {
  json three =
      testing::meshPeer(3, "tVfrSC/8VQdhgFDkWA6KdvMnar/7C9sVFSqdAlmhsD8=", "192.0.2.7:51820");
  three["allowed_ips"] = {"fd7a:5c00:0:3::/64", "fd7a:5c00:0:4::/64"};
  json s = testing::meshSection(
      7, 1,
      json::array({testing::meshPeer(
                       2, "2IVfXqRw0uQ25k9EEPntx/ooq1jWchwBUXkRyLSWR2g=", "[fd00:5c::b]:51820"),
                   three}),
      51999);
  auto p = parseMeshPlan(s);
  EXPECT_TRUE(p && p->skipped.empty());
  return p->plan;
}

TEST(WgDump, ParsesCapturedOutput) {
  auto d = parseWgDump(kDump);
  ASSERT_TRUE(d) << d.error().toString();
  ASSERT_TRUE(d->public_key);
  EXPECT_EQ(d->public_key->base64(), "aNNPLrw7PCxMVOBQ9Hb15/RXuz4jazQbfXiEI5RPuEE=");
  EXPECT_EQ(d->listen_port, 51999);
  ASSERT_EQ(d->peers.size(), 2U);
  EXPECT_EQ(d->peers[0].endpoint->str(), "192.0.2.7:51820");
  EXPECT_EQ(d->peers[0].allowed_ips.size(), 2U);
  EXPECT_EQ(d->peers[1].latest_handshake, 1765000000);
  EXPECT_EQ(d->peers[1].rx_bytes, 1234U);
  EXPECT_EQ(d->peers[1].tx_bytes, 5678U);
}

TEST(WgDump, NoneAndOddValues) {
  auto d = parseWgDump(
      "(none)\t(none)\t0\toff\n"
      "2IVfXqRw0uQ25k9EEPntx/ooq1jWchwBUXkRyLSWR2g=\t(none)\t(none)\t(none)\t0\t0\t0\t25\n");
  ASSERT_TRUE(d) << d.error().toString();
  EXPECT_FALSE(d->public_key);
  EXPECT_FALSE(d->peers[0].endpoint);
  EXPECT_TRUE(d->peers[0].allowed_ips.empty());
  auto v4 = parseWgDump(
      "(none)\t(none)\t1\toff\n"
      "2IVfXqRw0uQ25k9EEPntx/ooq1jWchwBUXkRyLSWR2g=\t(none)\t(none)\t10.0.0.0/8\t0\t0\t0\toff\n");
  ASSERT_TRUE(v4);
  EXPECT_EQ(v4->peers[0].ipv4_allowed_ips, 1);
}

TEST(WgDump, ErrorsNeverQuoteTheInput) {
  const std::string secret = "kNNPLrw7PCxMVOBQ9Hb15/RXuz4jazQbfXiEI5RPuEE=";
  std::string endpoint_is_key = secret + "\t(none)\t1\toff\n";
  endpoint_is_key.append(secret)
      .append("\t(none)\t")
      .append(secret)
      .append("\t(none)\t0\t0\t0\toff\n");
  for (const std::string& bad :
       {secret + "\tnot-a-key\t1\toff\n", secret + "\t(none)\t99999\toff\n", secret + "\n",
        secret + "\t(none)\t1\toff\nshort\tline\n", endpoint_is_key, std::string()}) {
    auto d = parseWgDump(bad);
    ASSERT_FALSE(d);
    EXPECT_EQ(d.error().toString().find(secret), std::string::npos) << d.error().toString();
  }
}

TEST(Mesh, ConfigMatchesGolden) {
  std::array<uint8_t, 32> priv{};
  priv.fill(0x42);
  PLFM_EXPECT_GOLDEN("netdev/golden/mesh.conf", renderWgConfig(plan(), WgKey::fromBytes(priv)));
}

TEST(Mesh, RoutesAreRead) {
  auto r = parseRouteList(std::string(kRoutes) + "default via fe80::1 metric 1024\n");
  ASSERT_EQ(r.size(), 3U);
  EXPECT_TRUE(r[0].kernel);
  EXPECT_EQ(r[0].dst.str(), "fd7a:5c00:0:1::1/128");
  EXPECT_FALSE(r[1].kernel);
  EXPECT_EQ(r[1].mtu, 1420);
  EXPECT_TRUE(r[2].kernel);
}

TEST(Mesh, DriftIsEmptyWhenInSyncAndNamesEachDifference) {
  const WgKey own = key("aNNPLrw7PCxMVOBQ9Hb15/RXuz4jazQbfXiEI5RPuEE=");
  auto dump = *parseWgDump(kDump);
  auto routes = parseRouteList(std::string(kRoutes) +
                               "fd7a:5c00:0:3::/64 metric 1024 mtu 1420 pref medium\n"
                               "fd7a:5c00:0:4::/64 metric 1024 mtu 1420 pref medium\n");
  EXPECT_TRUE(meshDrift(plan(), own, dump, routes).empty());

  MeshPlan p = plan();
  p.self.listen_port = 51820;
  p.peers[0].endpoint = *parseWgEndpoint("[fd00:5c::c]:51820");
  p.peers.pop_back();  // node 3 removed: its peer and routes are strays now
  auto drift = meshDrift(p, own, dump, parseRouteList(kRoutes));
  const std::vector<std::string> want = {
      "the listen port", "peer node_01jdq3v7k2m9x4c8r6t0w5y002: endpoint",
      "unknown peer tVfrSC/8VQdhgFDkWA6KdvMnar/7C9sVFSqdAlmhsD8="};
  EXPECT_EQ(drift, want);

  // A route gone, a route with another MTU, another key on the interface.
  auto less = parseRouteList(
      "fd7a:5c00:0:2::/64 metric 1024 mtu 1280 pref medium\n"
      "fd7a:5c00:0:3::/64 metric 1024 mtu 1420 pref medium\n");
  std::array<uint8_t, 32> other{};
  drift = meshDrift(plan(), WgKey::fromBytes(other), dump, less);
  const std::vector<std::string> want2 = {"the interface's key",
                                          "the route to fd7a:5c00:0:2::/64: mtu",
                                          "no route to fd7a:5c00:0:4::/64"};
  EXPECT_EQ(drift, want2);
}

TEST(Mesh, TheLinkIsReadAndChecked) {
  // As `ip -o link show` and `ip -6 -o addr show` print them.
  auto link = parseMeshLink(
      "7: plfm-wg0: <POINTOPOINT,MULTICAST,NOARP,UP,LOWER_UP> mtu 1420 qdisc pfifo_fast state "
      "UNKNOWN mode DEFAULT group default qlen 500\\    link/none \n",
      "7: plfm-wg0    inet6 fd7a:5c00:0:1::1/128 scope global \\       valid_lft forever\n"
      "7: plfm-wg0    inet6 fe80::2153:d797:b062:65a0/64 scope link stable-privacy \\ x\n");
  EXPECT_TRUE(link.up);
  EXPECT_EQ(link.mtu, 1420);
  ASSERT_EQ(link.addresses.size(), 2U);
  EXPECT_TRUE(linkDrift(plan(), link).empty());
  auto down = parseMeshLink("7: plfm-wg0: <POINTOPOINT,NOARP> mtu 1500 qdisc noop\n", "");
  const std::vector<std::string> want = {"the interface is down", "the interface's MTU",
                                         "no host address fd7a:5c00:0:1::1"};
  EXPECT_EQ(linkDrift(plan(), down), want);
  EXPECT_FALSE(parseMeshLink("7: x: <LOWER_UP,UPPER> mtu x\n", "").up);
}

// A host name becomes an address before wg sees it; a name that does not
// resolve leaves only its peer out.
TEST(Mesh, HostNameEndpointsAreResolvedFirst) {
  MeshPlan p = plan();
  p.peers[0].endpoint = *parseWgEndpoint("node-b.example:51820");
  p.peers[1].endpoint = *parseWgEndpoint("gone.example:51820");
  auto r = resolveEndpoints(p, [](const WgEndpoint& e) -> Result<WgEndpoint> {
    if (e.host == "gone.example") return Error(errc::kUnavailable, "cannot resolve gone.example");
    return parseWgEndpoint("[fd00:5c::b]:" + std::to_string(e.port));
  });
  ASSERT_EQ(r.plan.peers.size(), 1U);
  EXPECT_EQ(r.plan.peers[0].endpoint.str(), "[fd00:5c::b]:51820");
  ASSERT_EQ(r.skipped.size(), 1U);
  EXPECT_NE(r.skipped[0].toString().find(p.peers[1].node_id), std::string::npos);
  // Addresses pass through; localhost resolves from /etc/hosts.
  EXPECT_EQ(resolveEndpoint(*parseWgEndpoint("192.0.2.7:1"))->str(), "192.0.2.7:1");
  auto local = resolveEndpoint(*parseWgEndpoint("localhost:51820"));
  ASSERT_TRUE(local) << local.error().toString();
  EXPECT_NE(local->kind, WgEndpoint::Kind::kHostname);
}

TEST(Mesh, PublicKeyOfMatchesWg) {
  // `wg genkey`, and its `wg pubkey`.
  auto priv = key("6OEIqJZVRQDWl2Hxpsjr4ssijf1AX7Yej28+l537pFs=");
  EXPECT_EQ(publicKeyOf(priv).base64(), "yhJGrdQ9xMAS9pfksgg4cOAxEiCNL9VSaARC68n5j3U=");
}

TEST(Mesh, NamesOfTheInterface) {
  EXPECT_TRUE(validMeshInterfaceName("plfm-wg0"));
  EXPECT_TRUE(validMeshInterfaceName("wg-b"));
  EXPECT_TRUE(validMeshInterfaceName("a23456789012345"));
  for (const char* bad : {"", "a234567890123456", "Wg0", "wg0/../x", "wg 0", "wg.0", "wg0\n"}) {
    EXPECT_FALSE(validMeshInterfaceName(bad)) << bad;
  }
}

// The commands an apply runs, with a fake `ip` and `wg`: the kernel refuses
// the device type, so wireguard-go comes in; the private key is in no argv.
TEST(Mesh, ApplyRunsTheContractsCommands) {
  plfm::testing::TempDir dir;
  std::array<uint8_t, 32> priv{};
  priv.fill(7);
  const std::string priv_text = WgKey::fromBytes(priv).base64();
  ASSERT_TRUE(writeFileAtomic(dir.path() + "/wireguard.key", priv_text + "\n", 0600));
  std::vector<std::vector<std::string>> ran;
  bool up = false;
  CommandRunner fake = [&](const std::vector<std::string>& argv) -> Result<std::string> {
    ran.push_back(argv);
    if (argv[0] == "ip" && argv[1] == "link" && argv[2] == "add") {
      return Error("x", "Error: Unknown device type.");
    }
    if (argv[0] == "wireguard-go") up = true;
    if (argv[0] == "ip" && argv[2] == "route" && argv[3] == "show") {
      return std::string(kRoutes) + "fd7a:5c00:0:9::/64 metric 1024 mtu 1420 pref medium\n";
    }
    return std::string();
  };
  MeshOptions o;
  o.interface = "lo";  // exists: no bring-up
  o.state_dir = dir.path();
  Mesh mesh(o, fake);
  auto r = mesh.apply(plan());
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_FALSE(up);
  const std::vector<std::vector<std::string>> want = {
      {"wg", "syncconf", "lo", dir.path() + "/mesh/lo.conf"},
      {"ip", "-6", "addr", "replace", "fd7a:5c00:0:1::1/128", "dev", "lo"},
      {"ip", "link", "set", "lo", "mtu", "1420", "up"},
      {"ip", "-6", "route", "show", "dev", "lo"},
      {"ip", "-6", "route", "del", "fd7a:5c00:0:9::/64", "dev", "lo"},
      // fd7a:5c00:0:2::/64 is there already, with the MTU.
      {"ip", "-6", "route", "replace", "fd7a:5c00:0:3::/64", "dev", "lo", "mtu", "1420"},
      {"ip", "-6", "route", "replace", "fd7a:5c00:0:4::/64", "dev", "lo", "mtu", "1420"},
  };
  EXPECT_EQ(ran, want);
  for (const auto& argv : ran) {
    for (const auto& a : argv) EXPECT_EQ(a.find(priv_text), std::string::npos);
  }
  namespace fs = std::filesystem;
  EXPECT_EQ(fs::status(dir.path() + "/mesh/lo.conf").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_NE(readFile(dir.path() + "/mesh/lo.conf")->find("PrivateKey = " + priv_text),
            std::string::npos);
  auto saved = readFile(dir.path() + "/mesh/plan.json");
  ASSERT_TRUE(saved);
  EXPECT_EQ(saved->find(priv_text), std::string::npos);
  EXPECT_EQ(json::parse(*saved), plan().toJson());

  // A missing interface: `ip link add` refused, wireguard-go started; a
  // TUN that never appears is an error after link_wait.
  ran.clear();
  o.interface = "plfm-nope0";
  o.link_wait = std::chrono::milliseconds(50);
  Mesh missing(o, fake);
  auto failed = missing.apply(plan());
  ASSERT_FALSE(failed);
  EXPECT_TRUE(up);
  EXPECT_NE(failed.error().message().find("did not appear"), std::string::npos);
  ASSERT_EQ(ran.size(), 2U);
  EXPECT_EQ(ran[0],
            (std::vector<std::string>{"ip", "link", "add", "plfm-nope0", "type", "wireguard"}));
  EXPECT_EQ(ran[1], (std::vector<std::string>{"wireguard-go", "plfm-nope0"}));
}

// `mesh status`: the plan's peers by node number with what wg says of
// them, then a key only wg has; deterministic text and JSON.
TEST(Mesh, StatusJoinsPlanDumpAndRoutes) {
  MeshPlan p = plan();
  p.peers.pop_back();  // node 3 is a key wg has and the plan does not name
  auto dump = *parseWgDump(kDump);
  auto s = meshStatus("plfm-wg0", p, dump, parseRouteList(kRoutes), 1765000042);
  PLFM_EXPECT_GOLDEN("netdev/golden/mesh_status.txt", toText(s));
  PLFM_EXPECT_GOLDEN("netdev/golden/mesh_status.json", toJson(s).dump(1) + "\n");
  // No interface: the plan's peers, none configured.
  auto absent = meshStatus("plfm-wg0", plan(), std::nullopt, {}, 0);
  EXPECT_FALSE(absent.up);
  ASSERT_EQ(absent.peers.size(), 2U);
  EXPECT_FALSE(absent.peers[0].configured);
  EXPECT_EQ(absent.peers[1].endpoint, "192.0.2.7:51820");
  EXPECT_NE(toText(absent).find("absent"), std::string::npos);
}

TEST(Mesh, NoKeyNoApply) {
  plfm::testing::TempDir dir;
  MeshOptions o;
  o.interface = "lo";
  o.state_dir = dir.path();
  Mesh mesh(o, [](const std::vector<std::string>&) -> Result<std::string> { return ""; });
  auto r = mesh.apply(plan());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("no WireGuard key"), std::string::npos);
  ASSERT_TRUE(writeFileAtomic(dir.path() + "/wireguard.key", "PrivateKey = x\n", 0600));
  r = mesh.apply(plan());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message().find("PrivateKey"), std::string::npos);
}

}  // namespace
}  // namespace plfm::netdev
