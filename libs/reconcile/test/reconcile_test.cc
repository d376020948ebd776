// Table-driven reconciler tests: each case builds a cluster, reconciles once
// and compares the plan, one line per action (see summarize()).
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>

#include "cluster.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::reconcile {
namespace {

using testing::Cluster;
using testing::summarize;

struct Case {
  const char* name;
  std::function<void(Cluster&)> build;
  std::vector<std::string> want;
};

// Long expected lines are split string literals, not missing commas.
// NOLINTBEGIN(bugprone-suspicious-missing-comma)
const Case kCases[] = {
    {"an empty cluster has no capacity",
     [](Cluster& c) { c.group("env-1", "web", 2, "rel-1"); },
     {"pending env-1/web missing 2 outdated 0: waiting for capacity: the cluster has no nodes"}},

    {"capacity exhaustion names the request and the nodes checked",
     [](Cluster& c) {
       c.node("node-a", 4, 1024).node("node-b", 4, 1024).node("node-c", 4, 1024);
       c.group("env-1", "web", 1, "rel-1", 2048);
     },
     {"pending env-1/web missing 1 outdated 0: waiting for capacity: no node has 2048 MiB free (3 "
      "nodes checked)"}},

    {"what fits is placed, the rest waits",
     [](Cluster& c) {
       c.node("node-a", 4, 1024).node("node-b", 4, 1024);
       c.group("env-1", "web", 5, "rel-1", 512);
     },
     {"allocate inst-0001 web rel-1 on node-a fd00:0:0:1::2",
      "allocate inst-0002 web rel-1 on node-b fd00:0:0:2::2",
      "allocate inst-0003 web rel-1 on node-a fd00:0:0:1::3",
      "allocate inst-0004 web rel-1 on node-b fd00:0:0:2::3",
      "pending env-1/web missing 1 outdated 0: waiting for capacity: no node has 512 MiB free (2 "
      "nodes checked); waiting for 4 of 5 instances to become healthy"}},

    {"CPU oversubscription stops exactly at cores x overcommit",
     [](Cluster& c) {
       c.node("node-a", 1, 65536);
       c.group("env-1", "web", 5, "rel-1", 256, 1);
     },
     {"allocate inst-0001 web rel-1 on node-a fd00:0:0:1::2",
      "allocate inst-0002 web rel-1 on node-a fd00:0:0:1::3",
      "allocate inst-0003 web rel-1 on node-a fd00:0:0:1::4",
      "allocate inst-0004 web rel-1 on node-a fd00:0:0:1::5",
      "pending env-1/web missing 1 outdated 0: waiting for capacity: no node has 256 MiB and 1 "
      "vCPU free (1 node checked: 1 lacks vCPUs); waiting for 4 of 5 instances to become "
      "healthy"}},

    {"a group spreads over nodes even when one node is much emptier",
     [](Cluster& c) {
       c.node("node-a", 16, 65536).node("node-b", 4, 4096).node("node-c", 4, 4096);
       c.group("env-1", "web", 3, "rel-1", 512);
     },
     {"allocate inst-0001 web rel-1 on node-a fd00:0:0:1::2",
      "allocate inst-0002 web rel-1 on node-b fd00:0:0:2::2",
      "allocate inst-0003 web rel-1 on node-c fd00:0:0:3::2",
      "pending env-1/web missing 0 outdated 0: waiting for 3 of 3 instances to become healthy"}},

    {"spread first, then the least loaded node",
     [](Cluster& c) {
       c.node("node-a", 4, 4096).node("node-b", 4, 4096).node("node-c", 4, 4096);
       c.group("env-1", "web", 1, "rel-1").group("env-1", "worker", 2, "rel-1", 1024);
       c.instance("i-web", "env-1", "web", "rel-1", "node-a", Phase::kHealthy, 2048);
       c.instance("i-w1", "env-1", "worker", "rel-1", "node-b", Phase::kHealthy, 1024);
     },
     // node-a has no worker but is the most loaded; node-c has neither.
     {"allocate inst-0001 worker rel-1 on node-c fd00:0:0:3::2",
      "pending env-1/worker missing 0 outdated 0: waiting for 1 of 2 instances to become "
      "healthy"}},

    {"scale down drains the newest instances on the most crowded node",
     [](Cluster& c) {
       c.node("node-a", 4, 4096).node("node-b", 4, 4096);
       c.group("env-1", "web", 1, "rel-1");
       c.instance("i-1", "env-1", "web", "rel-1", "node-a")
           .instance("i-2", "env-1", "web", "rel-1", "node-a")
           .instance("i-3", "env-1", "web", "rel-1", "node-b");
     },
     {"drain i-2: scale down: web has 3 instances of rel-1, 1 desired",
      "drain i-1: scale down: web has 3 instances of rel-1, 1 desired"}},

    {"an instance that is not serving goes first on scale down",
     [](Cluster& c) {
       c.node("node-a", 4, 4096);
       c.group("env-1", "web", 1, "rel-1");
       c.instance("i-1", "env-1", "web", "rel-1", "node-a", Phase::kUnhealthy)
           .instance("i-2", "env-1", "web", "rel-1", "node-a");
     },
     {"drain i-1: scale down: web has 2 instances of rel-1, 1 desired"}},

    {"instances of a process type that is no longer desired are drained",
     [](Cluster& c) {
       c.node("node-a", 4, 4096);
       c.group("env-1", "web", 1, "rel-1");
       c.instance("i-1", "env-1", "web", "rel-1", "node-a")
           .instance("i-2", "env-1", "cron", "rel-1", "node-a")
           .instance("i-3", "env-2", "web", "rel-1", "node-a");
     },
     {"drain i-2: env-1 no longer runs process type cron",
      "drain i-3: env-2 no longer runs process type web"}},

    {"a cordoned node keeps its instances and takes no new ones",
     [](Cluster& c) {
       c.node("node-a", 4, 4096).node("node-b", 4, 4096);
       c.nodeRef("node-a").cordoned = true;
       c.group("env-1", "web", 2, "rel-1");
       c.instance("i-1", "env-1", "web", "rel-1", "node-a");
     },
     {"allocate inst-0001 web rel-1 on node-b fd00:0:0:2::2",
      "pending env-1/web missing 0 outdated 0: waiting for 1 of 2 instances to become healthy"}},

    {"a draining node's instances are replaced before they are drained",
     [](Cluster& c) {
       c.node("node-a", 4, 4096).node("node-b", 4, 4096);
       c.nodeRef("node-a").draining = true;
       c.group("env-1", "web", 1, "rel-1");
       c.instance("i-1", "env-1", "web", "rel-1", "node-a");
     },
     {"allocate inst-0001 web rel-1 on node-b fd00:0:0:2::2",
      "pending env-1/web missing 0 outdated 1: release rel-1: 0 of 1 new instances healthy, 1 old "
      "left (max_surge 1, max_unavailable 0)"}},

    {"instances with a volume go to the volume's node",
     [](Cluster& c) {
       c.node("node-a", 4, 4096).node("node-b", 4, 4096);
       c.group("env-1", "db", 2, "rel-1", 1024);
       c.groupRef("env-1", "db").slot_nodes = {"node-b", "node-b"};
     },
     {"allocate inst-0001 db rel-1 on node-b fd00:0:0:2::2",
      "allocate inst-0002 db rel-1 on node-b fd00:0:0:2::3",
      "pending env-1/db missing 0 outdated 0: waiting for 2 of 2 instances to become healthy"}},

    {"a volume's node that is full says so",
     [](Cluster& c) {
       c.node("node-a", 4, 4096).node("node-b", 4, 1024);
       c.group("env-1", "db", 1, "rel-1", 2048);
       c.groupRef("env-1", "db").slot_nodes = {"node-b", "node-b"};
     },
     {"pending env-1/db missing 1 outdated 0: waiting for node node-b (holds the volumes of db "
      "slot 0): it has 1024 MiB free, 2048 MiB needed"}},

    {"a group with no release waits for a deploy",
     [](Cluster& c) {
       c.node("node-a", 4, 4096);
       c.group("env-1", "web", 2, "");
     },
     {"pending env-1/web missing 0 outdated 0: no release has been deployed to env-1 yet"}},

    {"a converged cluster needs nothing",
     [](Cluster& c) {
       c.node("node-a", 4, 4096);
       c.group("env-1", "web", 1, "rel-1");
       c.instance("i-1", "env-1", "web", "rel-1", "node-a");
     },
     {}},
};
// NOLINTEND(bugprone-suspicious-missing-comma)

TEST(ReconcileTest, Table) {
  for (const Case& tc : kCases) {
    Cluster c;
    tc.build(c);
    EXPECT_EQ(summarize(c.reconcile()), tc.want) << tc.name;
  }
}

TEST(ReconcileTest, AllocationsCarryTheirReasons) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096);
  c.group("env-1", "web", 2, "rel-1", 512, 1, "dep-1");
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.allocations.size(), 2U);
  EXPECT_EQ(plan.allocations[0].reason,
            "web has 0 of 2 instances of rel-1; on node-a: 0 other web instances there, 512 of "
            "4096 MiB used");
  EXPECT_EQ(plan.allocations[1].deploy_id, "dep-1");
  EXPECT_EQ(plan.allocations[1].resources, (Resources{1, 512}));
}

