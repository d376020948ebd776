// Appliers of the volume snapshot and op events (docs/specs/state/event-types.md) into
// volume_snapshots_view and volume_ops_view (docs/specs/runtime/volume-mounts.md, "Contracts
// for snapshots, backups, restore and verify", Storage). Every one of these events is on its
// volume's aggregate, so each first takes the event on the volume's row (version, updated_at,
// and what the volume object shows of it) and changes nothing when that row already holds
// this event or a later one: a replay is a no-op. Snapshots move requested -> taken ->
// backed_up, or requested -> failed; ops requested -> done | failed. The events that add or
// remove an entry of a node's NodePlan.volume_ops set the row's plan_seq, which the node's
// plan version includes (node_plan.cc).
#include "plfm/core/log.h"
#include "projection_appliers.h"

namespace plfm::cp::projection {

namespace {

// UPDATE volumes_view SET version, updated_at[, <set>] for the event's volume unless the row
// already holds this event or a later one; true when it did not (apply the rest). `set`
// numbers its own parameters from $4; `extra` are their values.
Result<bool> takeOnVolume(pg::Transaction& tx, const Payload& p, const std::string& volume_id,
                          std::string_view set = {}, pg::Params extra = {}) {
  pg::Params params{volume_id, p.e.aggregate_seq, p.e.occurred_at};
  for (auto& v : extra) params.push_back(std::move(v));
  std::string sql = "UPDATE volumes_view SET version = $2, updated_at = $3";
  if (!set.empty()) sql += ", " + std::string(set);
  sql += " WHERE volume_id = $1 AND version < $2 RETURNING 1";
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec(sql, params));
  if (rs.rows() == 0) {
    PLFM_ASSIGN_OR_RETURN(auto row,
                          tx.exec("SELECT 1 FROM volumes_view WHERE volume_id = $1", {volume_id}));
    if (row.rows() == 0) {
      log::error("a volume event names a volume with no row; ignored",
                 {{"seq", p.e.seq}, {"event_type", p.e.event_type}, {"volume_id", volume_id}});
    }
    return false;
  }
  return true;
}

// The columns an op row's end sets: state done | failed ($2), reason ($3), plan_seq ($4),
// updated_at ($5); only a requested op ends.
constexpr std::string_view kEndOp =
    "UPDATE volume_ops_view SET state = $2, reason = $3, plan_seq = $4, updated_at = $5 "
    "WHERE op_id = $1 AND state = 'requested'";

std::string_view opState(bool ok) { return ok ? "done" : "failed"; }

}  // namespace

Result<void> volumeSnapshotRequested(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeSnapshotRequested>());
  PLFM_ASSIGN_OR_RETURN(bool fresh, takeOnVolume(tx, p, ev.volume_id));
  if (!fresh) return ok();
  return exec(
      tx,
      "INSERT INTO volume_snapshots_view (snapshot_id, volume_id, org_id, env_id, node_id, "
      "origin, \"freeze\", state, plan_seq, created_at, updated_at) SELECT $1, volume_id, "
      "org_id, $3, $4, 'api', $5, 'requested', $6, $7, $7 FROM volumes_view WHERE "
      "volume_id = $2 ON CONFLICT DO NOTHING",
      {ev.snapshot_id, ev.volume_id, ev.env_id, ev.node_id, ev.freeze, p.e.seq, p.e.occurred_at});
}

