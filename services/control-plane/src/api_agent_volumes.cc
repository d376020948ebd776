// The node agent's volume routes (docs/specs/runtime/volume-mounts.md, "Agent routes" of both
// contracts): a volume's status, a snapshot's progress (taken, failed, backed up, expired) and
// the end of a restore or verify op. Each is parsed into a typed report first
// (volume_reports.h), then applied on the views of the node's own volume.
// All are idempotent: a report that changes nothing appends nothing (applied: false). A volume,
// snapshot or op that is not on the calling node is 404, a transition that cannot happen 409,
// and a volume whose view lags its log 503 (retry), so two copies of one report append one
// event.
#include <optional>
#include <string>
#include <vector>

#include "api.h"
#include "volume_reports.h"

namespace plfm::cp {
namespace {

Error notOnNode(std::string_view what, const std::string& id, const std::string& node) {
  return Error(plfm::errc::kNotFound, std::string(what) + " " + id + " not found on node " + node)
      .with(std::string(what) + "_id", id);
}

Error conflict(const std::string& message, std::string_view field) {
  return Error(plfm::errc::kFailedPrecondition, message).with("field", std::string(field));
}

// The calling node's volume as its view has it, refused while the view lags the volume's log
// (every snapshot and op event is on the volume's aggregate).
struct NodeVolume {
  std::string volume_id;
  std::string state;
  std::string org_id;
  std::string env_id;
  int64_t reported_size = -1;  // -1: the node has not reported a size yet
  int64_t version = 0;

  [[nodiscard]] int next() const { return static_cast<int>(version) + 1; }
};

Error volumeLagging(const std::string& volume) {
  return Error(plfm::errc::kUnavailable,
               "volume " + volume + " has a change not yet applied to its view; retry")
      .with("volume_id", volume);
}

Result<NodeVolume> nodeVolume(pg::Transaction& tx, const std::string& node,
                              const std::string& volume) {
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT node_id, state, reported_size_bytes, version, "
                                         "org_id, env_id FROM volumes_view WHERE volume_id = $1",
                                         {volume}));
  if (rs.rows() != 1 || rs.isNull(0, 0) || rs.text(0, 0) != node) {
    return notOnNode("volume", volume, node);
  }
  NodeVolume v{volume,
               std::string(rs.text(0, 1)),
               std::string(rs.text(0, 4)),
               std::string(rs.text(0, 5)),
               rs.isNull(0, 2) ? -1 : rs.int64(0, 2).value_or(-1),
               rs.int64(0, 3).value_or(0)};
  PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, {volume}));
  if (seqs[volume] != v.version) return volumeLagging(volume);
  return v;
}

// Before appending: takes the log lock, and refuses when the volume's log moved since it was
// read (a concurrent report), so each change is appended once.
Result<void> lockUnmoved(pg::Transaction& tx, const NodeVolume& v) {
  PLFM_TRY(EventStore::lockLog(tx));
  PLFM_ASSIGN_OR_RETURN(auto locked, EventStore::aggregateSeqs(tx, {v.volume_id}));
  if (locked[v.volume_id] != v.version) return volumeLagging(v.volume_id);
  return ok();
}

// The events a volume report appends: none when it changes nothing (a retry, or a report
// about a volume on its way out), volume.deleted only for a volume the control plane is
// deleting.
Result<Mutation> applyVolumeReport(pg::Transaction& tx, const std::string& node,
                                   const std::string& volume, const VolumeReport& report) {
  PLFM_ASSIGN_OR_RETURN(auto v, nodeVolume(tx, node, volume));
  Mutation m;
  m.status = 200;
  m.body = {{"volume_id", volume}, {"state", v.state}, {"applied", false}};
  if (report.state == "deleted") {
    if (v.state == "deleted") return m;
    if (v.state != "deleting") {
      return conflict(
          "volume " + volume + " is " + v.state + ", not deleting: the node must keep its file",
          "state");
    }
    m.events = {events::toNewEvent(events::VolumeDeleted{.volume_id = volume, .node_id = node},
                                   v.next(), v.org_id)};
  } else {
    // A volume being deleted keeps that state whatever the node says of it.
    if (v.state == "deleting" || v.state == "deleted") return m;
    if (v.state == report.state && v.reported_size == report.size_bytes) return m;
    m.events = {events::toNewEvent(events::VolumeStatusReported{.volume_id = volume,
                                                                .node_id = node,
                                                                .state = report.state,
                                                                .size_bytes = report.size_bytes,
                                                                .reason = report.reason},
                                   v.next(), v.org_id)};
  }
  PLFM_TRY(lockUnmoved(tx, v));
  // A restoring volume stays restoring until its op ends (projections_volume_ops.cc).
  m.body["state"] = v.state == "restoring" ? v.state : report.state;
  m.body["applied"] = true;
  return m;
}

// A snapshot row of the node's volume.
struct SnapshotRow {
  std::string state;  // requested | taken | backed_up | failed
  std::string origin;
  bool local = false;
  bool backup_expired = false;
  std::string sha256;
  std::string backup_id;
};

