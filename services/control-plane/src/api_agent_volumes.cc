// The node agent's volume routes (docs/specs/runtime/volume-mounts.md, "Agent routes" of both
// contracts): a volume's status, a snapshot's progress (taken, failed, backed up, expired) and
// the end of a restore or verify op. Each is parsed into a typed report first (every field
// checked: ids by their grammar, sha256 and backup ids as 64 lowercase hex, taken_at as RFC 3339
// UTC, reasons at most 512 printable bytes), then applied on the views of the node's own volume.
// All are idempotent: a report that changes nothing appends nothing (applied: false). A volume,
// snapshot or op that is not on the calling node is 404, a transition that cannot happen 409,
// and a volume whose view lags its log 503 (retry), so two copies of one report append one
// event.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api.h"

namespace plfm::cp {
namespace {

constexpr int64_t kMaxVolumeBytes = int64_t{16} << 40;  // 16 TiB, the largest volume
constexpr size_t kMaxVolumeReason = 512;
constexpr int64_t kMaxDurationMs = 86'400'000;  // a day

Result<int64_t> requireInt(const json::Json& body, std::string_view field, int64_t lo, int64_t hi) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_number_integer() || it->get<int64_t>() < lo ||
      it->get<int64_t>() > hi) {
    return invalidField(field,
                        "must be an integer " + std::to_string(lo) + ".." + std::to_string(hi));
  }
  return it->get<int64_t>();
}

Result<bool> requireBool(const json::Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || !it->is_boolean()) return invalidField(field, "must be true or false");
  return it->get<bool>();
}

// One of `allowed`, named in the error.
Result<std::string> requireOneOf(const json::Json& body, std::string_view field,
                                 std::initializer_list<std::string_view> allowed) {
  PLFM_ASSIGN_OR_RETURN(auto v, requireString(body, field));
  if (std::find(allowed.begin(), allowed.end(), v) != allowed.end()) return v;
  std::string names;
  for (auto a : allowed) names += (names.empty() ? "" : ", ") + std::string(a);
  return invalidField(field, "must be one of " + names);
}

// 64 lowercase hex characters: a sha256, or a restic snapshot id.
bool hex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

Result<std::string> requireHex64(const json::Json& body, std::string_view field) {
  PLFM_ASSIGN_OR_RETURN(auto v, requireString(body, field));
  if (!hex64(v)) return invalidField(field, "must be 64 lowercase hex characters");
  return v;
}

// The agent's words: at most 512 printable ASCII bytes (spaces included), `fallback` when
// empty or absent.
Result<std::string> reasonOf(const json::Json& body, std::string_view fallback) {
  PLFM_ASSIGN_OR_RETURN(auto reason, optionalString(body, "reason"));
  std::string r = reason.value_or("");
  const bool ok = r.size() <= kMaxVolumeReason &&
                  std::all_of(r.begin(), r.end(), [](char c) { return c >= 32 && c < 127; });
  if (!ok) return invalidField("reason", "must be at most 512 printable characters");
  if (r.empty()) r = fallback;
  return r;
}

