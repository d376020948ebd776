// The views a scheduler round loads. A round is skipped when only events
// whose projections write none of them arrived (watchersRead() in
// projections.cc): reading another view here means checking that list.
#include "scheduler_input.h"

#include <algorithm>
#include <set>

#include "deploy_create.h"
#include "mesh_plan.h"
#include "plfm/core/id.h"
#include "plfm/core/log.h"
#include "plfm/core/strings.h"
#include "plfm/events/events.h"
#include "stored_release.h"

namespace plfm::cp::sched {
namespace {

using reconcile::Group;
using reconcile::Resources;
using reconcile::Revision;

// What the scheduler needs of a release's manifest (api/schemas/manifest.json).
struct ReleaseInfo {
  std::unordered_map<std::string, Resources> processes;
  std::unordered_map<std::string, std::vector<ManifestVolume>> volumes;  // by process, in order
  std::string names;  // "web, worker", for reasons
  int max_surge = 1;
  int max_unavailable = 0;
  std::int64_t progress_deadline_ms = 0;
  bool auto_rollback = true;
};

// The typed read of a stored manifest (stored_release.h): resources are
// within the manifest's ranges, or the whole release is an error.
Result<ReleaseInfo> parseRelease(std::string_view manifest_text) {
  PLFM_ASSIGN_OR_RETURN(const manifest::Manifest m, readStoredManifest(manifest_text));
  ReleaseInfo r;
  for (const auto& p : m.processes) {
    r.names += (r.names.empty() ? "" : ", ") + p.name;
    r.processes.emplace(p.name, Resources{p.resources.vcpus, p.resources.memory_mb});
  }
  for (const auto& v : m.volumes) {
    r.volumes[v.process].push_back(ManifestVolume{v.name, static_cast<int64_t>(v.size_bytes)});
  }
  r.max_surge = m.deploy.max_surge;
  r.max_unavailable = m.deploy.max_unavailable;
  r.progress_deadline_ms = m.deploy.progress_deadline_ms;
  r.auto_rollback = m.deploy.auto_rollback;
  return r;
}

std::string textArray(const std::set<std::string>& ids) {
  std::string out = "{";
  for (const auto& id : ids) {
    if (out.size() > 1) out += ',';
    out += id;
  }
  return out + "}";
}

int64_t intOr(const pg::ResultSet& rs, int row, int col, int64_t fallback) {
  return rs.isNull(row, col) ? fallback : rs.int64(row, col).value_or(fallback);
}

constexpr std::string_view kMs = "(extract(epoch FROM {}) * 1000)::bigint";
std::string ms(std::string_view col) {
  std::string s(kMs);
  return s.replace(s.find("{}"), 2, col);
}

Result<void> loadNodes(pg::Connection& conn, LoadedState& st) {
  // Free volume space: the capacity the agent last reported (none: 0) less
  // the sizes of the live volumes the node holds.
  PLFM_ASSIGN_OR_RETURN(
      auto rs, conn.exec("SELECT n.node_id, n.state, n.cordoned, n.draining, n.cores, "
                         "n.memory_mb, n.ipv6_prefix, " +
                         ms("n.state_since") +
                         ", coalesce(l.volume_capacity_bytes, 0) - coalesce((SELECT "
                         "sum(v.size_bytes) FROM volumes_view v WHERE v.node_id = n.node_id AND "
                         "v.state <> 'deleted'), 0), n.role FROM nodes_view n LEFT JOIN "
                         "node_liveness l "
                         "ON l.node_id = n.node_id"));
  st.input.nodes.reserve(static_cast<size_t>(rs.rows()));
  for (int i = 0; i < rs.rows(); ++i) {
    reconcile::Node n;
    n.id = rs.text(i, 0);
    n.state = reconcile::parseNodeState(rs.text(i, 1)).value_or(reconcile::NodeState::kDown);
    n.cordoned = rs.text(i, 2) == "t";
    n.draining = rs.text(i, 3) == "t";
    n.cores = static_cast<int>(intOr(rs, i, 4, 0));
    n.memory_mb = intOr(rs, i, 5, 0);
    n.prefix = rs.text(i, 6);
    n.unreachable_since_ms = intOr(rs, i, 7, 0);
    n.volume_free_bytes = intOr(rs, i, 8, 0);
    n.edge = rs.text(i, 9) == kRoleEdge;
    st.input.nodes.push_back(std::move(n));
  }
  return ok();
}

Result<void> loadGroups(pg::Connection& conn, LoadedState& st) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, conn.exec("SELECT s.env_id, s.process_type, s.count, e.org_id, e.app_id, "
                         "e.current_deploy_id, td.release_id, td.strategy, e.current_release_id, "
                         "sd.deploy_id, td.secrets_version, sd.secrets_version, t.net_tag "
                         "FROM env_scale_view s JOIN envs_view e ON e.env_id = s.env_id "
                         "LEFT JOIN org_net_tags t ON t.org_id = e.org_id "
                         "LEFT JOIN deploys_view td ON td.deploy_id = e.current_deploy_id "
                         "LEFT JOIN LATERAL (SELECT d2.deploy_id, d2.secrets_version FROM "
                         "deploys_view d2 WHERE d2.env_id = e.env_id AND d2.release_id = "
                         "e.current_release_id AND d2.status = 'succeeded' ORDER BY d2.deploy_id "
                         "DESC LIMIT 1) sd ON true"));
  std::set<std::string> releases;
  for (int i = 0; i < rs.rows(); ++i) {
    if (!rs.isNull(i, 6)) releases.emplace(rs.text(i, 6));
    if (!rs.isNull(i, 8)) releases.emplace(rs.text(i, 8));
  }
  // A release whose stored manifest does not parse costs only its own
  // groups: they are left out with the error as their reason.
  std::unordered_map<std::string, Result<ReleaseInfo>> infos;
  if (!releases.empty()) {
    PLFM_ASSIGN_OR_RETURN(auto rel, conn.exec("SELECT release_id, manifest FROM releases_view "
                                              "WHERE release_id = ANY($1::text[])",
                                              {textArray(releases)}));
    for (int i = 0; i < rel.rows(); ++i) {
      infos.emplace(rel.text(i, 0), parseRelease(rel.text(i, 1)));
    }
  }
  st.input.groups.reserve(static_cast<size_t>(rs.rows()));
  for (int i = 0; i < rs.rows(); ++i) {
    Group g;
    g.env_id = rs.text(i, 0);
    g.process = rs.text(i, 1);
    g.count = static_cast<int>(intOr(rs, i, 2, 0));
    // Tags are 1..2^32-2 (migration 0019); 0 (none): the old layout.
    g.org_tag = static_cast<std::uint32_t>(std::clamp<int64_t>(intOr(rs, i, 12, 0), 0, 0xfffffffe));
    st.envs.try_emplace(g.env_id, EnvInfo{std::string(rs.text(i, 3)), std::string(rs.text(i, 4))});
    if (!rs.isNull(i, 6)) {
      const std::string target(rs.text(i, 6));
      auto info = infos.find(target);
      if (info != infos.end() && !info->second) {
        if (g.count > 0) {
          st.unrunnable.push_back(reconcile::Pending{
              g.env_id, g.process, g.count, 0,
              "release " + target + " cannot run: " + info->second.error().message()});
        }
        continue;
      }
      const ReleaseInfo* proc = info == infos.end() ? nullptr : &*info->second;
      const Resources* res = nullptr;
      if (proc != nullptr) {
        if (auto it = proc->processes.find(g.process); it != proc->processes.end()) {
          res = &it->second;
        }
      }
      if (res == nullptr) {
        // The env's release cannot run this process type: leave the group
        // out (its instances, if any, are drained as no longer desired).
        if (g.count > 0) {
          st.unrunnable.push_back(reconcile::Pending{
              g.env_id, g.process, g.count, 0,
              "release " + target + " defines no process type '" + g.process + "'" +
                  (proc == nullptr || proc->names.empty() ? std::string()
                                                          : " (it has: " + proc->names + ")")});
        }
        continue;
      }
      g.target = Revision{target, std::string(rs.text(i, 5)), *res, std::string(rs.text(i, 10))};
      g.strategy.kind =
          reconcile::parseStrategyKind(rs.text(i, 7)).value_or(reconcile::StrategyKind::kRolling);
      g.strategy.max_surge = proc->max_surge;
      g.strategy.max_unavailable = proc->max_unavailable;
      g.strategy.progress_deadline_ms = proc->progress_deadline_ms;
      g.strategy.auto_rollback = proc->auto_rollback;
      if (auto v = proc->volumes.find(g.process); v != proc->volumes.end()) {
        for (const ManifestVolume& mv : v->second) {
          g.volume_names.push_back(mv.name);
          g.volume_bytes_per_slot += mv.size_bytes;
        }
        st.volumes.emplace(std::make_pair(g.env_id, g.process), v->second);
      }
    }
    if (!rs.isNull(i, 8)) {
      const std::string stable(rs.text(i, 8));
      auto info = infos.find(stable);
      if (info != infos.end() && info->second) {
        if (auto res = info->second->processes.find(g.process);
            res != info->second->processes.end()) {
          g.stable = Revision{stable, std::string(rs.text(i, 9)), res->second,
                              std::string(rs.text(i, 11))};
        }
      }
    }
    st.input.groups.push_back(std::move(g));
  }
  return ok();
}

