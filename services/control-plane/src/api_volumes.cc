// Volumes: a process slot's persistent disk (docs/specs/runtime/volume-mounts.md
// "API, events and CLI" and "Contracts for snapshots, backups, restore and
// verify", docs/specs/api/v1.md "Volumes"). Users create one ahead of a
// deploy, list, get, extend (never shrink) and delete them, snapshot them,
// restore a snapshot (into a new volume or in place), fork one onto another
// node and run restore drills (verify); the scheduler places them and the
// node agent holds their files and runs the snapshot and restore ops. Every
// mutation is an event (volume.created, volume.extend_requested,
// volume.delete_requested, volume.deleted, volume.snapshot_requested,
// volume.restore_requested, volume.verify_requested) that the projections
// apply to volumes_view, volume_snapshots_view and volume_ops_view, which is
// what these handlers read.
#include "api.h"
#include "plfm/manifest/volume_rules.h"
#include "volume_deletion.h"

namespace plfm::cp {
namespace {

using json::Json;

// The backup policy of a volume (NodePlan.volumes' backup_every_seconds and
// backup_keep): its (process, name) entry in the manifest of the release of
// the env's newest deploy, else the manifest's default.
std::string policyColumn(std::string_view field, int64_t fallback) {
  const std::string f(field);
  return "COALESCE((SELECT (SELECT (m->>'" + f +
         "')::bigint FROM jsonb_array_elements(CASE WHEN jsonb_typeof(r.manifest->'volumes') = "
         "'array' THEN r.manifest->'volumes' ELSE '[]'::jsonb END) m WHERE m->>'name' = "
         "volumes_view.name AND m->>'process' = volumes_view.process_type LIMIT 1) FROM "
         "deploys_view d JOIN releases_view r ON r.release_id = d.release_id WHERE d.env_id = "
         "volumes_view.env_id ORDER BY d.deploy_id DESC LIMIT 1), " +
         std::to_string(fallback) + ") AS " + f;
}

// The API's volume object, from volumes_view (unqualified: policyColumn
// names the table). rpo_seconds: now minus the last backup's consistent point.
const std::string kVolumeColumns =
    "volume_id, env_id, app_id, process_type AS process, name, slot, full_name, size_bytes, "
    "node_id, state, reason, reported_size_bytes, " +
    ts("created_at") + " AS created_at, " + ts("updated_at") + " AS updated_at, " +
    ts("last_snapshot_at") + " AS last_snapshot_at, " + ts("last_backup_at") +
    " AS last_backup_at, CASE WHEN last_backup_at IS NULL THEN NULL ELSE GREATEST(0, "
    "floor(extract(epoch FROM now() - last_backup_at)))::bigint END AS rpo_seconds, " +
    ts("last_verified_at") + " AS last_verified_at, last_verify_ok, last_verify_reason, " +
    policyColumn("backup_every_seconds", manifest::kDefaultBackupEverySeconds) + ", " +
    policyColumn("backup_keep", manifest::kDefaultBackupKeep);

// The API's snapshot object, from volume_snapshots_view.
const std::string kSnapshotColumns =
    "snapshot_id, volume_id, node_id, origin, state, local, method, consistent, freeze_ms, "
    "size_bytes, sha256, " +
    ts("taken_at") + " AS taken_at, backup_id, " + ts("backed_up_at") +
    " AS backed_up_at, backup_expired, reason, " + ts("created_at") + " AS created_at";

// The API's op object (a restore or verify), from volume_ops_view.
const std::string kOpColumns =
    "op_id, kind, volume_id, source_volume_id, snapshot_id, node_id, source, in_place, origin, "
    "state, reason, " +
    ts("created_at") + " AS created_at, " + ts("updated_at") + " AS updated_at";

// At most this many snapshots in a list (newest first).
constexpr int kMaxSnapshotsListed = 200;

// Slots follow instance counts, which scale caps at 1000.
constexpr int64_t kMaxSlot = 999;

// The state of a volume, read inside a mutation's transaction after the
// org's lock (so the view holds every event of the org committed so far).
struct VolumeRow {
  Json body;  // the API's representation
  std::string id, org, env, app, process, name, full_name, state;
  std::optional<std::string> node;  // nullopt: never placed
  int64_t slot = 0;
  uint64_t size_bytes = 0;
};

Error volumeNotFound(const std::string& id) {
  return Error(plfm::errc::kNotFound, "volume " + id + " not found").with("volume_id", id);
}

// "size": "10GiB" or "size_bytes": N, exactly one, within the manifest's range.
Result<uint64_t> parseSize(const Json& body) {
  PLFM_ASSIGN_OR_RETURN(auto text, optionalString(body, "size"));
  auto it = body.find("size_bytes");
  const bool has_bytes = it != body.end() && !it->is_null();
  if (text.has_value() == has_bytes) {
    return invalidField("size", R"(or 'size_bytes' is required, not both ("size": "10GiB"))");
  }
  uint64_t bytes = 0;
  std::string_view field = "size";
  if (text) {
    auto parsed = manifest::parseVolumeSize(*text);
    if (!parsed) {
      return invalidField("size",
                          R"(must be a size with a binary unit, like "512MiB", "10GiB" or "1TiB")");
    }
    bytes = *parsed;
  } else {
    field = "size_bytes";
    auto n = json::getInt(body, "size_bytes");
    if (!n || *n < 0) return invalidField("size_bytes", "must be a positive integer (bytes)");
    bytes = static_cast<uint64_t>(*n);
  }
  if (auto why = manifest::checkVolumeSize(bytes)) return invalidField(field, "must be " + *why);
  return bytes;
}

// The volume if the caller is a member of its org; not_found otherwise.
Result<Json> visibleVolume(Ctx& ctx, const VolumeId& id) {
  PLFM_ASSIGN_OR_RETURN(auto j, visibleRow(ctx,
                                           "SELECT " + kVolumeColumns +
                                               ", org_id FROM volumes_view WHERE volume_id = $1",
                                           id.str(), "volume"));
  j.erase("org_id");
  return j;
}

// Takes the volume's org lock, then reads its row.
Result<VolumeRow> lockedVolume(Api& api, pg::Transaction& tx, const std::string& id) {
  const std::string select =
      "SELECT " + kVolumeColumns + ", org_id FROM volumes_view WHERE volume_id = $1";
  PLFM_ASSIGN_OR_RETURN(auto before, tx.exec(select, {id}));
  if (before.rows() != 1) return volumeNotFound(id);
  PLFM_TRY(api.lockOrgQuotas(tx, std::string(before.text(0, before.columns() - 1))));
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec(select, {id}));
  if (rs.rows() != 1) return volumeNotFound(id);
  // The columns in kVolumeColumns order, then org_id.
  VolumeRow v;
  v.body = rowToJson(rs, 0);
  v.body.erase("org_id");
  v.id = rs.text(0, 0);
  v.env = rs.text(0, 1);
  v.app = rs.text(0, 2);
  v.process = rs.text(0, 3);
  v.name = rs.text(0, 4);
  PLFM_ASSIGN_OR_RETURN(v.slot, rs.int64(0, 5));
  v.full_name = rs.text(0, 6);
  PLFM_ASSIGN_OR_RETURN(int64_t size, rs.int64(0, 7));
  v.size_bytes = static_cast<uint64_t>(size);
  if (!rs.isNull(0, 8)) v.node = std::string(rs.text(0, 8));
  v.state = rs.text(0, 9);
  v.org = rs.text(0, rs.columns() - 1);
  return v;
}

// A live volume of the env with this full name, or nullopt.
Result<std::optional<std::string>> liveNamed(pg::Transaction& tx, const std::string& env,
                                             const std::string& full_name) {
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        tx.exec("SELECT volume_id FROM volumes_view WHERE env_id = $1 AND "
                                "full_name = $2 AND state <> 'deleted' ORDER BY volume_id LIMIT 1",
                                {env, full_name}));
  if (rs.rows() == 0) return std::optional<std::string>();
  return std::optional<std::string>(std::string(rs.text(0, 0)));
}

