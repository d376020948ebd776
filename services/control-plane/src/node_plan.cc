#include "node_plan.h"

#include <map>
#include <unordered_map>
#include <utility>

#include "api.h"
#include "mesh_plan.h"
#include "plfm/core/log.h"
#include "plfm/manifest/volume_rules.h"
#include "stored_release.h"

namespace plfm::cp {
namespace {

using json::Json;

// SELECT for a node's plan version: its own (enrollment), its instances',
// its volumes' and their snapshots' and ops' (deleted or finished ones too,
// so that the version never goes back), and the mesh's (mesh_plan.h).
const std::string& versionSql() {
  static const std::string sql =
      "SELECT GREATEST(n.plan_version, coalesce((SELECT max(i.plan_seq) FROM instances_view i "
      "WHERE i.node_id = n.node_id), 0), coalesce((SELECT max(v.plan_seq) FROM volumes_view v "
      "WHERE v.node_id = n.node_id), 0), coalesce((SELECT max(s.plan_seq) FROM "
      "volume_snapshots_view s WHERE s.node_id = n.node_id), 0), coalesce((SELECT "
      "max(o.plan_seq) FROM volume_ops_view o WHERE o.node_id = n.node_id), 0), " +
      std::string(kMeshVersionSql) + "), n.ipv6_prefix FROM nodes_view n WHERE n.node_id = $1";
  return sql;
}

// A live volume of an env, as the plan needs it.
struct LiveVolume {
  std::string volume_id;
  std::string node_id;  // empty while pending
  int64_t size_bytes = 0;
};
// By (env_id, full_name).
using VolumesByName = std::map<std::pair<std::string, std::string>, LiveVolume>;

Error unknownNode(const std::string& node_id) {
  return Error(plfm::errc::kNotFound, "node " + node_id + " not found").with("node_id", node_id);
}

Json checksOf(const manifest::Manifest& m, const std::string& process) {
  Json out = Json::array();
  for (const auto& c : m.checks) {
    if (c.process != process) continue;
    Json j = c.toJson();
    j.erase("process");  // the WorkloadSpec is for one process
    out.push_back(std::move(j));
  }
  return out;
}

// The WorkloadSpec of row `i`, from the instance's columns and its release's
// manifest (already parsed: `m`). A process type the release does not
// define runs the image's own entrypoint and cmd.
Json workloadSpec(const pg::ResultSet& rs, int i, const manifest::Manifest& m) {
  auto text = [&](int col) { return std::string(rs.text(i, col)); };
  auto nullable = [&](int col) { return rs.isNull(i, col) ? Json() : Json(text(col)); };
  const std::string process = text(6);
  const manifest::Process* proc = m.findProcess(process);
  const manifest::Process none;
  if (proc == nullptr) proc = &none;
  Json env = Json::object();
  for (const auto& [k, v] : m.env) env[k] = v;
  return {{"instance_id", text(0)},
          {"generation", rs.int64(i, 1).value_or(1)},
          {"desired", text(2)},
          {"org_id", text(3)},
          {"app_id", text(4)},
          {"env_id", text(5)},
          {"process_type", process},
          {"release_id", text(7)},
          {"deploy_id", nullable(8)},
          {"image", {{"ref", text(9)}, {"digest", text(10)}}},
          {"command", proc->command},
          {"args", proc->args},
          {"env", std::move(env)},
          {"resources",
           {{"vcpus", rs.int64(i, 12).value_or(1)}, {"memory_mb", rs.int64(i, 13).value_or(256)}}},
          {"network",
           {{"address", text(14)},
            {"prefix_len", 128},
            {"gateway", std::string(kInstanceGateway)},
            {"mtu", kInstanceMtu}}},
          {"checks", checksOf(m, process)},
          {"volumes", Json::array()},  // volumesOf()
          {"secrets", {{"version", nullable(17)}}},
          {"restart", {{"count", rs.int64(i, 16).value_or(0)}, {"not_before", nullable(15)}}}};
}

// WorkloadSpec.volumes of an instance (row `i`) whose process has
// [[volumes]]: each in the manifest's order, joined with the env's live
// volume of its slot (docs/specs/runtime/volume-mounts.md). The scheduler
// creates and places those rows with the allocation, so a missing one, or
// one on another node, is a bug elsewhere: the error says which, and the
// instance is left out of the plan rather than started without its data.
Result<Json> volumesOf(const pg::ResultSet& rs, int i, const manifest::Manifest& m,
                       const std::string& node_id, const VolumesByName& volumes) {
  const std::string process(rs.text(i, 6));
  const std::string env(rs.text(i, 5));
  Json out = Json::array();
  for (const auto& v : m.volumes) {
    if (v.process != process) continue;
    if (rs.isNull(i, 18)) {
      return Error(plfm::errc::kFailedPrecondition,
                   "the instance has no slot, so no volume " + v.name + " of its own");
    }
    const std::string full = v.name + "-" + std::to_string(rs.int64(i, 18).value_or(0));
    auto it = volumes.find({env, full});
    if (it == volumes.end()) {
      return Error(plfm::errc::kFailedPrecondition, "volume " + full + " does not exist");
    }
    if (it->second.node_id != node_id) {
      return Error(plfm::errc::kFailedPrecondition,
                   "volume " + full + " (" + it->second.volume_id + ") is on " +
                       (it->second.node_id.empty() ? std::string("no node yet")
                                                   : "node " + it->second.node_id));
    }
    out.push_back({{"volume_id", it->second.volume_id},
                   {"name", full},
                   {"mount", v.mount},
                   {"size_bytes", it->second.size_bytes}});
  }
  return out;
}

// The live volumes of the envs that have instances on the node.
Result<VolumesByName> envVolumes(pg::Transaction& tx, const std::string& node_id) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, tx.exec("SELECT env_id, full_name, volume_id, coalesce(node_id, ''), size_bytes "
                       "FROM volumes_view WHERE state <> 'deleted' AND env_id IN (SELECT "
                       "env_id FROM instances_view WHERE node_id = $1 AND current_state <> "
                       "'stopped')",
                       {node_id}));
  VolumesByName out;
  for (int i = 0; i < rs.rows(); ++i) {
    out[{std::string(rs.text(i, 0)), std::string(rs.text(i, 1))}] = LiveVolume{
        std::string(rs.text(i, 2)), std::string(rs.text(i, 3)), rs.int64(i, 4).value_or(0)};
  }
  return out;
}

