// Projections on a real PostgreSQL: views follow the log, replay is
// idempotent, a rebuild is byte-identical, and the worker wakes on NOTIFY.
#include "projections.h"

#include <gtest/gtest.h>

#include <thread>

#include "cp_test_support.h"

namespace plfm::cp {

namespace {

using testsupport::appCreated;
using testsupport::orgCreated;

class ProjectionsTest : public testsupport::CpTest {
 protected:
  // A small history touching every projected event type.
  void seed(pg::Connection& conn) {
    appendOk(conn, {orgCreated("org_a", "acme")});
    appendOk(conn, {NewEvent{"org", "org_a", 2, "org.member_added", 1, "org_a",
                             R"({"org_id":"org_a","user_id":"usr_1","role":"owner"})"}});
    appendOk(conn, {NewEvent{"org", "org_a", 3, "org.member_added", 1, "org_a",
                             R"({"org_id":"org_a","user_id":"usr_2","role":"member"})"}});
    appendOk(conn, {NewEvent{"org", "org_a", 4, "org.member_removed", 1, "org_a",
                             R"({"org_id":"org_a","user_id":"usr_2"})"}});
    appendOk(conn, {appCreated("org_a", "app_1", "web"), appCreated("org_a", "app_2", "tmp")});
    appendOk(conn, {NewEvent{"app", "app_2", 2, "app.deleted", 1, "org_a",
                             R"({"app_id":"app_2","org_id":"org_a"})"}});
    appendOk(conn, {NewEvent{"env", "env_1", 1, "env.created", 1, "org_a",
                             R"({"env_id":"env_1","app_id":"app_1","org_id":"org_a",)"
                             R"("name":"prod"})"}});
    appendOk(conn,
             {NewEvent{"env", "env_1", 2, "env.scale_set", 1, "org_a",
                       R"({"env_id":"env_1","org_id":"org_a","processes":{"web":3,"worker":1}})"}});
    appendOk(conn, {NewEvent{"release", "rel_1", 1, "release.created", 1, "org_a",
                             R"({"release_id":"rel_1","app_id":"app_1","org_id":"org_a",)"
                             R"("image_ref":"registry.local/hello:1","image_digest":"sha256:)" +
                                 std::string(64, 'a') + R"(","manifest":{"app":"hello"}})"}});
    appendOk(conn, {NewEvent{"deploy", "dep_1", 1, "deploy.created", 1, "org_a",
                             R"({"deploy_id":"dep_1","app_id":"app_1","env_id":"env_1",)"
                             R"("org_id":"org_a","release_id":"rel_1","strategy":"rolling"})",
                             R"({"deploy_id":"dep_1"})"}});
    appendOk(conn, {NewEvent{"deploy", "dep_1", 2, "deploy.status_changed", 1, "org_a",
                             R"({"deploy_id":"dep_1","status":"succeeded","reason":""})"}});
  }
};

// The scheduler skips its round, and the feeds their query, when only these
// arrived since the last one (scheduler.cc, version_feed.cc): anything they
// read must stay true, unknown types included.
TEST(WatchersRead, OnlyEventsNoWatcherReadsAreSkipped) {
  for (const char* unread : {"app.created", "org.created", "org.member_added", "token.created",
                             "exec.started", "exec.ended", "secrets.fetched"}) {
    EXPECT_FALSE(watchersRead(unread)) << unread;
  }
  for (const char* read :
       {"env.created", "env.scale_set", "deploy.created", "release.created", "node.state_changed",
        "instance.status_reported", "app.deleted", "org.deleted", "org.quotas_set",
        "secrets.version_created", "volume.created", "route.created", "no.such_type"}) {
    EXPECT_TRUE(watchersRead(read)) << read;
  }
}

TEST_F(ProjectionsTest, ViewsFollowTheLog) {
  auto conn = connect();
  seed(conn);
  auto cp = catchUp(conn);
  ASSERT_TRUE(cp.has_value()) << cp.error().toString();
  EXPECT_EQ(*cp, 12);
  EXPECT_EQ(*readCheckpoint(conn), 12);
  auto q = [&](const std::string& sql) {
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs ? std::string(rs->text(0, 0)) : std::string();
  };
  EXPECT_EQ(q("SELECT name || ':' || version FROM orgs_view"), "acme:4");
  EXPECT_EQ(q("SELECT string_agg(user_id || '=' || role, ',') FROM org_members_view"),
            "usr_1=owner");
  EXPECT_EQ(q("SELECT string_agg(app_id, ',') FROM apps_view"), "app_1");
  EXPECT_EQ(q("SELECT string_agg(process_type || '=' || count, ',' ORDER BY process_type) "
              "FROM env_scale_view"),
            "web=3,worker=1");
  EXPECT_EQ(q("SELECT status FROM deploys_view"), "succeeded");
  EXPECT_EQ(q("SELECT current_release_id || ',' || current_deploy_id FROM envs_view"),
            "rel_1,dep_1");
  EXPECT_EQ(q("SELECT manifest->>'app' FROM releases_view"), "hello");
}

TEST_F(ProjectionsTest, ReplayingEventsIsIdempotent) {
  auto conn = connect();
  seed(conn);
  ASSERT_TRUE(catchUp(conn).has_value());
  const std::string before = dumpViews(conn);
  // Apply the whole log again on top, as a crashed worker might.
  auto events = EventStore::readAfter(conn, 0, 1000);
  ASSERT_TRUE(events.has_value());
  auto tx = pg::Transaction::begin(conn);
  ASSERT_TRUE(tx.has_value());
  for (const auto& e : *events) {
    auto r = Projector::apply(*tx, e);
    ASSERT_TRUE(r.has_value()) << e.event_type << ": " << r.error().toString();
  }
  ASSERT_TRUE(tx->commit().has_value());
  EXPECT_EQ(dumpViews(conn), before);
}

TEST_F(ProjectionsTest, RebuildFromSeqZeroIsByteIdentical) {
  auto conn = connect();
  seed(conn);
  ASSERT_TRUE(catchUp(conn, 3).has_value());  // small batches: several transactions
  const std::string before = dumpViews(conn);
  ASSERT_NE(before.find("acme"), std::string::npos);
  auto r = rebuildViews(conn);
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(*r, 12);
  EXPECT_EQ(dumpViews(conn), before);
  EXPECT_EQ(*readCheckpoint(conn), 12);
}

// Node and instance events: stale and duplicate ones change nothing, a
// replay changes nothing, and a rebuild is byte-identical.
TEST_F(ProjectionsTest, NodeAndInstanceViewsReplayAndRebuildIdentically) {
  auto conn = connect();
  seed(conn);
  const std::string node = R"("node_id":"node_1")";
  const std::string inst = R"("instance_id":"inst_1")";
  auto ev = [](std::string agg_type, std::string agg, int seq, std::string type,
               const std::string& payload) {
    return NewEvent{std::move(agg_type), std::move(agg), seq, std::move(type), 1, "org_a",
                    "{" + payload + "}"};
  };
  appendOk(conn, {ev("node", "node_1", 1, "node.enrolled",
                     node + R"(,"enrollment_id":"enr_1","hostname":"n1","cores":4,)"
                            R"("memory_mb":4096,"disk_mb":0,"labels":{},"wireguard_public_key":)"
                            R"("k","underlay_address":"192.0.2.1","runtimes":["qemu"],)"
                            R"("ipv6_prefix":"fd7a:5c00:0:1::/64")")});
  appendOk(conn, {ev("instance", "inst_1", 1, "instance.allocated",
                     inst +
                         R"(,"org_id":"org_a","app_id":"app_1","env_id":"env_1",)"
                         R"("process_type":"web","release_id":"rel_1","deploy_id":"dep_1",)" +
                         node +
                         R"(,"address":"fd7a:5c00:0:1::2","vcpus":1,"memory_mb":256,)"
                         R"("reason":"placed")")});
  auto report = [&](int agg_seq, int gen, int seq, const std::string& phase) {
    return ev("instance", "inst_1", agg_seq, "instance.status_reported",
              inst + "," + node + R"(,"generation":)" + std::to_string(gen) + R"(,"seq":)" +
                  std::to_string(seq) + R"(,"phase":")" + phase +
                  R"(","exit_code":null,"reason":"","timings":{"boot_ms":9})");
  };
  appendOk(conn, {report(2, 1, 2, "healthy")});
  appendOk(conn, {report(3, 1, 1, "booting")});  // older seq: ignored
  appendOk(conn, {ev("instance", "inst_1", 4, "instance.restart_scheduled",
                     inst + "," + node +
                         R"(,"generation":2,"restarts":1,)"
                         R"("not_before":"2026-11-26T11:46:41.000000Z",)"
                         R"("reason":"exited with code 1; restart 1")")});
  appendOk(conn, {report(5, 1, 3, "exited")});  // the old generation: ignored
  appendOk(conn, {ev("node", "node_1", 2, "node.state_changed",
                     node + R"(,"from":"active","to":"unreachable","reason":"no heartbeat")")});
  appendOk(conn, {ev("node", "node_1", 3, "node.scheduling_changed",
                     node + R"(,"cordoned":true,"draining":false)")});
  appendOk(conn,
           {ev("instance", "inst_1", 6, "instance.lost", inst + "," + node + R"(,"reason":"lost")"),
            ev("instance", "inst_1", 7, "instance.stop_requested", inst + R"(,"reason":"back")")});
  const auto last = appendOk(conn, {report(8, 2, 1, "stopped")});
  ASSERT_TRUE(catchUp(conn, 4).has_value());
  auto q = [&](const std::string& sql) {
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  };
  EXPECT_EQ(q("SELECT generation || ' ' || restarts || ' ' || desired_state || ' ' || "
              "current_state || ' ' || lost || ' ' || status_seq || ' ' || plan_seq "
              "FROM instances_view"),
            "2 1 stop stopped true 1 " + std::to_string(last.last_seq));
  EXPECT_EQ(q("SELECT state || ' ' || cordoned || ' ' || draining FROM nodes_view"),
            "unreachable true false");
  // A node.enrolled from before the mesh (no mesh_port, no role): 51820 and
  // worker; its mesh_seq is the enrollment's seq, and going unreachable (not
  // down) leaves the mesh as it was.
  EXPECT_EQ(q("SELECT mesh_port || ' ' || role || ' ' || (mesh_seq = (SELECT seq FROM events "
              "WHERE event_type = 'node.enrolled')) FROM nodes_view"),
            "51820 worker true");
  expectReplayAndRebuildIdentical(conn);
}

// Key rotation (mesh.md, "Contract for key rotation"): a request, a staged
// key replaced by another, the commit; each moves mesh_seq, a stale event
// changes nothing, and a replay and a rebuild are identical.
TEST_F(ProjectionsTest, MeshKeyRotationEventsMoveTheKeyAndTheMeshSeq) {
  auto conn = connect();
  seed(conn);
  const std::string node = R"("node_id":"node_1")";
  auto ev = [&](int seq, std::string type, const std::string& payload) {
    return NewEvent{"node", "node_1", seq, std::move(type), 1, "", "{" + node + payload + "}"};
  };
  const std::string k0(44, 'k');
  const std::string k1(44, 'w');
  const std::string k2(44, 'g');
  appendOk(conn,
           {ev(1, "node.enrolled",
               R"(,"enrollment_id":"enr_1","hostname":"n1","cores":4,"memory_mb":4096,)"
               R"("disk_mb":0,"labels":{},"wireguard_public_key":")" +
                   k0 +
                   R"(","underlay_address":"192.0.2.1","runtimes":["qemu"],)"
                   R"("ipv6_prefix":"fd7a:5c00:0:1::/64","mesh_port":51820,"role":"worker")")});
  auto q = [&](const std::string& sql) {
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  };
  auto last = [&](std::string_view type) {
    return "(SELECT max(seq) FROM events WHERE event_type = '" + std::string(type) + "')";
  };
  auto view = [&] {
    return q(
        "SELECT wireguard_public_key || ' ' || mesh_port || ' ' || "
        "coalesce(next_wireguard_public_key, '-') || ' ' || coalesce(next_mesh_port, 0) || "
        "' ' || mesh_rotation_requested FROM nodes_view");
  };
  appendOk(conn, {ev(2, "node.mesh_key_rotation_requested", R"(,"reason":"age")")});
  ASSERT_TRUE(catchUp(conn, 2).has_value());
  EXPECT_EQ(view(), k0 + " 51820 - 0 true");
  EXPECT_EQ(q("SELECT mesh_seq = " + last("node.mesh_key_rotation_requested") + " FROM nodes_view"),
            "t");
  EXPECT_EQ(q("SELECT mesh_key_since = created_at FROM nodes_view"), "t");
  appendOk(conn,
           {ev(3, "node.mesh_key_staged", R"(,"public_key":")" + k1 + R"(","listen_port":51821)")});
  appendOk(conn,
           {ev(4, "node.mesh_key_staged", R"(,"public_key":")" + k2 + R"(","listen_port":51822)")});
  ASSERT_TRUE(catchUp(conn, 4).has_value());
  EXPECT_EQ(view(), k0 + " 51820 " + k2 + " 51822 true");
  appendOk(conn, {ev(5, "node.mesh_key_rotated",
                     R"(,"public_key":")" + k2 +
                         R"(","listen_port":51822,"previous_public_key":")" + k0 + R"(")")});
  ASSERT_TRUE(catchUp(conn, 5).has_value());
  EXPECT_EQ(view(), k2 + " 51822 - 0 false");
  EXPECT_EQ(q("SELECT (mesh_seq = " + last("node.mesh_key_rotated") +
              ") || ' ' || (mesh_key_since = (SELECT occurred_at FROM events WHERE "
              "event_type = 'node.mesh_key_rotated')) FROM nodes_view"),
            "true true");
  expectReplayAndRebuildIdentical(conn);
  EXPECT_EQ(view(), k2 + " 51822 - 0 false");
}

