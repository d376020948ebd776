// Deploy strategies and the deploy state machine, round by round: reconcile,
// apply the plan (the projections), let the agents report, advance 1 s.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "cluster.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::reconcile {
namespace {

using testing::Cluster;
using testing::summarize;

// Three nodes, `web` x3 healthy on rel-1 (deploy dep-1, succeeded).
Cluster servingRel1(int count = 3) {
  Cluster c;
  c.node("node-a", 4, 4096).node("node-b", 4, 4096).node("node-c", 4, 4096);
  c.group("env-1", "web", count, "rel-1", 512, 1, "dep-1");
  c.deploy("env-1", "dep-1", "rel-1", 1, DeployStatus::kSucceeded);
  for (int i = 1; i <= count; ++i) {
    const std::string node = std::string("node-") + static_cast<char>('a' + (i - 1) % 3);
    c.instance("i-" + std::to_string(i), "env-1", "web", "rel-1", node, Phase::kHealthy, 512);
    c.instanceRef("i-" + std::to_string(i)).deploy_id = "dep-1";
  }
  return c;
}

// Runs rounds until a plan has no actions; returns the transcript and calls
// `check` after every round's agent reports.
std::string run(Cluster& c, const std::function<void(const Cluster&)>& check, int max_rounds = 40) {
  std::string transcript;
  for (int round = 1; round <= max_rounds; ++round) {
    Plan plan = c.reconcile();
    transcript += "round " + std::to_string(round) + "\n";
    for (const std::string& line : summarize(plan)) transcript += "  " + line + "\n";
    if (plan.noActions()) return transcript;
    c.apply(plan);
    c.in.now_ms += 1000;
    c.agents.report(c.in);
    check(c);
  }
  ADD_FAILURE() << "no fixpoint after " << max_rounds << " rounds:\n" << transcript;
  return transcript;
}

int notStopped(const Cluster& c) {
  return static_cast<int>(
      std::count_if(c.in.instances.begin(), c.in.instances.end(),
                    [](const Instance& i) { return i.phase != Phase::kStopped; }));
}

TEST(DeployStrategyTest, RollingStepByStep) {
  Cluster c = servingRel1();
  c.startDeploy("env-1", "dep-2", "rel-2", Strategy{StrategyKind::kRolling, 1, 0});
  const std::string transcript = run(c, [](const Cluster& w) {
    // max_unavailable 0: three serve at every step; max_surge 1: at most four exist.
    EXPECT_GE(w.healthy("env-1", "web"), 3);
    EXPECT_LE(notStopped(w), 4);
  });
  PLFM_EXPECT_GOLDEN("golden/rolling_deploy.txt", transcript);
  EXPECT_EQ(c.healthy("env-1", "web", "rel-2"), 3);
  EXPECT_EQ(c.deployRef("dep-2").status, DeployStatus::kSucceeded);
  // The new instances ended up one per node.
  std::vector<std::string> nodes;
  for (const Instance* i : c.live("env-1", "web")) nodes.push_back(i->node_id);
  std::sort(nodes.begin(), nodes.end());
  EXPECT_EQ(nodes, (std::vector<std::string>{"node-a", "node-b", "node-c"}));
}

// A deploy of the same release with a new secrets version (a secrets change)
// rolls every instance, exactly like a new release would.
TEST(DeployStrategyTest, ANewSecretsVersionRollsTheSameRelease) {
  Cluster c = servingRel1();
  c.startDeploy("env-1", "dep-2", "rel-1", Strategy{StrategyKind::kRolling, 1, 0});
  c.groupRef("env-1", "web").target.secrets_version = "sv-2";
  run(c, [](const Cluster& w) {
    EXPECT_GE(w.healthy("env-1", "web"), 3);
    EXPECT_LE(notStopped(w), 4);
  });
  const auto live = c.live("env-1", "web");
  ASSERT_EQ(live.size(), 3U);
  for (const Instance* i : live) {
    EXPECT_EQ(i->secrets_version, "sv-2") << i->id;
    EXPECT_EQ(i->release_id, "rel-1");
    EXPECT_NE(i->id.rfind("i-", 0), 0U) << "an instance of the old secrets version survived";
  }
  EXPECT_EQ(c.deployRef("dep-2").status, DeployStatus::kSucceeded);
}

// A secrets change that makes the workload crash fails its deploy, and the
// env goes back to its last good revision: the same release with the old
// secrets version.
TEST(DeployStrategyTest, AFailedSecretsChangeFallsBackToTheOldSecretsVersion) {
  Cluster c = servingRel1();
  c.groupRef("env-1", "web").target.secrets_version = "sv-1";
  for (int i = 1; i <= 3; ++i) c.instanceRef("i-" + std::to_string(i)).secrets_version = "sv-1";
  c.startDeploy("env-1", "dep-2", "rel-1", Strategy{StrategyKind::kRolling, 1, 0});
  ASSERT_EQ(c.groupRef("env-1", "web").stable.secrets_version, "sv-1");
  c.groupRef("env-1", "web").target.secrets_version = "sv-2";
  c.agents.crashing_secrets = {"sv-2"};
  c.settle();
  EXPECT_EQ(c.deployRef("dep-2").status, DeployStatus::kFailed);
  const auto live = c.live("env-1", "web");
  ASSERT_EQ(live.size(), 3U);
  for (const Instance* i : live) EXPECT_EQ(i->secrets_version, "sv-1") << i->id;
  EXPECT_EQ(c.healthy("env-1", "web"), 3);
}

TEST(DeployStrategyTest, RollingWithMaxUnavailableAndNoSurge) {
  Cluster c = servingRel1(4);
  c.startDeploy("env-1", "dep-2", "rel-2", Strategy{StrategyKind::kRolling, 0, 2});
  run(c, [](const Cluster& w) {
    EXPECT_GE(w.healthy("env-1", "web"), 2);
    EXPECT_LE(notStopped(w), 4);
  });
  EXPECT_EQ(c.healthy("env-1", "web", "rel-2"), 4);
}

TEST(DeployStrategyTest, ANewInstanceCountsOnlyOnceHealthy) {
  Cluster c = servingRel1();
  c.startDeploy("env-1", "dep-2", "rel-2");
  c.apply(c.reconcile());  // in_progress, one surge instance
  ASSERT_EQ(c.live("env-1", "web").size(), 4U);
  Instance* fresh = nullptr;
  for (Instance& i : c.in.instances) {
    if (i.release_id == "rel-2") fresh = &i;
  }
  ASSERT_NE(fresh, nullptr);
  for (Phase p : {Phase::kAllocated, Phase::kBooting, Phase::kRunning, Phase::kUnhealthy}) {
    fresh->phase = p;
    Plan plan = c.reconcile();
    EXPECT_TRUE(plan.drains.empty()) << toString(p);
    EXPECT_TRUE(plan.allocations.empty()) << toString(p);
    ASSERT_EQ(plan.pending.size(), 1U);
    EXPECT_EQ(plan.pending[0].reason,
              "rolling deploy dep-2 of rel-2: 0 of 3 new instances healthy, 3 old left (max_surge "
              "1, max_unavailable 0)");
  }
  fresh->phase = Phase::kHealthy;
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.drains.size(), 1U);
  EXPECT_EQ(plan.drains[0].reason,
            "rolling deploy dep-2 of rel-2: replaced by rel-2 (1 of 3 new instances healthy)");
  // The drained instance keeps its surge slot until it has stopped.
  c.apply(plan);
  EXPECT_TRUE(c.reconcile().allocations.empty());
  c.instanceRef(plan.drains[0].instance_id).phase = Phase::kStopped;
  EXPECT_EQ(c.reconcile().allocations.size(), 1U);
}

