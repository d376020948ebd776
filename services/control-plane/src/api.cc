#include "api.h"

#include <algorithm>
#include <charconv>

#include "plfm/core/log.h"
#include "plfm/core/sha256.h"
#include "plfm/core/strings.h"
#include "scheduler.h"

namespace plfm::cp {

// ---- errors ----

int statusFor(std::string_view code) {
  static const std::vector<std::pair<std::string_view, int>> kMap = {
      {apierr::kInvalidJson, 400},
      {apierr::kUnknownField, 400},
      {apierr::kInvalidField, 400},
      {apierr::kInvalidId, 400},
      {apierr::kInvalidQuery, 400},
      {apierr::kKeyRequired, 400},
      {apierr::kKeyInvalid, 400},
      {plfm::errc::kInvalidArgument, 400},
      {"bad_request", 400},
      {plfm::errc::kUnauthenticated, 401},
      {plfm::errc::kPermissionDenied, 403},
      {plfm::errc::kNotFound, 404},
      {"method_not_allowed", 405},
      {plfm::errc::kAlreadyExists, 409},
      {plfm::errc::kConflict, 409},
      {errc::kConcurrencyConflict, 409},
      {plfm::errc::kFailedPrecondition, 409},
      {apierr::kKeyInProgress, 409},
      {apierr::kHostnameConflict, 409},
      {"domain_conflict", 409},
      {"domain_not_verified", 422},
      {apierr::kVolumeNotGrown, 422},
      {"dns_lookup_failed", 502},
      {"dns_resolver_not_configured", 503},
      {"public_suffix_list_unavailable", 503},
      {apierr::kQuotaExceeded, 409},
      {"payload_too_large", 413},
      {apierr::kTooManyLogFollowers, 429},
      {apierr::kTooManyExecSessions, 429},
      {apierr::kKeyReused, 422},
      {plfm::errc::kUnavailable, 503},
      {pg::errc::kConnection, 503},
  };
  for (const auto& [c, s] : kMap) {
    if (c == code) return s;
  }
  return 500;
}

http::Response errorResponse(const Error& e, const std::string& request_id) {
  const int status = statusFor(e.code());
  json::Json details = json::Json::object();
  std::string code = e.code();
  std::string message = e.message();
  if (status == 500) {
    // Internal details go to the log, not to the client.
    code = "internal";
    message = "internal error; the server log has details under this request id";
  } else if (status == 503) {
    code = "unavailable";
  } else {
    for (const auto& [k, v] : e.details()) {
      // Database diagnostics stay internal.
      if (k == "sqlstate" || k == "statement" || k == "pg_detail" || k == "constraint" ||
          k == "table") {
        continue;
      }
      details[k] = v;
    }
  }
  json::Json body = {
      {"error",
       {{"code", code}, {"message", message}, {"request_id", request_id}, {"details", details}}}};
  return jsonResponse(status, body);
}

http::Response jsonResponse(int status, const json::Json& body) {
  return http::Response::json(status, json::dump(body));
}

// ---- parsing ----

Result<json::Json> parseBody(const http::Request& req,
                             std::initializer_list<std::string_view> allowed) {
  if (req.body.empty()) {
    return Error(apierr::kInvalidJson, "the request body must be a JSON object");
  }
  // Depth and width are bounded before anything recursive touches the body.
  auto j = json::parse(req.body, json::kRequestLimits);
  if (!j) {
    return Error(apierr::kInvalidJson, j.error().message())
        .with("reason", std::string(j.error().detail("reason")))
        .with("offset", std::string(j.error().detail("offset")));
  }
  if (!j->is_object()) {
    return Error(apierr::kInvalidJson, "the request body must be a JSON object");
  }
  for (const auto& [key, _] : j->items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string known;
      for (auto a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
      std::string msg = "unknown field '";
      msg.append(key).append("' (accepted: ").append(known).append(")");
      if (auto m = closestMatch(key, std::vector<std::string_view>(allowed))) {
        msg.append("; did you mean '").append(*m).append("'?");
      }
      return Error(apierr::kUnknownField, msg).with("field", key);
    }
  }
  return j;
}

Result<json::Json> parseSecretBody(const http::Request& req,
                                   std::initializer_list<std::string_view> allowed) {
  auto body = parseBody(req, allowed);
  if (body || !body.error().is(apierr::kUnknownField)) return body;
  const std::string name(body.error().detail("field"));
  const bool plain = !name.empty() && name.size() <= 32 &&
                     std::all_of(name.begin(), name.end(),
                                 [](char c) { return (c >= 'a' && c <= 'z') || c == '_'; });
  if (plain) return body;
  std::string known;
  for (auto a : allowed) known += (known.empty() ? "" : ", ") + std::string(a);
  return Error(apierr::kUnknownField,
               "the body has a field this route does not accept (accepted: " + known + ")");
}

Result<std::string> requireString(const json::Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    return Error(apierr::kInvalidField, "field '" + std::string(field) + "' is required")
        .with("field", std::string(field));
  }
  if (!it->is_string()) {
    return Error(apierr::kInvalidField, "field '" + std::string(field) + "' must be a string")
        .with("field", std::string(field));
  }
  return it->get<std::string>();
}