// Each release's manifest, parsed once (instances and volumes share releases).
class Manifests {
 public:
  const Result<manifest::Manifest>& get(const std::string& release_id, std::string_view text) {
    auto it = parsed_.find(release_id);
    if (it == parsed_.end()) it = parsed_.emplace(release_id, readStoredManifest(text)).first;
    return it->second;
  }

 private:
  std::unordered_map<std::string, Result<manifest::Manifest>> parsed_;
};

// A volume's snapshot-and-backup policy: the manifest's, for the volume's
// (process, name) in its env's target release; the defaults for a volume the
// manifest does not declare (made by the API, a restore or a fork) or a
// release that cannot be read.
struct BackupPolicy {
  int64_t every_seconds = manifest::kDefaultBackupEverySeconds;
  int64_t keep = manifest::kDefaultBackupKeep;
};

BackupPolicy backupPolicy(const Result<manifest::Manifest>* m, std::string_view process,
                          std::string_view name) {
  if (m == nullptr || !*m) return {};
  for (const auto& v : (*m)->volumes) {
    if (v.process == process && v.name == name) return {v.backup_every_seconds, v.backup_keep};
  }
  return {};
}

// NodePlan.volumes: every live volume placed on the node. placed, ready and
// failed are all "ready" to the agent: it should have the file; a restoring
// one is being written by a restore op.
Result<Json> nodeVolumes(pg::Transaction& tx, const std::string& node_id) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, tx.exec("SELECT v.volume_id, v.size_bytes, v.state, v.process_type, v.name, "
                       "r.release_id, r.manifest FROM volumes_view v LEFT JOIN envs_view e ON "
                       "e.env_id = v.env_id LEFT JOIN deploys_view d ON d.deploy_id = "
                       "e.current_deploy_id LEFT JOIN releases_view r ON r.release_id = "
                       "d.release_id WHERE v.node_id = $1 AND v.state <> 'deleted' ORDER BY "
                       "v.volume_id",
                       {node_id}));
  Manifests manifests;
  Json out = Json::array();
  for (int i = 0; i < rs.rows(); ++i) {
    const Result<manifest::Manifest>* m =
        rs.isNull(i, 5) ? nullptr : &manifests.get(std::string(rs.text(i, 5)), rs.text(i, 6));
    const std::string_view state = rs.text(i, 2);
    const BackupPolicy policy = backupPolicy(m, rs.text(i, 3), rs.text(i, 4));
    out.push_back({{"volume_id", std::string(rs.text(i, 0))},
                   {"size_bytes", rs.int64(i, 1).value_or(0)},
                   {"state", state == "deleting" || state == "restoring" ? state : "ready"},
                   {"backup_every_seconds", policy.every_seconds},
                   {"backup_keep", policy.keep}});
  }
  return out;
}

