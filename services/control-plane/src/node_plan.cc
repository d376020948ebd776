#include "node_plan.h"

#include "api.h"

namespace plfm::cp {
namespace {

using json::Json;

// SELECT for a node's plan version: its own (enrollment) and its instances'.
constexpr std::string_view kVersionSql =
    "SELECT GREATEST(n.plan_version, coalesce((SELECT max(i.plan_seq) FROM instances_view i "
    "WHERE i.node_id = n.node_id), 0)), n.ipv6_prefix FROM nodes_view n WHERE n.node_id = $1";

Error unknownNode(const std::string& node_id) {
  return Error(plfm::errc::kNotFound, "node " + node_id + " not found").with("node_id", node_id);
}

// The process entry of a manifest's `processes` array, or null.
Json processOf(const Json& processes, const std::string& name) {
  if (processes.is_array()) {
    for (const auto& p : processes) {
      if (p.is_object() && p.value("name", "") == name) return p;
    }
  }
  return Json();
}

Json checksOf(const Json& checks, const std::string& name) {
  Json out = Json::array();
  if (!checks.is_array()) return out;
  for (const auto& c : checks) {
    if (!c.is_object() || c.value("process", "") != name) continue;
    out.push_back({{"type", c.value("type", "tcp")},
                   {"port", c.value("port", 0)},
                   {"path", c.value("path", "")},
                   {"command", c.value("command", Json::array())},
                   {"interval_ms", c.value("interval_ms", 10000)},
                   {"timeout_ms", c.value("timeout_ms", 2000)},
                   {"grace_ms", c.value("grace_ms", 5000)}});
  }
  return out;
}

Json stringArray(const Json& j) {
  Json out = Json::array();
  if (j.is_array()) {
    for (const auto& s : j) {
      if (s.is_string()) out.push_back(s);
    }
  }
  return out;
}

Json workloadSpec(const pg::ResultSet& rs, int i) {
  auto text = [&](int col) { return std::string(rs.text(i, col)); };
  auto nullable = [&](int col) { return rs.isNull(i, col) ? Json() : Json(text(col)); };
  const std::string process = text(6);
  const Json processes = json::parse(rs.text(i, 11)).value_or(Json());
  const Json env = json::parse(rs.text(i, 12)).value_or(Json());
  const Json checks = json::parse(rs.text(i, 13)).value_or(Json());
  const Json proc = processOf(processes, process);
  Json env_out = Json::object();
  if (env.is_object()) {
    for (const auto& [k, v] : env.items()) {
      if (v.is_string()) env_out[k] = v;
    }
  }
  return {
      {"instance_id", text(0)},
      {"generation", rs.int64(i, 1).value_or(1)},
      {"desired", text(2)},
      {"org_id", text(3)},
      {"app_id", text(4)},
      {"env_id", text(5)},
      {"process_type", process},
      {"release_id", text(7)},
      {"deploy_id", nullable(8)},
      {"image", {{"ref", text(9)}, {"digest", text(10)}}},
      {"command", proc.is_object() ? stringArray(proc.value("command", Json())) : Json::array()},
      {"args", proc.is_object() ? stringArray(proc.value("args", Json())) : Json::array()},
      {"env", env_out},
      {"resources",
       {{"vcpus", rs.int64(i, 14).value_or(1)}, {"memory_mb", rs.int64(i, 15).value_or(256)}}},
      {"network",
       {{"address", text(16)},
        {"prefix_len", 128},
        {"gateway", std::string(kInstanceGateway)},
        {"mtu", kInstanceMtu}}},
      {"checks", checksOf(checks, process)},
      {"volumes", Json::array()},
      {"secrets", {{"version", nullable(19)}}},
      {"restart", {{"count", rs.int64(i, 18).value_or(0)}, {"not_before", nullable(17)}}}};
}

}  // namespace

Result<int64_t> planVersion(pg::Connection& conn, const std::string& node_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec(kVersionSql, {node_id}));
  if (rs.rows() != 1) return unknownNode(node_id);
  return rs.int64(0, 0);
}

Result<json::Json> buildNodePlan(pg::Connection& conn, const std::string& node_id) {
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn, pg::Isolation::kRepeatableRead));
  PLFM_TRY(tx.exec("SET TRANSACTION READ ONLY"));
  PLFM_ASSIGN_OR_RETURN(auto head, tx.exec(kVersionSql, {node_id}));
  if (head.rows() != 1) return unknownNode(node_id);
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec("SELECT i.instance_id, i.generation, i.desired_state, i.org_id, i.app_id, "
              "i.env_id, i.process_type, i.release_id, i.deploy_id, r.image_ref, "
              "r.image_digest, coalesce(r.manifest->'processes', '[]'::jsonb), "
              "coalesce(r.manifest->'env', '{}'::jsonb), "
              "coalesce(r.manifest->'checks', '[]'::jsonb), i.vcpus, i.memory_mb, "
              "coalesce(i.address, ''), " +
                  ts("i.not_before") +
                  ", i.restarts, i.secrets_version FROM instances_view i JOIN releases_view r "
                  "ON r.release_id = "
                  "i.release_id WHERE i.node_id = $1 AND i.current_state <> 'stopped' "
                  "ORDER BY i.instance_id",
              {node_id}));
  PLFM_TRY(tx.commit());
  Json instances = Json::array();
  for (int i = 0; i < rs.rows(); ++i) instances.push_back(workloadSpec(rs, i));
  return Json{{"node_id", node_id},
              {"version", head.int64(0, 0).value_or(0)},
              {"ipv6_prefix", std::string(head.text(0, 1))},
              {"instances", std::move(instances)}};
}

// ---- PlanFeed ----

PlanFeed::PlanFeed(std::string conninfo, ProjectionWorker& worker)
    : VersionFeed("plan", std::move(conninfo), worker,
                  "SELECT node_id, max(plan_seq) FROM instances_view WHERE plan_seq > $1 "
                  "AND node_id IS NOT NULL GROUP BY node_id UNION ALL SELECT node_id, "
                  "plan_version FROM nodes_view WHERE plan_version > $1") {}

}  // namespace plfm::cp