TEST(DeployStrategyTest, ImmediateReplacesEverythingAtOnce) {
  Cluster c = servingRel1();
  c.startDeploy("env-1", "dep-2", "rel-2", Strategy{StrategyKind::kImmediate, 0, 0});
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.allocations.size(), 3U);
  ASSERT_EQ(plan.drains.size(), 3U);
  EXPECT_EQ(plan.drains[0].reason, "immediate deploy dep-2 of rel-2: replaced by rel-2");
  c.apply(plan);
  c.agents.report(c.in);
  c.settle();
  EXPECT_EQ(c.healthy("env-1", "web", "rel-2"), 3);
  EXPECT_EQ(c.deployRef("dep-2").status, DeployStatus::kSucceeded);
}

TEST(DeployStrategyTest, ANewerDeploySupersedesAnOlderOne) {
  Cluster c = servingRel1();
  c.startDeploy("env-1", "dep-2", "rel-2");
  c.apply(c.reconcile());
  c.agents.report(c.in);
  ASSERT_EQ(c.deployRef("dep-2").status, DeployStatus::kInProgress);

  c.startDeploy("env-1", "dep-3", "rel-3");
  Plan plan = c.reconcile();
  std::vector<std::string> transitions;
  for (const DeployTransition& t : plan.deploys) {
    transitions.push_back(t.deploy_id + " " + std::string(toString(t.from)) + " -> " +
                          std::string(toString(t.to)) + ": " + t.reason);
  }
  EXPECT_EQ(transitions,
            (std::vector<std::string>{"dep-2 in_progress -> superseded: superseded by dep-3",
                                      "dep-3 pending -> in_progress: rolling deploy of "
                                      "rel-3 started"}));
  c.settle();
  EXPECT_EQ(c.healthy("env-1", "web", "rel-3"), 3);
  EXPECT_EQ(c.live("env-1", "web").size(), 3U);
  EXPECT_EQ(c.deployRef("dep-3").status, DeployStatus::kSucceeded);
}