// NodePlan.volume_ops: the node's requested snapshots and ops, oldest first
// (by the seq of the event that requested each).
Result<Json> nodeVolumeOps(pg::Transaction& tx, const std::string& node_id) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec("SELECT s.plan_seq, s.snapshot_id, 'snapshot', s.volume_id, s.\"freeze\", '', '', "
              "'', NULL, NULL, NULL::bigint, false FROM volume_snapshots_view s WHERE s.node_id = "
              "$1 AND s.state = 'requested' UNION ALL SELECT o.plan_seq, o.op_id, o.kind, "
              "o.volume_id, false, o.source_volume_id, o.snapshot_id, o.source, s.backup_id, "
              "s.sha256, v.size_bytes, o.in_place FROM volume_ops_view o LEFT JOIN "
              "volume_snapshots_view s ON s.snapshot_id = o.snapshot_id LEFT JOIN volumes_view v "
              "ON v.volume_id = o.volume_id WHERE o.node_id = $1 AND o.state = 'requested' "
              "ORDER BY 1",
              {node_id}));
  Json out = Json::array();
  for (int i = 0; i < rs.rows(); ++i) {
    auto text = [&](int col) { return std::string(rs.text(i, col)); };
    auto nullable = [&](int col) { return rs.isNull(i, col) ? Json() : Json(text(col)); };
    const std::string kind = text(2);
    Json op = {{"op_id", text(1)}, {"kind", kind}, {"volume_id", text(3)}};
    if (kind == "snapshot") {
      op["freeze"] = rs.text(i, 4) == "t";
    } else if (kind == "restore") {
      const bool local = rs.text(i, 7) == "local";
      op["source_volume_id"] = text(5);
      op["snapshot_id"] = text(6);
      op["source"] = text(7);
      op["backup_id"] = local ? Json() : nullable(8);
      op["sha256"] = nullable(9);
      op["size_bytes"] = rs.int64(i, 10).value_or(0);
      op["in_place"] = rs.text(i, 11) == "t";
    } else {
      op["snapshot_id"] = text(6);
      op["backup_id"] = nullable(8);
      op["sha256"] = nullable(9);
    }
    out.push_back(std::move(op));
  }
  return out;
}

}  // namespace

Result<int64_t> planVersion(pg::Connection& conn, const std::string& node_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec(versionSql(), {node_id}));
  if (rs.rows() != 1) return unknownNode(node_id);
  return rs.int64(0, 0);
}