Result<std::optional<std::string>> optionalString(const json::Json& body, std::string_view field) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) return std::optional<std::string>();
  if (!it->is_string()) {
    return Error(apierr::kInvalidField, "field '" + std::string(field) + "' must be a string")
        .with("field", std::string(field));
  }
  return std::optional<std::string>(it->get<std::string>());
}

Error invalidField(std::string_view field, const std::string& why) {
  return Error(apierr::kInvalidField, "field '" + std::string(field) + "' " + why)
      .with("field", std::string(field));
}

Result<void> checkName(std::string_view field, std::string_view v) {
  auto bad = [&](const std::string& why) { return invalidField(field, why); };
  if (v.empty() || v.size() > 63) return bad("must be 1 to 63 characters");
  if (v[0] < 'a' || v[0] > 'z') return bad("must start with a lowercase letter");
  if (v.back() == '-') return bad("must not end with '-'");
  for (char c : v) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return bad("may only contain lowercase letters, digits and '-'");
    }
  }
  return ok();
}

bool validProcessName(std::string_view p) {
  bool good = !p.empty() && p.size() <= 30 && p[0] >= 'a' && p[0] <= 'z';
  for (char c : p) good = good && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
  return good;
}

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

Result<Page> parsePage(const http::Request& req, std::string_view id_prefix) {
  Page p;
  if (auto l = req.queryParam("limit")) {
    int v = 0;
    auto [ptr, ec] = std::from_chars(l->data(), l->data() + l->size(), v);
    if (ec != std::errc() || ptr != l->data() + l->size() || v < 1 || v > 200) {
      return Error(apierr::kInvalidQuery, "query parameter 'limit' must be an integer 1..200")
          .with("field", "limit");
    }
    p.limit = v;
  }
  if (auto c = req.queryParam("cursor")) {
    const std::string prefix = std::string(id_prefix) + "_";
    if (!c->starts_with(prefix) || c->size() != prefix.size() + 26) {
      return Error(apierr::kInvalidQuery, "query parameter 'cursor' is not a valid cursor")
          .with("field", "cursor");
    }
    p.cursor = std::string(*c);
  }
  return p;
}

json::Json rowToJson(const pg::ResultSet& rs, int row) {
  json::Json o = json::Json::object();
  for (int c = 0; c < rs.columns(); ++c) {
    const std::string name(rs.columnName(c));
    if (rs.isNull(row, c)) {
      o[name] = nullptr;
      continue;
    }
    switch (rs.columnType(c)) {
      case 16:  // bool
        o[name] = rs.text(row, c) == "t";
        break;
      case 20:  // int8
      case 21:  // int2
      case 23:  // int4
        o[name] = rs.int64(row, c).value_or(0);
        break;
      case 114:   // json
      case 3802:  // jsonb
        o[name] = json::parse(rs.text(row, c)).value_or(json::Json());
        break;
      default:
        o[name] = std::string(rs.text(row, c));
    }
  }
  return o;
}

