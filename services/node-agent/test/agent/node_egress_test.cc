// The agent's egress (node_egress.h) with /bin/true standing in for nft: the
// guest subnet from the plan's node number, an operator-set one, `off`, and
// the subnet kept across a restart (adopted guests keep their IPv4 rules
// before the first plan).
#include "agent/node_egress.h"

#include <gtest/gtest.h>

#include "agent/agent.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::agent {
namespace {

AgentOptions options(const plfm::testing::TempDir& dir, std::string subnet_flag = {}) {
  AgentOptions o;
  o.state_dir = dir.path();
  o.nft_binary = "/bin/true";
  o.egress_interface = "eth0";
  o.guest_ipv4_subnet = std::move(subnet_flag);
  return o;
}

netdev::MeshPlan plan(uint32_t node_number) {
  netdev::MeshPlan p;
  p.cluster_prefix = *netdev::parseIpv6Prefix("fd7a:5c00::/48");
  p.self.node_number = node_number;
  return p;
}

std::string subnet(const NodeEgress& e) {
  const auto s = e.guestSubnet4();
  return s ? s->str() : "none";
}

TEST(NodeEgress, TheSubnetFollowsTheNodeNumberAndSurvivesARestart) {
  plfm::testing::TempDir dir("egress");
  {
    NodeEgress e(options(dir));
    e.follow(nullptr);
    EXPECT_EQ(subnet(e), "none");  // the default needs the node number
    const auto p = plan(259);
    e.follow(&p);
    EXPECT_EQ(subnet(e), "10.42.3.0/24");
  }
  NodeEgress again(options(dir));
  EXPECT_EQ(subnet(again), "10.42.3.0/24");  // before any plan
  again.follow(nullptr);
  EXPECT_EQ(subnet(again), "10.42.3.0/24");
}

TEST(NodeEgress, AnOperatorSubnetNeedsNoPlanAndOffGivesNone) {
  plfm::testing::TempDir dir("egress");
  NodeEgress set(options(dir, "172.20.0.0/16"));
  set.follow(nullptr);
  EXPECT_EQ(subnet(set), "172.20.0.0/16");
  NodeEgress off(options(dir, "off"));  // the same state dir: the saved subnet is ignored
  EXPECT_EQ(subnet(off), "none");
  const auto p = plan(3);
  off.follow(&p);
  EXPECT_EQ(subnet(off), "none");
}

}  // namespace
}  // namespace plfm::agent
