// Failures: crashed instances restart with exponential backoff; instances on
// a node that stays unreachable are replaced elsewhere and stopped when it
// returns.
#include <gtest/gtest.h>

#include "cluster.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::reconcile {
namespace {

using testing::Cluster;
using testing::summarize;

TEST(FailureHandlingTest, CrashedInstancesRestartInPlaceWithExponentialBackoff) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096);
  c.group("env-1", "web", 1, "rel-1");
  c.instance("i-1", "env-1", "web", "rel-1", "node-a");
  std::vector<std::int64_t> delays;
  for (int crash = 0; crash < 9; ++crash) {
    Instance& i = c.instanceRef("i-1");
    i.phase = Phase::kExited;
    i.exit_code = 1;
    i.phase_since_ms = c.in.now_ms;
    Plan plan = c.reconcile();
    ASSERT_EQ(plan.restarts.size(), 1U);
    EXPECT_TRUE(plan.allocations.empty());  // same node, no replacement
    const Restart& r = plan.restarts[0];
    EXPECT_EQ(r.node_id, "node-a");
    EXPECT_EQ(r.generation, crash + 2);
    EXPECT_EQ(r.restarts, crash + 1);
    delays.push_back(r.not_before_ms - c.in.now_ms);
    if (crash == 2) {
      EXPECT_EQ(r.reason, "exited with code 1; restart 3 after 4 s backoff");
    }
    c.apply(plan);
    // Idempotent: the restart is scheduled, nothing more to do.
    EXPECT_TRUE(c.reconcile().restarts.empty());
    c.in.now_ms += 100'000;
  }
  EXPECT_EQ(delays,
            (std::vector<std::int64_t>{1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000}));
}

TEST(FailureHandlingTest, AnInstanceThatCannotStartRestartsToo) {
  Cluster c;
  c.node("node-a", 4, 4096);
  c.group("env-1", "web", 1, "rel-1");
  c.instance("i-1", "env-1", "web", "rel-1", "node-a", Phase::kFailed);
  c.in.config.backoff_base_ms = 250;
  EXPECT_EQ(summarize(c.reconcile()),
            (std::vector<std::string>{
                "restart i-1 gen 2 at 1000250: failed to start; restart 1 after 250 ms backoff",
                "pending env-1/web missing 0 outdated 0: waiting for 1 of 1 instances to become "
                "healthy (1 crashed, restarting with backoff)"}));
}

// Issue 16, "Health that acts": an instance whose checks keep failing is
// restarted in place with backoff, then moved; every step says why.
TEST(FailureHandlingTest, AnUnhealthyInstanceRestartsInPlaceThenIsRescheduled) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096);
  c.group("env-1", "web", 1, "rel-1");
  c.instance("i-1", "env-1", "web", "rel-1", "node-a", Phase::kHealthy);
  EXPECT_TRUE(c.reconcile().restarts.empty());
  for (int round = 0; round < 3; ++round) {
    Instance& i = c.instanceRef("i-1");
    i.phase = Phase::kUnhealthy;
    i.phase_since_ms = c.in.now_ms;
    Plan plan = c.reconcile();
    ASSERT_EQ(plan.restarts.size(), 1U) << round;
    EXPECT_TRUE(plan.drains.empty());
    EXPECT_EQ(plan.restarts[0].node_id, "node-a");
    EXPECT_EQ(plan.restarts[0].restarts, round + 1);
    if (round == 0) {
      EXPECT_EQ(plan.restarts[0].reason, "health checks failing; restart 1 after 1 s backoff");
      EXPECT_EQ(plan.pending.size(), 1U);
      EXPECT_NE(plan.pending[0].reason.find("(1 failing health checks, restarting with backoff)"),
                std::string::npos)
          << plan.pending[0].reason;
    }
    c.apply(plan);
    EXPECT_TRUE(c.reconcile().restarts.empty());  // idempotent
    c.in.now_ms += 100'000;
  }
  // A fourth time: moved. The drain names why; the next round places its
  // replacement on the other node (it holds none of the group).
  Instance& i = c.instanceRef("i-1");
  i.phase = Phase::kUnhealthy;
  i.phase_since_ms = c.in.now_ms;
  Plan plan = c.reconcile();
  EXPECT_TRUE(plan.restarts.empty());
  ASSERT_EQ(plan.drains.size(), 1U);
  EXPECT_EQ(plan.drains[0].reason, "health checks failing after 3 restarts in place; rescheduled");
  c.apply(plan);
  Plan next = c.reconcile();
  ASSERT_EQ(next.allocations.size(), 1U);
  EXPECT_EQ(next.allocations[0].node_id, "node-b");
}