json::Json rowsToJson(const pg::ResultSet& rs) {
  json::Json items = json::Json::array();
  for (int i = 0; i < rs.rows(); ++i) items.push_back(rowToJson(rs, i));
  return items;
}

json::Json pageJson(const pg::ResultSet& rs, const Page& page) {
  json::Json items = rowsToJson(rs);
  json::Json next = nullptr;
  if (static_cast<int>(items.size()) == page.limit && !items.empty()) {
    next = items.back()["id"];
  }
  return {{"items", items}, {"next_cursor", next}};
}

Result<http::Response> listChildren(Ctx& ctx, const std::string& columns, const std::string& table,
                                    const std::string& id_col, const std::string& parent_col,
                                    const std::string& parent_id, const Page& page) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, ctx.db().exec("SELECT " + columns + " FROM " + table + " WHERE " + parent_col +
                                 " = $1 AND ($2::text IS NULL OR " + id_col + " > $2) ORDER BY " +
                                 id_col + " LIMIT $3",
                             {parent_id, page.cursor, page.limit}));
  return jsonResponse(200, pageJson(rs, page));
}

Result<int> nextAggregateSeq(pg::Transaction& tx, std::string_view aggregate_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT coalesce(max(aggregate_seq), 0) FROM events "
                                         "WHERE aggregate_id = $1",
                                         {std::string(aggregate_id)}));
  PLFM_ASSIGN_OR_RETURN(int64_t v, rs.int64(0, 0));
  return static_cast<int>(v + 1);
}

Result<void> reserveName(pg::Transaction& tx, const std::string& scope, const std::string& name,
                         const std::string& owner_id, std::string_view what) {
  auto r = tx.exec("INSERT INTO name_reservations (scope, name, owner_id) VALUES ($1, $2, $3)",
                   {scope, name, owner_id});
  if (!r && r.error().is(pg::errc::kUniqueViolation)) {
    return Error(plfm::errc::kAlreadyExists,
                 std::string(what) + " named '" + name + "' already exists")
        .with("field", "name");
  }
  if (!r) return unexpected(std::move(r).error());
  return ok();
}

Result<void> releaseName(pg::Transaction& tx, const std::string& scope,
                         const std::string& owner_id) {
  PLFM_TRY(tx.exec("DELETE FROM name_reservations WHERE scope = $1 AND owner_id = $2",
                   {scope, owner_id}));
  return ok();
}

Mutation showTokenOnce(json::Json body, std::vector<NewEvent> events) {
  body["token_redacted"] = false;
  json::Json replay = body;
  replay["token"] = nullptr;
  replay["token_redacted"] = true;
  Mutation m;
  m.body = std::move(body);
  m.replay_body = std::move(replay);
  m.events = std::move(events);
  return m;
}

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
      rw_timeouts_(deps_.metrics.counter(
          "plfm_read_your_writes_timeouts_total",
          "Mutations answered 202 because views did not catch up in time.")) {}