// The live volumes, and the node of each slot of a group with volumes: the
// node of that slot's volumes of the manifest's names (rows in slot, then
// name order; the first with a node wins, as they all live on one node).
// Slots at or above the group's count are never placed and stay unset.
Result<void> loadVolumes(pg::Connection& conn, LoadedState& st) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, conn.exec("SELECT env_id, process_type, name, slot, full_name, volume_id, "
                         "coalesce(node_id, '') FROM volumes_view WHERE state <> 'deleted' "
                         "ORDER BY env_id, process_type, slot, name"));
  std::map<std::pair<std::string_view, std::string_view>, Group*> groups;
  for (Group& g : st.input.groups) {
    if (g.hasVolumes()) {
      groups.emplace(std::make_pair(std::string_view(g.env_id), std::string_view(g.process)), &g);
    }
  }
  for (int i = 0; i < rs.rows(); ++i) {
    std::string env(rs.text(i, 0));
    std::string node(rs.text(i, 6));
    st.live_volumes.insert_or_assign(std::make_pair(env, std::string(rs.text(i, 4))),
                                     LiveVolume{std::string(rs.text(i, 5)), node});
    auto g = groups.find(std::make_pair(std::string_view(env), rs.text(i, 1)));
    const int64_t slot = intOr(rs, i, 3, -1);
    if (node.empty() || g == groups.end() || slot < 0 || slot >= g->second->count) continue;
    const auto& names = g->second->volume_names;
    if (std::find(names.begin(), names.end(), rs.text(i, 2)) == names.end()) continue;
    auto& slot_nodes = g->second->slot_nodes;
    if (slot_nodes.size() <= static_cast<size_t>(slot))
      slot_nodes.resize(static_cast<size_t>(slot) + 1);
    if (slot_nodes[static_cast<size_t>(slot)].empty()) {
      slot_nodes[static_cast<size_t>(slot)] = std::move(node);
    }
  }
  return ok();
}