// Creates the row of a snapshot the node took on its own schedule.
Result<void> volumeSnapshotTaken(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeSnapshotTaken>());
  PLFM_ASSIGN_OR_RETURN(
      bool fresh, takeOnVolume(tx, p, ev.volume_id,
                               "last_snapshot_at = GREATEST(last_snapshot_at, $4)", {ev.taken_at}));
  if (!fresh) return ok();
  return exec(
      tx,
      "INSERT INTO volume_snapshots_view (snapshot_id, volume_id, org_id, env_id, node_id, "
      "origin, state, local, method, consistent, freeze_ms, size_bytes, sha256, taken_at, "
      "plan_seq, created_at, updated_at) SELECT $1, volume_id, org_id, $3, $4, $5, 'taken', "
      "true, $6, $7, $8, $9, $10, $11, $12, $13, $13 FROM volumes_view WHERE volume_id = $2 "
      "ON CONFLICT (snapshot_id) DO UPDATE SET state = 'taken', local = true, method = "
      "EXCLUDED.method, consistent = EXCLUDED.consistent, freeze_ms = EXCLUDED.freeze_ms, "
      "size_bytes = EXCLUDED.size_bytes, sha256 = EXCLUDED.sha256, taken_at = "
      "EXCLUDED.taken_at, plan_seq = EXCLUDED.plan_seq, updated_at = EXCLUDED.updated_at "
      "WHERE volume_snapshots_view.state = 'requested'",
      {ev.snapshot_id, ev.volume_id, ev.env_id, ev.node_id, ev.origin, ev.method, ev.consistent,
       ev.freeze_ms, ev.size_bytes, ev.sha256, ev.taken_at, p.e.seq, p.e.occurred_at});
}

Result<void> volumeSnapshotFailed(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeSnapshotFailed>());
  PLFM_ASSIGN_OR_RETURN(bool fresh, takeOnVolume(tx, p, ev.volume_id));
  if (!fresh) return ok();
  return exec(tx,
              "UPDATE volume_snapshots_view SET state = 'failed', reason = $2, plan_seq = $3, "
              "updated_at = $4 WHERE snapshot_id = $1 AND state = 'requested'",
              {ev.snapshot_id, ev.reason, p.e.seq, p.e.occurred_at});
}

// The volume's last backup is the newest consistent point backed up, whatever the order the
// backups finish in.
Result<void> volumeBackedUp(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeBackedUp>());
  PLFM_ASSIGN_OR_RETURN(
      bool fresh, takeOnVolume(tx, p, ev.volume_id,
                               "last_backup_at = GREATEST(last_backup_at, (SELECT taken_at FROM "
                               "volume_snapshots_view WHERE snapshot_id = $4 AND state = 'taken'))",
                               {ev.snapshot_id}));
  if (!fresh) return ok();
  return exec(tx,
              "UPDATE volume_snapshots_view SET state = 'backed_up', backup_id = $2, "
              "backed_up_at = $3, backup_bytes_added = $4, updated_at = $3 WHERE snapshot_id = "
              "$1 AND state = 'taken'",
              {ev.snapshot_id, ev.backup_id, p.e.occurred_at, ev.bytes_added});
}

Result<void> volumeSnapshotExpired(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeSnapshotExpired>());
  PLFM_ASSIGN_OR_RETURN(bool fresh, takeOnVolume(tx, p, ev.volume_id));
  if (!fresh) return ok();
  return exec(tx,
              "UPDATE volume_snapshots_view SET local = local AND NOT $2, backup_expired = "
              "backup_expired OR $3, updated_at = $4 WHERE snapshot_id = $1",
              {ev.snapshot_id, ev.local, ev.backup, p.e.occurred_at});
}

// The target restores (unless it is on its way out); the op joins its node's plan.
Result<void> volumeRestoreRequested(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeRestoreRequested>());
  PLFM_ASSIGN_OR_RETURN(
      bool fresh, takeOnVolume(tx, p, ev.volume_id,
                               "state = CASE WHEN state IN ('deleting', 'deleted') THEN state "
                               "ELSE 'restoring' END, plan_seq = $4",
                               {p.e.seq}));
  if (!fresh) return ok();
  return exec(tx,
              "INSERT INTO volume_ops_view (op_id, kind, volume_id, source_volume_id, org_id, "
              "env_id, node_id, snapshot_id, source, in_place, origin, state, plan_seq, "
              "created_at, updated_at) SELECT $1, 'restore', volume_id, $3, org_id, env_id, $4, "
              "$5, $6, $7, 'api', 'requested', $8, $9, $9 FROM volumes_view WHERE volume_id = $2 "
              "ON CONFLICT DO NOTHING",
              {ev.op_id, ev.volume_id, ev.source_volume_id, ev.node_id, ev.snapshot_id, ev.source,
               ev.in_place, p.e.seq, p.e.occurred_at});
}