void Api::registerRoutes(http::Router& r, http::Router* node_router) {
  node_router_ = node_router;
  registerSystemRoutes(r);
  registerOrgRoutes(r);
  registerAppRoutes(r);
  registerReleaseRoutes(r);
  registerNodeRoutes(r);
  registerAgentRoutes(r);
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

namespace {
void completeEnvelope(http::Response& resp, const std::string& rid) {
  auto j = json::parse(resp.body);
  if (j && j->contains("error")) {
    (*j)["error"]["request_id"] = rid;
    if (!(*j)["error"].contains("details")) (*j)["error"]["details"] = json::Json::object();
    resp.body = json::dump(*j);
  }
  resp.headers.set("X-Request-Id", rid);
}
}  // namespace

void stampServerError(http::Response& resp) {
  const std::string rid = RequestId::generate().str();
  completeEnvelope(resp, rid);
  log::warn("request refused by the HTTP layer", {{"request_id", rid}, {"status", resp.status}});
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
    PLFM_ASSIGN_OR_RETURN(ctx.who, authenticate(*auth, deps_.clock, authorization));
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

namespace {

Result<std::string> idempotencyKey(const http::Request& req) {
  int count = 0;
  std::string key;
  for (const auto& [name, value] : req.headers.all()) {
    if (name.size() == 15 && std::equal(name.begin(), name.end(), "idempotency-key",
                                        [](char a, char b) { return std::tolower(a) == b; })) {
      ++count;
      key = value;
    }
  }
  if (count == 0) {
    return Error(apierr::kKeyRequired,
                 "mutations need an Idempotency-Key header (a fresh random value per operation, "
                 "reused on retries)")
        .with("field", "Idempotency-Key");
  }
  if (count > 1) {
    return Error(apierr::kKeyInvalid, "send exactly one Idempotency-Key header")
        .with("field", "Idempotency-Key");
  }
  if (key.empty() || key.size() > 255 ||
      !std::all_of(key.begin(), key.end(), [](char c) { return c > 32 && c < 127; })) {
    return Error(apierr::kKeyInvalid,
                 "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces")
        .with("field", "Idempotency-Key");
  }
  return key;
}

bool retryable(const Error& e) { return pg::isRetryable(e) || e.is(errc::kConcurrencyConflict); }

}  // namespace

Result<http::Response> Api::runMutation(Ctx& ctx, const MutationFn& fn,
                                        const std::optional<std::string>& request_hash) {
  PLFM_ASSIGN_OR_RETURN(std::string key, idempotencyKey(ctx.req));
  const std::string hash =
      request_hash ? *request_hash
                   : Sha256::hex(ctx.req.method + "\n" + ctx.req.path + "\n" + ctx.req.body);
  const std::string scope = ctx.who.id;
  pg::Connection& conn = ctx.db();

  int status = 0;
  std::string body;
  int64_t seq = 0;
  bool replayed = false;
  bool settle = false;
  for (int attempt = 1;; ++attempt) {
    auto outcome = [&]() -> Result<void> {
      PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
      PLFM_TRY(tx.exec("SELECT set_config('lock_timeout', $1, true)",
                       {std::to_string(deps_.options.idempotency_lock_timeout.count()) + "s"}));
      // Claim the key. A concurrent request with the same key blocks here
      // until the first one commits (then sees its record) or rolls back.
      auto claim = tx.exec(
          "INSERT INTO idempotency_keys (scope, key, request_hash, status, response_body, seq) "
          "VALUES ($1, $2, $3, 0, '', 0) ON CONFLICT DO NOTHING RETURNING 1",
          {scope, key, hash});
      if (!claim) {
        if (claim.error().detail("sqlstate") == "55P03") {
          return Error(apierr::kKeyInProgress,
                       "a request with this Idempotency-Key is still in progress; retry later");
        }
        return unexpected(std::move(claim).error());
      }
      if (claim->rows() == 0) {
        PLFM_ASSIGN_OR_RETURN(auto rec, tx.exec("SELECT request_hash, status, response_body, seq "
                                                "FROM idempotency_keys WHERE scope = $1 AND "
                                                "key = $2",
                                                {scope, key}));
        if (rec.rows() != 1) {
          return Error(errc::kConcurrencyConflict, "idempotency record vanished; retry");
        }
        if (rec.text(0, 0) != hash) {
          return Error(apierr::kKeyReused,
                       "this Idempotency-Key was already used for a different request; use a "
                       "new key for a new operation")
              .with("field", "Idempotency-Key");
        }
        status = static_cast<int>(rec.int64(0, 1).value_or(500));
        body = rec.text(0, 2);
        seq = rec.int64(0, 3).value_or(0);
        replayed = true;
        return ok();
      }
      PLFM_ASSIGN_OR_RETURN(Mutation m, fn(tx));
      if (!m.events.empty()) {
        PLFM_ASSIGN_OR_RETURN(auto appended, deps_.store.append(tx, ctx.appendContext(), m.events));
        seq = appended.last_seq;
      }
      settle = m.settle;
      status = m.status;
      body = json::dump(m.body);
      const std::string saved = m.replay_body ? json::dump(*m.replay_body) : body;
      PLFM_TRY(
          tx.exec("UPDATE idempotency_keys SET status = $3, response_body = $4, seq = $5 "
                  "WHERE scope = $1 AND key = $2",
                  {scope, key, status, saved, seq}));
      PLFM_TRY(tx.commit());
      return ok();
    }();
    if (outcome) break;
    if (retryable(outcome.error()) && attempt < 5) {
      seq = 0;
      continue;
    }
    return unexpected(std::move(outcome).error());
  }

  if (seq > 0 && !replayed) {
    mutations_.inc({{"method", ctx.req.method}});
    deps_.worker.kick();
  }
  http::Response resp = finishWrite(ctx, status, body, seq, settle);
  if (replayed) {
    replays_.inc();
    resp.headers.set("Idempotent-Replayed", "true");
  }
  return resp;
}

http::Response Api::finishWrite(Ctx& ctx, int status, const std::string& body, int64_t seq,
                                bool settle) {
  // Read-your-writes: answer once the views reflect `seq`.
  ctx.lease.reset();  // do not hold a connection while waiting
  http::Response resp;
  if (seq > 0 && !deps_.worker.waitFor(seq, deps_.options.read_your_writes_wait)) {
    rw_timeouts_.inc();
    resp = jsonResponse(202, {{"accepted", true},
                              {"seq", seq},
                              {"message",
                               "accepted; the views have not caught up yet, "
                               "read again shortly"}});
  } else {
    // A change to desired state: also wait (bounded) for the scheduler's
    // reaction, so the next read shows it.
    if (settle && seq > 0 && deps_.scheduler != nullptr) {
      (void)deps_.scheduler->waitSettled(seq, deps_.options.scheduler_wait);
    }
    resp = http::Response::json(status, body);
  }
  resp.headers.set("X-Event-Seq", std::to_string(seq));
  return resp;
}

Result<http::Response> Api::runWrite(Ctx& ctx, const MutationFn& fn) {
  pg::Connection& conn = ctx.db();
  int status = 0;
  std::string body;
  int64_t seq = 0;
  bool settle = false;
  for (int attempt = 1;; ++attempt) {
    auto outcome = [&]() -> Result<void> {
      PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
      PLFM_ASSIGN_OR_RETURN(Mutation m, fn(tx));
      if (!m.events.empty()) {
        AppendContext actx = ctx.appendContext();
        if (!m.actor.empty()) actx.actor = m.actor;
        PLFM_ASSIGN_OR_RETURN(auto appended, deps_.store.append(tx, actx, m.events));
        seq = appended.last_seq;
      }
      PLFM_TRY(tx.commit());
      status = m.status;
      body = json::dump(m.body);
      settle = m.settle;
      return ok();
    }();
    if (outcome) break;
    if (retryable(outcome.error()) && attempt < 5) {
      seq = 0;
      continue;
    }
    return unexpected(std::move(outcome).error());
  }
  if (seq > 0) {
    mutations_.inc({{"method", ctx.req.method}});
    deps_.worker.kick();
  }
  return finishWrite(ctx, status, body, seq, settle);
}

Result<QuotaLimits> Api::lockOrgQuotas(pg::Transaction& tx, const std::string& org_id) {
  PLFM_TRY(lockOrg(tx, deps_.worker, org_id, deps_.options.read_your_writes_wait));
  PLFM_ASSIGN_OR_RETURN(auto overrides, readOverrides(tx.connection(), org_id));
  return effectiveLimits(deps_.options.quotas, overrides);
}

Result<void> Api::awaitScheduler(Ctx& ctx) {
  if (deps_.scheduler == nullptr) return ok();
  const int64_t cp = deps_.worker.checkpoint();
  if (!deps_.scheduler->leader() || deps_.scheduler->settled() >= cp) return ok();
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