Result<json::Json> buildNodePlan(pg::Connection& conn, const std::string& node_id,
                                 const std::string& cluster_prefix) {
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn, pg::Isolation::kRepeatableRead));
  PLFM_TRY(tx.exec("SET TRANSACTION READ ONLY"));
  PLFM_ASSIGN_OR_RETURN(auto head, tx.exec(versionSql(), {node_id}));
  if (head.rows() != 1) return unknownNode(node_id);
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      // A drain the gate has not released yet still runs (drain_gate.h).
      tx.exec("SELECT i.instance_id, i.generation, CASE WHEN i.desired_state = 'drain' AND NOT "
              "i.drain_released THEN 'run' ELSE i.desired_state END, i.org_id, i.app_id, "
              "i.env_id, i.process_type, i.release_id, i.deploy_id, r.image_ref, "
              "r.image_digest, r.manifest, i.vcpus, i.memory_mb, "
              "coalesce(i.address, ''), " +
                  ts("i.not_before") +
                  ", i.restarts, i.secrets_version, i.slot FROM instances_view i JOIN "
                  "releases_view r "
                  "ON r.release_id = "
                  "i.release_id WHERE i.node_id = $1 AND i.current_state <> 'stopped' "
                  "ORDER BY i.instance_id",
              {node_id}));
  PLFM_ASSIGN_OR_RETURN(auto volumes, envVolumes(tx, node_id));
  PLFM_ASSIGN_OR_RETURN(auto node_volumes, nodeVolumes(tx, node_id));
  PLFM_ASSIGN_OR_RETURN(auto volume_ops, nodeVolumeOps(tx, node_id));
  PLFM_ASSIGN_OR_RETURN(auto mesh, meshSection(tx, node_id, cluster_prefix));
  PLFM_TRY(tx.commit());
  // A bad manifest costs only its own instances: they are left out and
  // logged, every other instance is still served.
  Manifests manifests;
  Json instances = Json::array();
  for (int i = 0; i < rs.rows(); ++i) {
    const std::string release(rs.text(i, 7));
    const auto& m = manifests.get(release, rs.text(i, 11));
    if (!m) {
      log::warn("node plan leaves out an instance whose release cannot run",
                {{"node_id", node_id},
                 {"instance_id", std::string(rs.text(i, 0))},
                 {"release_id", release},
                 {"error", m.error().message()}});
      continue;
    }
    auto vols = volumesOf(rs, i, *m, node_id, volumes);
    if (!vols) {
      log::warn("node plan leaves out an instance whose volumes are not on its node",
                {{"node_id", node_id},
                 {"instance_id", std::string(rs.text(i, 0))},
                 {"error", vols.error().message()}});
      continue;
    }
    Json spec = workloadSpec(rs, i, *m);
    spec["volumes"] = std::move(*vols);
    instances.push_back(std::move(spec));
  }
  return Json{{"node_id", node_id},
              {"version", head.int64(0, 0).value_or(0)},
              {"ipv6_prefix", std::string(head.text(0, 1))},
              {"instances", std::move(instances)},
              {"volumes", std::move(node_volumes)},
              {"volume_ops", std::move(volume_ops)},
              {"mesh", std::move(mesh)}};
}

// ---- PlanFeed ----

PlanFeed::PlanFeed(std::string conninfo, ProjectionWorker& worker)
    : VersionFeed("plan", std::move(conninfo), worker,
                  "SELECT node_id, max(plan_seq) FROM instances_view WHERE plan_seq > $1 "
                  "AND node_id IS NOT NULL GROUP BY node_id UNION ALL SELECT node_id, "
                  "max(plan_seq) FROM volumes_view WHERE plan_seq > $1 AND node_id IS NOT NULL "
                  "GROUP BY node_id UNION ALL SELECT node_id, max(plan_seq) FROM "
                  "volume_snapshots_view WHERE plan_seq > $1 GROUP BY node_id UNION ALL SELECT "
                  "node_id, max(plan_seq) FROM volume_ops_view WHERE plan_seq > $1 GROUP BY "
                  "node_id UNION ALL SELECT node_id, "
                  "plan_version FROM nodes_view WHERE plan_version > $1 UNION ALL SELECT '" +
                      std::string(kMeshKey) +
                      "', max(mesh_seq) FROM nodes_view HAVING max(mesh_seq) > $1",
                  std::string(kMeshKey)) {}

}  // namespace plfm::cp
