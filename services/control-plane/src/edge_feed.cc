#include "edge_feed.h"

#include <unistd.h>

#include "auth.h"
#include "plfm/core/process.h"

namespace plfm::cp {
namespace {

using json::Json;

constexpr std::string_view kCursorSql =
    "SELECT coalesce((SELECT cursor FROM edge_feed_view WHERE id = 1), 0)";

// The instances of route r that are its backends (edge_feed.h), as a join condition on i.
const std::string kBackendOf =
    "i.env_id = r.env_id AND i.process_type = r.process_type AND i.node_id IS NOT NULL AND "
    "coalesce(i.address, '') <> '' AND i.desired_state = 'run' AND NOT i.lost AND "
    "i.current_state IN ('running', 'healthy', 'unhealthy')";

// The edge config's backends: those above, plus the instances that are
// draining (drain_gate.h) and still up. These are never picked, and each
// ingress reports its open connections to them (PUT /v1/edge/status).
const std::string kEdgeBackendOf =
    "i.env_id = r.env_id AND i.process_type = r.process_type AND i.node_id IS NOT NULL AND "
    "coalesce(i.address, '') <> '' AND NOT i.lost AND ((i.desired_state = 'run' AND "
    "i.current_state IN ('running', 'healthy', 'unhealthy')) OR (i.desired_state = 'drain' AND "
    "i.current_state IN ('running', 'healthy', 'unhealthy', 'draining')))";

}  // namespace

EdgeFeed::EdgeFeed(std::string conninfo, ProjectionWorker& worker)
    : VersionFeed("edge", std::move(conninfo), worker,
                  "SELECT 'edge', cursor FROM edge_feed_view WHERE cursor > $1") {}

Result<int64_t> edgeCursor(pg::Connection& conn) { return readVersion(conn, kCursorSql); }

Result<json::Json> buildEdgeConfig(pg::Connection& conn) {
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn, pg::Isolation::kRepeatableRead));
  PLFM_TRY(tx.exec("SET TRANSACTION READ ONLY"));
  PLFM_ASSIGN_OR_RETURN(auto head, tx.exec(kCursorSql));
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      tx.exec("SELECT r.route_id, r.hostname, r.listener_port, r.protocol, r.proxy_protocol, "
              "r.backend_port, i.address, i.current_state = 'healthy' AND i.desired_state = "
              "'run', i.desired_state = 'drain' FROM routes_view r LEFT JOIN instances_view i ON " +
              kEdgeBackendOf + " ORDER BY r.route_id, i.instance_id"));
  PLFM_TRY(tx.commit());
  Json routes = Json::array();
  for (int i = 0; i < rs.rows(); ++i) {
    const std::string id(rs.text(i, 0));
    if (routes.empty() || routes.back()["id"] != id) {
      routes.push_back({{"id", id},
                        {"hostname", std::string(rs.text(i, 1))},
                        {"listener_port", rs.int64(i, 2).value_or(0)},
                        {"protocol", std::string(rs.text(i, 3))},
                        {"proxy_protocol", std::string(rs.text(i, 4))},
                        {"backends", Json::array()}});
    }
    if (rs.isNull(i, 6)) continue;  // a route without running instances
    routes.back()["backends"].push_back({{"address", std::string(rs.text(i, 6))},
                                         {"port", rs.int64(i, 5).value_or(0)},
                                         {"healthy", rs.boolean(i, 7).value_or(false)},
                                         {"draining", rs.boolean(i, 8).value_or(false)}});
  }
  return Json{{"cursor", head.int64(0, 0).value_or(0)}, {"routes", std::move(routes)}};
}

Result<json::Json> routeBackends(pg::Connection& conn, const std::string& route_id) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, conn.exec("SELECT i.instance_id, i.node_id, i.address, r.backend_port AS port, "
                         "i.current_state AS phase, i.current_state = 'healthy' AS healthy FROM "
                         "routes_view r JOIN instances_view i ON " +
                             kBackendOf + " WHERE r.route_id = $1 ORDER BY i.instance_id",
                         {route_id}));
  Json items = Json::array();
  for (int i = 0; i < rs.rows(); ++i) {
    items.push_back({{"instance_id", std::string(rs.text(i, 0))},
                     {"node_id", std::string(rs.text(i, 1))},
                     {"address", std::string(rs.text(i, 2))},
                     {"port", rs.int64(i, 3).value_or(0)},
                     {"phase", std::string(rs.text(i, 4))},
                     {"healthy", rs.boolean(i, 5).value_or(false)}});
  }
  return Json{{"items", std::move(items)}};
}

Result<std::pair<NewEdgeToken, NewEvent>> createEdgeToken(pg::Transaction& tx, const Clock& clock,
                                                          const std::string& name,
                                                          std::optional<std::chrono::seconds> ttl) {
  NewEdgeToken t;
  t.token_id = TokenId::generate().str();
  t.name = name;
  t.token = newToken();
  const auto now = clock.now();
  t.created_at = toRfc3339(now);
  if (ttl) t.expires_at = toRfc3339(now + *ttl);
  PLFM_TRY(tx.exec(
      "INSERT INTO api_tokens (token_id, token_hash, kind, subject_id, description, created_at, "
      "expires_at) VALUES ($1, $2, 'edge', $3, 'edge token', $4, $5)",
      {t.token_id, hashToken(t.token), name, t.created_at, t.expires_at}));
  NewEvent e = events::toNewEvent(
      events::TokenCreated{.token_id = t.token_id, .kind = "edge", .subject_id = name}, 1, "");
  return std::make_pair(std::move(t), std::move(e));
}

Result<NewEdgeToken> mintEdgeTokenFile(pg::Connection& conn, EventStore& store, const Clock& clock,
                                       const std::string& name,
                                       std::optional<std::chrono::seconds> ttl,
                                       const std::string& file) {
  PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
  PLFM_ASSIGN_OR_RETURN(auto created, createEdgeToken(tx, clock, name, ttl));
  PLFM_TRY(store.append(tx, {"system:edge-token", ""}, {created.second}));
  PLFM_TRY(writeFileAtomic(file, created.first.token + "\n", 0600));
  if (auto c = tx.commit(); !c) {
    ::unlink(file.c_str());
    return unexpected(std::move(c).error());
  }
  return std::move(created.first);
}

}  // namespace plfm::cp
