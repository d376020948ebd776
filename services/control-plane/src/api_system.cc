// Health, metrics, nodes (read) and the org event feed (cursor + long-poll).
#include <charconv>

#include "api.h"

namespace plfm::cp {
namespace {

const std::string kNodeColumns =
    "node_id AS id, hostname, state, cores, memory_mb, ipv6_prefix, "
    "labels, " +
    ts("created_at") + " AS created_at, " + ts("updated_at") + " AS updated_at";

Result<int64_t> queryInt(const http::Request& req, std::string_view name, int64_t def, int64_t lo,
                         int64_t hi) {
  auto v = req.queryParam(name);
  if (!v) return def;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), out);
  if (ec != std::errc() || p != v->data() + v->size() || out < lo || out > hi) {
    return Error(apierr::kInvalidQuery, "query parameter '" + std::string(name) +
                                            "' must be an integer " + std::to_string(lo) + ".." +
                                            std::to_string(hi))
        .with("field", std::string(name));
  }
  return out;
}

}  // namespace

void Api::registerSystemRoutes(http::Router& r) {
  route(r, "GET", "/healthz", Access::kPublic, [this](Ctx&) -> Result<http::Response> {
    auto lease = deps_.pool.acquire(std::chrono::seconds(2));
    if (!lease || !(*lease)->exec("SELECT 1")) {
      return Error(plfm::errc::kUnavailable, "the database is unreachable");
    }
    return jsonResponse(200, {{"status", "ok"}, {"checkpoint", deps_.worker.checkpoint()}});
  });

  route(r, "GET", "/metrics", Access::kPublic, [this](Ctx&) -> Result<http::Response> {
    deps_.metrics.gauge("plfm_projection_checkpoint", "Last event seq applied to the views.")
        .set(static_cast<double>(deps_.worker.checkpoint()));
    deps_.metrics.gauge("plfm_db_connections_in_use", "Database connections leased.")
        .set(static_cast<double>(deps_.pool.inUse()));
    http::Response resp = http::Response::text(200, deps_.metrics.render());
    resp.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return resp;
  });

  route(r, "GET", "/v1/nodes", Access::kAdmin, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "node"));
    PLFM_ASSIGN_OR_RETURN(auto rs, ctx.db().exec("SELECT " + kNodeColumns +
                                                     " FROM nodes_view WHERE ($1::text IS NULL "
                                                     "OR node_id > $1) ORDER BY node_id LIMIT $2",
                                                 {page.cursor, page.limit}));
    return jsonResponse(200, pageJson(rs, page));
  });

  route(r, "GET", "/v1/nodes/{node_id}", Access::kAdmin, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto node, pathId<NodeId>(ctx.req, "node_id"));
    PLFM_ASSIGN_OR_RETURN(
        auto rs, ctx.db().exec("SELECT " + kNodeColumns + " FROM nodes_view WHERE node_id = $1",
                               {node.str()}));
    if (rs.rows() != 1) {
      return Error(plfm::errc::kNotFound, "node " + node.str() + " not found")
          .with("node_id", node.str());
    }
    return jsonResponse(200, rowToJson(rs, 0));
  });

  route(r, "GET", "/v1/orgs/{org_id}/events", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
          PLFM_ASSIGN_OR_RETURN(int64_t after, queryInt(ctx.req, "after", 0, 0, INT64_MAX));
          PLFM_ASSIGN_OR_RETURN(int64_t limit, queryInt(ctx.req, "limit", 100, 1, 500));
          PLFM_ASSIGN_OR_RETURN(
              int64_t wait, queryInt(ctx.req, "wait", 0, 0, deps_.options.max_long_poll.count()));
          PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
          const auto deadline = deps_.clock.steadyNow() + std::chrono::seconds(wait);
          std::vector<StoredEvent> events;
          for (;;) {
            PLFM_ASSIGN_OR_RETURN(
                events, EventStore::readAfter(ctx.db(), after, static_cast<int>(limit), org.str()));
            if (!events.empty() || deps_.clock.steadyNow() >= deadline) break;
            // Long-poll: give the connection back while waiting for new events
            // (the projection worker sees every append through NOTIFY).
            ctx.lease.reset();
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - deps_.clock.steadyNow());
            const int64_t head = std::max(after, deps_.worker.checkpoint());
            deps_.worker.waitBeyond(head, left);
            PLFM_ASSIGN_OR_RETURN(auto lease, deps_.pool.acquire(deps_.options.db_acquire_timeout));
            ctx.lease.emplace(std::move(lease));
          }
          json::Json items = json::Json::array();
          int64_t next = after;
          for (const auto& e : events) {
            items.push_back(json::parse(EventStore::envelopeJson(e)).value_or(json::Json()));
            next = e.seq;
          }
          return jsonResponse(200, {{"items", items}, {"next_after", next}});
        });
}

}  // namespace plfm::cp
