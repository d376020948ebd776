#include "plfm/reconcile/placement.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace plfm::reconcile {
namespace {

Node node(std::string id, int cores, std::int64_t memory_mb, int subnet) {
  Node n;
  n.id = std::move(id);
  n.cores = cores;
  n.memory_mb = memory_mb;
  n.prefix = "fd00:0:0:" + std::to_string(subnet) + "::/64";
  return n;
}

// Places `n` instances of one group and returns the chosen node ids.
std::vector<std::string> placeMany(Placer& placer, int n, Resources r) {
  Placer::Spread spread;
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) {
    auto p = placer.place(r, spread);
    out.push_back(p ? p->node_id : "-");
  }
  return out;
}

TEST(PlacerTest, MemoryIsAHardCap) {
  Placer placer({node("a", 64, 1024, 1)}, 4);
  EXPECT_EQ(placeMany(placer, 3, Resources{1, 512}), (std::vector<std::string>{"a", "a", "-"}));
  EXPECT_EQ(placer.explain(Resources{1, 512}),
            "waiting for capacity: no node has 512 MiB free (1 node checked)");
}

TEST(PlacerTest, CpuIsSoftUpToCoresTimesOvercommit) {
  // 2 cores x 4 = 8 vCPUs: the eighth fits exactly, the ninth does not.
  Placer placer({node("a", 2, 65536, 1)}, 4);
  auto placed = placeMany(placer, 9, Resources{1, 256});
  EXPECT_EQ(placed[7], "a");
  EXPECT_EQ(placed[8], "-");
  EXPECT_EQ(placer.explain(Resources{1, 256}),
            "waiting for capacity: no node has 256 MiB and 1 vCPU free (1 node checked: 1 lacks "
            "vCPUs)");
}

TEST(PlacerTest, OvercommitIsConfigurable) {
  Placer placer({node("a", 2, 65536, 1)}, 1);
  auto placed = placeMany(placer, 3, Resources{1, 256});
  EXPECT_EQ(placed, (std::vector<std::string>{"a", "a", "-"}));
}

TEST(PlacerTest, SpreadsAGroupBeforeLoadingANode) {
  // "a" is emptiest, but each group still goes one per node first.
  Placer placer({node("a", 8, 16384, 1), node("b", 8, 8192, 2), node("c", 8, 8192, 3)}, 4);
  EXPECT_EQ(placeMany(placer, 4, Resources{1, 1024}),
            (std::vector<std::string>{"a", "b", "c", "a"}));
}

TEST(PlacerTest, PicksTheLeastLoadedThenTheLowestId) {
  Placer placer({node("c", 4, 4096, 3), node("b", 4, 4096, 2), node("a", 4, 4096, 1)}, 4);
  placer.reserve("a", Resources{1, 2048}, "fd00:0:0:1::2");
  Placer::Spread spread;
  EXPECT_EQ(placer.place(Resources{1, 256}, spread)->node_id, "b");  // b and c tie: id
  Placer::Spread other;
  EXPECT_EQ(placer.place(Resources{1, 256}, other)->node_id, "c");  // b now has 256 more
}

TEST(PlacerTest, FallsBackToTheLeastCrowdedNodeWhenOthersAreFull) {
  Placer placer({node("a", 4, 1024, 1), node("b", 4, 4096, 2)}, 4);
  EXPECT_EQ(placeMany(placer, 4, Resources{1, 1024}),
            (std::vector<std::string>{"a", "b", "b", "b"}));
}

TEST(PlacerTest, VolumeLocalityPinsTheNode) {
  Placer placer({node("a", 4, 4096, 1), node("b", 4, 4096, 2)}, 4);
  Placer::Spread spread;
  EXPECT_EQ(placer.place(Resources{1, 2048}, spread, "b")->node_id, "b");
  EXPECT_EQ(placer.place(Resources{1, 2048}, spread, "b")->node_id, "b");
  EXPECT_FALSE(placer.place(Resources{1, 2048}, spread, "b").has_value());
  EXPECT_EQ(placer.explain(Resources{1, 2048}, "b"),
            "waiting for node b, which holds the volumes: it has 0 MiB free, 2048 MiB needed");
  EXPECT_EQ(placer.explain(Resources{1, 2048}, "zz"),
            "waiting for node zz, which holds the volumes: it is not registered");
}

TEST(PlacerTest, NewVolumesNeedTheirSizeInFreeVolumeSpace) {
  constexpr std::int64_t kGiB = std::int64_t{1} << 30;
  std::vector<Node> nodes = {node("a", 4, 4096, 1), node("b", 4, 4096, 2)};
  nodes[0].volume_free_bytes = 10 * kGiB;
  nodes[1].volume_free_bytes = 4 * kGiB;
  Placer placer(nodes, 4);
  Placer::Spread spread;
  EXPECT_EQ(placer.place(Resources{1, 256}, spread, {}, 8 * kGiB)->node_id, "a");
  // a has 2 GiB left: the next 8 GiB fits nowhere, and the reason says how
  // much the roomiest node has.
  EXPECT_FALSE(placer.place(Resources{1, 256}, spread, {}, 8 * kGiB).has_value());
  EXPECT_EQ(placer.explain(Resources{1, 256}, {}, 8 * kGiB),
            "waiting for volume space: no node has 8 GiB free for a slot's volumes (2 nodes "
            "checked; the most any node has is 4 GiB, on b)");
  EXPECT_EQ(placer.place(Resources{1, 256}, spread, {}, 3 * kGiB)->node_id, "b");
  EXPECT_EQ(placer.place(Resources{1, 256}, spread, {}, 2 * kGiB)->node_id, "a");
  // A volume that is already on its node takes no more space there.
  EXPECT_EQ(placer.place(Resources{1, 256}, spread, "b")->node_id, "b");
}