// An instance that should be running with this volume: same env, process
// and slot, desired to run, and its release's manifest declares a volume of
// that name for the process. Its id, or nullopt.
Result<std::optional<std::string>> instanceUsing(pg::Transaction& tx, const VolumeRow& v) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec("SELECT i.instance_id FROM instances_view i JOIN releases_view r ON r.release_id = "
              "i.release_id WHERE i.env_id = $1 AND i.process_type = $2 AND i.slot = $3 AND "
              "i.desired_state = 'run' AND i.current_state <> 'stopped' AND EXISTS (SELECT 1 FROM "
              "jsonb_array_elements(CASE WHEN "
              "jsonb_typeof(r.manifest->'volumes') = 'array' THEN r.manifest->'volumes' ELSE "
              "'[]'::jsonb END) m WHERE m->>'name' = $4 AND m->>'process' = i.process_type) "
              "ORDER BY i.instance_id LIMIT 1",
              {v.env, v.process, v.slot, v.name}));
  if (rs.rows() == 0) return std::optional<std::string>();
  return std::optional<std::string>(std::string(rs.text(0, 0)));
}

// The backup policy a new volume of (env, process, name) gets: policyColumn
// over a one-row stand-in for its volumes_view row.
Result<std::pair<int64_t, int64_t>> policyOf(pg::Transaction& tx, const std::string& env,
                                             const std::string& process, const std::string& name) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec("SELECT " +
                  policyColumn("backup_every_seconds", manifest::kDefaultBackupEverySeconds) +
                  ", " + policyColumn("backup_keep", manifest::kDefaultBackupKeep) +
                  " FROM (SELECT $1::text AS env_id, $2::text AS process_type, $3::text "
                  "AS name) AS volumes_view",
              {env, process, name}));
  PLFM_ASSIGN_OR_RETURN(int64_t every, rs.int64(0, 0));
  PLFM_ASSIGN_OR_RETURN(int64_t keep, rs.int64(0, 1));
  return std::pair(every, keep);
}