TEST_F(ProjectionsTest, UnknownEventTypeStopsTheProjectionAndSaysWhere) {
  auto conn = connect();
  appendOk(conn, {orgCreated("org_a", "acme")});
  appendOk(conn, {NewEvent{"thing", "thing_1", 1, "thing.invented", 1, "", "{}"}});
  auto r = catchUp(conn);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("no projection for event type 'thing.invented' (seq 2)"),
            std::string::npos)
      << r.error().message();
  // Both events were in one batch, and the batch rolled back whole.
  EXPECT_EQ(*readCheckpoint(conn), 0);
}

TEST_F(ProjectionsTest, PayloadMissingAFieldStopsTheProjectionAndNamesIt) {
  auto conn = connect();
  appendOk(conn, {orgCreated("org_a", "acme")});
  appendOk(conn, {NewEvent{"app", "app_1", 1, "app.created", 1, "org_a",
                           R"({"app_id":"app_1","org_id":"org_a","name":"web"})"}});
  auto r = catchUp(conn);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("event 2: app.created: payload.description is missing"),
            std::string::npos)
      << r.error().message();
  EXPECT_EQ(*readCheckpoint(conn), 0);
}

TEST_F(ProjectionsTest, WorkerWakesOnNotifyNotOnPoll) {
  ProjectionWorker::Options o;
  o.poll_interval = std::chrono::seconds(60);  // a poll would fail this test
  ProjectionWorker worker(conninfo(), o);
  ASSERT_TRUE(worker.start().has_value());
  EXPECT_EQ(worker.checkpoint(), 0);
  // Append from another connection, as another process would; no kick().
  auto conn = connect();
  auto r = appendOk(conn, {orgCreated("org_a", "acme")});
  EXPECT_TRUE(worker.waitFor(r.last_seq, std::chrono::seconds(10)));
  EXPECT_EQ(worker.checkpoint(), r.last_seq);
  auto rs = conn.exec("SELECT count(*) FROM orgs_view");
  ASSERT_TRUE(rs.has_value());
  EXPECT_EQ(*rs->int64(0, 0), 1);
  // waitBeyond returns early when something new arrives.
  std::thread later([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto c2 = connect();
    appendOk(c2, {orgCreated("org_b", "beta")});
  });
  EXPECT_EQ(worker.waitBeyond(r.last_seq, std::chrono::seconds(10)), r.last_seq + 1);
  later.join();
  worker.stop();
}

}  // namespace
}  // namespace plfm::cp
