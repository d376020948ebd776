#include "api.h"

#include <algorithm>
#include <charconv>

#include "plfm/core/log.h"
#include "plfm/core/sha256.h"
#include "plfm/core/strings.h"
#include "scheduler.h"

namespace plfm::cp {

// ---- the API object ----

Api::Api(ApiDeps deps)
    : deps_(std::move(deps)),
      requests_(deps_.metrics.counter("plfm_http_requests_total",
                                      "HTTP requests by route, method and status.")),
      latency_(deps_.metrics.histogram("plfm_http_request_duration_seconds",
                                       "HTTP request latency by route and method.")),
      mutations_(deps_.metrics.counter("plfm_mutations_total",
                                       "Mutations that appended events, by route.")),
      replays_(deps_.metrics.counter("plfm_idempotent_replays_total",
                                     "Mutations answered from the idempotency record.")),
      rw_timeouts_(
          deps_.metrics.counter("plfm_read_your_writes_timeouts_total",
                                "Mutations answered 202 because views did not catch up in time.")),
      committer_(std::make_unique<GroupCommitter>(
          deps_.pool.conninfo(),
          GroupCommitter::Options{
              .lock_timeout = deps_.options.idempotency_lock_timeout,
              .batches = &deps_.metrics.counter("plfm_group_commit_batches_total",
                                                "Group-commit batches of keyed mutations."),
              .commands = &deps_.metrics.counter(
                  "plfm_group_commit_commands_total",
                  "Keyed mutations run by group-commit batches (batch size = "
                  "commands / batches).")})) {}

void Api::registerRoutes(http::Router& r, http::Router* node_router) {
  node_router_ = node_router;
  registerSystemRoutes(r);
  registerOrgRoutes(r);
  registerAppRoutes(r);
  registerReleaseRoutes(r);
  registerNodeRoutes(r);
  registerAgentRoutes(r);
  registerMeshKeyRoutes(r);
  registerRouteRoutes(r);
  registerEdgeRoutes(r);
  registerSecretRoutes(r);
  registerLogRoutes(r);
  registerTokenRoutes(r);
  registerDomainRoutes(r);
  registerRegistryRoutes(r);
  registerQuotaRoutes(r);
  registerInstanceRoutes(r);
  registerExecRoutes(r);
  registerVolumeRoutes(r);
}

http::Response Api::handle(http::Request& req, const http::Router& router) {
  // Keep a well-formed client request id; otherwise make one.
  std::string rid;
  if (auto h = req.header("X-Request-Id"); h && RequestId::parse(*h)) {
    rid = std::string(*h);
  } else {
    rid = RequestId::generate().str();
  }
  req.headers.set("X-Request-Id", rid);
  http::Response resp = router.dispatch(req);
  if (!resp.headers.get("X-Request-Id")) {
    // Router-level errors (404/405) carry the envelope without an id.
    completeEnvelope(resp, rid);
  }
  return resp;
}

DbLane Api::laneFor(Access access) const {
  DbLane lane = isNodeTraffic(access) ? deps_.node_lane : deps_.user_lane;
  if (lane.handlers == nullptr) lane.handlers = &deps_.pool;
  if (lane.auth == nullptr) lane.auth = lane.handlers;
  return lane;
}

Result<void> Api::authorize(Ctx& ctx, Access access, const DbLane& lane) {
  if (access == Access::kPublic || access == Access::kExecTicket) return ok();
  const auto authorization = ctx.req.header("Authorization");
  {
    // Held only for the lookup: the credential is known before the request
    // may queue for a handlers connection.
    PLFM_ASSIGN_OR_RETURN(auto auth, lane.auth->acquire(deps_.options.auth_acquire_timeout));
    if (access == Access::kEnroll) {
      PLFM_TRY(authenticateEnrollment(*auth, deps_.clock, authorization));
      return ok();
    }
    // A user route that names an org: the role in it comes with the token.
    // Only a well-formed org id goes to the database; anything else is left
    // to the handler's own parsing (400) and check.
    const std::string_view org = access == Access::kUser && OrgId::parse(ctx.req.param("org_id"))
                                     ? ctx.req.param("org_id")
                                     : std::string_view();
    PLFM_ASSIGN_OR_RETURN(ctx.who, authenticate(*auth, deps_.clock, authorization, org));
  }
  // The credential's kind must be the route's: users, node agents or the edge.
  auto as = [&](std::string_view kind, std::string_view audience) -> Result<void> {
    if (ctx.who.kind != kind) {
      return Error(plfm::errc::kPermissionDenied, "this route is for " + std::string(audience) +
                                                      "; " + ctx.who.kind +
                                                      " credentials cannot call it");
    }
    return ok();
  };
  if (access == Access::kNode) {
    PLFM_TRY(as("node", "node agents"));
    // A node sees only itself: another node's routes look missing.
    if (ctx.req.param("node_id") != ctx.who.id) {
      return Error(plfm::errc::kNotFound,
                   "node " + std::string(ctx.req.param("node_id")) + " not found")
          .with("node_id", std::string(ctx.req.param("node_id")));
    }
  } else if (access == Access::kEdge) {
    PLFM_TRY(as("edge", "the edge"));
  } else {
    PLFM_TRY(as("user", "users"));
    if (access == Access::kAdmin && !ctx.who.is_admin) {
      return Error(plfm::errc::kPermissionDenied, "only platform admins may do this");
    }
  }
  return ok();
}

void Api::route(http::Router& r, std::string method, std::string pattern, Access access,
                Handler h) {
  const std::string label = pattern;
  // `node_lane`: served for the node listener (node routes, or a public
  // route's copy there).
  auto serve = [this, access, h, label, method](bool node_lane) {
    return [this, access, h, label, method, node_lane](http::Request& req) -> http::Response {
      const auto start = deps_.clock.steadyNow();
      Ctx ctx{req, std::string(req.header("X-Request-Id").value_or("")), {}, std::nullopt};
      Result<http::Response> result = [&]() -> Result<http::Response> {
        const DbLane lane = laneFor(node_lane ? Access::kNode : access);
        ctx.pool = lane.handlers;
        PLFM_TRY(authorize(ctx, access, lane));
        if (access != Access::kPublic) PLFM_TRY(reacquire(ctx));
        return h(ctx);
      }();
      http::Response resp;
      if (result) {
        resp = std::move(*result);
      } else {
        const Error& e = result.error();
        resp = errorResponse(e, ctx.request_id);
        if (resp.status >= 500) {
          log::error("request failed", {{"request_id", ctx.request_id},
                                        {"route", label},
                                        {"method", method},
                                        {"error", e.toString()}});
        }
      }
      resp.headers.set("X-Request-Id", ctx.request_id);
      const double secs = std::chrono::duration<double>(deps_.clock.steadyNow() - start).count();
      requests_.inc(
          {{"method", method}, {"route", label}, {"status", std::to_string(resp.status)}});
      latency_.observe(secs, {{"method", method}, {"route", label}});
      log::info("request", {{"request_id", ctx.request_id},
                            {"method", method},
                            {"route", label},
                            {"status", resp.status},
                            {"actor", ctx.who.id},
                            {"duration_ms", secs * 1000}});
      return resp;
    };
  };
  if (node_router_ == nullptr) {
    r.add(method, std::move(pattern), serve(isNodeTraffic(access)));
    return;
  }
  if (access == Access::kPublic) node_router_->add(method, pattern, serve(true));
  http::Router& target = isNodeTraffic(access) ? *node_router_ : r;
  target.add(method, std::move(pattern), serve(isNodeTraffic(access)));
}

void Api::addRoutes(http::Router& r, std::span<const RouteSpec> table) {
  for (const RouteSpec& spec : table) {
    route(r, std::string(spec.method), std::string(spec.pattern), spec.access,
          [this, fn = spec.handler](Ctx& ctx) { return fn(*this, ctx); });
  }
}

Result<QuotaLimits> Api::lockOrgQuotas(pg::Transaction& tx, const std::string& org_id) {
  PLFM_TRY(lockOrg(tx, deps_.worker, org_id, deps_.options.read_your_writes_wait));
  PLFM_ASSIGN_OR_RETURN(auto overrides, readOverrides(tx.connection(), org_id));
  return effectiveLimits(deps_.options.quotas, overrides);
}

Result<void> Api::awaitScheduler(Ctx& ctx) {
  if (deps_.scheduler == nullptr) return ok();
  const int64_t cp = deps_.worker.checkpoint();
  if (deps_.scheduler->settled() >= cp) return ok();
  ctx.lease.reset();
  (void)deps_.scheduler->waitSettled(cp, deps_.options.scheduler_wait);
  return reacquire(ctx);
}

Result<void> Api::reacquire(Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto lease, ctx.pool->acquire(deps_.options.db_acquire_timeout));
  ctx.lease.emplace(std::move(lease));
  return ok();
}

}  // namespace plfm::cp