// The volume object of a volume this request creates (create, restore, fork).
struct NewVolume {
  std::string id{}, env{}, app{}, process{}, name{}, full_name{}, state{};
  int64_t slot = 0;
  uint64_t size_bytes = 0;
  std::optional<std::string> node{};
};

Result<Json> newVolumeBody(pg::Transaction& tx, const NewVolume& n, const std::string& now) {
  PLFM_ASSIGN_OR_RETURN(auto policy, policyOf(tx, n.env, n.process, n.name));
  return Json{{"volume_id", n.id},
              {"env_id", n.env},
              {"app_id", n.app},
              {"process", n.process},
              {"name", n.name},
              {"slot", n.slot},
              {"full_name", n.full_name},
              {"size_bytes", n.size_bytes},
              {"node_id", n.node ? Json(*n.node) : Json(nullptr)},
              {"state", n.state},
              {"reason", ""},
              {"reported_size_bytes", nullptr},
              {"created_at", now},
              {"updated_at", now},
              {"last_snapshot_at", nullptr},
              {"last_backup_at", nullptr},
              {"rpo_seconds", nullptr},
              {"last_verified_at", nullptr},
              {"last_verify_ok", nullptr},
              {"last_verify_reason", ""},
              {"backup_every_seconds", policy.first},
              {"backup_keep", policy.second}};
}

Error notLive(const VolumeRow& v, std::string_view action) {
  const std::string& full = v.full_name;
  return Error(plfm::errc::kFailedPrecondition,
               "volume " + full + " is " + v.state + "; it cannot be " + std::string(action))
      .with("volume_id", v.id)
      .with("state", v.state);
}

// ---- Snapshots, restore, fork and verify ----

// An optional boolean field (absent or null: `fallback`).
Result<bool> optionalFlag(const Json& body, std::string_view field, bool fallback) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return fallback;
  auto b = json::getBool(body, field);
  if (!b) return invalidField(field, "must be true or false");
  return *b;
}

// An optional id field (absent or null: nullopt).
template <class Id>
Result<std::optional<std::string>> optionalId(const Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  PLFM_ASSIGN_OR_RETURN(auto id, bodyId<Id>(body, field));
  return std::optional<std::string>(id.str());
}

// "to": the new volume's name (default `<name>-<suffix>`), by the
// manifest's volume name rules.
Result<std::optional<std::string>> optionalVolumeName(const Json& body, std::string_view field) {
  PLFM_ASSIGN_OR_RETURN(auto to, optionalString(body, field));
  if (to) {
    if (auto why = manifest::checkVolumeName(*to)) return invalidField(field, "must be " + *why);
  }
  return to;
}

struct SnapshotRow {
  std::string id, node, state;
  bool local = false, backup_expired = false;
};

// Snapshot `snapshot_id` of volume `v` or, when none is named, its newest
// snapshot with a live backup (nullopt when there is none).
Result<std::optional<SnapshotRow>> findSnapshot(pg::Transaction& tx, const VolumeRow& v,
                                                const std::optional<std::string>& snapshot_id) {
  std::string sql =
      "SELECT snapshot_id, node_id, state, local, backup_expired FROM volume_snapshots_view "
      "WHERE volume_id = $1 AND ";
  sql += snapshot_id ? "snapshot_id = $2"
                     : "state = 'backed_up' AND NOT backup_expired AND $2::text IS NULL ORDER BY "
                       "taken_at DESC, snapshot_id DESC LIMIT 1";
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec(sql, {v.id, snapshot_id}));
  if (rs.rows() == 0) {
    if (!snapshot_id) return std::optional<SnapshotRow>();
    return Error(plfm::errc::kNotFound,
                 "snapshot " + *snapshot_id + " of volume " + v.full_name + " not found")
        .with("field", "snapshot_id")
        .with("snapshot_id", *snapshot_id);
  }
  return std::optional<SnapshotRow>(SnapshotRow{.id = std::string(rs.text(0, 0)),
                                                .node = std::string(rs.text(0, 1)),
                                                .state = std::string(rs.text(0, 2)),
                                                .local = rs.text(0, 3) == "t",
                                                .backup_expired = rs.text(0, 4) == "t"});
}

Error noBackup(const VolumeRow& v) {
  return Error(plfm::errc::kFailedPrecondition,
               "no backup of " + v.full_name + " yet; take a snapshot with `vt volumes snapshot " +
                   v.full_name + "` and wait until its node has backed it up, or name a snapshot")
      .with("volume_id", v.id);
}

