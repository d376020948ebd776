// Nodes for platform admins: list and get, enrollment tokens, and
// scheduling (cordon, drain). The agent's own routes are in api_agent.cc.
#include "api.h"
#include "nodes.h"

namespace plfm::cp {
namespace {

// Node rows joined with what is allocated on them (instances that have not
// stopped) and the last heartbeat (write-side, not a view).
const std::string kNodeSelect =
    "SELECT n.node_id AS id, n.hostname, n.state, n.state_reason, " + ts("n.state_since") +
    " AS state_since, n.cordoned, n.draining, n.cores, n.memory_mb, n.disk_mb, n.ipv6_prefix, "
    "n.labels, n.runtimes, n.wireguard_public_key, n.underlay_address, n.mesh_port, n.role, "
    "jsonb_build_object('since', " +
    ts("n.mesh_key_since") +
    ", 'rotating', n.mesh_rotation_requested OR n.next_wireguard_public_key IS NOT NULL, "
    "'next_public_key', n.next_wireguard_public_key) AS mesh_key, "
    "GREATEST(n.plan_version, coalesce(a.plan_seq, 0)) AS plan_version, "
    "jsonb_build_object('instances', coalesce(a.instances, 0), 'vcpus', coalesce(a.vcpus, 0), "
    "'memory_mb', coalesce(a.memory_mb, 0)) AS allocated, " +
    ts("l.last_heartbeat_at") +
    " AS last_heartbeat_at, coalesce(l.agent_url, '') AS agent_url, l.mesh, " + ts("n.created_at") +
    " AS created_at, " + ts("n.updated_at") +
    " AS updated_at FROM nodes_view n LEFT JOIN LATERAL (SELECT max(i.plan_seq) AS plan_seq, "
    "count(*) FILTER (WHERE i.current_state <> 'stopped') AS instances, "
    "sum(i.vcpus) FILTER (WHERE i.current_state <> 'stopped') AS vcpus, "
    "sum(i.memory_mb) FILTER (WHERE i.current_state <> 'stopped') AS memory_mb "
    "FROM instances_view i WHERE i.node_id = n.node_id) a ON true "
    "LEFT JOIN node_liveness l ON l.node_id = n.node_id WHERE n.removed_at IS NULL";

Result<std::optional<bool>> optionalBool(const json::Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<bool>();
  if (!it->is_boolean()) {
    return Error(apierr::kInvalidField, "field '" + std::string(field) + "' must be a boolean")
        .with("field", std::string(field));
  }
  return std::optional<bool>(it->get<bool>());
}

}  // namespace

void Api::registerNodeRoutes(http::Router& r) {
  route(r, "GET", "/v1/nodes", Access::kAdmin, [this](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "node"));
    PLFM_TRY(awaitScheduler(ctx));
    PLFM_ASSIGN_OR_RETURN(auto rs,
                          ctx.db().exec(kNodeSelect + " AND ($1::text IS NULL OR n.node_id > $1) "
                                                      "ORDER BY n.node_id LIMIT $2",
                                        {page.cursor, page.limit}));
    return jsonResponse(200, pageJson(rs, page));
  });

  route(r, "GET", "/v1/nodes/{node_id}", Access::kAdmin,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_TRY(awaitScheduler(ctx));
          PLFM_ASSIGN_OR_RETURN(auto rs,
                                ctx.db().exec(kNodeSelect + " AND n.node_id = $1", {node.str()}));
          if (rs.rows() != 1) {
            return Error(plfm::errc::kNotFound, "node " + node.str() + " not found")
                .with("node_id", node.str());
          }
          return jsonResponse(200, rowToJson(rs, 0));
        });

  route(r, "POST", "/v1/nodes/enrollments", Access::kAdmin,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"ttl_seconds"}));
          int64_t ttl = 900;
          if (auto it = body.find("ttl_seconds"); it != body.end()) {
            const int64_t max = deps_.options.max_enrollment_ttl.count();
            if (!it->is_number_integer() || it->get<int64_t>() < 60 || it->get<int64_t>() > max) {
              return Error(apierr::kInvalidField,
                           "field 'ttl_seconds' must be an integer 60.." + std::to_string(max))
                  .with("field", "ttl_seconds");
            }
            ttl = it->get<int64_t>();
          }
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto created, createEnrollment(tx, deps_.clock, ctx.who.id,
                                                                 std::chrono::seconds(ttl)));
            const NewEnrollment& e = created.first;
            return showTokenOnce({{"id", e.enrollment_id},
                                  {"token", e.token},
                                  {"expires_at", e.expires_at},
                                  {"created_at", e.created_at}},
                                 {std::move(created.second)});
          });
        });

  route(r, "DELETE", "/v1/nodes/{node_id}", Access::kAdmin,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto removed, removeNode(tx, deps_.clock, node.str()));
            Mutation m;
            m.status = 200;
            m.settle = true;  // its instances are replaced elsewhere
            m.body = {{"node_id", node.str()},
                      {"hostname", removed.first.hostname},
                      {"removed", true},
                      {"revoked_tokens", removed.first.revoked_tokens}};
            m.events = std::move(removed.second);
            return m;
          });
        });

  route(r, "PUT", "/v1/nodes/{node_id}/scheduling", Access::kAdmin,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"cordoned", "draining"}));
          PLFM_ASSIGN_OR_RETURN(auto cordoned, optionalBool(body, "cordoned"));
          PLFM_ASSIGN_OR_RETURN(auto draining, optionalBool(body, "draining"));
          if (!cordoned && !draining) {
            return Error(apierr::kInvalidField,
                         "give 'cordoned' or 'draining' (or both), e.g. {\"cordoned\": true}")
                .with("field", "cordoned");
          }
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT cordoned, draining FROM nodes_view "
                                                   "WHERE node_id = $1",
                                                   {node.str()}));
            if (rs.rows() != 1) {
              return Error(plfm::errc::kNotFound, "node " + node.str() + " not found")
                  .with("node_id", node.str());
            }
            const bool was_cordoned = rs.text(0, 0) == "t";
            const bool was_draining = rs.text(0, 1) == "t";
            const bool c = cordoned ? *cordoned : was_cordoned;
            const bool d = draining ? *draining : was_draining;
            Mutation m;
            m.status = 200;
            m.settle = true;
            m.body = {{"node_id", node.str()}, {"cordoned", c}, {"draining", d}};
            if (c == was_cordoned && d == was_draining) return m;  // nothing changes
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, node.str()));
            m.events = {events::toNewEvent(
                events::NodeSchedulingChanged{.node_id = node.str(), .cordoned = c, .draining = d},
                next, "")};
            return m;
          });
        });
}

}  // namespace plfm::cp
