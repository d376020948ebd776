// Slots (docs/specs/runtime/volume-mounts.md §Slots): every instance of a
// process has a stable index that its replacement inherits, so that a
// replacement for slot 1 gets slot 1's volumes back, and a slot with volumes
// is pinned to the node that holds them.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "cluster.h"

namespace plfm::reconcile::testing {
namespace {

// Slot -> instance id of the live instances of a group.
std::map<int, std::string> slots(const Cluster& c, const std::string& env,
                                 const std::string& process) {
  std::map<int, std::string> out;
  for (const Instance* i : c.live(env, process)) {
    EXPECT_TRUE(out.emplace(i->slot, i->id).second) << "two live instances in slot " << i->slot;
  }
  return out;
}

std::vector<int> slotKeys(const std::map<int, std::string>& m) {
  std::vector<int> out;
  out.reserve(m.size());
  for (const auto& [k, v] : m) out.push_back(k);
  return out;
}

TEST(SlotsTest, ANewGroupFillsSlotsFromZero) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096);
  c.group("env-1", "web", 3, "rel-1");
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.allocations.size(), 3U);
  EXPECT_EQ(plan.allocations[0].slot, 0);
  EXPECT_EQ(plan.allocations[1].slot, 1);
  EXPECT_EQ(plan.allocations[2].slot, 2);
  c.apply(plan);
  c.settle();
  EXPECT_EQ(slotKeys(slots(c, "env-1", "web")), (std::vector<int>{0, 1, 2}));
}

TEST(SlotsTest, ARollingDeployReplacesEachSlotWithTheSameSlot) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096);
  c.group("env-1", "web", 3, "rel-1");
  c.settle();
  const auto before = slots(c, "env-1", "web");
  c.startDeploy("env-1", "dep-2", "rel-2");
  c.settle();
  const auto after = slots(c, "env-1", "web");
  EXPECT_EQ(slotKeys(after), (std::vector<int>{0, 1, 2}));
  for (const auto& [slot, id] : after) {
    EXPECT_NE(before.at(slot), id) << "slot " << slot << " was not replaced";
    EXPECT_EQ(c.instanceRef(id).release_id, "rel-2");
  }
}

TEST(SlotsTest, AReplacementForALostInstanceTakesItsSlot) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096).node("node-c", 4, 4096);
  c.group("env-1", "web", 3, "rel-1");
  c.settle();
  const auto before = slots(c, "env-1", "web");
  // The instance of slot 1 or 2 that lives on node-b goes with its node.
  int lost_slot = -1;
  for (const auto& [slot, id] : before) {
    if (c.instanceRef(id).node_id == "node-b") lost_slot = slot;
  }
  ASSERT_GE(lost_slot, 0);
  c.nodeRef("node-b").state = NodeState::kDown;
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.lost.size(), 1U);
  ASSERT_EQ(plan.allocations.size(), 1U);
  EXPECT_EQ(plan.allocations[0].slot, lost_slot);
  EXPECT_NE(plan.allocations[0].node_id, "node-b");
}

TEST(SlotsTest, ScalingDownThenUpReusesTheFreedSlot) {
  Cluster c;
  c.node("node-a", 4, 4096);
  c.group("env-1", "web", 3, "rel-1");
  c.settle();
  c.groupRef("env-1", "web").count = 2;
  c.settle();
  const auto two = slots(c, "env-1", "web");
  ASSERT_EQ(two.size(), 2U);
  c.groupRef("env-1", "web").count = 3;
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.allocations.size(), 1U);
  EXPECT_EQ(two.count(plan.allocations[0].slot), 0U) << plan.allocations[0].slot;
  EXPECT_LT(plan.allocations[0].slot, 3);
}

TEST(SlotsTest, EachSlotIsPinnedToTheNodeOfItsVolumes) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096).node("node-c", 4, 4096);
  c.group("env-1", "db", 3, "rel-1");
  c.groupRef("env-1", "db").slot_nodes = {"node-c", "", "node-a"};
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.allocations.size(), 3U);
  std::map<int, std::string> node_of;
  for (const Allocate& a : plan.allocations) node_of[a.slot] = a.node_id;
  EXPECT_EQ(node_of.at(0), "node-c");
  EXPECT_EQ(node_of.at(2), "node-a");
  EXPECT_EQ(node_of.count(1), 1U);  // free to go anywhere
}

TEST(SlotsTest, AnInstanceAwayFromItsSlotsVolumesIsMovedThereAndSaysWhy) {
  // With volumes too (stop-then-start): an instance away from them cannot
  // write them, so its replacement does not wait for it to stop.
  for (bool volumes : {false, true}) {
    Cluster c;
    c.node("node-a", 4, 4096).node("node-b", 4, 4096);
    c.group("env-1", "db", 1, "rel-1");
    c.instance("i-1", "env-1", "db", "rel-1", "node-a");
    c.instanceRef("i-1").slot = 0;
    c.groupRef("env-1", "db").slot_nodes = {"node-b"};
    if (volumes) c.groupRef("env-1", "db").volume_names = {"data"};
    Plan plan = c.reconcile();
    ASSERT_EQ(plan.allocations.size(), 1U) << volumes;
    EXPECT_EQ(plan.allocations[0].node_id, "node-b");
    EXPECT_EQ(plan.allocations[0].slot, 0);
    c.apply(plan);
    c.settle();
    const auto after = slots(c, "env-1", "db");
    ASSERT_EQ(after.size(), 1U);
    EXPECT_EQ(c.instanceRef(after.at(0)).node_id, "node-b");
  }
}

TEST(SlotsTest, APinnedSlotWhoseNodeIsGoneWaitsAndSaysForWhat) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096);
  c.group("env-1", "db", 1, "rel-1");
  c.groupRef("env-1", "db").slot_nodes = {"node-b"};
  c.nodeRef("node-b").state = NodeState::kDown;
  Plan plan = c.reconcile();
  EXPECT_TRUE(plan.allocations.empty());
  ASSERT_EQ(plan.pending.size(), 1U);
  EXPECT_NE(plan.pending[0].reason.find("node-b"), std::string::npos) << plan.pending[0].reason;
}

TEST(SlotsTest, InstancesFromBeforeSlotsHoldNoneAndNewOnesStartAtZero) {
  Cluster c;
  c.node("node-a", 4, 4096);
  c.group("env-1", "web", 2, "rel-1");
  c.instance("i-old", "env-1", "web", "rel-1", "node-a");  // slot -1
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.allocations.size(), 1U);
  EXPECT_EQ(plan.allocations[0].slot, 0);
}

}  // namespace
}  // namespace plfm::reconcile::testing
