// The scheduler on a real PostgreSQL with an injected clock: liveness
// transitions from heartbeats, reasons stored only when they change, one
// leader among replicas, and a round's events in the views before it ends.
#include "scheduler.h"

#include <gtest/gtest.h>

#include <thread>

#include "deploy_create.h"
#include "nodes.h"
#include "plfm/core/id.h"
#include "scheduler_input.h"
#include "scheduler_test_support.h"

namespace plfm::cp {
namespace {

using namespace std::chrono_literals;
using testsupport::SchedulerTest;

TEST_F(SchedulerTest, HeartbeatsDriveLivenessAndOnlyTransitionsAreEvents) {
  auto conn = connect();
  const std::string node = enroll(conn, "n1");
  Scheduler s(conninfo(), store_, *worker_, fake_, options());
  auto round = s.runOnce(conn);
  ASSERT_TRUE(round.has_value()) << round.error().toString();
  EXPECT_EQ(round->liveness_changes, 0U);

  // Heartbeats within the timeout keep it active and append nothing.
  for (int i = 0; i < 5; ++i) {
    fake_.advance(10s);
    commit(conn, [&](pg::Transaction& tx) {
      auto hb = recordHeartbeat(tx, fake_, node, "0.1.0");
      EXPECT_TRUE(hb.has_value());
      EXPECT_EQ(hb->state, "active");
      EXPECT_FALSE(hb->transition.has_value());
      return std::vector<NewEvent>{};
    });
    ASSERT_TRUE(s.runOnce(conn).has_value());
  }
  EXPECT_EQ(query(conn, "SELECT count(*) FROM events WHERE event_type = 'node.state_changed'"),
            "0");

  fake_.advance(31s);
  round = s.runOnce(conn);
  ASSERT_TRUE(round.has_value()) << round.error().toString();
  EXPECT_EQ(round->liveness_changes, 1U);
  EXPECT_TRUE(round->time_sensitive);
  EXPECT_EQ(query(conn, "SELECT state || ': ' || state_reason FROM nodes_view"),
            "unreachable: no heartbeat for 31 s (timeout 30 s)");
  // Again: nothing new.
  EXPECT_EQ(s.runOnce(conn)->liveness_changes, 0U);

  fake_.advance(601s);
  EXPECT_EQ(s.runOnce(conn)->liveness_changes, 1U);
  EXPECT_EQ(query(conn, "SELECT state || ': ' || state_reason FROM nodes_view"),
            "down: unreachable for 601 s (down after 600 s)");

  // A heartbeat brings it back, once.
  fake_.advance(5s);
  commit(conn, [&](pg::Transaction& tx) {
    auto hb = recordHeartbeat(tx, fake_, node, "0.1.0");
    EXPECT_TRUE(hb.has_value());
    EXPECT_EQ(hb->state, "down");
    EXPECT_TRUE(hb->transition.has_value());
    return hb ? std::vector<NewEvent>{*hb->transition} : std::vector<NewEvent>{};
  });
  commit(conn, [&](pg::Transaction& tx) {
    auto hb = recordHeartbeat(tx, fake_, node, "0.1.0");
    EXPECT_FALSE(hb->transition.has_value());
    return std::vector<NewEvent>{};
  });
  EXPECT_EQ(query(conn, "SELECT state || ': ' || state_reason FROM nodes_view"),
            "active: heartbeat received after 637 s");
  EXPECT_EQ(query(conn, "SELECT count(*) FROM events WHERE event_type = 'node.state_changed'"),
            "3");
}

TEST_F(SchedulerTest, ReasonsAreWrittenOnlyWhenTheyChange) {
  auto conn = connect();
  commit(conn, [&](pg::Transaction&) {
    return std::vector<NewEvent>{
        testsupport::orgCreated("org_a", "acme"),
        NewEvent{"env", "env_1", 1, "env.created", 1, "org_a",
                 R"({"env_id":"env_1","app_id":"app_1","org_id":"org_a","name":"prod"})"},
        NewEvent{"env", "env_1", 2, "env.scale_set", 1, "org_a",
                 R"({"env_id":"env_1","org_id":"org_a","processes":{"web":2}})"}};
  });
  Scheduler s(conninfo(), store_, *worker_, fake_, options());
  auto round = s.runOnce(conn);
  ASSERT_TRUE(round.has_value()) << round.error().toString();
  EXPECT_EQ(round->pending, 1U);
  EXPECT_EQ(round->events, 0U);
  EXPECT_EQ(query(conn, "SELECT reason FROM scheduler_status"),
            "no release has been deployed to env_1 yet");
  const std::string written = query(conn, "SELECT updated_at::text FROM scheduler_status");
  fake_.advance(10s);
  ASSERT_TRUE(s.runOnce(conn).has_value());
  EXPECT_EQ(query(conn, "SELECT updated_at::text FROM scheduler_status"), written);
  // A second scheduler (a restart) starts from the stored reasons.
  Scheduler other(conninfo(), store_, *worker_, fake_, options());
  fake_.advance(10s);
  ASSERT_TRUE(other.runOnce(conn).has_value());
  EXPECT_EQ(query(conn, "SELECT updated_at::text FROM scheduler_status"), written);
  // Scaled to 0: nothing is pending any more and the row goes.
  commit(conn, [&](pg::Transaction&) {
    return std::vector<NewEvent>{
        NewEvent{"env", "env_1", 3, "env.scale_set", 1, "org_a",
                 R"({"env_id":"env_1","org_id":"org_a","processes":{"web":0}})"}};
  });
  ASSERT_TRUE(other.runOnce(conn).has_value());
  EXPECT_EQ(query(conn, "SELECT count(*) FROM scheduler_status"), "0");
}

TEST_F(SchedulerTest, OneLeaderAmongReplicasAndAFailover) {
  auto a = std::make_unique<Scheduler>(conninfo(), store_, *worker_, fake_, options());
  Scheduler b(conninfo(), store_, *worker_, fake_, options());
  ASSERT_TRUE(a->start().has_value());
  ASSERT_TRUE(b.start().has_value());
  EXPECT_TRUE(a->leader());
  EXPECT_FALSE(b.leader());
  // The follower never waits for a reaction it will not produce.
  EXPECT_TRUE(b.waitSettled(1'000'000, 0ms));
  a->stop();
  a.reset();
  // b retries every interval (100 ms here); bounded wait for the takeover.
  for (int i = 0; i < 100 && !b.leader(); ++i) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(b.leader());
  b.stop();
}

// A deploy appended after the views a round read is newer than the deploy
// that round saw fail: the round's auto-rollback would supersede it, so it
// is dropped, and the failure's reason says so.
TEST_F(SchedulerTest, AnAutoRollbackIsDroppedWhenANewerDeployCameFirst) {
  auto conn = connect();
  const std::string org = OrgId::generate().str();
  const std::string app = AppId::generate().str();
  const std::string env = EnvId::generate().str();
  const std::string failed = DeployId::generate().str();
  const std::string rollback = DeployId::generate().str();
  auto lastSeq = [&] {
    return std::stoll(query(conn, "SELECT coalesce(max(seq), 0) FROM events"));
  };
  sched::LoadedState st;
  st.checkpoint = lastSeq();
  st.envs[env] = sched::EnvInfo{org, app};
  st.deploy_org[failed] = org;
  commit(conn, [&](pg::Transaction&) {
    return std::vector<NewEvent>{newDeploy({.org_id = org,
                                            .app_id = app,
                                            .env_id = env,
                                            .release_id = ReleaseId::generate().str(),
                                            .secrets_version = std::nullopt},
                                           toRfc3339(fake_.now()))
                                     .event};
  });
  reconcile::Plan plan;
  plan.deploys.push_back({failed, env, reconcile::DeployStatus::kInProgress,
                          reconcile::DeployStatus::kFailed,
                          "new instances failed 4 times (at most 3 allowed), last inst_x exited "
                          "with code 1; rel_a keeps serving; auto-rollback: " +
                              rollback + " redeploys it"});
  plan.rollbacks.push_back({rollback, env, "rel_a", "", reconcile::StrategyKind::kRolling, failed,
                            "auto-rollback after " + failed + " failed: new instances failed"});
  auto tx = pg::Transaction::begin(conn);
  ASSERT_TRUE(tx.has_value());
  auto events = sched::planEvents(*tx, plan, st);
  ASSERT_TRUE(events.has_value()) << events.error().toString();
  ASSERT_EQ(events->size(), 1U);
  EXPECT_EQ((*events)[0].event_type, "deploy.status_changed");
  EXPECT_NE((*events)[0].payload.find("rel_a keeps serving; not rolled back: a newer deploy of "
                                      "the env came first\""),
            std::string::npos)
      << (*events)[0].payload;
  // Against views that hold that deploy, the rollback goes first.
  st.checkpoint = lastSeq();
  events = sched::planEvents(*tx, plan, st);
  ASSERT_TRUE(events.has_value()) << events.error().toString();
  ASSERT_EQ(events->size(), 2U);
  EXPECT_EQ((*events)[0].event_type, "deploy.rollback_created");
  EXPECT_EQ((*events)[0].aggregate_id, rollback);
  EXPECT_NE((*events)[1].payload.find("auto-rollback: " + rollback), std::string::npos);
  tx->rollback();
}

}  // namespace
}  // namespace plfm::cp
