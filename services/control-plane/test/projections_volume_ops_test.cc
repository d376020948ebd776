// volume_snapshots_view and volume_ops_view on a real PostgreSQL: the snapshot and op state
// machines of docs/specs/runtime/volume-mounts.md ("Contracts for snapshots, backups, restore
// and verify"), what the volume row shows of them, plan_seq for the entries of
// NodePlan.volume_ops, rows the node makes on its own schedule, and replay and rebuild
// identical.
#include <gtest/gtest.h>

#include "cp_test_support.h"
#include "plfm/events/events.h"
#include "projections.h"

namespace plfm::cp {
namespace {

using testsupport::kGiB;
const std::string kSha(64, 'a');
const std::string kBackup(64, 'b');

class VolumeOpProjectionsTest : public testsupport::CpTest {
 protected:
  std::string q(pg::Connection& conn, const std::string& sql) {
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  }
  // state origin local backup_expired plan_seq reason, of one snapshot.
  std::string snapshot(pg::Connection& conn, const std::string& id) {
    return q(conn,
             "SELECT state || ' ' || origin || ' ' || local || ' ' || backup_expired || ' ' || "
             "plan_seq || ' ' || reason FROM volume_snapshots_view WHERE snapshot_id = '" +
                 id + "'");
  }
  // kind state origin source in_place plan_seq reason, of one op.
  std::string op(pg::Connection& conn, const std::string& id) {
    return q(conn,
             "SELECT kind || ' ' || state || ' ' || origin || ' ' || source || ' ' || in_place "
             "|| ' ' || plan_seq || ' ' || reason FROM volume_ops_view WHERE op_id = '" +
                 id + "'");
  }
  std::string volume(pg::Connection& conn, const std::string& id) {
    return q(conn, "SELECT state || ' ' || plan_seq || ' ' || reason FROM volumes_view WHERE " +
                       std::string("volume_id = '") + id + "'");
  }
  template <class T>
  int64_t append(pg::Connection& conn, const T& ev) {
    const int seq = ++versions_[ev.volume_id];
    return appendOk(conn, {events::toNewEvent(ev, seq, "org_a")}).last_seq;
  }
  // A volume placed on n1 and reported ready (origin: how it was made).
  void readyVolume(pg::Connection& conn, const std::string& id, const std::string& name,
                   const std::string& origin = "manifest") {
    append(conn, events::VolumeCreated{.volume_id = id,
                                       .org_id = "org_a",
                                       .app_id = "app_1",
                                       .env_id = "env_1",
                                       .process_type = "web",
                                       .name = name,
                                       .slot = 0,
                                       .full_name = name + "-0",
                                       .size_bytes = kGiB,
                                       .origin = origin});
    append(conn, events::VolumePlaced{.volume_id = id, .env_id = "env_1", .node_id = "n1"});
    if (origin != "manifest") return;
    append(
        conn,
        events::VolumeStatusReported{
            .volume_id = id, .node_id = "n1", .state = "ready", .size_bytes = kGiB, .reason = ""});
  }
  static events::VolumeSnapshotTaken taken(const std::string& snap, const std::string& origin,
                                           const std::string& at) {
    return {.snapshot_id = snap,
            .volume_id = "vol_1",
            .env_id = "env_1",
            .node_id = "n1",
            .origin = origin,
            .method = "reflink",
            .consistent = true,
            .freeze_ms = 12,
            .size_bytes = kGiB,
            .sha256 = kSha,
            .taken_at = at};
  }
  static void catchUpOk(pg::Connection& conn) {
    auto r = catchUp(conn, 2);
    ASSERT_TRUE(r.has_value()) << r.error().toString();
  }