Result<void> loadDeploys(pg::Connection& conn, LoadedState& st) {
  // Deploys in flight, and each env's newest (which a failed deploy's
  // groups check); deploys of deleted envs are left alone.
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      conn.exec("SELECT d.deploy_id, d.env_id, d.release_id, d.status, " + ms("d.created_at") +
                ", d.org_id, d.rollback_of FROM deploys_view d JOIN envs_view e ON "
                "e.env_id = d.env_id "
                "WHERE d.status IN ('pending', 'in_progress') OR "
                "d.deploy_id = e.current_deploy_id"));
  st.input.deploys.reserve(static_cast<size_t>(rs.rows()));
  for (int i = 0; i < rs.rows(); ++i) {
    reconcile::Deploy d;
    d.id = rs.text(i, 0);
    d.env_id = rs.text(i, 1);
    d.release_id = rs.text(i, 2);
    d.status =
        reconcile::parseDeployStatus(rs.text(i, 3)).value_or(reconcile::DeployStatus::kSuperseded);
    d.created_ms = intOr(rs, i, 4, 0);
    st.deploy_org.emplace(d.id, rs.text(i, 5));
    if (!rs.isNull(i, 6)) d.rollback_of = rs.text(i, 6);
    st.input.deploys.push_back(std::move(d));
  }
  return ok();
}