// A restoring target is ready again (ok, or a failed in-place restore: its old file is
// untouched), or failed (a new volume whose restore failed).
Result<void> volumeRestored(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeRestored>());
  PLFM_ASSIGN_OR_RETURN(auto in_place, tx.exec("SELECT in_place FROM volume_ops_view WHERE op_id "
                                               "= $1",
                                               {ev.op_id}));
  const bool ready = ev.ok || (in_place.rows() == 1 && in_place.text(0, 0) == "t");
  PLFM_ASSIGN_OR_RETURN(
      bool fresh, takeOnVolume(tx, p, ev.volume_id,
                               "state = CASE WHEN state = 'restoring' THEN $4 ELSE state "
                               "END, reason = CASE WHEN state = 'restoring' THEN $5 ELSE "
                               "reason END, plan_seq = $6",
                               {ready ? "ready" : "failed", ready ? "" : ev.reason, p.e.seq}));
  if (!fresh) return ok();
  return exec(tx, kEndOp, {ev.op_id, opState(ev.ok), ev.reason, p.e.seq, p.e.occurred_at});
}

Result<void> volumeVerifyRequested(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeVerifyRequested>());
  PLFM_ASSIGN_OR_RETURN(bool fresh, takeOnVolume(tx, p, ev.volume_id));
  if (!fresh) return ok();
  return exec(tx,
              "INSERT INTO volume_ops_view (op_id, kind, volume_id, source_volume_id, org_id, "
              "env_id, node_id, snapshot_id, source, in_place, origin, state, plan_seq, "
              "created_at, updated_at) SELECT $1, 'verify', volume_id, volume_id, org_id, "
              "env_id, $3, $4, 'backup', false, 'api', 'requested', $5, $6, $6 FROM volumes_view "
              "WHERE volume_id = $2 ON CONFLICT DO NOTHING",
              {ev.op_id, ev.volume_id, ev.node_id, ev.snapshot_id, p.e.seq, p.e.occurred_at});
}

// Creates the row of a drill the node ran on its own schedule.
Result<void> volumeVerified(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::VolumeVerified>());
  PLFM_ASSIGN_OR_RETURN(bool fresh, takeOnVolume(tx, p, ev.volume_id,
                                                 "last_verified_at = $3, last_verify_ok = $4, "
                                                 "last_verify_reason = $5",
                                                 {ev.ok, ev.reason}));
  if (!fresh) return ok();
  return exec(tx,
              "INSERT INTO volume_ops_view (op_id, kind, volume_id, source_volume_id, org_id, "
              "env_id, node_id, snapshot_id, source, in_place, origin, state, reason, plan_seq, "
              "created_at, updated_at) SELECT $1, 'verify', volume_id, volume_id, org_id, "
              "env_id, $3, $4, 'backup', false, $5, $6, $7, $8, $9, $9 FROM volumes_view WHERE "
              "volume_id = $2 ON CONFLICT (op_id) DO UPDATE SET state = EXCLUDED.state, reason = "
              "EXCLUDED.reason, plan_seq = EXCLUDED.plan_seq, updated_at = EXCLUDED.updated_at "
              "WHERE volume_ops_view.state = 'requested'",
              {ev.op_id, ev.volume_id, ev.node_id, ev.snapshot_id, ev.origin, opState(ev.ok),
               ev.reason, p.e.seq, p.e.occurred_at});
}

}  // namespace plfm::cp::projection