bool hasBackup(const SnapshotRow& s) { return s.state == "backed_up" && !s.backup_expired; }

// Where a restore on `node` reads snapshot `s` from: the node's own copy
// when it still holds it, else the backup repository.
Result<std::string> restoreSource(const SnapshotRow& s, const std::string& node) {
  if (s.state != "taken" && s.state != "backed_up") {
    return Error(plfm::errc::kFailedPrecondition,
                 "snapshot " + s.id + " is " + s.state +
                     "; only a taken or backed-up snapshot can be restored")
        .with("snapshot_id", s.id)
        .with("state", s.state);
  }
  if (s.node == node && s.local) return std::string("local");
  if (hasBackup(s)) return std::string("backup");
  const std::string why = s.backup_expired ? "its backup has expired" : "it has no backup yet";
  return Error(plfm::errc::kFailedPrecondition,
               "snapshot " + s.id + " cannot be restored on node " + node + ": " + why +
                   (s.local ? " and only node " + s.node + " holds it" : " and no node holds it"))
      .with("snapshot_id", s.id)
      .with("node_id", node);
}

// An active node (not cordoned or draining) with `size` bytes of volume space
// free: `want` when given, else the one with the most; nullopt when none.
Result<std::optional<std::string>> roomyNode(pg::Transaction& tx,
                                             const std::optional<std::string>& want,
                                             uint64_t size) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec("SELECT node_id FROM (SELECT n.node_id, coalesce(l.volume_capacity_bytes, 0) - "
              "coalesce((SELECT sum(v.size_bytes) FROM volumes_view v WHERE v.node_id = "
              "n.node_id AND v.state <> 'deleted'), 0) AS free FROM nodes_view n LEFT JOIN "
              "node_liveness l ON l.node_id = n.node_id WHERE n.state = 'active' AND NOT "
              "n.cordoned AND NOT n.draining AND ($1::text IS NULL OR n.node_id = $1)) f WHERE "
              "free >= $2 ORDER BY free DESC, node_id LIMIT 1",
              {want, static_cast<int64_t>(size)}));
  if (rs.rows() == 0) return std::optional<std::string>();
  return std::optional<std::string>(std::string(rs.text(0, 0)));
}

Error noRoom(const VolumeRow& v, const std::optional<std::string>& node) {
  const std::string size = manifest::formatVolumeSize(v.size_bytes);
  Error e(plfm::errc::kFailedPrecondition,
          node
              ? "node " + *node + " is not a ready node with " + size + " of volume space free"
              : "no ready node has " + size + " of volume space free for a copy of " + v.full_name);
  if (node) e = std::move(e).with("field", "node_id").with("node_id", *node);
  return e;
}

Json opBody(const std::string& op_id, std::string_view kind, const std::string& volume_id,
            const std::string& source_volume_id, const std::string& snapshot_id,
            const std::string& node, const std::string& source, bool in_place,
            const std::string& now) {
  return {{"op_id", op_id},
          {"kind", kind},
          {"volume_id", volume_id},
          {"source_volume_id", source_volume_id},
          {"snapshot_id", snapshot_id},
          {"node_id", node},
          {"source", source},
          {"in_place", in_place},
          {"origin", "api"},
          {"state", "requested"},
          {"reason", ""},
          {"created_at", now},
          {"updated_at", now}};
}

// A restore of snapshot `s` of `v` into a new volume `<to>-<slot>` on
// `node`: volume.created (origin restore or fork) and volume.placed on the
// new volume, then volume.restore_requested, in one transaction.
struct RestoreInto {
  std::string to, node, source, now;
  std::string_view origin;  // "restore" | "fork"
};

