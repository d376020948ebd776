// Routes: hostname + listener port -> env, process type and backend port
// (docs/specs/api/v1.md "Routes", docs/specs/ingress/edge-feed.md). A route
// lives in an env; its (listener port, normalized hostname) is unique across
// every org, claimed in route_claims inside the command transaction.
#include "api_routes.h"

#include "domains.h"
#include "edge_feed.h"
#include "plfm/net/hostname.h"

namespace plfm::cp::routes {
namespace {

using json::Json;

const std::string kRouteColumns =
    "route_id AS id, org_id, app_id, env_id, hostname, listener_port, protocol, process_type, "
    "backend_port, proxy_protocol, " +
    ts("created_at") + " AS created_at, " + ts("updated_at") + " AS updated_at";

// The port TLS routes share by default; a tcp route (which owns its port)
// may not take it.
constexpr int64_t kTlsPort = 443;

// Any constant: the first key of the per-port advisory lock of route claims.
constexpr int kRoutePortLock = 0x726f7574;

Result<std::optional<int64_t>> optionalPort(const Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_number_integer() || it->get<int64_t>() < 1 || it->get<int64_t>() > 65535) {
    return invalidField(field, "must be an integer 1..65535");
  }
  return std::optional<int64_t>(it->get<int64_t>());
}

Result<std::optional<std::string>> optionalEnum(const Json& body, std::string_view field,
                                                std::string_view a, std::string_view b) {
  PLFM_ASSIGN_OR_RETURN(auto v, optionalString(body, field));
  if (v && *v != a && *v != b) {
    return invalidField(field, "must be \"" + std::string(a) + "\" or \"" + std::string(b) + "\"");
  }
  return v;
}

Result<std::optional<std::string>> optionalProcess(const Json& body) {
  PLFM_ASSIGN_OR_RETURN(auto v, optionalString(body, "process_type"));
  if (v && !validProcessName(*v))
    return invalidField("process_type", "must match [a-z][a-z0-9-]{0,29}");
  return v;
}

// Claims (port, hostname) for `route`, or hostname_conflict naming what holds
// it (the holder's id only when it is in the caller's org).
Result<void> claim(pg::Transaction& tx, const CreateRoute& c, const std::string& route,
                   const std::string& org) {
  // Serializes the claims of one port, so a tcp route and a named one cannot
  // both take it.
  PLFM_TRY(tx.exec("SELECT pg_advisory_xact_lock($1, $2::int)", {kRoutePortLock, c.listener_port}));
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        tx.exec("SELECT hostname, protocol, route_id, org_id FROM route_claims "
                                "WHERE listener_port = $1 AND (hostname = $2 OR protocol = 'tcp' "
                                "OR $3 = 'tcp') ORDER BY hostname LIMIT 1",
                                {c.listener_port, c.hostname, c.protocol}));
  if (rs.rows() > 0) {
    const std::string port = std::to_string(c.listener_port);
    std::string msg;
    if (rs.text(0, 1) == "tcp") {
      msg = "listener port " + port + " is owned by a tcp route";
    } else if (c.protocol == "tcp") {
      msg = "listener port " + port + " already has routes; a tcp route needs a port of its own";
    } else {
      msg = "hostname '" + c.hostname + "' on listener port " + port + " is already routed";
    }
    const bool ours = rs.text(0, 3) == org;
    Error e = Error(apierr::kHostnameConflict,
                    msg + (ours ? " in this org (" + std::string(rs.text(0, 2)) + ")"
                                : " by another org"))
                  .with("field", c.protocol == "tcp" ? "listener_port" : "hostname")
                  .with("hostname", c.hostname)
                  .with("listener_port", port);
    if (ours) e.with("route_id", std::string(rs.text(0, 2)));
    return e;
  }
  PLFM_TRY(tx.exec(
      "INSERT INTO route_claims (listener_port, hostname, route_id, org_id, env_id, protocol) "
      "VALUES ($1, $2, $3, $4, $5, $6)",
      {c.listener_port, c.hostname, route, org, c.env.str(), c.protocol}));
  return ok();
}