// Two healthy web instances of rel-1 (deploy dep-1, succeeded), one per node.
Cluster twoServingRel1() {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096);
  c.group("env-1", "web", 2, "rel-1", 256, 1, "dep-1");
  c.deploy("env-1", "dep-1", "rel-1", 1, DeployStatus::kSucceeded);
  c.instance("i-1", "env-1", "web", "rel-1", "node-a")
      .instance("i-2", "env-1", "web", "rel-1", "node-b");
  c.instanceRef("i-1").deploy_id = "dep-1";
  c.instanceRef("i-2").deploy_id = "dep-1";
  return c;
}

// A release whose instances never pass their checks fails its deploy (each
// restart counts as a failure) and the previous release keeps serving.
TEST(FailureHandlingTest, ADeployThatNeverBecomesHealthyFailsAndTheOldReleaseKeepsServing) {
  Cluster c = twoServingRel1();
  c.agents.unhealthy_releases = {"rel-2"};
  c.startDeploy("env-1", "dep-2", "rel-2");
  c.settle();
  EXPECT_EQ(c.deployRef("dep-2").status, DeployStatus::kFailed);
  EXPECT_EQ(c.healthy("env-1", "web", "rel-1"), 2);
  EXPECT_EQ(c.live("env-1", "web").size(), 2U);

  // The failing round's reason names the instance and why.
  Cluster one;
  one.node("node-a", 4, 4096);
  one.group("env-1", "web", 1, "rel-1", 256, 1, "dep-1");
  one.deploy("env-1", "dep-1", "rel-1", 1, DeployStatus::kSucceeded);
  one.startDeploy("env-1", "dep-2", "rel-2");
  one.deployRef("dep-2").status = DeployStatus::kInProgress;
  one.instance("i-new", "env-1", "web", "rel-2", "node-a", Phase::kUnhealthy);
  one.instanceRef("i-new").deploy_id = "dep-2";
  one.instanceRef("i-new").restarts = 3;
  Plan plan = one.reconcile();
  ASSERT_EQ(plan.deploys.size(), 1U);
  EXPECT_EQ(plan.deploys[0].to, DeployStatus::kFailed);
  EXPECT_NE(plan.deploys[0].reason.find("last i-new failed its health checks"), std::string::npos)
      << plan.deploys[0].reason;
}

// Issue 16, "Deploy deadlines": a deploy whose new instances never become
// healthy (and never fail either: stuck running) fails once its progress
// deadline passes; each instance that becomes healthy resets the clock.
TEST(FailureHandlingTest, ADeployWithoutProgressFailsAtItsDeadline) {
  Cluster c = twoServingRel1();
  c.startDeploy("env-1", "dep-2", "rel-2");
  c.groupRef("env-1", "web").strategy.progress_deadline_ms = 60'000;
  c.deployRef("dep-2").created_ms = c.in.now_ms;
  c.agents.silent_processes = {"web"};  // new instances stay allocated
  c.apply(c.reconcile());               // in progress, first new instance placed
  c.in.now_ms += 59'000;
  Plan early = c.reconcile();
  EXPECT_TRUE(early.deploys.empty()) << "failed before its deadline";
  // One new instance becomes healthy: progress, the clock restarts.
  for (auto& i : c.in.instances) {
    if (i.release_id == "rel-2") {
      i.phase = Phase::kHealthy;
      i.phase_since_ms = c.in.now_ms;
      break;
    }
  }
  c.apply(c.reconcile());
  c.in.now_ms += 59'000;
  for (const auto& d : c.reconcile().deploys) {
    EXPECT_NE(d.to, DeployStatus::kFailed) << d.reason;
  }
  c.in.now_ms += 2'000;
  Plan late = c.reconcile();
  ASSERT_EQ(late.deploys.size(), 1U);
  EXPECT_EQ(late.deploys[0].to, DeployStatus::kFailed);
  EXPECT_EQ(late.deploys[0].reason.rfind("no progress for 60 s (progress_deadline): ", 0), 0U)
      << late.deploys[0].reason;
  EXPECT_NE(late.deploys[0].reason.find("rel-1 keeps serving"), std::string::npos);
  c.apply(late);
  // The old release still serves (one of its two was drained for the new
  // instance that became healthy; the failed release now rolls back).
  EXPECT_GE(c.healthy("env-1", "web", "rel-1"), 1);
}

// node-a holds two web instances and goes quiet.
Cluster twoNodes() {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096).node("node-c", 4, 4096);
  c.group("env-1", "web", 2, "rel-1", 1024);
  c.instance("i-1", "env-1", "web", "rel-1", "node-a", Phase::kHealthy, 1024)
      .instance("i-2", "env-1", "web", "rel-1", "node-a", Phase::kHealthy, 1024);
  return c;
}

