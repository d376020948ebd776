// The mesh flags of `run` (mesh_flags.h): defaults, the edge role, --no-mesh,
// names and ports refused, and the TOML file.
#include "mesh_flags.h"

#include <gtest/gtest.h>

#include <CLI/CLI.hpp>
#include <fstream>

#include "config_file.h"
#include "plfm/testing/temp_dir.h"
#include "support/run_flags.h"

namespace plfm::agent {
namespace {

bool parseMesh(const std::string& args, AgentOptions& o) {
  return testing::parseRun(args, [&o](CLI::App& run) { addMeshOptions(run, o); });
}

TEST(MeshFlags, DefaultsAndEachFlag) {
  AgentOptions o;
  ASSERT_TRUE(parseMesh("", o));
  EXPECT_TRUE(o.mesh_enabled);
  EXPECT_EQ(o.mesh.mesh.interface, "plfm-wg0");
  EXPECT_EQ(o.facts.mesh_port, 51820);
  EXPECT_EQ(o.facts.role, "worker");
  EXPECT_EQ(o.mesh.reconcile_every, std::chrono::seconds(30));
  EXPECT_EQ(o.mesh.mesh.wg, "wg");
  EXPECT_EQ(o.mesh.mesh.wireguard_go, "wireguard-go");
  EXPECT_EQ(o.mesh.interface2, "");  // derived: plfm-wg1
  EXPECT_EQ(o.mesh.rotation_settle, std::chrono::milliseconds(2000));

  AgentOptions rot;
  ASSERT_TRUE(parseMesh("--mesh-interface2 wg-b2 --mesh-rotation-settle-ms 500", rot));
  EXPECT_EQ(rot.mesh.interface2, "wg-b2");
  EXPECT_EQ(rot.mesh.rotation_settle, std::chrono::milliseconds(500));

  AgentOptions set;
  ASSERT_TRUE(parseMesh(
      "--mesh-interface wg-b --mesh-port 51821 --edge --wg /opt/wg --wireguard-go /opt/wg-go "
      "--mesh-reconcile-seconds 5",
      set));
  EXPECT_EQ(set.mesh.mesh.interface, "wg-b");
  EXPECT_EQ(set.facts.mesh_port, 51821);
  EXPECT_EQ(set.facts.role, "edge");
  EXPECT_EQ(set.mesh.mesh.wg, "/opt/wg");
  EXPECT_EQ(set.mesh.mesh.wireguard_go, "/opt/wg-go");
  EXPECT_EQ(set.mesh.reconcile_every, std::chrono::seconds(5));

  AgentOptions off;
  ASSERT_TRUE(parseMesh("--no-mesh", off));
  EXPECT_FALSE(off.mesh_enabled);
}

TEST(MeshFlags, DnsResponderFlags) {
  AgentOptions o;
  ASSERT_TRUE(parseMesh("", o));
  EXPECT_TRUE(o.dns_enabled);
  EXPECT_TRUE(o.dns_upstreams.empty());
  AgentOptions set;
  ASSERT_TRUE(
      parseMesh("--no-dns --dns-upstream 192.0.2.53 --dns-upstream [2001:db8::53]:5353", set));
  EXPECT_FALSE(set.dns_enabled);
  EXPECT_EQ(set.dns_upstreams, (std::vector<std::string>{"192.0.2.53", "[2001:db8::53]:5353"}));
  AgentOptions bad;
  EXPECT_FALSE(parseMesh("--dns-upstream dns.example", bad));
}

TEST(MeshFlags, BadValuesAreRefused) {
  for (const char* bad :
       {"--mesh-interface Wg0", "--mesh-interface a234567890123456", "--mesh-interface ../x",
        "--mesh-interface ''", "--mesh-port 0", "--mesh-port 65536", "--mesh-reconcile-seconds 0",
        // The second slot listens on --mesh-port + 1.
        "--mesh-port 65535", "--mesh-interface2 Wg1", "--mesh-interface2 a234567890123456",
        "--mesh-rotation-settle-ms -1", "--mesh-rotation-settle-ms 60001"}) {
    AgentOptions o;
    EXPECT_FALSE(parseMesh(bad, o)) << bad;
  }
}

TEST(MeshFlags, TheTomlFileSetsThem) {
  plfm::testing::TempDir dir("meshf");
  const std::string toml = dir.file("agent.toml");
  std::ofstream(toml) << "mesh-interface = \"wg-c\"\nmesh-port = 51822\nedge = true\n";
  AgentOptions o;
  ASSERT_TRUE(parseMesh("--config " + toml, o));
  EXPECT_EQ(o.mesh.mesh.interface, "wg-c");
  EXPECT_EQ(o.facts.mesh_port, 51822);
  EXPECT_EQ(o.facts.role, "edge");
  std::ofstream(toml) << "mesh-interface = \"WG C\"\n";
  AgentOptions bad;
  EXPECT_FALSE(parseMesh("--config " + toml, bad));
}

bool parseEgress(const std::string& args, AgentOptions& o) {
  return testing::parseRun(args, [&o](CLI::App& run) { addEgressOptions(run, o); });
}

TEST(EgressFlags, DefaultsAndEachFlag) {
  AgentOptions o;
  ASSERT_TRUE(parseEgress("", o));
  EXPECT_EQ(o.egress6, netdev::Egress6Mode::kNat66);
  EXPECT_EQ(o.egress_interface, "");
  EXPECT_EQ(o.guest_ipv4_subnet, "");
  ASSERT_EQ(o.firewall_policy.egress_denied4.size(), 5U);
  EXPECT_EQ(o.firewall_policy.egress_denied4[3].str(), "100.64.0.0/10");

  AgentOptions set;
  ASSERT_TRUE(
      parseEgress("--egress6 route --egress-interface enp1s0.7 --guest-ipv4-subnet 172.20.0.0/16 "
                  "--guest-egress-deny4 198.51.100.0/24 --guest-egress-deny4 10.0.0.0/8",
                  set));
  EXPECT_EQ(set.egress6, netdev::Egress6Mode::kRoute);
  EXPECT_EQ(set.egress_interface, "enp1s0.7");
  EXPECT_EQ(set.guest_ipv4_subnet, "172.20.0.0/16");
  ASSERT_EQ(set.firewall_policy.egress_denied4.size(), 2U);
  EXPECT_EQ(set.firewall_policy.egress_denied4[0].str(), "198.51.100.0/24");

  AgentOptions off;
  ASSERT_TRUE(parseEgress("--egress6 off --guest-ipv4-subnet off", off));
  EXPECT_EQ(off.egress6, netdev::Egress6Mode::kOff);
  EXPECT_EQ(off.guest_ipv4_subnet, "off");
}

TEST(EgressFlags, BadValuesAreRefused) {
  for (const char* bad :
       {"--egress6 nat44", "--egress6 ''", "--egress-interface vt-a1", "--egress-interface 'a b'",
        "--egress-interface a234567890123456", "--guest-ipv4-subnet 10.42.0.1/24",
        "--guest-ipv4-subnet 10.0.0.0/8", "--guest-ipv4-subnet fd00::/64",
        "--guest-egress-deny4 10.0.0.1/8", "--guest-egress-deny4 ::/0"}) {
    AgentOptions o;
    EXPECT_FALSE(parseEgress(bad, o)) << bad;
  }
}

}  // namespace
}  // namespace plfm::agent