TEST(DeployStrategyTest, AFailedDeployKeepsTheOldReleaseServing) {
  Cluster c = servingRel1();
  c.agents.crashing_releases = {"rel-2"};
  c.startDeploy("env-1", "dep-2", "rel-2");
  const std::string transcript = run(c, [](const Cluster& w) {
    EXPECT_EQ(w.healthy("env-1", "web", "rel-1"), 3);  // never touched
  });
  PLFM_EXPECT_GOLDEN("golden/failed_deploy.txt", transcript);
  const Deploy& d = c.deployRef("dep-2");
  EXPECT_EQ(d.status, DeployStatus::kFailed);
  EXPECT_EQ(c.live("env-1", "web").size(), 3U);
  EXPECT_EQ(c.healthy("env-1", "web", "rel-1"), 3);
  // The rollback is a deploy of its own, which the env now targets.
  const Deploy& r = c.deployRef("dep-auto-0001");
  EXPECT_EQ(r.rollback_of, "dep-2");
  EXPECT_EQ(r.release_id, "rel-1");
  EXPECT_EQ(r.status, DeployStatus::kSucceeded);
  EXPECT_EQ(c.groupRef("env-1", "web").target.deploy_id, "dep-auto-0001");
}

// With auto_rollback off, a failed deploy moves nothing: its instances stay
// (restarting with backoff, for `vt logs`), the old release keeps serving,
// and no rollback deploy is created.
TEST(DeployStrategyTest, WithoutAutoRollbackTheFailedInstancesStayForInspection) {
  Cluster c = servingRel1();
  c.agents.crashing_releases = {"rel-2"};
  Strategy keep;
  keep.auto_rollback = false;
  c.startDeploy("env-1", "dep-2", "rel-2", keep);
  std::string failed_reason;
  for (int round = 0; round < 30; ++round) {
    Plan plan = c.reconcile();
    EXPECT_TRUE(plan.rollbacks.empty());
    for (const DeployTransition& t : plan.deploys) {
      if (t.to == DeployStatus::kFailed) failed_reason = t.reason;
    }
    if (!failed_reason.empty()) {
      EXPECT_TRUE(plan.drains.empty()) << summarize(plan).front();
      EXPECT_TRUE(plan.allocations.empty());
    }
    c.apply(plan);
    c.in.now_ms += 1000;
    c.agents.report(c.in);
  }
  ASSERT_EQ(c.deployRef("dep-2").status, DeployStatus::kFailed);
  EXPECT_NE(failed_reason.find("rel-1 keeps serving; auto_rollback is off; run `vt rollback` or "
                               "deploy a fix"),
            std::string::npos)
      << failed_reason;
  EXPECT_EQ(c.healthy("env-1", "web", "rel-1"), 3);
  ASSERT_EQ(c.live("env-1", "web").size(), 4U);
  const Instance* kept = nullptr;
  for (const Instance* i : c.live("env-1", "web")) {
    if (i->release_id == "rel-2") kept = i;
  }
  ASSERT_NE(kept, nullptr);
  EXPECT_GT(kept->restarts, 3) << "it keeps restarting";
  EXPECT_EQ(c.in.deploys.size(), 2U);
  // The group says why nothing moves, and what to do.
  c.in.now_ms += 120'000;
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.pending.size(), 1U);
  EXPECT_EQ(plan.pending[0].reason,
            "deploy dep-2 failed and auto_rollback is off: 1 instance of rel-2 kept for "
            "inspection (`vt logs`), 3 of 3 earlier instances serving; run `vt rollback` or "
            "deploy a fix");
  // A fix deploys over it like over any failed deploy.
  c.agents.crashing_releases.clear();
  c.startDeploy("env-1", "dep-3", "rel-3");
  c.settle();
  EXPECT_EQ(c.healthy("env-1", "web", "rel-3"), 3);
  EXPECT_EQ(c.live("env-1", "web").size(), 3U);
}