Result<void> loadInstances(pg::Connection& conn, LoadedState& st) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      conn.exec("SELECT instance_id, env_id, process_type, release_id, deploy_id, node_id, "
                "address, generation, current_state, desired_state, lost, restarts, " +
                ms("phase_since") +
                ", exit_code, vcpus, memory_mb, org_id, secrets_version, slot FROM instances_view "
                "WHERE current_state <> 'stopped'"));
  st.input.instances.reserve(static_cast<size_t>(rs.rows()));
  st.instance_org.reserve(static_cast<size_t>(rs.rows()));
  for (int i = 0; i < rs.rows(); ++i) {
    reconcile::Instance in;
    in.id = rs.text(i, 0);
    in.env_id = rs.text(i, 1);
    in.process = rs.text(i, 2);
    in.release_id = rs.text(i, 3);
    in.deploy_id = rs.text(i, 4);
    in.node_id = rs.text(i, 5);
    in.address = rs.text(i, 6);
    in.generation = intOr(rs, i, 7, 1);
    in.phase = reconcile::parsePhase(rs.text(i, 8)).value_or(reconcile::Phase::kAllocated);
    in.desired = reconcile::parseDesired(rs.text(i, 9)).value_or(reconcile::Desired::kRun);
    in.lost = rs.text(i, 10) == "t";
    in.restarts = static_cast<int>(intOr(rs, i, 11, 0));
    in.phase_since_ms = intOr(rs, i, 12, 0);
    in.exit_code = static_cast<int>(intOr(rs, i, 13, 0));
    in.resources = Resources{static_cast<int>(intOr(rs, i, 14, 1)), intOr(rs, i, 15, 256)};
    st.instance_org.emplace(in.id, rs.text(i, 16));
    in.secrets_version = rs.text(i, 17);
    in.slot = static_cast<int>(intOr(rs, i, 18, -1));
    st.input.instances.push_back(std::move(in));
  }
  return ok();
}

// A JSON object written as text, field by field (no intermediate tree).
//
// The scheduler's events are written with this rather than with the typed
// structs of libs/events (events::toNewEvent): a round appends placements by
// the hundred thousand, and this skips building a JSON tree per event. The
// fields are still exactly those of each struct (the contract tests check
// the payloads against the schemas); only the key order is the order written
// here rather than sorted, and the instance.allocated batch in
// projections_sched.cc reads these payloads in SQL.
class JsonText {
 public:
  JsonText& str(std::string_view key, std::string_view value) {
    open(key);
    text_ += '"';
    appendJsonEscaped(text_, value);
    text_ += '"';
    return *this;
  }
  JsonText& num(std::string_view key, int64_t value) {
    open(key);
    text_ += std::to_string(value);
    return *this;
  }
  JsonText& null(std::string_view key) {
    open(key);
    text_ += "null";
    return *this;
  }
  std::string done() {
    text_ += text_.empty() ? "{}" : "}";
    return std::move(text_);
  }

 private:
  void open(std::string_view key) {
    text_ += text_.empty() ? '{' : ',';
    text_ += '"';
    text_.append(key);
    text_ += "\":";
  }
  std::string text_;
};

std::string orgOf(const std::unordered_map<std::string, std::string>& m, const std::string& id) {
  auto it = m.find(id);
  return it == m.end() ? std::string() : it->second;
}