TEST(FailureHandlingTest, ANodeLostThenBack) {
  Cluster c = twoNodes();
  Node& a = c.nodeRef("node-a");
  a.state = NodeState::kUnreachable;
  a.unreachable_since_ms = c.in.now_ms;

  // Within the grace period nothing moves, and the reason says why.
  c.in.now_ms += 30'000;
  EXPECT_EQ(summarize(c.reconcile()),
            (std::vector<std::string>{"pending env-1/web missing 0 outdated 0: waiting for 2 of 2 "
                                      "instances to become healthy; 2 on unreachable nodes, "
                                      "replaced if still unreachable after 60 s"}));

  // Past it, both are written off and replaced on the other nodes.
  c.in.now_ms += 30'000;
  Plan lost = c.reconcile();
  PLFM_EXPECT_GOLDEN("golden/node_lost.json", toJson(lost, 2) + "\n");
  ASSERT_EQ(lost.lost.size(), 2U);
  ASSERT_EQ(lost.allocations.size(), 2U);
  EXPECT_EQ(lost.allocations[0].node_id, "node-b");
  EXPECT_EQ(lost.allocations[1].node_id, "node-c");
  EXPECT_TRUE(lost.stops.empty());  // unreachable: a stop could not be delivered
  c.apply(lost);
  c.agents.report(c.in);
  EXPECT_TRUE(c.reconcile().noActions());

  // The node returns with its stale copies still running: they are stopped.
  c.nodeRef("node-a").state = NodeState::kActive;
  EXPECT_EQ(summarize(c.reconcile()),
            (std::vector<std::string>{
                "stop i-1: node node-a is back; i-1 was replaced while it was unreachable",
                "stop i-2: node node-a is back; i-2 was replaced while it was unreachable"}));
  c.settle();
  EXPECT_EQ(c.healthy("env-1", "web"), 2);
  for (const Instance& i : c.in.instances) EXPECT_NE(i.node_id, "node-a") << i.id;
}

// Written off while unreachable, then the node goes down for good: the stops
// say so (they used to say the node was back).
TEST(FailureHandlingTest, ANodeLostThenDownStopsWithTheRightReason) {
  Cluster c = twoNodes();
  c.nodeRef("node-a").state = NodeState::kUnreachable;
  c.nodeRef("node-a").unreachable_since_ms = c.in.now_ms;
  c.in.now_ms += 60'000;
  Plan lost = c.reconcile();
  ASSERT_EQ(lost.lost.size(), 2U);
  c.apply(lost);
  c.agents.report(c.in);
  c.nodeRef("node-a").state = NodeState::kDown;
  EXPECT_EQ(summarize(c.reconcile()),
            (std::vector<std::string>{
                "stop i-1: node node-a is down; i-1 was replaced while it was unreachable",
                "stop i-2: node node-a is down; i-2 was replaced while it was unreachable"}));
}

TEST(FailureHandlingTest, ANodeBackWithinGraceKeepsItsInstances) {
  Cluster c = twoNodes();
  c.nodeRef("node-a").state = NodeState::kUnreachable;
  c.nodeRef("node-a").unreachable_since_ms = c.in.now_ms;
  c.in.now_ms += 59'999;
  EXPECT_TRUE(c.reconcile().noActions());
  c.nodeRef("node-a").state = NodeState::kActive;
  EXPECT_TRUE(c.reconcile().noActions());
  EXPECT_TRUE(c.reconcile().pending.empty());
}

TEST(FailureHandlingTest, ADownNodeIsWrittenOffAtOnce) {
  Cluster c = twoNodes();
  c.nodeRef("node-a").state = NodeState::kDown;
  Plan plan = c.reconcile();
  EXPECT_EQ(plan.lost.size(), 2U);
  EXPECT_EQ(plan.stops.size(), 2U);
  EXPECT_EQ(plan.lost[0].reason, "node node-a is down");
  EXPECT_EQ(plan.allocations.size(), 2U);
  EXPECT_EQ(plan.allocations[0].reason.substr(0, 39), "replaces i-1, lost with node node-a; on");
}

TEST(FailureHandlingTest, AnInstanceOnAnUnknownNodeIsReplaced) {
  Cluster c = twoNodes();
  c.instanceRef("i-2").node_id = "node-gone";
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.lost.size(), 1U);
  EXPECT_EQ(plan.lost[0].reason, "node node-gone is not registered");
  EXPECT_EQ(plan.allocations.size(), 1U);
}

TEST(FailureHandlingTest, ADrainThatCannotFinishDoesNotBlockARollout) {
  Cluster c = twoNodes();
  c.nodeRef("node-a").state = NodeState::kDown;
  c.instanceRef("i-1").desired = Desired::kDrain;
  c.instanceRef("i-2").desired = Desired::kDrain;
  // Nothing counts on node-a: both replacements go out at once.
  EXPECT_EQ(c.reconcile().allocations.size(), 2U);
}

TEST(FailureHandlingTest, NoRestartOnAnUnreachableNode) {
  Cluster c = twoNodes();
  c.instanceRef("i-1").phase = Phase::kExited;
  c.nodeRef("node-a").state = NodeState::kUnreachable;
  c.nodeRef("node-a").unreachable_since_ms = c.in.now_ms;
  EXPECT_TRUE(c.reconcile().restarts.empty());
}

}  // namespace
}  // namespace plfm::reconcile