// A process type that the failed release added has no earlier release to
// run: its instances go, and the rollback runs only what the old release
// defines.
TEST(DeployStrategyTest, AProcessTypeNewInTheFailedReleaseIsNotRolledBackToIt) {
  Cluster c = servingRel1(2);
  c.group("env-1", "api", 1, "rel-1", 256, 1, "dep-1");  // target moves to rel-2 below
  c.agents.crashing_releases = {"rel-2"};
  c.startDeploy("env-1", "dep-2", "rel-2");
  c.groupRef("env-1", "api").stable = Revision{};  // rel-1 has no `api`
  std::vector<Rollback> rollbacks;
  for (int round = 0; round < 20 && rollbacks.empty(); ++round) {
    Plan plan = c.reconcile();
    rollbacks = plan.rollbacks;
    for (const Allocate& a : plan.allocations) {
      EXPECT_FALSE(a.process == "api" && a.release_id == "rel-1") << a.reason;
    }
    c.apply(plan);
    c.in.now_ms += 1000;
    c.agents.report(c.in);
  }
  ASSERT_EQ(rollbacks.size(), 1U);
  EXPECT_EQ(rollbacks[0].release_id, "rel-1");
  EXPECT_TRUE(c.live("env-1", "api").empty());
  EXPECT_EQ(c.healthy("env-1", "web", "rel-1"), 2);
}

// A rollback that fails in turn is not rolled back again.
TEST(DeployStrategyTest, AFailedRollbackIsNotRolledBackAgain) {
  Cluster c = servingRel1();
  c.startDeploy("env-1", "dep-2", "rel-2");
  c.deployRef("dep-2").status = DeployStatus::kFailed;
  c.startDeploy("env-1", "dep-auto-9", "rel-1");
  c.deployRef("dep-auto-9").rollback_of = "dep-2";
  c.deployRef("dep-auto-9").status = DeployStatus::kInProgress;
  c.groupRef("env-1", "web").stable = Revision{"rel-1", "dep-1", Resources{1, 512}};
  c.instance("i-r", "env-1", "web", "rel-1", "node-a", Phase::kExited, 512);
  c.instanceRef("i-r").deploy_id = "dep-auto-9";
  c.instanceRef("i-r").restarts = 3;
  Plan plan = c.reconcile();
  EXPECT_TRUE(plan.rollbacks.empty());
  ASSERT_EQ(plan.deploys.size(), 1U);
  EXPECT_EQ(plan.deploys[0].to, DeployStatus::kFailed);
  EXPECT_EQ(plan.deploys[0].reason,
            "auto-rollback of dep-2: new instances failed 4 times (at most 3 allowed), last i-r "
            "exited with code 0; not rolled back again: it was the auto-rollback of dep-2");
}