  std::map<std::string, int> versions_;
};

TEST_F(VolumeOpProjectionsTest, ASnapshotIsRequestedTakenBackedUpAndExpires) {
  auto conn = connect();
  readyVolume(conn, "vol_1", "uploads");
  const int64_t requested = append(conn, events::VolumeSnapshotRequested{.snapshot_id = "snap_1",
                                                                         .volume_id = "vol_1",
                                                                         .env_id = "env_1",
                                                                         .node_id = "n1",
                                                                         .freeze = false});
  catchUpOk(conn);
  EXPECT_EQ(snapshot(conn, "snap_1"),
            "requested api false false " + std::to_string(requested) + " ");
  EXPECT_EQ(q(conn, "SELECT org_id || ' ' || \"freeze\" FROM volume_snapshots_view"),
            "org_a false");

  const int64_t took = append(conn, taken("snap_1", "api", "2026-12-06T10:00:00Z"));
  catchUpOk(conn);
  EXPECT_EQ(snapshot(conn, "snap_1"), "taken api true false " + std::to_string(took) + " ");
  EXPECT_EQ(q(conn,
              "SELECT method || ' ' || consistent || ' ' || freeze_ms || ' ' || size_bytes || "
              "' ' || (sha256 = repeat('a', 64)) FROM volume_snapshots_view"),
            "reflink true 12 1073741824 true");
  EXPECT_EQ(q(conn,
              "SELECT last_snapshot_at = '2026-12-06T10:00:00Z' AND last_backup_at IS "
              "NULL FROM volumes_view"),
            "t");

  // A scheduled snapshot the control plane never asked for makes its row; an older
  // consistent point backed up later does not move last_backup_at back.
  append(conn, taken("snap_2", "schedule", "2026-12-06T09:00:00Z"));
  append(conn, events::VolumeBackedUp{.snapshot_id = "snap_1",
                                      .volume_id = "vol_1",
                                      .node_id = "n1",
                                      .backup_id = kBackup,
                                      .bytes_added = 4096,
                                      .duration_ms = 800});
  append(conn, events::VolumeBackedUp{.snapshot_id = "snap_2",
                                      .volume_id = "vol_1",
                                      .node_id = "n1",
                                      .backup_id = kBackup,
                                      .bytes_added = 0,
                                      .duration_ms = 10});
  catchUpOk(conn);
  EXPECT_EQ(snapshot(conn, "snap_2").substr(0, 27), "backed_up schedule true fal");
  EXPECT_EQ(q(conn,
              "SELECT last_snapshot_at = '2026-12-06T10:00:00Z' AND last_backup_at = "
              "'2026-12-06T10:00:00Z' FROM volumes_view"),
            "t");
  EXPECT_EQ(q(conn,
              "SELECT state || ' ' || backup_bytes_added || ' ' || (backed_up_at IS NOT "
              "NULL) FROM volume_snapshots_view WHERE snapshot_id = 'snap_1'"),
            "backed_up 4096 true");

  append(conn, events::VolumeSnapshotExpired{.snapshot_id = "snap_1",
                                             .volume_id = "vol_1",
                                             .node_id = "n1",
                                             .local = true,
                                             .backup = false});
  append(conn, events::VolumeSnapshotExpired{.snapshot_id = "snap_1",
                                             .volume_id = "vol_1",
                                             .node_id = "n1",
                                             .local = false,
                                             .backup = true});
  catchUpOk(conn);
  EXPECT_EQ(snapshot(conn, "snap_1"), "backed_up api false true " + std::to_string(took) + " ");
  expectReplayAndRebuildIdentical(conn);
}

TEST_F(VolumeOpProjectionsTest, AFailedSnapshotStaysFailed) {
  auto conn = connect();
  readyVolume(conn, "vol_1", "uploads");
  append(conn, events::VolumeSnapshotRequested{.snapshot_id = "snap_1",
                                               .volume_id = "vol_1",
                                               .env_id = "env_1",
                                               .node_id = "n1",
                                               .freeze = true});
  const int64_t failed = append(conn, events::VolumeSnapshotFailed{.snapshot_id = "snap_1",
                                                                   .volume_id = "vol_1",
                                                                   .node_id = "n1",
                                                                   .reason = "no space left"});
  // Neither a late taken nor a backup revives it.
  append(conn, taken("snap_1", "api", "2026-12-06T10:00:00Z"));
  append(conn, events::VolumeBackedUp{.snapshot_id = "snap_1",
                                      .volume_id = "vol_1",
                                      .node_id = "n1",
                                      .backup_id = kBackup,
                                      .bytes_added = 1,
                                      .duration_ms = 1});
  catchUpOk(conn);
  EXPECT_EQ(snapshot(conn, "snap_1"),
            "failed api false false " + std::to_string(failed) + " no space left");
  EXPECT_EQ(q(conn, "SELECT last_backup_at IS NULL FROM volumes_view"), "t");
}

TEST_F(VolumeOpProjectionsTest, RestoresMakeTheTargetRestoringThenReadyOrFailed) {
  auto conn = connect();
  readyVolume(conn, "vol_1", "uploads");
  append(conn, taken("snap_1", "schedule", "2026-12-06T10:00:00Z"));
  // Into a new volume that then fails: the new volume is failed with the agent's reason.
  readyVolume(conn, "vol_2", "uploads-restore", "restore");
  const int64_t requested = append(conn, events::VolumeRestoreRequested{.op_id = "vop_1",
                                                                        .volume_id = "vol_2",
                                                                        .source_volume_id = "vol_1",
                                                                        .snapshot_id = "snap_1",
                                                                        .node_id = "n1",
                                                                        .source = "local",
                                                                        .in_place = false});
  catchUpOk(conn);
  EXPECT_EQ(volume(conn, "vol_2"), "restoring " + std::to_string(requested) + " ");
  EXPECT_EQ(op(conn, "vop_1"),
            "restore requested api local false " + std::to_string(requested) + " ");
  const int64_t failed = append(conn, events::VolumeRestored{.op_id = "vop_1",
                                                             .volume_id = "vol_2",
                                                             .node_id = "n1",
                                                             .ok = false,
                                                             .reason = "sha256 mismatch",
                                                             .sha256 = ""});
  catchUpOk(conn);
  EXPECT_EQ(volume(conn, "vol_2"), "failed " + std::to_string(failed) + " sha256 mismatch");
  EXPECT_EQ(op(conn, "vop_1"),
            "restore failed api local false " + std::to_string(failed) + " sha256 mismatch");

  // In place: a failure leaves the volume ready (its file is untouched); then one that works.
  append(conn, events::VolumeRestoreRequested{.op_id = "vop_2",
                                              .volume_id = "vol_1",
                                              .source_volume_id = "vol_1",
                                              .snapshot_id = "snap_1",
                                              .node_id = "n1",
                                              .source = "backup",
                                              .in_place = true});
  catchUpOk(conn);
  EXPECT_EQ(volume(conn, "vol_1").substr(0, 10), "restoring ");
  append(conn, events::VolumeRestored{.op_id = "vop_2",
                                      .volume_id = "vol_1",
                                      .node_id = "n1",
                                      .ok = false,
                                      .reason = "no backup repository is configured on this node",
                                      .sha256 = ""});
  catchUpOk(conn);
  EXPECT_EQ(volume(conn, "vol_1").substr(0, 6), "ready ");
  append(conn, events::VolumeRestoreRequested{.op_id = "vop_3",
                                              .volume_id = "vol_1",
                                              .source_volume_id = "vol_1",
                                              .snapshot_id = "snap_1",
                                              .node_id = "n1",
                                              .source = "local",
                                              .in_place = true});
  const int64_t restored = append(conn, events::VolumeRestored{.op_id = "vop_3",
                                                               .volume_id = "vol_1",
                                                               .node_id = "n1",
                                                               .ok = true,
                                                               .reason = "",
                                                               .sha256 = kSha});
  catchUpOk(conn);
  EXPECT_EQ(volume(conn, "vol_1"), "ready " + std::to_string(restored) + " ");
  EXPECT_EQ(op(conn, "vop_3"), "restore done api local true " + std::to_string(restored) + " ");
  // reported_size_bytes stays until the agent's status report.
  EXPECT_EQ(q(conn, "SELECT reported_size_bytes FROM volumes_view WHERE volume_id = 'vol_1'"),
            "1073741824");
  expectReplayAndRebuildIdentical(conn);
}

TEST_F(VolumeOpProjectionsTest, VerifiesRequestedAndScheduledShowOnTheVolume) {
  auto conn = connect();
  readyVolume(conn, "vol_1", "uploads");
  const int64_t requested = append(
      conn, events::VolumeVerifyRequested{
                .op_id = "vop_1", .volume_id = "vol_1", .snapshot_id = "snap_1", .node_id = "n1"});
  catchUpOk(conn);
  EXPECT_EQ(op(conn, "vop_1"),
            "verify requested api backup false " + std::to_string(requested) + " ");
  EXPECT_EQ(q(conn, "SELECT source_volume_id FROM volume_ops_view"), "vol_1");
  const int64_t verified = append(conn, events::VolumeVerified{.op_id = "vop_1",
                                                               .volume_id = "vol_1",
                                                               .snapshot_id = "snap_1",
                                                               .node_id = "n1",
                                                               .origin = "api",
                                                               .ok = true,
                                                               .reason = "",
                                                               .duration_ms = 1500});
  catchUpOk(conn);
  EXPECT_EQ(op(conn, "vop_1"), "verify done api backup false " + std::to_string(verified) + " ");
  EXPECT_EQ(q(conn,
              "SELECT last_verify_ok || ' ' || (last_verified_at IS NOT NULL) FROM "
              "volumes_view"),
            "true true");
  // The daily drill the agent ran by itself makes its own row.
  const int64_t drill = append(conn, events::VolumeVerified{.op_id = "vop_2",
                                                            .volume_id = "vol_1",
                                                            .snapshot_id = "snap_1",
                                                            .node_id = "n1",
                                                            .origin = "schedule",
                                                            .ok = false,
                                                            .reason = "e2fsck found errors",
                                                            .duration_ms = 900});
  catchUpOk(conn);
  EXPECT_EQ(op(conn, "vop_2"), "verify failed schedule backup false " + std::to_string(drill) +
                                   " e2fsck found errors");
  EXPECT_EQ(q(conn, "SELECT last_verify_ok || ' ' || last_verify_reason FROM volumes_view"),
            "false e2fsck found errors");
  expectReplayAndRebuildIdentical(conn);
}

}  // namespace
}  // namespace plfm::cp