// A route deleted since the caller saw it (its write-side claim is gone).
Error routeGone(const RouteId& route) {
  return Error(plfm::errc::kNotFound, "route " + route.str() + " not found")
      .with("route_id", route.str());
}

Result<json::Json> visibleRoute(Ctx& ctx, const RouteId& route) {
  return visibleRow(ctx, "SELECT " + kRouteColumns + " FROM routes_view WHERE route_id = $1",
                    route.str(), "route");
}

}  // namespace

// ---- parse: the request alone ----

Result<CreateRoute> parseCreate(const http::Request& req) {
  CreateRoute c;
  PLFM_ASSIGN_OR_RETURN(c.env, pathId<EnvId>(req, "env_id"));
  PLFM_ASSIGN_OR_RETURN(auto body,
                        parseBody(req, {"hostname", "listener_port", "protocol", "process_type",
                                        "backend_port", "proxy_protocol"}));
  PLFM_ASSIGN_OR_RETURN(auto protocol, optionalEnum(body, "protocol", "tls-passthrough", "tcp"));
  if (protocol) c.protocol = *protocol;
  PLFM_ASSIGN_OR_RETURN(auto hostname, optionalString(body, "hostname"));
  if (c.protocol == "tcp") {
    // A plain TCP stream carries no name: the route owns its listener port.
    if (hostname && !hostname->empty() && *hostname != "*") {
      return invalidField("hostname", "must be empty for a tcp route (it owns its listener port)");
    }
  } else {
    if (!hostname || hostname->empty()) {
      return invalidField("hostname", "is required for a tls-passthrough route");
    }
    auto norm = net::normalizeHostname(*hostname);
    if (!norm) {
      return Error(apierr::kInvalidField, norm.error().message()).with("field", "hostname");
    }
    c.hostname = std::move(*norm);
  }
  PLFM_ASSIGN_OR_RETURN(auto port, optionalPort(body, "listener_port"));
  if (port) c.listener_port = *port;
  if (c.protocol == "tcp" && c.listener_port == kTlsPort) {
    return invalidField("listener_port",
                        "must not be 443 for a tcp route: it would own the port every org's TLS "
                        "routes share; pick a port of its own");
  }
  PLFM_ASSIGN_OR_RETURN(auto process, optionalProcess(body));
  if (!process)
    return invalidField("process_type", "is required (the process that serves the route)");
  c.target.process_type = *process;
  PLFM_ASSIGN_OR_RETURN(auto backend, optionalPort(body, "backend_port"));
  if (!backend)
    return invalidField("backend_port", "is required (the port the instances listen on)");
  c.target.backend_port = *backend;
  PLFM_ASSIGN_OR_RETURN(auto pp, optionalEnum(body, "proxy_protocol", "none", "v2"));
  if (pp) c.target.proxy_protocol = *pp;
  return c;
}

Result<UpdateRoute> parseUpdate(const http::Request& req) {
  UpdateRoute c;
  PLFM_ASSIGN_OR_RETURN(c.route, pathId<RouteId>(req, "route_id"));
  PLFM_ASSIGN_OR_RETURN(auto body,
                        parseBody(req, {"process_type", "backend_port", "proxy_protocol"}));
  PLFM_ASSIGN_OR_RETURN(c.process_type, optionalProcess(body));
  PLFM_ASSIGN_OR_RETURN(c.backend_port, optionalPort(body, "backend_port"));
  PLFM_ASSIGN_OR_RETURN(c.proxy_protocol, optionalEnum(body, "proxy_protocol", "none", "v2"));
  if (!c.process_type && !c.backend_port && !c.proxy_protocol) {
    return invalidField("process_type",
                        "or 'backend_port' or 'proxy_protocol' must be given (hostname, "
                        "listener_port and protocol never change: add a new route)");
  }
  return c;
}

