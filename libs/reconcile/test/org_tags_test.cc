// Org-tagged addresses and edge-only nodes (docs/specs/networking/mesh.md,
// "Addressing" and "Enrollment facts and edge-only nodes"): an instance's
// interface id is (org_tag << 32) | n, n the lowest number >= 2 free for
// that tag on that node, so `address & ::ffff:ffff:0:0` names the org.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "plfm/reconcile/ipv6.h"
#include "plfm/reconcile/placement.h"
#include "plfm/reconcile/reconcile.h"

namespace plfm::reconcile {
namespace {

Node node(std::string id, int subnet) {
  Node n;
  n.id = std::move(id);
  n.cores = 64;
  n.memory_mb = 1 << 20;
  n.prefix = "fd00:1:2:" + std::to_string(subnet) + "::/64";
  return n;
}

// The tag of an address: bits 64..95, i.e. address & ::ffff:ffff:0:0.
std::uint32_t tagOf(const std::string& address) {
  auto a = parseIpv6(address);
  EXPECT_TRUE(a.has_value()) << address;
  return a ? static_cast<std::uint32_t>(a->lo >> 32) : 0;
}

std::uint64_t numberOf(const std::string& address) {
  auto a = parseIpv6(address);
  return a ? (a->lo & 0xffff'ffffULL) : 0;
}

std::string place(Placer& placer, std::uint32_t tag, std::string_view on = {}) {
  Placer::Spread spread;
  auto p = placer.place(Resources{1, 256}, spread, on, 0, tag);
  return p ? p->address : "-";
}

TEST(OrgTagsTest, TheAddressCarriesTheTagInBits64To95) {
  Placer placer({node("a", 1)}, 4);
  EXPECT_EQ(place(placer, 7), "fd00:1:2:1:0:7:0:2");
  EXPECT_EQ(place(placer, 7), "fd00:1:2:1:0:7:0:3");
  EXPECT_EQ(place(placer, 0xfffffffe), "fd00:1:2:1:ffff:fffe:0:2");
  // The mask the filter matches: address & ::ffff:ffff:0:0 == ::T:T:0:0.
  auto a = parseIpv6(place(placer, 0x00010002));
  ASSERT_TRUE(a.has_value());
  const Ipv6 mask = *parseIpv6("::ffff:ffff:0:0");
  EXPECT_EQ((Ipv6{a->hi & mask.hi, a->lo & mask.lo}), *parseIpv6("::1:2:0:0"));
}

TEST(OrgTagsTest, TwoOrgsOnOneNodeGetDistinctRanges) {
  Placer placer({node("a", 1)}, 4);
  std::vector<std::string> got;
  for (int i = 0; i < 3; ++i) {
    got.push_back(place(placer, 1));
    got.push_back(place(placer, 2));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"fd00:1:2:1:0:1:0:2", "fd00:1:2:1:0:2:0:2",
                                           "fd00:1:2:1:0:1:0:3", "fd00:1:2:1:0:2:0:3",
                                           "fd00:1:2:1:0:1:0:4", "fd00:1:2:1:0:2:0:4"}));
}

TEST(OrgTagsTest, OldLayoutAddressesCoexist) {
  Placer placer({node("a", 1)}, 4);
  placer.reserve("a", Resources{1, 256}, "fd00:1:2:1::2");  // before tags: tag 0
  placer.reserve("a", Resources{1, 256}, "fd00:1:2:1::3");
  placer.reserve("a", Resources{1, 256}, "fd00:1:2:1:0:5:0:2");
  EXPECT_EQ(place(placer, 5), "fd00:1:2:1:0:5:0:3");
  EXPECT_EQ(place(placer, 0), "fd00:1:2:1::4");  // tag 0: the old layout, lowest free
  EXPECT_EQ(place(placer, 9), "fd00:1:2:1:0:9:0:2");
  EXPECT_EQ(tagOf("fd00:1:2:1::4"), 0U);
}

TEST(OrgTagsTest, AStoppedInstancesNumberIsReused) {
  // A stopped instance holds nothing: the next round does not reserve it.
  Placer placer({node("a", 1)}, 4);
  placer.reserve("a", Resources{1, 256}, "fd00:1:2:1:0:3:0:2");
  placer.reserve("a", Resources{1, 256}, "fd00:1:2:1:0:3:0:4");
  EXPECT_EQ(place(placer, 3), "fd00:1:2:1:0:3:0:3");
  EXPECT_EQ(place(placer, 3), "fd00:1:2:1:0:3:0:5");
  // Reserving after a placement (a later instance) re-sorts and stays right.
  placer.reserve("a", Resources{1, 256}, "fd00:1:2:1:0:3:0:6");
  EXPECT_EQ(place(placer, 3), "fd00:1:2:1:0:3:0:7");
}

TEST(OrgTagsTest, RandomPlacementsKeepEveryInvariant) {
  // Any mix of reserved and placed addresses of several tags on a few nodes:
  // no address twice, each carries its tag and the node's /64, and each
  // number is the lowest free of its tag at the time.
  std::mt19937 rng(19);
  for (int round = 0; round < 50; ++round) {
    std::vector<Node> nodes = {node("a", 1), node("b", 2), node("c", 3)};
    Placer placer(nodes, 4);
    std::map<std::pair<std::string, std::uint32_t>, std::set<std::uint64_t>> used;
    std::vector<std::string> keep;  // reserve() keeps views
    keep.reserve(64);
    const std::vector<std::uint32_t> tags = {0, 1, 2, 0xfffffffe};
    for (int k = 0; k < 60; ++k) {
      const std::uint32_t tag = tags[rng() % tags.size()];
      const std::string on = nodes[rng() % nodes.size()].id;
      if (rng() % 4 == 0 && keep.size() < 64) {
        const std::uint64_t n = 2 + rng() % 6;
        const int subnet = on == "a" ? 1 : on == "b" ? 2 : 3;
        keep.push_back(formatIpv6(
            Ipv6{parseIpv6Prefix("fd00:1:2:" + std::to_string(subnet) + "::/64")->address.hi,
                 (std::uint64_t{tag} << 32) | n}));
        placer.reserve(on, Resources{1, 1}, keep.back());
        used[{on, tag}].insert(n);
        continue;
      }
      Placer::Spread spread;
      auto p = placer.place(Resources{1, 1}, spread, on, 0, tag);
      ASSERT_TRUE(p.has_value());
      EXPECT_EQ(tagOf(p->address), tag) << p->address;
      auto& set = used[{on, tag}];
      std::uint64_t lowest = 2;
      while (set.count(lowest) != 0) ++lowest;
      EXPECT_EQ(numberOf(p->address), lowest) << p->address;
      EXPECT_TRUE(set.insert(numberOf(p->address)).second) << p->address;
    }
  }
}

TEST(OrgTagsTest, EdgeNodesTakeNoInstances) {
  std::vector<Node> nodes = {node("a", 1), node("e", 2)};
  nodes[1].edge = true;
  Placer placer(nodes, 4);
  EXPECT_EQ(place(placer, 1, "e"), "-");
  EXPECT_EQ(placer.whyNotOn(Resources{1, 256}, "e"), "it is an edge-only node");
  for (int i = 0; i < 5; ++i) EXPECT_NE(place(placer, 1).find("fd00:1:2:1:"), std::string::npos);

  Placer only_edge({nodes[1]}, 4);
  EXPECT_EQ(place(only_edge, 1), "-");
  EXPECT_EQ(only_edge.explain(Resources{1, 256}),
            "waiting for capacity: no node has 256 MiB and 1 vCPU free (1 node checked: 1 is "
            "edge-only)");
}

TEST(OrgTagsTest, TheReconcilerPlacesEachGroupWithItsOrgsTag) {
  Input in;
  in.nodes = {node("a", 1), node("e", 2)};
  in.nodes[1].edge = true;
  for (const auto& [env, tag] : {std::pair<std::string, std::uint32_t>{"env_1", 4},
                                 std::pair<std::string, std::uint32_t>{"env_2", 9}}) {
    Group g;
    g.env_id = env;
    g.process = "web";
    g.count = 2;
    g.target = Revision{"rel_" + env, "", Resources{1, 256}};
    g.org_tag = tag;
    in.groups.push_back(g);
  }
  int next = 0;
  auto plan = reconcile(in, [&] { return "inst_" + std::to_string(next++); });
  ASSERT_TRUE(plan.has_value());
  ASSERT_EQ(plan->allocations.size(), 4U);
  for (const Allocate& a : plan->allocations) {
    EXPECT_EQ(a.node_id, "a");
    EXPECT_EQ(tagOf(a.address), a.env_id == "env_1" ? 4U : 9U) << a.address;
  }
}

}  // namespace
}  // namespace plfm::reconcile