TEST(DeployStrategyTest, FailureReasonAndRollbackPlan) {
  Cluster c = servingRel1();
  c.startDeploy("env-1", "dep-2", "rel-2");
  c.deployRef("dep-2").status = DeployStatus::kInProgress;
  c.instance("i-new", "env-1", "web", "rel-2", "node-a", Phase::kExited, 512);
  Instance& n = c.instanceRef("i-new");
  n.deploy_id = "dep-2";
  n.restarts = 3;
  n.exit_code = 2;
  PLFM_EXPECT_GOLDEN("golden/failed_deploy_plan.json", toJson(c.reconcile(), 2) + "\n");
}

TEST(DeployStrategyTest, AFailedFirstDeployHasNothingToFallBackTo) {
  Cluster c;
  c.node("node-a", 4, 4096);
  c.group("env-1", "web", 2, "rel-1", 256, 1, "dep-1");
  c.deploy("env-1", "dep-1", "rel-1", 1);
  c.agents.crashing_releases = {"rel-1"};
  c.settle();
  EXPECT_EQ(c.deployRef("dep-1").status, DeployStatus::kFailed);
  EXPECT_TRUE(c.live("env-1", "web").empty());
  Plan plan = c.reconcile();
  ASSERT_EQ(plan.pending.size(), 1U);
  EXPECT_EQ(plan.pending[0].reason, "deploy dep-1 failed and env-1 has no earlier release to run");
  EXPECT_TRUE(c.in.deploys.size() == 1U) << "nothing to roll back to";
}

// The failing round's reason says there is nothing to roll back to.
TEST(DeployStrategyTest, AFailedFirstDeploySaysThereIsNothingToRollBackTo) {
  Cluster c;
  c.node("node-a", 4, 4096);
  c.group("env-1", "web", 1, "rel-1", 256, 1, "dep-1");
  c.deploy("env-1", "dep-1", "rel-1", 1, DeployStatus::kInProgress);
  c.instance("i-1", "env-1", "web", "rel-1", "node-a", Phase::kExited);
  c.instanceRef("i-1").deploy_id = "dep-1";
  c.instanceRef("i-1").restarts = 3;
  Plan plan = c.reconcile();
  EXPECT_TRUE(plan.rollbacks.empty());
  ASSERT_EQ(plan.deploys.size(), 1U);
  EXPECT_NE(plan.deploys[0].reason.find("; there is no earlier release to roll back to"),
            std::string::npos)
      << plan.deploys[0].reason;
}

TEST(DeployStrategyTest, SucceedsOnlyWhenEveryProcessTypeHasConverged) {
  Cluster c = servingRel1(1);
  c.group("env-1", "worker", 1, "rel-1", 256, 1, "dep-1");
  c.instance("w-1", "env-1", "worker", "rel-1", "node-b");
  c.agents.silent_processes = {"worker"};  // the worker's new instance never boots
  c.startDeploy("env-1", "dep-2", "rel-2");
  for (int round = 0; round < 10; ++round) {
    c.apply(c.reconcile());
    c.in.now_ms += 1000;
    c.agents.report(c.in);
  }
  EXPECT_EQ(c.healthy("env-1", "web", "rel-2"), 1);
  EXPECT_EQ(c.deployRef("dep-2").status, DeployStatus::kInProgress);
  c.agents.silent_processes.clear();
  c.settle();
  EXPECT_EQ(c.deployRef("dep-2").status, DeployStatus::kSucceeded);
  EXPECT_EQ(c.healthy("env-1", "worker", "rel-2"), 1);
}

TEST(DeployStrategyTest, ScaleAndDeployAtOnce) {
  Cluster c = servingRel1();
  c.startDeploy("env-1", "dep-2", "rel-2");
  c.groupRef("env-1", "web").count = 5;
  c.settle();
  EXPECT_EQ(c.healthy("env-1", "web", "rel-2"), 5);
  EXPECT_EQ(c.live("env-1", "web").size(), 5U);
  EXPECT_EQ(c.deployRef("dep-2").status, DeployStatus::kSucceeded);
}

}  // namespace
}  // namespace plfm::reconcile