Result<DeleteRoute> parseDelete(const http::Request& req) {
  DeleteRoute c;
  PLFM_ASSIGN_OR_RETURN(c.route, pathId<RouteId>(req, "route_id"));
  return c;
}

// ---- execute: inside the mutation's transaction ----

Result<Mutation> execute(Api& api, const CreateRoute& c, const Owner& owner, pg::Transaction& tx) {
  const std::string& org = owner.org_id;
  PLFM_ASSIGN_OR_RETURN(auto limits, api.lockOrgQuotas(tx, org));
  PLFM_ASSIGN_OR_RETURN(int64_t count, routesOfOrg(tx.connection(), org));
  PLFM_TRY(checkQuota(Quota::kRoutes, limits[Quota::kRoutes], count, count + 1));
  const std::string route = RouteId::generate().str();
  // Ownership proofs (docs/specs/ingress/domains.md).
  PLFM_TRY(domains::checkRouteClaim(tx, api.deps().options.public_suffix_file, c.hostname, org,
                                    owner.admin));
  PLFM_TRY(claim(tx, c, route, org));
  const std::string now = toRfc3339(api.deps().clock.now());
  const events::RouteCreated payload{.route_id = route,
                                     .org_id = org,
                                     .app_id = owner.app_id,
                                     .env_id = c.env.str(),
                                     .hostname = c.hostname,
                                     .listener_port = c.listener_port,
                                     .protocol = c.protocol,
                                     .process_type = c.target.process_type,
                                     .backend_port = c.target.backend_port,
                                     .proxy_protocol = c.target.proxy_protocol};
  Json fields = {{"hostname", c.hostname},
                 {"listener_port", c.listener_port},
                 {"protocol", c.protocol},
                 {"process_type", c.target.process_type},
                 {"backend_port", c.target.backend_port},
                 {"proxy_protocol", c.target.proxy_protocol}};
  Mutation m;
  m.body = {{"id", route},           {"org_id", org},     {"app_id", owner.app_id},
            {"env_id", c.env.str()}, {"created_at", now}, {"updated_at", now}};
  m.body.update(fields);
  m.events = {events::toNewEvent(payload, 1, org)};
  return m;
}

Result<Mutation> execute(Api& api, const UpdateRoute& c, const json::Json& current,
                         pg::Transaction& tx) {
  const std::string org = current["org_id"];
  // The write-side row: a route deleted meanwhile is gone.
  PLFM_ASSIGN_OR_RETURN(auto held, tx.exec("SELECT 1 FROM route_claims WHERE route_id = "
                                           "$1 FOR UPDATE",
                                           {c.route.str()}));
  if (held.rows() == 0) return routeGone(c.route);
  Target t{current["process_type"], current["backend_port"].get<int64_t>(),
           current["proxy_protocol"]};
  const Target before = t;
  if (c.process_type) t.process_type = *c.process_type;
  if (c.backend_port) t.backend_port = *c.backend_port;
  if (c.proxy_protocol) t.proxy_protocol = *c.proxy_protocol;
  Mutation m;
  m.status = 200;
  m.body = current;
  m.body["process_type"] = t.process_type;
  m.body["backend_port"] = t.backend_port;
  m.body["proxy_protocol"] = t.proxy_protocol;
  if (t.process_type == before.process_type && t.backend_port == before.backend_port &&
      t.proxy_protocol == before.proxy_protocol) {
    return m;  // nothing changes
  }
  m.body["updated_at"] = toRfc3339(api.deps().clock.now());
  PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, c.route.str()));
  m.events = {events::toNewEvent(events::RouteUpdated{.route_id = c.route.str(),
                                                      .org_id = org,
                                                      .process_type = t.process_type,
                                                      .backend_port = t.backend_port,
                                                      .proxy_protocol = t.proxy_protocol},
                                 next, org)};
  return m;
}