Result<Mutation> restoreIntoNew(pg::Transaction& tx, const VolumeRow& v, const SnapshotRow& s,
                                const RestoreInto& r) {
  // Going or gone (perhaps with its env): no new volume from it.
  if (v.state == "deleting" || v.state == "deleted") {
    return notLive(v, std::string(r.origin == "fork" ? "forked" : "restored from"));
  }
  // A default name (`<name>-restore`) may be too long for a long name.
  if (auto why = manifest::checkVolumeName(r.to)) {
    return invalidField("to", "is required here: the default " + r.to + " is not " + *why);
  }
  const std::string full = r.to + "-" + std::to_string(v.slot);
  PLFM_ASSIGN_OR_RETURN(auto taken, liveNamed(tx, v.env, full));
  if (taken) {
    return Error(plfm::errc::kAlreadyExists, "volume " + full + " already exists in this env (" +
                                                 *taken + "); name the new volume with `--to`")
        .with("field", "to")
        .with("volume_id", *taken);
  }
  const std::string id = VolumeId::generate().str();
  const std::string op = VolumeOpId::generate().str();
  Mutation m;
  PLFM_ASSIGN_OR_RETURN(Json volume, newVolumeBody(tx,
                                                   {.id = id,
                                                    .env = v.env,
                                                    .app = v.app,
                                                    .process = v.process,
                                                    .name = r.to,
                                                    .full_name = full,
                                                    .state = "restoring",
                                                    .slot = v.slot,
                                                    .size_bytes = v.size_bytes,
                                                    .node = r.node},
                                                   r.now));
  m.body = {{"op", opBody(op, "restore", id, v.id, s.id, r.node, r.source, false, r.now)},
            {"volume", std::move(volume)}};
  m.events = {
      events::toNewEvent(events::VolumeCreated{.volume_id = id,
                                               .org_id = v.org,
                                               .app_id = v.app,
                                               .env_id = v.env,
                                               .process_type = v.process,
                                               .name = r.to,
                                               .slot = v.slot,
                                               .full_name = full,
                                               .size_bytes = static_cast<int64_t>(v.size_bytes),
                                               .origin = std::string(r.origin)},
                         1, v.org),
      events::toNewEvent(events::VolumePlaced{.volume_id = id, .env_id = v.env, .node_id = r.node},
                         2, v.org),
      events::toNewEvent(events::VolumeRestoreRequested{.op_id = op,
                                                        .volume_id = id,
                                                        .source_volume_id = v.id,
                                                        .snapshot_id = s.id,
                                                        .node_id = r.node,
                                                        .source = r.source,
                                                        .in_place = false},
                         3, v.org)};
  return m;
}

Error inUse(const VolumeRow& v, const std::string& instance, std::string_view action) {
  return Error(plfm::errc::kFailedPrecondition,
               "volume " + v.full_name + " is in use by instance " + instance + " (process " +
                   v.process + ", slot " + std::to_string(v.slot) + "); scale the process to " +
                   std::to_string(v.slot) + " instances or fewer (`vt scale set " + v.process +
                   "=" + std::to_string(v.slot) + "`), or remove the volume from vt.toml and " +
                   "deploy, then " + std::string(action))
      .with("volume_id", v.id)
      .with("instance_id", instance);
}

}  // namespace

Result<CreateVolume> parseCreateVolume(const http::Request& req) {
  PLFM_ASSIGN_OR_RETURN(auto body,
                        parseBody(req, {"process", "name", "slot", "size", "size_bytes"}));
  CreateVolume c;
  PLFM_ASSIGN_OR_RETURN(c.process, requireString(body, "process"));
  if (!validProcessName(c.process))
    return invalidField("process", "must match [a-z][a-z0-9-]{0,29}");
  PLFM_ASSIGN_OR_RETURN(c.name, requireString(body, "name"));
  if (auto why = manifest::checkVolumeName(c.name)) return invalidField("name", "must be " + *why);
  auto slot = body.find("slot");
  if (slot != body.end() && !slot->is_null()) {
    auto n = json::getInt(body, "slot");
    if (!n || *n < 0 || *n > kMaxSlot) {
      return invalidField("slot", "must be an integer 0.." + std::to_string(kMaxSlot));
    }
    c.slot = *n;
  }
  PLFM_ASSIGN_OR_RETURN(c.size_bytes, parseSize(body));
  // At most 59 + "-" + 3 digits: always a name the agent accepts.
  c.full_name = c.name + "-" + std::to_string(c.slot);
  return c;
}