// RFC 3339 in UTC: "2026-12-06T10:00:00Z", with at most 9 digits of fraction. Only a real
// calendar date and time of day (no leap second) within years 2000..9999.
bool rfc3339Utc(std::string_view s) {
  auto num = [&](size_t at, size_t len, int lo, int hi) -> std::optional<int> {
    int v = 0;
    if (at + len > s.size()) return std::nullopt;
    for (size_t i = at; i < at + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
    }
    std::from_chars(s.data() + at, s.data() + at + len, v);
    if (v < lo || v > hi) return std::nullopt;
    return v;
  };
  if (s.size() < 20 || s.size() > 30 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
      s[13] != ':' || s[16] != ':' || s.back() != 'Z') {
    return false;
  }
  auto y = num(0, 4, 2000, 9999);
  auto m = num(5, 2, 1, 12);
  auto d = num(8, 2, 1, 31);
  if (!y || !m || !d || !num(11, 2, 0, 23) || !num(14, 2, 0, 59) || !num(17, 2, 0, 59)) {
    return false;
  }
  const std::chrono::year_month_day date{std::chrono::year{*y},
                                         std::chrono::month{static_cast<unsigned>(*m)},
                                         std::chrono::day{static_cast<unsigned>(*d)}};
  if (!date.ok()) return false;
  const std::string_view rest = s.substr(19, s.size() - 20);
  if (rest.empty()) return true;
  return rest.size() >= 2 && rest.size() <= 10 && rest[0] == '.' &&
         std::all_of(rest.begin() + 1, rest.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// ---- POST /v1/nodes/{node_id}/volumes/{volume_id}/status ----

struct VolumeReport {
  std::string state;  // ready | failed | deleted
  int64_t size_bytes = 0;
  std::string reason;  // for failed only
};

Result<VolumeReport> parseVolumeReport(const json::Json& body) {
  VolumeReport r;
  PLFM_ASSIGN_OR_RETURN(r.state, requireOneOf(body, "state", {"ready", "failed", "deleted"}));
  if (r.state == "ready" || body.contains("size_bytes")) {
    PLFM_ASSIGN_OR_RETURN(r.size_bytes, requireInt(body, "size_bytes", 0, kMaxVolumeBytes));
  }
  PLFM_ASSIGN_OR_RETURN(r.reason, reasonOf(body, ""));
  if (!r.reason.empty() && r.state != "failed") {
    return invalidField("reason", "is only for state 'failed'");
  }
  if (r.state == "failed" && r.reason.empty()) r.reason = "the node could not create the volume";
  return r;
}

// ---- POST /v1/nodes/{node_id}/volumes/{volume_id}/snapshots/{snapshot_id} ----

struct SnapshotReport {
  std::string state;  // taken | failed | backed_up | expired
  // taken
  std::string origin;  // api | schedule
  std::string method;  // reflink | blockdev-backup | copy
  bool consistent = false;
  int64_t freeze_ms = 0;
  int64_t size_bytes = 0;
  std::string sha256;
  std::string taken_at;
  // failed
  std::string reason;
  // backed_up
  std::string backup_id;
  int64_t bytes_added = 0;
  int64_t duration_ms = 0;
  // expired: what is gone now
  bool local = false;
  bool backup = false;
};

// The fields of each state; any other is refused, so a report says one thing.
const std::map<std::string, std::vector<std::string_view>, std::less<>>& snapshotFields() {
  static const std::map<std::string, std::vector<std::string_view>, std::less<>> m = {
      {"taken",
       {"state", "origin", "method", "consistent", "freeze_ms", "size_bytes", "sha256",
        "taken_at"}},
      {"failed", {"state", "reason"}},
      {"backed_up", {"state", "backup_id", "bytes_added", "duration_ms"}},
      {"expired", {"state", "local", "backup"}},
  };
  return m;
}

Result<void> onlyFieldsOf(const json::Json& body, std::string_view what,
                          const std::vector<std::string_view>& allowed) {
  for (const auto& [k, unused] : body.items()) {
    if (std::find(allowed.begin(), allowed.end(), k) == allowed.end()) {
      return invalidField(k, "is not part of " + std::string(what));
    }
  }
  return ok();
}

Result<SnapshotReport> parseSnapshotReport(const json::Json& body) {
  SnapshotReport r;
  PLFM_ASSIGN_OR_RETURN(r.state,
                        requireOneOf(body, "state", {"taken", "failed", "backed_up", "expired"}));
  PLFM_TRY(onlyFieldsOf(body, "a '" + r.state + "' report", snapshotFields().at(r.state)));
  if (r.state == "taken") {
    PLFM_ASSIGN_OR_RETURN(r.origin, requireOneOf(body, "origin", {"api", "schedule"}));
    PLFM_ASSIGN_OR_RETURN(r.method,
                          requireOneOf(body, "method", {"reflink", "blockdev-backup", "copy"}));
    PLFM_ASSIGN_OR_RETURN(r.consistent, requireBool(body, "consistent"));
    PLFM_ASSIGN_OR_RETURN(r.freeze_ms, requireInt(body, "freeze_ms", -1, kMaxDurationMs));
    PLFM_ASSIGN_OR_RETURN(r.size_bytes, requireInt(body, "size_bytes", 0, kMaxVolumeBytes));
    PLFM_ASSIGN_OR_RETURN(r.sha256, requireHex64(body, "sha256"));
    PLFM_ASSIGN_OR_RETURN(r.taken_at, requireString(body, "taken_at"));
    if (!rfc3339Utc(r.taken_at)) {
      return invalidField("taken_at", "must be RFC 3339 UTC, e.g. 2026-12-06T10:00:00Z");
    }
  } else if (r.state == "failed") {
    PLFM_ASSIGN_OR_RETURN(r.reason, reasonOf(body, "the node could not take the snapshot"));
  } else if (r.state == "backed_up") {
    PLFM_ASSIGN_OR_RETURN(r.backup_id, requireHex64(body, "backup_id"));
    PLFM_ASSIGN_OR_RETURN(r.bytes_added, requireInt(body, "bytes_added", 0, kMaxVolumeBytes));
    PLFM_ASSIGN_OR_RETURN(r.duration_ms, requireInt(body, "duration_ms", 0, kMaxDurationMs));
  } else {
    PLFM_ASSIGN_OR_RETURN(r.local, requireBool(body, "local"));
    PLFM_ASSIGN_OR_RETURN(r.backup, requireBool(body, "backup"));
  }
  return r;
}

// ---- POST /v1/nodes/{node_id}/volume-ops/{op_id} ----

struct OpReport {
  std::string kind;  // restore | verify
  std::string volume_id;
  std::string snapshot_id;
  bool ok = false;
  std::string reason;
  std::string sha256;       // restore: of the restored file; empty when it failed first
  int64_t duration_ms = 0;  // verify
};

Result<OpReport> parseOpReport(const json::Json& body) {
  OpReport r;
  PLFM_ASSIGN_OR_RETURN(r.kind, requireOneOf(body, "kind", {"restore", "verify"}));
  PLFM_TRY(onlyFieldsOf(body, "a '" + r.kind + "' report",
                        r.kind == "restore"
                            ? std::vector<std::string_view>{"kind", "volume_id", "snapshot_id",
                                                            "ok", "reason", "sha256"}
                            : std::vector<std::string_view>{"kind", "volume_id", "snapshot_id",
                                                            "ok", "reason", "duration_ms"}));
  PLFM_ASSIGN_OR_RETURN(auto volume, bodyId<VolumeId>(body, "volume_id"));
  r.volume_id = volume.str();
  PLFM_ASSIGN_OR_RETURN(auto snapshot, bodyId<SnapshotId>(body, "snapshot_id"));
  r.snapshot_id = snapshot.str();
  PLFM_ASSIGN_OR_RETURN(r.ok, requireBool(body, "ok"));
  PLFM_ASSIGN_OR_RETURN(r.reason,
                        reasonOf(body, r.ok ? "" : "the node could not " + r.kind + " it"));
  if (r.kind == "restore") {
    // A failed restore may have no file to hash.
    if (r.ok || body.contains("sha256")) {
      PLFM_ASSIGN_OR_RETURN(r.sha256, requireHex64(body, "sha256"));
    }
  } else {
    PLFM_ASSIGN_OR_RETURN(r.duration_ms, requireInt(body, "duration_ms", 0, kMaxDurationMs));
  }
  return r;
}

// ---- applying them ----

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