TEST(PlacerTest, VolumeSpaceJoinsTheOtherReasons) {
  constexpr std::int64_t kMiB = std::int64_t{1} << 20;
  std::vector<Node> nodes = {node("a", 4, 512, 1), node("b", 4, 4096, 2), node("c", 4, 4096, 3)};
  nodes[0].volume_free_bytes = 900 * kMiB;
  nodes[1].volume_free_bytes = 100 * kMiB;
  nodes[2].state = NodeState::kDown;
  nodes[2].volume_free_bytes = 1000 * kMiB;  // not counted: it takes no instances
  Placer placer(nodes, 4);
  Placer::Spread spread;
  EXPECT_FALSE(placer.place(Resources{1, 1024}, spread, {}, 200 * kMiB).has_value());
  EXPECT_EQ(placer.explain(Resources{1, 1024}, {}, 200 * kMiB),
            "waiting for capacity: no node has 1024 MiB, 1 vCPU and 200 MiB of volume space free "
            "(3 nodes checked: 1 lacks memory, 1 is down, 1 lacks volume space; the most any "
            "node has is 900 MiB, on a)");
}

TEST(PlacerTest, AddressesAreTheLowestFreeInTheNodePrefix) {
  Placer placer({node("a", 4, 65536, 1)}, 4);
  placer.reserve("a", Resources{1, 256}, "fd00:0:0:1::3");
  placer.reserve("a", Resources{1, 256}, "fd00:0:0:1::5");
  placer.reserve("a", Resources{1, 256}, "fd00:0:0:9::2");  // another node's prefix
  Placer::Spread spread;
  std::vector<std::string> got;
  got.reserve(4);
  for (int i = 0; i < 4; ++i) got.push_back(placer.place(Resources{1, 256}, spread)->address);
  EXPECT_EQ(got, (std::vector<std::string>{"fd00:0:0:1::2", "fd00:0:0:1::4", "fd00:0:0:1::6",
                                           "fd00:0:0:1::7"}));
}

TEST(PlacerTest, SkipsNodesThatCannotTakeInstances) {
  std::vector<Node> nodes = {node("a", 4, 4096, 1), node("b", 4, 4096, 2), node("c", 4, 4096, 3),
                             node("d", 4, 4096, 4), node("e", 4, 4096, 5), node("f", 4, 512, 6)};
  nodes[0].state = NodeState::kUnreachable;
  nodes[1].state = NodeState::kDown;
  nodes[2].cordoned = true;
  nodes[3].draining = true;
  nodes[4].prefix = "fd00::/48";  // not a /64
  Placer placer(nodes, 4);
  Placer::Spread spread;
  EXPECT_FALSE(placer.place(Resources{1, 1024}, spread).has_value());
  EXPECT_EQ(placer.explain(Resources{1, 1024}),
            "waiting for capacity: no node has 1024 MiB and 1 vCPU free (6 nodes checked: 1 lacks "
            "memory, 1 is unreachable, 1 is down, 1 is draining, 1 is cordoned, 1 has no usable "
            "IPv6 prefix or cores)");
  EXPECT_EQ(placer.place(Resources{1, 512}, spread)->node_id, "f");
}

TEST(PlacerTest, RemembersFailedRequestsButStillPlacesSmallerOnes) {
  Placer placer({node("a", 4, 1024, 1), node("b", 4, 1024, 2)}, 4);
  Placer::Spread spread;
  EXPECT_FALSE(placer.place(Resources{1, 2048}, spread).has_value());
  EXPECT_FALSE(placer.place(Resources{2, 4096}, spread).has_value());
  EXPECT_TRUE(placer.place(Resources{1, 1024}, spread).has_value());
}

TEST(PlacerTest, ReserveAfterPlacingKeepsTheIndexRight) {
  Placer placer({node("a", 4, 4096, 1), node("b", 4, 4096, 2)}, 4);
  Placer::Spread s1;
  EXPECT_EQ(placer.place(Resources{1, 256}, s1)->node_id, "a");
  placer.reserve("b", Resources{1, 2048}, "fd00:0:0:2::2");
  Placer::Spread s2;
  auto p = placer.place(Resources{1, 256}, s2);
  EXPECT_EQ(p->node_id, "a");
  EXPECT_EQ(p->address, "fd00:0:0:1::3");
  EXPECT_EQ(p->memory_used_mb, 512);
}

}  // namespace
}  // namespace plfm::reconcile