void Api::registerVolumeRoutes(http::Router& r) {
  route(r, "POST", "/v1/envs/{env_id}/volumes", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
          PLFM_ASSIGN_OR_RETURN(CreateVolume c, parseCreateVolume(ctx.req));
          PLFM_ASSIGN_OR_RETURN(auto e, visibleEnv(ctx, env));
          const std::string org = e["org_id"];
          const std::string app = e["app_id"];
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_TRY(lockOrgQuotas(tx, org));
            PLFM_ASSIGN_OR_RETURN(auto taken, liveNamed(tx, env.str(), c.full_name));
            if (taken) {
              return Error(plfm::errc::kAlreadyExists,
                           "volume " + c.full_name + " already exists in this env (" + *taken +
                               "); extend it with `vt volumes extend " + c.full_name +
                               "`, or pick another name or slot")
                  .with("field", "name")
                  .with("volume_id", *taken);
            }
            const std::string id = VolumeId::generate().str();
            Mutation m;
            PLFM_ASSIGN_OR_RETURN(m.body, newVolumeBody(tx,
                                                        {.id = id,
                                                         .env = env.str(),
                                                         .app = app,
                                                         .process = c.process,
                                                         .name = c.name,
                                                         .full_name = c.full_name,
                                                         .state = "pending",
                                                         .slot = c.slot,
                                                         .size_bytes = c.size_bytes},
                                                        toRfc3339(deps_.clock.now())));
            m.events = {events::toNewEvent(
                events::VolumeCreated{.volume_id = id,
                                      .org_id = org,
                                      .app_id = app,
                                      .env_id = env.str(),
                                      .process_type = c.process,
                                      .name = c.name,
                                      .slot = c.slot,
                                      .full_name = c.full_name,
                                      .size_bytes = static_cast<int64_t>(c.size_bytes),
                                      .origin = "api"},
                1, org)};
            return m;
          });
        });

  route(r, "GET", "/v1/envs/{env_id}/volumes", Access::kUser,
        [](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
          PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "vol"));
          PLFM_TRY(visibleEnv(ctx, env));
          // Ordered by process, name and slot; the cursor is the last
          // volume's id, whose position the next page starts after.
          PLFM_ASSIGN_OR_RETURN(
              auto rs,
              ctx.db().exec("SELECT " + kVolumeColumns +
                                " FROM volumes_view WHERE env_id = $1 AND state <> 'deleted' "
                                "AND ($2::text IS NULL OR (process_type, name, slot, volume_id) > "
                                "(SELECT process_type, name, slot, volume_id FROM volumes_view "
                                "WHERE volume_id = $2)) ORDER BY process_type, name, slot, "
                                "volume_id LIMIT $3",
                            {env.str(), page.cursor, page.limit}));
          Json items = rowsToJson(rs);
          Json next = nullptr;
          if (static_cast<int>(items.size()) == page.limit) next = items.back()["volume_id"];
          return jsonResponse(200, {{"items", items}, {"next_cursor", next}});
        });

  route(r, "GET", "/v1/volumes/{volume_id}", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
    PLFM_ASSIGN_OR_RETURN(auto j, visibleVolume(ctx, id));
    return jsonResponse(200, j);
  });

  route(
      r, "POST", "/v1/volumes/{volume_id}/extend", Access::kUser,
      [this](Ctx& ctx) -> Result<http::Response> {
        PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
        PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"size", "size_bytes"}));
        PLFM_ASSIGN_OR_RETURN(uint64_t size, parseSize(body));
        PLFM_TRY(visibleVolume(ctx, id));
        return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
          PLFM_ASSIGN_OR_RETURN(VolumeRow v, lockedVolume(*this, tx, id.str()));
          if (v.state == "deleting" || v.state == "deleted") return notLive(v, "extended");
          if (size <= v.size_bytes) {
            const std::string current = manifest::formatVolumeSize(v.size_bytes);
            return Error(apierr::kVolumeNotGrown,
                         "volume " + v.full_name + " is " + current + " (" +
                             std::to_string(v.size_bytes) +
                             " bytes); extend takes a larger size (volumes never shrink)")
                .with("field", body.contains("size") ? "size" : "size_bytes")
                .with("size_bytes", std::to_string(v.size_bytes))
                .with("size", current);
          }
          PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, id.str()));
          Mutation m;
          m.status = 200;
          m.body = v.body;
          m.body["size_bytes"] = size;
          m.body["updated_at"] = toRfc3339(deps_.clock.now());
          m.events = {events::toNewEvent(
              events::VolumeExtendRequested{
                  .volume_id = id.str(), .env_id = v.env, .size_bytes = static_cast<int64_t>(size)},
              next, v.org)};
          return m;
        });
      });

  route(r, "DELETE", "/v1/volumes/{volume_id}", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_TRY(visibleVolume(ctx, id));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(VolumeRow v, lockedVolume(*this, tx, id.str()));
            Mutation m;
            m.status = 200;
            m.body = v.body;
            // Already on its way out: nothing more to ask.
            if (v.state == "deleting" || v.state == "deleted") return m;
            PLFM_ASSIGN_OR_RETURN(auto user, instanceUsing(tx, v));
            if (user) return inUse(v, *user, "delete it");
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, id.str()));
            m.body["updated_at"] = toRfc3339(deps_.clock.now());
            m.body["state"] = v.node ? "deleting" : "deleted";
            m.events = {volumeDeletion(id.str(), v.env, v.node, next, v.org, "api")};
            return m;
          });
        });

  registerVolumeSnapshotRoutes(r);
}

