// volumes_view on a real PostgreSQL: the state machine of
// docs/specs/runtime/volume-mounts.md ("Storage"), plan_seq for the events
// that change a node plan, stale events ignored, and replay and rebuild
// identical.
#include <gtest/gtest.h>

#include "cp_test_support.h"
#include "plfm/events/events.h"
#include "projections.h"

namespace plfm::cp {
namespace {

using testsupport::kGiB;

class VolumeProjectionsTest : public testsupport::CpTest {
 protected:
  std::string q(pg::Connection& conn, const std::string& sql) {
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  }
  // state node size reported plan_seq version reason, of one volume.
  std::string row(pg::Connection& conn, const std::string& volume_id) {
    return q(conn,
             "SELECT state || ' ' || coalesce(node_id, '-') || ' ' || size_bytes || ' ' || "
             "coalesce(reported_size_bytes::text, '-') || ' ' || plan_seq || ' ' || version || "
             "' ' || reason FROM volumes_view WHERE volume_id = '" +
                 volume_id + "'");
  }
  template <class T>
  int64_t append(pg::Connection& conn, const T& ev, int aggregate_seq) {
    return appendOk(conn, {events::toNewEvent(ev, aggregate_seq, "org_a")}).last_seq;
  }
  static events::VolumeCreated created(const std::string& id, const std::string& name,
                                       int64_t slot) {
    return {.volume_id = id,
            .org_id = "org_a",
            .app_id = "app_1",
            .env_id = "env_1",
            .process_type = "web",
            .name = name,
            .slot = slot,
            .full_name = name + "-" + std::to_string(slot),
            .size_bytes = kGiB,
            .origin = "manifest"};
  }
  static events::VolumeStatusReported ready(const std::string& id, int64_t size) {
    return {.volume_id = id, .node_id = "n1", .state = "ready", .size_bytes = size, .reason = ""};
  }
  static void catchUpOk(pg::Connection& conn) {
    auto r = catchUp(conn, 2);
    ASSERT_TRUE(r.has_value()) << r.error().toString();
  }
};

TEST_F(VolumeProjectionsTest, StateMachineFollowsTheLog) {
  auto conn = connect();
  append(conn, created("vol_1", "uploads", 0), 1);
  catchUpOk(conn);
  EXPECT_EQ(row(conn, "vol_1"), "pending - 1073741824 - 0 1 ");
  const int64_t placed = append(
      conn, events::VolumePlaced{.volume_id = "vol_1", .env_id = "env_1", .node_id = "n1"}, 2);
  catchUpOk(conn);
  EXPECT_EQ(row(conn, "vol_1"), "placed n1 1073741824 - " + std::to_string(placed) + " 2 ");
  append(conn, ready("vol_1", kGiB), 3);
  catchUpOk(conn);
  // A report does not change the plan.
  EXPECT_EQ(row(conn, "vol_1"), "ready n1 1073741824 1073741824 " + std::to_string(placed) + " 3 ");
  const int64_t extended =
      append(conn,
             events::VolumeExtendRequested{
                 .volume_id = "vol_1", .env_id = "env_1", .size_bytes = 2 * kGiB},
             4);
  catchUpOk(conn);
  EXPECT_EQ(row(conn, "vol_1"),
            "ready n1 2147483648 1073741824 " + std::to_string(extended) + " 4 ");
  // A second placement changes nothing but the version: placement is once.
  append(conn, events::VolumePlaced{.volume_id = "vol_1", .env_id = "env_1", .node_id = "n2"}, 5);
  catchUpOk(conn);
  EXPECT_EQ(q(conn, "SELECT node_id || ' ' || state FROM volumes_view"), "n1 ready");
  const int64_t deleting = append(
      conn, events::VolumeDeleteRequested{.volume_id = "vol_1", .env_id = "env_1", .reason = "api"},
      6);
  // A late report does not take it out of deleting.
  append(conn,
         events::VolumeStatusReported{.volume_id = "vol_1",
                                      .node_id = "n1",
                                      .state = "failed",
                                      .size_bytes = 0,
                                      .reason = "disk full"},
         7);
  catchUpOk(conn);
  EXPECT_EQ(row(conn, "vol_1"),
            "deleting n1 2147483648 0 " + std::to_string(deleting) + " 7 disk full");
  const int64_t deleted =
      append(conn, events::VolumeDeleted{.volume_id = "vol_1", .node_id = "n1"}, 8);
  catchUpOk(conn);
  EXPECT_EQ(row(conn, "vol_1"),
            "deleted n1 2147483648 0 " + std::to_string(deleted) + " 8 disk full");
}

TEST_F(VolumeProjectionsTest, FailedThenReadyAndNeverPlacedDeletion) {
  auto conn = connect();
  append(conn, created("vol_1", "uploads", 0), 1);
  append(conn, events::VolumePlaced{.volume_id = "vol_1", .env_id = "env_1", .node_id = "n1"}, 2);
  append(conn,
         events::VolumeStatusReported{.volume_id = "vol_1",
                                      .node_id = "n1",
                                      .state = "failed",
                                      .size_bytes = 0,
                                      .reason = "mkfs.ext4 exited 1"},
         3);
  catchUpOk(conn);
  EXPECT_EQ(q(conn, "SELECT state || ' ' || reason FROM volumes_view"),
            "failed mkfs.ext4 exited 1");
  append(conn, ready("vol_1", kGiB), 4);
  catchUpOk(conn);
  EXPECT_EQ(q(conn, "SELECT state || '|' || reason FROM volumes_view"), "ready|");

  // Never placed: deleted straight away, plan_seq untouched (no node's plan had it).
  append(conn, created("vol_2", "cache", 1), 1);
  append(conn, events::VolumeDeleted{.volume_id = "vol_2", .node_id = std::nullopt}, 2);
  catchUpOk(conn);
  EXPECT_EQ(row(conn, "vol_2"), "deleted - 1073741824 - 0 2 ");
  // Its full name is free again for a new live volume.
  append(conn, created("vol_3", "cache", 1), 1);
  catchUpOk(conn);
  EXPECT_EQ(row(conn, "vol_3"), "pending - 1073741824 - 0 1 ");
}

TEST_F(VolumeProjectionsTest, StaleEventsAreIgnored) {
  auto conn = connect();
  append(conn, created("vol_1", "uploads", 0), 1);
  append(conn,
         events::VolumeExtendRequested{
             .volume_id = "vol_1", .env_id = "env_1", .size_bytes = 4 * kGiB},
         2);
  catchUpOk(conn);
  // An event at a version the row already holds changes nothing (a replay).
  auto events = EventStore::readAfter(conn, 0, 100);
  ASSERT_TRUE(events.has_value());
  auto tx = pg::Transaction::begin(conn);
  ASSERT_TRUE(tx.has_value());
  events::VolumeDeleteRequested stale{.volume_id = "vol_1", .env_id = "env_1", .reason = "api"};
  StoredEvent e = events->back();
  e.seq += 100;
  e.event_type = "volume.delete_requested";
  e.payload = events::toPayload(stale);
  ASSERT_TRUE(Projector::apply(*tx, e).has_value());
  ASSERT_TRUE(tx->commit().has_value());
  EXPECT_EQ(q(conn, "SELECT state || ' ' || size_bytes FROM volumes_view"), "pending 4294967296");
}

TEST_F(VolumeProjectionsTest, ReplayAndRebuildAreIdentical) {
  auto conn = connect();
  append(conn, created("vol_1", "uploads", 0), 1);
  append(conn, created("vol_2", "uploads", 1), 1);
  append(conn, events::VolumePlaced{.volume_id = "vol_1", .env_id = "env_1", .node_id = "n1"}, 2);
  append(conn, ready("vol_1", kGiB), 3);
  append(conn,
         events::VolumeDeleteRequested{
             .volume_id = "vol_1", .env_id = "env_1", .reason = "env_deleted"},
         4);
  append(conn, events::VolumeDeleted{.volume_id = "vol_2", .node_id = std::nullopt}, 2);
  catchUpOk(conn);
  ASSERT_NE(dumpViews(conn).find("vol_1"), std::string::npos);
  expectReplayAndRebuildIdentical(conn);
}

}  // namespace
}  // namespace plfm::cp