Result<std::optional<SnapshotRow>> snapshotRow(pg::Transaction& tx, const std::string& node,
                                               const std::string& volume,
                                               const std::string& snapshot) {
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        tx.exec("SELECT volume_id, node_id, state, origin, local, backup_expired, "
                                "coalesce(sha256, ''), coalesce(backup_id, '') FROM "
                                "volume_snapshots_view WHERE snapshot_id = $1",
                                {snapshot}));
  if (rs.rows() == 0) return std::optional<SnapshotRow>();
  if (rs.text(0, 0) != volume || rs.text(0, 1) != node) {
    return notOnNode("snapshot", snapshot, node);
  }
  return std::optional<SnapshotRow>(
      SnapshotRow{std::string(rs.text(0, 2)), std::string(rs.text(0, 3)), rs.text(0, 4) == "t",
                  rs.text(0, 5) == "t", std::string(rs.text(0, 6)), std::string(rs.text(0, 7))});
}

// What a snapshot report appends on the row it finds (nothing: applied false), or why it
// cannot happen. `after` is the snapshot's state once applied.
Result<std::optional<NewEvent>> snapshotEvent(const NodeVolume& v, const std::string& node,
                                              const std::string& snapshot,
                                              const std::optional<SnapshotRow>& row,
                                              const SnapshotReport& r, std::string& after) {
  const std::string& id = snapshot;
  auto cannot = [&](const std::string& why) {
    return conflict("snapshot " + id + " is " + row->state + ": " + why, "state");
  };
  if (!row) {
    // Only the node's own schedule makes snapshots the control plane has not asked for.
    if (r.state != "taken" || r.origin != "schedule") return notOnNode("snapshot", id, node);
    if (v.state == "deleted") {
      return conflict("volume " + v.volume_id + " is deleted: no new snapshot of it", "state");
    }
  }
  after = row ? row->state : "taken";
  if (r.state == "taken") {
    if (row && row->state == "failed") return cannot("it cannot be taken any more");
    if (row && row->state != "requested") {
      if (row->sha256 != r.sha256) return cannot("it was taken with another sha256");
      return std::optional<NewEvent>();
    }
    after = "taken";
    return std::optional<NewEvent>(
        events::toNewEvent(events::VolumeSnapshotTaken{.snapshot_id = id,
                                                       .volume_id = v.volume_id,
                                                       .env_id = v.env_id,
                                                       .node_id = node,
                                                       .origin = row ? row->origin : r.origin,
                                                       .method = r.method,
                                                       .consistent = r.consistent,
                                                       .freeze_ms = r.freeze_ms,
                                                       .size_bytes = r.size_bytes,
                                                       .sha256 = r.sha256,
                                                       .taken_at = r.taken_at},
                           v.next(), v.org_id));
  }
  if (r.state == "failed") {
    if (row->state == "failed") return std::optional<NewEvent>();
    if (row->state != "requested") return cannot("it was taken, so it cannot fail");
    after = "failed";
    return std::optional<NewEvent>(events::toNewEvent(
        events::VolumeSnapshotFailed{
            .snapshot_id = id, .volume_id = v.volume_id, .node_id = node, .reason = r.reason},
        v.next(), v.org_id));
  }
  if (r.state == "backed_up") {
    if (row->state == "backed_up") {
      if (row->backup_id != r.backup_id) return cannot("it was backed up as another backup");
      return std::optional<NewEvent>();
    }
    if (row->state != "taken") return cannot("only a taken snapshot is backed up");
    after = "backed_up";
    return std::optional<NewEvent>(
        events::toNewEvent(events::VolumeBackedUp{.snapshot_id = id,
                                                  .volume_id = v.volume_id,
                                                  .node_id = node,
                                                  .backup_id = r.backup_id,
                                                  .bytes_added = r.bytes_added,
                                                  .duration_ms = r.duration_ms},
                           v.next(), v.org_id));
  }
  // expired
  if (row->state == "requested" || row->state == "failed") return cannot("it has no copy");
  if (r.backup && row->state != "backed_up") return cannot("it has no backup to forget");
  const bool local_gone = r.local && row->local;
  const bool backup_gone = r.backup && !row->backup_expired;
  if (!local_gone && !backup_gone) return std::optional<NewEvent>();
  return std::optional<NewEvent>(
      events::toNewEvent(events::VolumeSnapshotExpired{.snapshot_id = id,
                                                       .volume_id = v.volume_id,
                                                       .node_id = node,
                                                       .local = local_gone,
                                                       .backup = backup_gone},
                         v.next(), v.org_id));
}

Result<Mutation> applySnapshotReport(pg::Transaction& tx, const std::string& node,
                                     const std::string& volume, const std::string& snapshot,
                                     const SnapshotReport& report) {
  PLFM_ASSIGN_OR_RETURN(auto v, nodeVolume(tx, node, volume));
  PLFM_ASSIGN_OR_RETURN(auto row, snapshotRow(tx, node, volume, snapshot));
  std::string after;
  PLFM_ASSIGN_OR_RETURN(auto event, snapshotEvent(v, node, snapshot, row, report, after));
  Mutation m;
  m.status = 200;
  m.body = {{"snapshot_id", snapshot}, {"state", after}, {"applied", event.has_value()}};
  if (!event) return m;
  PLFM_TRY(lockUnmoved(tx, v));
  m.events = {std::move(*event)};
  return m;
}

