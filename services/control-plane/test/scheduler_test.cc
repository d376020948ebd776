// The scheduler on a real PostgreSQL with an injected clock: liveness
// transitions from heartbeats, reasons stored only when they change, one
// leader among replicas, and a round's events in the views before it ends.
#include "scheduler.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "db_conninfo.h"
#include "deploy_create.h"
#include "leadership.h"
#include "nodes.h"
#include "plfm/core/id.h"
#include "scheduler_input.h"
#include "scheduler_test_support.h"

namespace plfm::cp {
namespace {

using namespace std::chrono_literals;

class SchedulerTest : public testsupport::SchedulerTest {
 protected:
  // An env scaled to web=2 with nothing deployed: a round stores its reason.
  void seedEnvWithoutRelease(pg::Connection& conn) {
    commit(conn, [&](pg::Transaction&) {
      return std::vector<NewEvent>{
          testsupport::orgCreated("org_a", "acme"),
          NewEvent{"env", "env_1", 1, "env.created", 1, "org_a",
                   R"({"env_id":"env_1","app_id":"app_1","org_id":"org_a","name":"prod"})"},
          NewEvent{"env", "env_1", 2, "env.scale_set", 1, "org_a",
                   R"({"env_id":"env_1","org_id":"org_a","processes":{"web":2}})"}};
    });
  }
};

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
  seedEnvWithoutRelease(conn);
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
  auto conn = connect();
  EXPECT_EQ(query(conn, "SELECT epoch FROM leadership"), "1");
  // The follower waits on the leader's settled, read from the database.
  for (int i = 0; i < 100 && a->settled() == 0; ++i) std::this_thread::sleep_for(50ms);
  const int64_t settled = a->settled();
  EXPECT_TRUE(b.waitSettled(settled, 5s));
  EXPECT_FALSE(b.waitSettled(1'000'000, 0ms));
  a->stop();
  a.reset();
  // b tries every second; bounded wait for the takeover.
  for (int i = 0; i < 100 && !b.leader(); ++i) std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(b.leader());
  EXPECT_EQ(query(conn, "SELECT epoch FROM leadership"), "2");
  b.stop();
}

// docs/specs/control-plane/ha.md, "Fencing": a round with an epoch that is
// no longer the row's writes nothing and fails with `fenced`.
TEST_F(SchedulerTest, ADeposedLeadersWritesFailTheEpochCheck) {
  auto conn = connect();
  seedEnvWithoutRelease(conn);
  ASSERT_TRUE(conn.exec("UPDATE leadership SET epoch = 7").has_value());
  Scheduler s(conninfo(), store_, *worker_, fake_, options());
  auto round = s.runOnce(conn, Fence{6});
  ASSERT_FALSE(round.has_value());
  EXPECT_TRUE(round.error().is(errc::kFenced)) << round.error().toString();
  EXPECT_EQ(query(conn, "SELECT count(*) FROM scheduler_status"), "0");
  EXPECT_EQ(query(conn, "SELECT settled FROM leadership"), "0");
  // The control: the current epoch writes its reason and its settled.
  round = s.runOnce(conn, Fence{7});
  ASSERT_TRUE(round.has_value()) << round.error().toString();
  EXPECT_EQ(query(conn, "SELECT count(*) FROM scheduler_status"), "1");
  EXPECT_EQ(query(conn, "SELECT settled FROM leadership"), std::to_string(round->checkpoint));
  // The helper itself, in a transaction of its own.
  auto tx = pg::Transaction::begin(conn);
  ASSERT_TRUE(tx.has_value());
  auto fenced = checkFence(*tx, Fence{6});
  ASSERT_FALSE(fenced.has_value());
  EXPECT_TRUE(fenced.error().is(errc::kFenced));
}

// A leader whose lock session the server terminated stops at once, and the
// next leader has a new epoch.
TEST_F(SchedulerTest, ATerminatedLockSessionEndsTheLeadership) {
  auto a = std::make_unique<Scheduler>(conninfo(), store_, *worker_, fake_, options());
  ASSERT_TRUE(a->start().has_value());
  ASSERT_TRUE(a->leader());
  auto conn = connect();
  EXPECT_EQ(query(conn,
                  "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE application_name = 'plfm-leadership'"),
            "1");
  // The ping (every second) notices; the same replica takes the lock again.
  for (int i = 0; i < 100 && query(conn, "SELECT epoch FROM leadership") != "2"; ++i) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(query(conn, "SELECT epoch FROM leadership"), "2");
  for (int i = 0; i < 100 && !(a->leadership().fence() && a->leader()); ++i) {
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_TRUE(a->leadership().fence().has_value());
  EXPECT_EQ(a->leadership().fence()->epoch, 2);
  a->stop();
}

// A lock session that stops answering (as over a broken network: here its
// ping waits on a table lock) ends the leadership within 10 s: the fence
// lapses with the lease (5 s), before the statement timeout errors.
TEST_F(SchedulerTest, ALockSessionThatStopsAnsweringEndsTheLeadershipWithin10s) {
  auto a = std::make_unique<Scheduler>(conninfo(), store_, *worker_, fake_, options());
  ASSERT_TRUE(a->start().has_value());
  ASSERT_TRUE(a->leadership().fence().has_value());
  auto conn = connect();
  auto tx = pg::Transaction::begin(conn);
  ASSERT_TRUE(tx.has_value());
  ASSERT_TRUE(tx->exec("LOCK TABLE leadership IN ACCESS EXCLUSIVE MODE").has_value());
  const auto at = std::chrono::steady_clock::now();
  while (a->leadership().fence().has_value() && std::chrono::steady_clock::now() - at < 15s) {
    std::this_thread::sleep_for(20ms);
  }
  const auto took = std::chrono::steady_clock::now() - at;
  EXPECT_FALSE(a->leadership().fence().has_value());
  EXPECT_LT(took, 10s);
  tx->rollback();
  a->stop();
}

TEST(LockSessionConninfo, KeepalivesOnlyOverTcp) {
  auto local = lockSessionConninfo("host=/tmp/pg dbname=x user=y");
  ASSERT_TRUE(local.has_value()) << local.error().toString();
  EXPECT_EQ(local->find("keepalives"), std::string::npos) << *local;
  EXPECT_NE(local->find("statement_timeout=5000"), std::string::npos) << *local;
  EXPECT_NE(local->find("application_name='plfm-leadership'"), std::string::npos) << *local;
  auto tcp = lockSessionConninfo("postgresql://u@db1:5432,db2:5432/x?options=-c%20a%3Db");
  ASSERT_TRUE(tcp.has_value()) << tcp.error().toString();
  for (const char* want : {"keepalives='1'", "keepalives_idle='2'", "keepalives_interval='1'",
                           "keepalives_count='3'", "tcp_user_timeout='5000'", "host='db1,db2'",
                           "options='-c a=b -c statement_timeout=5000 -c tcp_keepalives_idle=2"}) {
    EXPECT_NE(tcp->find(want), std::string::npos) << want << " in " << *tcp;
  }
  // No host in the string: the environment's PGHOST decides, as for libpq.
  ::setenv("PGHOST", "db3", 1);
  auto from_env = lockSessionConninfo("dbname=x user=y");
  ::unsetenv("PGHOST");
  ASSERT_TRUE(from_env.has_value()) << from_env.error().toString();
  EXPECT_NE(from_env->find("tcp_user_timeout='5000'"), std::string::npos) << *from_env;
  ::setenv("PGHOST", "/run/postgresql", 1);
  auto socket_env = lockSessionConninfo("dbname=x user=y");
  ::unsetenv("PGHOST");
  ASSERT_TRUE(socket_env.has_value());
  EXPECT_EQ(socket_env->find("keepalives"), std::string::npos) << *socket_env;
  auto bad = lockSessionConninfo("host='unterminated");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().detail("field"), "database");
}

TEST(TcpBoundedConninfo, EveryConnectionGetsTheTcpBoundsOnceAndNoStatementTimeout) {
  auto local = tcpBoundedConninfo("host=/tmp/pg dbname=x user=y");
  ASSERT_TRUE(local.has_value()) << local.error().toString();
  EXPECT_EQ(local->find("keepalives"), std::string::npos) << *local;
  EXPECT_EQ(local->find("options"), std::string::npos) << *local;
  auto tcp = tcpBoundedConninfo("host=db1 dbname=x options='-c a=b'");
  ASSERT_TRUE(tcp.has_value()) << tcp.error().toString();
  for (const char* want :
       {"keepalives='1'", "tcp_user_timeout='5000'", "options='-c a=b -c tcp_keepalives_idle=2"}) {
    EXPECT_NE(tcp->find(want), std::string::npos) << want << " in " << *tcp;
  }
  EXPECT_EQ(tcp->find("statement_timeout"), std::string::npos) << *tcp;
  EXPECT_EQ(tcp->find("application_name"), std::string::npos) << *tcp;
  // Again, and the lock session's on top: each bound once.
  auto again = tcpBoundedConninfo(*tcp);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(*again, *tcp);
  auto lock = lockSessionConninfo(*tcp);
  ASSERT_TRUE(lock.has_value());
  for (std::string_view once :
       {"keepalives_idle='", "tcp_keepalives_idle=2", "statement_timeout="}) {
    const size_t at = lock->find(once);
    ASSERT_NE(at, std::string::npos) << once << " in " << *lock;
    EXPECT_EQ(lock->find(once, at + 1), std::string::npos) << once << " twice in " << *lock;
  }
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