Result<Mutation> execute(const DeleteRoute& c, const std::string& org_id, pg::Transaction& tx) {
  PLFM_ASSIGN_OR_RETURN(auto gone, tx.exec("DELETE FROM route_claims WHERE route_id = $1 "
                                           "RETURNING hostname, listener_port",
                                           {c.route.str()}));
  if (gone.rows() == 0) return routeGone(c.route);
  PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, c.route.str()));
  Mutation m;
  m.status = 200;
  m.body = {{"deleted", true}, {"id", c.route.str()}};
  m.events = {
      events::toNewEvent(events::RouteDeleted{.route_id = c.route.str(),
                                              .org_id = org_id,
                                              .hostname = std::string(gone.text(0, 0)),
                                              .listener_port = gone.int64(0, 1).value_or(0)},
                         next, org_id)};
  return m;
}

// ---- handlers: parse, check access, execute ----
namespace {

Result<http::Response> createRoute(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(CreateRoute c, parseCreate(ctx.req));
  // A port's default route takes the unmatched connections of every org.
  if (c.hostname == "*" && !ctx.who.is_admin) {
    return Error(plfm::errc::kPermissionDenied,
                 "only platform admins may route '*' (a port's default route takes every "
                 "connection no other route matches, for every org)")
        .with("field", "hostname");
  }
  PLFM_ASSIGN_OR_RETURN(auto env, visibleEnv(ctx, c.env));
  Owner owner;
  owner.org_id = env["org_id"];
  owner.app_id = env["app_id"];
  owner.admin = ctx.who.is_admin;
  return api.runMutation(ctx, [&](pg::Transaction& tx) { return execute(api, c, owner, tx); });
}

Result<http::Response> listRoutes(Api& /*api*/, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
  PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "route"));
  PLFM_TRY(visibleEnv(ctx, env));
  return listChildren(ctx, kRouteColumns, "routes_view", "route_id", "env_id", env.str(), page);
}

Result<http::Response> getRoute(Api& /*api*/, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto route, pathId<RouteId>(ctx.req, "route_id"));
  PLFM_ASSIGN_OR_RETURN(auto j, visibleRoute(ctx, route));
  return jsonResponse(200, j);
}

Result<http::Response> getRouteBackends(Api& /*api*/, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto route, pathId<RouteId>(ctx.req, "route_id"));
  PLFM_TRY(visibleRoute(ctx, route));
  PLFM_ASSIGN_OR_RETURN(auto backends, routeBackends(ctx.db(), route.str()));
  return jsonResponse(200, backends);
}

Result<http::Response> updateRoute(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(UpdateRoute c, parseUpdate(ctx.req));
  PLFM_ASSIGN_OR_RETURN(Json current, visibleRoute(ctx, c.route));
  return api.runMutation(ctx, [&](pg::Transaction& tx) { return execute(api, c, current, tx); });
}

Result<http::Response> deleteRoute(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(DeleteRoute c, parseDelete(ctx.req));
  PLFM_ASSIGN_OR_RETURN(Json current, visibleRoute(ctx, c.route));
  const std::string org = current["org_id"];
  return api.runMutation(ctx, [&](pg::Transaction& tx) { return execute(c, org, tx); });
}

// The resource's routes, registered in this order.
constexpr RouteSpec kTable[] = {
    {"POST", "/v1/envs/{env_id}/routes", Access::kUser, createRoute},
    {"GET", "/v1/envs/{env_id}/routes", Access::kUser, listRoutes},
    {"GET", "/v1/routes/{route_id}", Access::kUser, getRoute},
    {"GET", "/v1/routes/{route_id}/backends", Access::kUser, getRouteBackends},
    {"PUT", "/v1/routes/{route_id}", Access::kUser, updateRoute},
    {"DELETE", "/v1/routes/{route_id}", Access::kUser, deleteRoute},
};

}  // namespace
}  // namespace plfm::cp::routes

namespace plfm::cp {

void Api::registerRouteRoutes(http::Router& r) { addRoutes(r, routes::kTable); }

}  // namespace plfm::cp