// The envs of `rollbacks` that got a deploy after the views
// at `checkpoint`, which the Input reflects.
Result<std::set<std::string>> envsDeployedSince(pg::Transaction& tx, int64_t checkpoint,
                                                const std::vector<reconcile::Rollback>& rollbacks) {
  std::set<std::string> out;
  if (rollbacks.empty()) return out;
  std::set<std::string> envs;
  for (const auto& r : rollbacks) envs.insert(r.env_id);
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT DISTINCT payload->>'env_id' FROM events WHERE "
                                         "seq > $1 AND event_type IN ('deploy.created', "
                                         "'deploy.rollback_created') AND "
                                         "payload->>'env_id' = ANY($2::text[])",
                                         {checkpoint, textArray(envs)}));
  for (int i = 0; i < rs.rows(); ++i) out.emplace(rs.text(i, 0));
  return out;
}

// A failed deploy's reason whose rollback was dropped: the reconciler's
// "...; auto-rollback: dep_... redeploys it" (deploys.cc) no longer holds.
std::string withoutRollback(const std::string& reason) {
  const size_t at = reason.find("; auto-rollback: ");
  return (at == std::string::npos ? reason : reason.substr(0, at)) +
         "; not rolled back: a newer deploy of the env came first";
}

// The volumes the allocations of `plan` need (docs/specs/runtime/
// volume-mounts.md, "Who appends what"): for slot s of a process with
// volumes, each manifest volume "<name>-s" is created when the env has no
// live one of that name, and placed on the allocation's node when it has no
// node. "Live" is the views' rows plus volumes created since the views
// (through the API), read from the log under its lock.
Result<void> volumeEvents(pg::Transaction& tx, const reconcile::Plan& plan, const LoadedState& st,
                          const std::function<std::string()>& volume_ids,
                          std::vector<NewEvent>& out) {
  struct Need {
    const reconcile::Allocate* a;
    const ManifestVolume* v;
    std::pair<std::string, std::string> key;  // (env_id, full_name)
  };
  std::vector<Need> needs;
  std::set<std::string> envs;
  for (const auto& a : plan.allocations) {
    auto it = st.volumes.find(std::make_pair(a.env_id, a.process));
    if (it == st.volumes.end()) continue;
    envs.insert(a.env_id);
    for (const ManifestVolume& v : it->second) {
      needs.push_back(Need{&a, &v, {a.env_id, v.name + "-" + std::to_string(a.slot)}});
    }
  }
  if (needs.empty()) return ok();
  std::map<std::pair<std::string, std::string>, LiveVolume> since;
  PLFM_ASSIGN_OR_RETURN(
      auto rs, tx.exec("SELECT payload->>'env_id', payload->>'full_name', aggregate_id FROM events "
                       "WHERE seq > $1 AND event_type = 'volume.created' AND payload->>'env_id' = "
                       "ANY($2::text[]) ORDER BY seq",
                       {st.checkpoint, textArray(envs)}));
  for (int i = 0; i < rs.rows(); ++i) {
    since.insert_or_assign(std::make_pair(std::string(rs.text(i, 0)), std::string(rs.text(i, 1))),
                           LiveVolume{std::string(rs.text(i, 2)), ""});
  }
  auto find = [&](const std::pair<std::string, std::string>& key) -> const LiveVolume* {
    if (auto it = since.find(key); it != since.end()) return &it->second;
    auto it = st.live_volumes.find(key);
    return it == st.live_volumes.end() ? nullptr : &it->second;
  };
  std::vector<std::string> unplaced;
  for (const Need& n : needs) {
    if (const LiveVolume* v = find(n.key); v != nullptr && v->node_id.empty()) {
      unplaced.push_back(v->volume_id);
    }
  }
  PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, unplaced));

  for (const Need& n : needs) {
    const reconcile::Allocate& a = *n.a;
    auto env = st.envs.find(a.env_id);
    const EnvInfo info = env == st.envs.end() ? EnvInfo{} : env->second;
    LiveVolume v;
    if (const LiveVolume* found = find(n.key)) {
      v = *found;
    } else {
      v.volume_id = volume_ids ? volume_ids() : VolumeId::generate().str();
      out.push_back(events::toNewEvent(events::VolumeCreated{.volume_id = v.volume_id,
                                                             .org_id = info.org_id,
                                                             .app_id = info.app_id,
                                                             .env_id = a.env_id,
                                                             .process_type = a.process,
                                                             .name = n.v->name,
                                                             .slot = a.slot,
                                                             .full_name = n.key.second,
                                                             .size_bytes = n.v->size_bytes,
                                                             .origin = "manifest"},
                                       ++seqs[v.volume_id], info.org_id));
    }
    if (v.node_id.empty()) {
      v.node_id = a.node_id;
      out.push_back(events::toNewEvent(
          events::VolumePlaced{.volume_id = v.volume_id, .env_id = a.env_id, .node_id = a.node_id},
          ++seqs[v.volume_id], info.org_id));
    } else if (v.node_id != a.node_id) {
      // The reconciler pins a slot to its volumes' node; this is its bug.
      log::error("an allocation is not on the node of its slot's volume",
                 {{"instance_id", a.instance_id},
                  {"volume_id", v.volume_id},
                  {"node_id", a.node_id},
                  {"volume_node_id", v.node_id}});
    }
    since.insert_or_assign(n.key, std::move(v));
  }
  return ok();
}

}  // namespace