// An op of the node: ends once (restore: volume.restored; verify: volume.verified). An
// unknown verify is the node's own daily drill of one of the volume's snapshots.
Result<Mutation> applyOpReport(pg::Transaction& tx, const std::string& node, const std::string& op,
                               const OpReport& r) {
  PLFM_ASSIGN_OR_RETURN(auto v, nodeVolume(tx, node, r.volume_id));
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT kind, volume_id, snapshot_id, node_id, state, "
                                         "origin FROM volume_ops_view WHERE op_id = $1",
                                         {op}));
  std::string origin = "schedule";
  if (rs.rows() == 1) {
    if (rs.text(0, 3) != node || rs.text(0, 1) != r.volume_id) return notOnNode("op", op, node);
    if (rs.text(0, 0) != r.kind) return conflict("op " + op + " is not a " + r.kind, "kind");
    if (rs.text(0, 2) != r.snapshot_id) {
      return conflict("op " + op + " is of another snapshot", "snapshot_id");
    }
    origin = std::string(rs.text(0, 5));
  } else if (r.kind != "verify") {
    return notOnNode("op", op, node);
  } else {
    PLFM_ASSIGN_OR_RETURN(auto snap, snapshotRow(tx, node, r.volume_id, r.snapshot_id));
    if (!snap) return notOnNode("snapshot", r.snapshot_id, node);
  }
  const std::string outcome = r.ok ? "done" : "failed";
  Mutation m;
  m.status = 200;
  m.body = {{"op_id", op}, {"state", outcome}, {"applied", false}};
  if (rs.rows() == 1 && rs.text(0, 4) != "requested") {
    if (rs.text(0, 4) != outcome) {
      return conflict("op " + op + " already ended " + std::string(rs.text(0, 4)), "ok");
    }
    return m;
  }
  PLFM_TRY(lockUnmoved(tx, v));
  m.body["applied"] = true;
  if (r.kind == "restore") {
    m.events = {events::toNewEvent(events::VolumeRestored{.op_id = op,
                                                          .volume_id = r.volume_id,
                                                          .node_id = node,
                                                          .ok = r.ok,
                                                          .reason = r.reason,
                                                          .sha256 = r.sha256},
                                   v.next(), v.org_id)};
  } else {
    m.events = {events::toNewEvent(events::VolumeVerified{.op_id = op,
                                                          .volume_id = r.volume_id,
                                                          .snapshot_id = r.snapshot_id,
                                                          .node_id = node,
                                                          .origin = origin,
                                                          .ok = r.ok,
                                                          .reason = r.reason,
                                                          .duration_ms = r.duration_ms},
                                   v.next(), v.org_id)};
  }
  return m;
}

}  // namespace

void Api::registerAgentVolumeRoutes(http::Router& r) {
  route(r, "POST", "/v1/nodes/{node_id}/volumes/{volume_id}/status", Access::kNode,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_ASSIGN_OR_RETURN(auto volume, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"state", "size_bytes", "reason"}));
          PLFM_ASSIGN_OR_RETURN(auto report, parseVolumeReport(body));
          return runWrite(ctx, [&](pg::Transaction& tx) {
            return applyVolumeReport(tx, node.str(), volume.str(), report);
          });
        });
  route(r, "POST", "/v1/nodes/{node_id}/volumes/{volume_id}/snapshots/{snapshot_id}", Access::kNode,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_ASSIGN_OR_RETURN(auto volume, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_ASSIGN_OR_RETURN(auto snapshot, pathId<SnapshotId>(ctx.req, "snapshot_id"));
          PLFM_ASSIGN_OR_RETURN(
              auto body,
              parseBody(ctx.req, {"state", "origin", "method", "consistent", "freeze_ms",
                                  "size_bytes", "sha256", "taken_at", "reason", "backup_id",
                                  "bytes_added", "duration_ms", "local", "backup"}));
          PLFM_ASSIGN_OR_RETURN(auto report, parseSnapshotReport(body));
          return runWrite(ctx, [&](pg::Transaction& tx) {
            return applySnapshotReport(tx, node.str(), volume.str(), snapshot.str(), report);
          });
        });
  route(r, "POST", "/v1/nodes/{node_id}/volume-ops/{op_id}", Access::kNode,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_ASSIGN_OR_RETURN(auto op, pathId<VolumeOpId>(ctx.req, "op_id"));
          PLFM_ASSIGN_OR_RETURN(
              auto body, parseBody(ctx.req, {"kind", "volume_id", "snapshot_id", "ok", "reason",
                                             "sha256", "duration_ms"}));
          PLFM_ASSIGN_OR_RETURN(auto report, parseOpReport(body));
          return runWrite(ctx, [&](pg::Transaction& tx) {
            return applyOpReport(tx, node.str(), op.str(), report);
          });
        });
}

}  // namespace plfm::cp
