// The edge: edge tokens for platform admins, and the feed the ingress
// long-polls (GET /v1/edge/config, docs/specs/ingress/edge-feed.md).
#include "api.h"
#include "edge_feed.h"
#include "plfm/net/proxy_protocol.h"

namespace plfm::cp {
namespace {

// An edge token as admins see it: never the token, never its hash.
const std::string kEdgeTokenColumns = "token_id AS id, subject_id AS name, " + ts("created_at") +
                                      " AS created_at, " + ts("expires_at") + " AS expires_at, " +
                                      ts("revoked_at") + " AS revoked_at";

}  // namespace

Result<EdgeStatus> parseEdgeStatus(const json::Json& body) {
  EdgeStatus s;
  PLFM_ASSIGN_OR_RETURN(s.cursor, json::getInt(body, "cursor", ""));
  if (s.cursor < 0) {
    return Error(apierr::kInvalidField, "field 'cursor' must be at least 0")
        .with("field", "cursor");
  }
  auto it = body.find("draining");
  if (it == body.end()) return s;
  if (!it->is_array()) {
    return Error(apierr::kInvalidField, "field 'draining' must be an array")
        .with("field", "draining");
  }
  if (it->size() > kMaxEdgeStatusBackends) {
    return Error(apierr::kInvalidField, "field 'draining' has " + std::to_string(it->size()) +
                                            " entries; at most " +
                                            std::to_string(kMaxEdgeStatusBackends) + " allowed")
        .with("field", "draining");
  }
  for (size_t i = 0; i < it->size(); ++i) {
    const json::Json& b = (*it)[i];
    const std::string path = "draining[" + std::to_string(i) + "]";
    if (!b.is_object()) {
      return Error(apierr::kInvalidField, "field '" + path + "' must be an object")
          .with("field", path);
    }
    PLFM_TRY(json::rejectUnknownFields(b, {"address", "port", "active"}, path));
    PLFM_ASSIGN_OR_RETURN(auto address, json::getString(b, "address", path));
    PLFM_ASSIGN_OR_RETURN(auto port, json::getInt(b, "port", path));
    PLFM_ASSIGN_OR_RETURN(auto active, json::getInt(b, "active", path));
    const bool v6 = address.find(':') != std::string::npos;
    auto ep = port >= 1 && port <= 65535
                  ? net::IpEndpoint::parse((v6 ? "[" + address + "]" : address) + ":" +
                                           std::to_string(port))
                  : std::nullopt;
    if (!ep) {
      return Error(apierr::kInvalidField, "field '" + path +
                                              "' must have an IP address literal and a port "
                                              "1..65535")
          .with("field", path);
    }
    if (active < 0) {
      return Error(apierr::kInvalidField, "field '" + path + ".active' must be at least 0")
          .with("field", path + ".active");
    }
    s.draining.push_back({ep->ip(), static_cast<int>(port), active});
  }
  return s;
}

void Api::registerEdgeRoutes(http::Router& r) {
  route(r, "POST", "/v1/edge/tokens", Access::kAdmin, [this](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"name", "ttl_seconds"}));
    PLFM_ASSIGN_OR_RETURN(auto name, requireString(body, "name"));
    PLFM_TRY(checkName("name", name));
    std::optional<std::chrono::seconds> ttl;
    if (auto it = body.find("ttl_seconds"); it != body.end() && !it->is_null()) {
      if (!it->is_number_integer() || it->get<int64_t>() < 60) {
        return Error(apierr::kInvalidField, "field 'ttl_seconds' must be an integer of at least 60")
            .with("field", "ttl_seconds");
      }
      ttl = std::chrono::seconds(it->get<int64_t>());
    }
    return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
      PLFM_ASSIGN_OR_RETURN(auto created, createEdgeToken(tx, deps_.clock, name, ttl));
      const NewEdgeToken& t = created.first;
      return showTokenOnce({{"id", t.token_id},
                            {"name", t.name},
                            {"token", t.token},
                            {"expires_at", t.expires_at ? json::Json(*t.expires_at) : json::Json()},
                            {"created_at", t.created_at}},
                           {std::move(created.second)});
    });
  });

  route(r, "GET", "/v1/edge/tokens", Access::kAdmin, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "tok"));
    return listChildren(ctx, kEdgeTokenColumns, "api_tokens", "token_id", "kind", "edge", page);
  });

  route(r, "DELETE", "/v1/edge/tokens/{token_id}", Access::kAdmin,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto token, pathId<TokenId>(ctx.req, "token_id"));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            // Revokes once; revoking a revoked token again answers the same.
            PLFM_ASSIGN_OR_RETURN(
                auto revoked,
                tx.exec("UPDATE api_tokens SET revoked_at = $2 WHERE token_id = $1 AND kind = "
                        "'edge' AND revoked_at IS NULL RETURNING subject_id",
                        {token.str(), toRfc3339(deps_.clock.now())}));
            PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT " + kEdgeTokenColumns +
                                                       " FROM api_tokens WHERE token_id = $1 AND "
                                                       "kind = 'edge'",
                                                   {token.str()}));
            if (rs.rows() != 1) {
              return Error(plfm::errc::kNotFound, "edge token " + token.str() + " not found")
                  .with("token_id", token.str());
            }
            Mutation m;
            m.status = 200;
            m.body = rowToJson(rs, 0);
            if (revoked.rows() == 1) {
              PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, token.str()));
              m.events = {events::toNewEvent(
                  events::TokenRevoked{.token_id = token.str(),
                                       .kind = "edge",
                                       .subject_id = std::string(revoked.text(0, 0))},
                  next, "")};
            }
            return m;
          });
        });

  // What the ingress serves now and the connections it still splices to
  // draining backends (docs/specs/ingress/edge-feed.md, "Status reports").
  // A report replaces the previous one of the same edge token: idempotent
  // by its contract, so it takes no Idempotency-Key.
  route(r, "PUT", "/v1/edge/status", Access::kEdge, [this](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"cursor", "draining"}));
    PLFM_ASSIGN_OR_RETURN(auto status, parseEdgeStatus(body));
    json::Json draining = json::Json::array();
    for (const auto& b : status.draining) {
      draining.push_back({{"address", b.address}, {"port", b.port}, {"active", b.active}});
    }
    const std::string name = ctx.who.id;
    return runWrite(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
      PLFM_TRY(tx.exec(
          "INSERT INTO edge_reports (name, cursor, draining, reported_at) VALUES ($1, $2, "
          "$3::jsonb, $4) ON CONFLICT (name) DO UPDATE SET cursor = EXCLUDED.cursor, draining = "
          "EXCLUDED.draining, reported_at = EXCLUDED.reported_at",
          {name, status.cursor, json::dump(draining), toRfc3339(deps_.clock.now())}));
      Mutation m;
      m.status = 200;
      m.body = {{"name", name}, {"cursor", status.cursor}};
      return m;
    });
  });

  route(r, "GET", "/v1/edge/config", Access::kEdge, [this](Ctx& ctx) -> Result<http::Response> {
    if (!ctx.req.queryParam("after")) {
      return Error(apierr::kInvalidQuery,
                   "query parameter 'after' is required (0 when the edge has no config)")
          .with("field", "after");
    }
    PLFM_ASSIGN_OR_RETURN(int64_t after, queryInt(ctx.req, "after", 0, 0, INT64_MAX));
    // A longer wait than the cap is not an error: the server holds at most the cap.
    PLFM_ASSIGN_OR_RETURN(int64_t wait, queryInt(ctx.req, "wait", 30, 0, INT64_MAX));
    wait = std::min<int64_t>(wait, deps_.options.max_edge_wait.count());
    const auto deadline = deps_.clock.steadyNow() + std::chrono::seconds(wait);
    for (;;) {
      PLFM_ASSIGN_OR_RETURN(int64_t cursor, edgeCursor(ctx.db()));
      // A cursor above ours means the server's state was reset (a restore):
      // answer at once, so the edge resynchronizes instead of waiting forever.
      if (cursor != after) break;
      const bool stopping = deps_.edge != nullptr && !deps_.edge->running();
      if (deps_.clock.steadyNow() >= deadline || stopping) {
        http::Response resp;
        resp.status = 304;
        return resp;
      }
      // Long-poll: give the connection back while waiting; the feed wakes
      // us when the cursor rises.
      ctx.lease.reset();
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - deps_.clock.steadyNow());
      if (deps_.edge != nullptr) {
        deps_.edge->waitBeyond(std::string(kEdgeFeedKey), after, left);
      } else {
        deps_.worker.waitBeyond(deps_.worker.checkpoint(), left);
      }
      PLFM_TRY(reacquire(ctx));
    }
    PLFM_ASSIGN_OR_RETURN(auto config, buildEdgeConfig(ctx.db()));
    return jsonResponse(200, config);
  });
}

}  // namespace plfm::cp