std::string msToRfc3339(int64_t ms) {
  return toRfc3339(Clock::WallTime(std::chrono::milliseconds(ms)));
}

Result<LoadedState> loadState(pg::Connection& conn, const reconcile::Config& config,
                              int64_t now_ms) {
  LoadedState st;
  st.input.now_ms = now_ms;
  st.input.config = config;
  // An org the scheduler meets without a network tag (one created before
  // migration 0019 ran on a replica, or by a path that forgot) gets one
  // now, outside the read-only snapshot; a racing insert wins harmlessly.
  PLFM_TRY(conn.exec(
      "INSERT INTO org_net_tags (org_id) SELECT DISTINCT e.org_id FROM envs_view e WHERE NOT "
      "EXISTS (SELECT 1 FROM org_net_tags t WHERE t.org_id = e.org_id) ON CONFLICT DO NOTHING"));
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn, pg::Isolation::kRepeatableRead));
  PLFM_TRY(tx.exec("SET TRANSACTION READ ONLY"));
  PLFM_ASSIGN_OR_RETURN(
      auto cp, tx.exec("SELECT last_seq FROM projection_checkpoints WHERE name = 'views'"));
  PLFM_ASSIGN_OR_RETURN(st.checkpoint, cp.int64(0, 0));
  PLFM_TRY(loadNodes(conn, st));
  PLFM_TRY(loadGroups(conn, st));
  PLFM_TRY(loadVolumes(conn, st));
  PLFM_TRY(loadDeploys(conn, st));
  PLFM_TRY(loadInstances(conn, st));
  PLFM_TRY(tx.commit());
  return st;
}