TEST(ReconcileTest, RejectsDuplicateIdsAndBadConfig) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-a", 4, 4096);
  auto plan = reconcile(c.in, testing::Counter());
  ASSERT_FALSE(plan.has_value());
  EXPECT_EQ(plan.error().code(), "invalid_argument");
  EXPECT_EQ(plan.error().detail("node"), "node-a");

  Cluster d;
  d.in.config.cpu_overcommit = 0;
  EXPECT_FALSE(reconcile(d.in, testing::Counter()).has_value());
}

// Determinism: the same input gives byte-identical output, whatever the
// order of the input's lists.
TEST(ReconcileTest, SameInputsGiveByteIdenticalPlans) {
  Cluster c;
  for (int n = 0; n < 8; ++n) c.node("node-" + std::to_string(n), 4, 8192);
  c.nodeRef("node-3").state = NodeState::kUnreachable;
  c.nodeRef("node-3").unreachable_since_ms = c.in.now_ms - 120'000;
  for (int g = 0; g < 6; ++g) {
    c.group("env-" + std::to_string(g % 3), "p" + std::to_string(g), 2 + g, "rel-2",
            std::int64_t{256} * (1 + g % 3));
  }
  c.instance("i-1", "env-0", "p0", "rel-1", "node-3")
      .instance("i-2", "env-0", "p0", "rel-1", "node-1", Phase::kExited);
  c.instance("i-3", "env-1", "p1", "rel-2", "node-2");
  const std::string first = toJson(c.reconcile());
  for (int seed = 1; seed <= 20; ++seed) {
    Cluster shuffled = c;
    shuffled.ids = testing::Counter();
    std::mt19937 rng(static_cast<unsigned>(seed));
    std::shuffle(shuffled.in.nodes.begin(), shuffled.in.nodes.end(), rng);
    std::shuffle(shuffled.in.groups.begin(), shuffled.in.groups.end(), rng);
    std::shuffle(shuffled.in.instances.begin(), shuffled.in.instances.end(), rng);
    ASSERT_EQ(toJson(shuffled.reconcile()), first) << "seed " << seed;
  }
  EXPECT_NE(first.find("\"lost\":[{"), std::string::npos);
}

TEST(ReconcileTest, GoldenPlanForAMixedCluster) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 2, 2048).node("node-c", 8, 8192);
  c.nodeRef("node-b").state = NodeState::kDown;
  c.group("env-1", "web", 3, "rel-1", 1024, 2, "dep-1");
  c.group("env-1", "worker", 1, "rel-1", 512, 1, "dep-1");
  c.deploy("env-1", "dep-1", "rel-1", 1, DeployStatus::kSucceeded);
  c.instance("i-1", "env-1", "web", "rel-1", "node-a")
      .instance("i-2", "env-1", "web", "rel-1", "node-b")
      .instance("i-3", "env-1", "worker", "rel-1", "node-c", Phase::kExited);
  c.instanceRef("i-3").exit_code = 137;
  c.instanceRef("i-3").restarts = 2;
  PLFM_EXPECT_GOLDEN("golden/mixed_cluster.json", toJson(c.reconcile(), 2) + "\n");
}

}  // namespace
}  // namespace plfm::reconcile