void Api::registerVolumeSnapshotRoutes(http::Router& r) {
  route(r, "POST", "/v1/volumes/{volume_id}/snapshots", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"freeze"}));
          PLFM_ASSIGN_OR_RETURN(bool freeze, optionalFlag(body, "freeze", true));
          PLFM_TRY(visibleVolume(ctx, id));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(VolumeRow v, lockedVolume(*this, tx, id.str()));
            if (v.state != "ready" || !v.node) {
              return notLive(v, "snapshotted until it is ready on a node");
            }
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, id.str()));
            const std::string snap = SnapshotId::generate().str();
            Mutation m;
            m.body = {{"snapshot_id", snap},
                      {"volume_id", v.id},
                      {"node_id", *v.node},
                      {"origin", "api"},
                      {"state", "requested"},
                      {"local", false},
                      {"method", nullptr},
                      {"consistent", nullptr},
                      {"freeze_ms", nullptr},
                      {"size_bytes", nullptr},
                      {"sha256", nullptr},
                      {"taken_at", nullptr},
                      {"backup_id", nullptr},
                      {"backed_up_at", nullptr},
                      {"backup_expired", false},
                      {"reason", ""},
                      {"created_at", toRfc3339(deps_.clock.now())}};
            m.events = {events::toNewEvent(events::VolumeSnapshotRequested{.snapshot_id = snap,
                                                                           .volume_id = v.id,
                                                                           .env_id = v.env,
                                                                           .node_id = *v.node,
                                                                           .freeze = freeze},
                                           next, v.org)};
            return m;
          });
        });

  route(r, "GET", "/v1/volumes/{volume_id}/snapshots", Access::kUser,
        [](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_TRY(visibleVolume(ctx, id));
          PLFM_ASSIGN_OR_RETURN(
              auto rs, ctx.db().exec("SELECT " + kSnapshotColumns +
                                         " FROM volume_snapshots_view WHERE volume_id = $1 "
                                         "ORDER BY created_at DESC, snapshot_id DESC LIMIT $2",
                                     {id.str(), kMaxSnapshotsListed}));
          return jsonResponse(200, {{"items", rowsToJson(rs)}});
        });

  route(r, "GET", "/v1/volumes/{volume_id}/snapshots/{snapshot_id}", Access::kUser,
        [](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_ASSIGN_OR_RETURN(auto snap, pathId<SnapshotId>(ctx.req, "snapshot_id"));
          PLFM_TRY(visibleVolume(ctx, id));
          PLFM_ASSIGN_OR_RETURN(
              auto rs, ctx.db().exec("SELECT " + kSnapshotColumns +
                                         " FROM volume_snapshots_view WHERE snapshot_id = $1 "
                                         "AND volume_id = $2",
                                     {snap.str(), id.str()}));
          if (rs.rows() != 1) {
            return Error(plfm::errc::kNotFound, "snapshot " + snap.str() + " not found")
                .with("snapshot_id", snap.str());
          }
          return jsonResponse(200, rowToJson(rs, 0));
        });

  route(r, "GET", "/v1/volumes/{volume_id}/ops/{op_id}", Access::kUser,
        [](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_ASSIGN_OR_RETURN(auto op, pathId<VolumeOpId>(ctx.req, "op_id"));
          PLFM_TRY(visibleVolume(ctx, id));
          PLFM_ASSIGN_OR_RETURN(
              auto rs,
              ctx.db().exec("SELECT " + kOpColumns +
                                " FROM volume_ops_view WHERE op_id = $1 AND volume_id = $2",
                            {op.str(), id.str()}));
          if (rs.rows() != 1) {
            return Error(plfm::errc::kNotFound, "op " + op.str() + " not found")
                .with("op_id", op.str());
          }
          return jsonResponse(200, rowToJson(rs, 0));
        });

  route(
      r, "POST", "/v1/volumes/{volume_id}/restore", Access::kUser,
      [this](Ctx& ctx) -> Result<http::Response> {
        PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
        PLFM_ASSIGN_OR_RETURN(auto body,
                              parseBody(ctx.req, {"snapshot_id", "to", "in_place", "node_id"}));
        PLFM_ASSIGN_OR_RETURN(auto snap_id, bodyId<SnapshotId>(body, "snapshot_id"));
        PLFM_ASSIGN_OR_RETURN(auto to, optionalVolumeName(body, "to"));
        PLFM_ASSIGN_OR_RETURN(bool in_place, optionalFlag(body, "in_place", false));
        PLFM_ASSIGN_OR_RETURN(auto want_node, optionalId<NodeId>(body, "node_id"));
        if (in_place && to) return invalidField("to", "cannot be given with in_place");
        if (in_place && want_node) {
          return invalidField("node_id", "cannot be given with in_place (the volume's own node)");
        }
        PLFM_TRY(visibleVolume(ctx, id));
        return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
          PLFM_ASSIGN_OR_RETURN(VolumeRow v, lockedVolume(*this, tx, id.str()));
          PLFM_ASSIGN_OR_RETURN(auto found, findSnapshot(tx, v, snap_id.str()));
          const SnapshotRow& s = *found;
          const std::string now = toRfc3339(deps_.clock.now());
          if (in_place) {
            if (v.state != "ready" || !v.node) {
              return notLive(v, "restored in place until it is ready on a node");
            }
            PLFM_ASSIGN_OR_RETURN(auto user, instanceUsing(tx, v));
            if (user) return inUse(v, *user, "restore it in place");
            PLFM_ASSIGN_OR_RETURN(std::string source, restoreSource(s, *v.node));
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, v.id));
            const std::string op = VolumeOpId::generate().str();
            Mutation m;
            Json volume = v.body;
            volume["state"] = "restoring";
            volume["updated_at"] = now;
            m.body = {{"op", opBody(op, "restore", v.id, v.id, s.id, *v.node, source, true, now)},
                      {"volume", std::move(volume)}};
            m.events = {events::toNewEvent(events::VolumeRestoreRequested{.op_id = op,
                                                                          .volume_id = v.id,
                                                                          .source_volume_id = v.id,
                                                                          .snapshot_id = s.id,
                                                                          .node_id = *v.node,
                                                                          .source = source,
                                                                          .in_place = true},
                                           next, v.org)};
            return m;
          }
          // A new volume: the named node; else the snapshot's node when it is
          // ready, holds the file and has the room; else any node with room
          // (from the backup).
          std::optional<std::string> node;
          if (want_node) {
            PLFM_ASSIGN_OR_RETURN(node, roomyNode(tx, want_node, v.size_bytes));
            if (!node) return noRoom(v, want_node);
          } else if (s.local) {
            PLFM_ASSIGN_OR_RETURN(node, roomyNode(tx, s.node, v.size_bytes));
          }
          if (!node) {
            if (!hasBackup(s)) {
              PLFM_TRY(restoreSource(s, s.node));  // a snapshot that is not taken
              return Error(plfm::errc::kFailedPrecondition,
                           "snapshot " + s.id + " has no backup" +
                               (s.backup_expired ? " any more" : " yet") +
                               (s.local ? " and its node " + s.node +
                                              " is not ready or has no room for a copy"
                                        : " and no node holds it"))
                  .with("snapshot_id", s.id);
            }
            PLFM_ASSIGN_OR_RETURN(node, roomyNode(tx, std::nullopt, v.size_bytes));
            if (!node) return noRoom(v, std::nullopt);
          }
          PLFM_ASSIGN_OR_RETURN(std::string source, restoreSource(s, *node));
          return restoreIntoNew(tx, v, s,
                                {.to = to.value_or(v.name + "-restore"),
                                 .node = *node,
                                 .source = source,
                                 .now = now,
                                 .origin = "restore"});
        });
      });

  route(r, "POST", "/v1/volumes/{volume_id}/fork", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"node_id", "to", "snapshot_id"}));
          PLFM_ASSIGN_OR_RETURN(auto node, bodyId<NodeId>(body, "node_id"));
          PLFM_ASSIGN_OR_RETURN(auto to, optionalVolumeName(body, "to"));
          PLFM_ASSIGN_OR_RETURN(auto snap_id, optionalId<SnapshotId>(body, "snapshot_id"));
          PLFM_TRY(visibleVolume(ctx, id));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(VolumeRow v, lockedVolume(*this, tx, id.str()));
            PLFM_ASSIGN_OR_RETURN(auto s, findSnapshot(tx, v, snap_id));
            if (!s) return noBackup(v);
            PLFM_ASSIGN_OR_RETURN(auto roomy, roomyNode(tx, node.str(), v.size_bytes));
            if (!roomy) return noRoom(v, node.str());
            PLFM_ASSIGN_OR_RETURN(std::string source, restoreSource(*s, node.str()));
            return restoreIntoNew(tx, v, *s,
                                  {.to = to.value_or(v.name + "-fork"),
                                   .node = node.str(),
                                   .source = source,
                                   .now = toRfc3339(deps_.clock.now()),
                                   .origin = "fork"});
          });
        });

  route(r, "POST", "/v1/volumes/{volume_id}/verify", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<VolumeId>(ctx.req, "volume_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"snapshot_id"}));
          PLFM_ASSIGN_OR_RETURN(auto snap_id, optionalId<SnapshotId>(body, "snapshot_id"));
          PLFM_TRY(visibleVolume(ctx, id));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(VolumeRow v, lockedVolume(*this, tx, id.str()));
            if (!v.node || v.state == "deleting" || v.state == "deleted") {
              return notLive(v, "verified: no node holds it");
            }
            PLFM_ASSIGN_OR_RETURN(auto s, findSnapshot(tx, v, snap_id));
            if (!s) return noBackup(v);
            if (!hasBackup(*s)) {
              return Error(plfm::errc::kFailedPrecondition,
                           "snapshot " + s->id + " has no backup to verify (" +
                               (s->backup_expired ? "it expired" : "it is " + s->state) + ")")
                  .with("snapshot_id", s->id)
                  .with("state", s->state);
            }
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, v.id));
            const std::string op = VolumeOpId::generate().str();
            Mutation m;
            m.body = opBody(op, "verify", v.id, v.id, s->id, *v.node, "backup", false,
                            toRfc3339(deps_.clock.now()));
            m.events = {events::toNewEvent(
                events::VolumeVerifyRequested{
                    .op_id = op, .volume_id = v.id, .snapshot_id = s->id, .node_id = *v.node},
                next, v.org)};
            return m;
          });
        });
}

}  // namespace plfm::cp