Result<std::vector<NewEvent>> planEvents(pg::Transaction& tx, const reconcile::Plan& plan,
                                         const LoadedState& st,
                                         const std::function<std::string()>& volume_ids) {
  std::vector<std::string> ids;
  for (const auto& a : plan.lost) ids.push_back(a.instance_id);
  for (const auto& a : plan.stops) ids.push_back(a.instance_id);
  for (const auto& a : plan.drains) ids.push_back(a.instance_id);
  for (const auto& a : plan.restarts) ids.push_back(a.instance_id);
  for (const auto& a : plan.deploys) ids.push_back(a.deploy_id);
  PLFM_ASSIGN_OR_RETURN(auto seqs, EventStore::aggregateSeqs(tx, ids));

  std::vector<NewEvent> out;
  out.reserve(ids.size() + plan.allocations.size());
  auto instanceEvent = [&](const std::string& id, std::string type, JsonText payload) {
    out.push_back(NewEvent{"instance", id, ++seqs[id], std::move(type), 1,
                           orgOf(st.instance_org, id), payload.done()});
  };
  for (const auto& a : plan.lost) {
    instanceEvent(a.instance_id, "instance.lost",
                  JsonText()
                      .str("instance_id", a.instance_id)
                      .str("node_id", a.node_id)
                      .str("reason", a.reason));
  }
  for (const auto& a : plan.stops) {
    instanceEvent(a.instance_id, "instance.stop_requested",
                  JsonText().str("instance_id", a.instance_id).str("reason", a.reason));
  }
  for (const auto& a : plan.drains) {
    instanceEvent(a.instance_id, "instance.drain_requested",
                  JsonText().str("instance_id", a.instance_id).str("reason", a.reason));
  }
  for (const auto& a : plan.restarts) {
    instanceEvent(a.instance_id, "instance.restart_scheduled",
                  JsonText()
                      .str("instance_id", a.instance_id)
                      .str("node_id", a.node_id)
                      .num("generation", a.generation)
                      .num("restarts", a.restarts)
                      .str("not_before", msToRfc3339(a.not_before_ms))
                      .str("reason", a.reason));
  }
  // Auto-rollbacks, before the failed transitions they follow, so a reader
  // who sees a deploy failed also sees its rollback.
  PLFM_ASSIGN_OR_RETURN(const auto deployed, envsDeployedSince(tx, st.checkpoint, plan.rollbacks));
  std::set<std::string> dropped;  // failed deploys whose rollback is not appended
  for (const auto& r : plan.rollbacks) {
    if (deployed.contains(r.env_id)) {
      // A deploy created since the Input was read is newer than the failed
      // one; the rollback would supersede it.
      log::info("auto-rollback dropped: a newer deploy exists",
                {{"env_id", r.env_id}, {"failed_deploy_id", r.rollback_of}});
      dropped.insert(r.rollback_of);
      continue;
    }
    auto env = st.envs.find(r.env_id);
    const EnvInfo info = env == st.envs.end() ? EnvInfo{} : env->second;
    DeployRequest req{.org_id = info.org_id,
                      .app_id = info.app_id,
                      .env_id = r.env_id,
                      .release_id = r.release_id,
                      .strategy = std::string(reconcile::toString(r.strategy)),
                      .secrets_version = std::nullopt,
                      .id = r.deploy_id,
                      .rollback_of = r.rollback_of,
                      .reason = r.reason};
    if (!r.secrets_version.empty()) req.secrets_version = r.secrets_version;
    out.push_back(newDeploy(req, msToRfc3339(st.input.now_ms)).event);
  }
  PLFM_TRY(volumeEvents(tx, plan, st, volume_ids, out));
  // Placements come by the hundred thousand: their text is built directly.
  for (const auto& a : plan.allocations) {
    auto env = st.envs.find(a.env_id);
    const EnvInfo info = env == st.envs.end() ? EnvInfo{} : env->second;
    JsonText payload;
    payload.str("instance_id", a.instance_id)
        .str("org_id", info.org_id)
        .str("app_id", info.app_id)
        .str("env_id", a.env_id)
        .str("process_type", a.process)
        .str("release_id", a.release_id);
    if (a.secrets_version.empty()) {
      payload.null("secrets_version");
    } else {
      payload.str("secrets_version", a.secrets_version);
    }
    if (a.deploy_id.empty()) {
      payload.null("deploy_id");
    } else {
      payload.str("deploy_id", a.deploy_id);
    }
    payload.str("node_id", a.node_id)
        .str("address", a.address)
        .num("vcpus", a.resources.vcpus)
        .num("memory_mb", a.resources.memory_mb)
        .str("reason", a.reason)
        .num("slot", a.slot);
    out.push_back(
        NewEvent{"instance", a.instance_id, 1, "instance.allocated", 1, info.org_id, payload.done(),
                 a.deploy_id.empty() ? "{}" : JsonText().str("deploy_id", a.deploy_id).done()});
  }
  for (const auto& t : plan.deploys) {
    out.push_back(NewEvent{
        "deploy", t.deploy_id, ++seqs[t.deploy_id], "deploy.status_changed", 1,
        orgOf(st.deploy_org, t.deploy_id),
        JsonText()
            .str("deploy_id", t.deploy_id)
            .str("status", reconcile::toString(t.to))
            .str("reason", dropped.contains(t.deploy_id) ? withoutRollback(t.reason) : t.reason)
            .done(),
        JsonText().str("deploy_id", t.deploy_id).done()});
  }
  return out;
}

}  // namespace plfm::cp::sched
