// GET /v1/instances/{instance_id}: one instance described, for `vt instances
// get` (docs/specs/api/v1.md, "Describing an instance"). Its row as the
// env's instance list shows it (desired vs current state, timings), the
// last status changes of its aggregate in the event log with their reasons,
// its last health-check result, the checks its release configures for its
// process, and its last log lines relayed from its agent.
//
// Event payloads are shown through a fixed list of fields (status and
// reasons), so nothing added to a payload later reaches users unreviewed.
#include "api.h"

namespace plfm::cp {
namespace {

constexpr int64_t kDefaultEvents = 20;
constexpr int64_t kMaxEvents = 200;
constexpr int64_t kDefaultLogLines = 20;
constexpr int64_t kMaxLogLines = 200;

const std::string kEventColumns = "seq, " + ts("occurred_at") +
                                  " AS occurred_at, event_type, payload FROM events WHERE "
                                  "aggregate_type = 'instance' AND aggregate_id = $1 AND "
                                  "event_type LIKE 'instance.%'";

json::Json integerOrNull(const json::Json& payload, std::string_view key) {
  auto it = payload.find(key);
  return it != payload.end() && it->is_number_integer() ? *it : json::Json();
}

json::Json stringOrNull(const json::Json& payload, std::string_view key) {
  auto it = payload.find(key);
  return it != payload.end() && it->is_string() ? *it : json::Json();
}

// One status change: what happened, when, and why.
json::Json eventJson(const json::Json& row) {
  const json::Json& p = row["payload"].is_object() ? row["payload"] : json::Json::object();
  const json::Json reason = stringOrNull(p, "reason");
  return {{"seq", row["seq"]},
          {"occurred_at", row["occurred_at"]},
          {"event_type", row["event_type"]},
          {"generation", integerOrNull(p, "generation")},
          {"phase", stringOrNull(p, "phase")},
          {"reason", reason.is_null() ? json::Json("") : reason},
          {"exit_code", integerOrNull(p, "exit_code")},
          {"node_id", stringOrNull(p, "node_id")}};
}

// The last `n` events of the instance, oldest first.
Result<json::Json> lastEvents(pg::Connection& db, const std::string& inst, int64_t n) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      db.exec("SELECT " + kEventColumns + " ORDER BY aggregate_seq DESC LIMIT $2", {inst, n}));
  json::Json out = json::Json::array();
  for (int i = rs.rows() - 1; i >= 0; --i) out.push_back(eventJson(rowToJson(rs, i)));
  return out;
}

// The agent's last check verdict: its newest `healthy` or `unhealthy`
// report (an `unhealthy` reason carries the check's error), or null.
Result<json::Json> lastCheck(pg::Connection& db, const std::string& inst) {
  PLFM_ASSIGN_OR_RETURN(auto rs, db.exec("SELECT " + kEventColumns +
                                             " AND event_type = 'instance.status_reported' AND "
                                             "payload->>'phase' IN ('healthy', 'unhealthy') "
                                             "ORDER BY aggregate_seq DESC LIMIT 1",
                                         {inst}));
  if (rs.rows() == 0) return json::Json();
  const json::Json e = eventJson(rowToJson(rs, 0));
  return json::Json{{"status", e["phase"]},
                    {"reason", e["reason"]},
                    {"generation", e["generation"]},
                    {"at", e["occurred_at"]}};
}

// The checks the instance's release configures for its process, in
// manifest order.
Result<json::Json> configuredChecks(pg::Connection& db, const std::string& inst) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, db.exec("SELECT coalesce(jsonb_agg(c.spec ORDER BY c.ord), '[]'::jsonb) FROM "
                       "instances_view i JOIN releases_view r ON r.release_id = i.release_id, "
                       "jsonb_array_elements(CASE WHEN jsonb_typeof(r.manifest->'checks') = "
                       "'array' THEN r.manifest->'checks' ELSE '[]'::jsonb END) WITH ORDINALITY "
                       "AS c(spec, ord) WHERE i.instance_id = $1 AND "
                       "c.spec->>'process' = i.process_type",
                       {inst}));
  if (rs.rows() != 1) return json::Json::array();
  return json::parse(rs.text(0, 0)).value_or(json::Json::array());
}

}  // namespace

void Api::registerInstanceRoutes(http::Router& r) {
  route(r, "GET", "/v1/instances/{instance_id}", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto inst, pathId<InstanceId>(ctx.req, "instance_id"));
          PLFM_ASSIGN_OR_RETURN(int64_t events,
                                queryInt(ctx.req, "events", kDefaultEvents, 1, kMaxEvents));
          PLFM_ASSIGN_OR_RETURN(int64_t lines,
                                queryInt(ctx.req, "log_lines", kDefaultLogLines, 0, kMaxLogLines));
          PLFM_TRY(awaitScheduler(ctx));
          // A member of another org gets the same 404 as for a missing id.
          PLFM_ASSIGN_OR_RETURN(auto row, visibleRow(ctx,
                                                     "SELECT " + instanceColumns() +
                                                         ", org_id FROM instances_view WHERE "
                                                         "instance_id = $1",
                                                     inst.str(), "instance"));
          row.erase("org_id");
          json::Json body = {{"instance", row}};
          PLFM_ASSIGN_OR_RETURN(body["events"], lastEvents(ctx.db(), inst.str(), events));
          PLFM_ASSIGN_OR_RETURN(body["last_check"], lastCheck(ctx.db(), inst.str()));
          PLFM_ASSIGN_OR_RETURN(body["checks"], configuredChecks(ctx.db(), inst.str()));
          if (lines > 0) {
            // Last: it gives the database connection back.
            PLFM_ASSIGN_OR_RETURN(body["logs"],
                                  instanceLogTail(ctx, inst.str(), static_cast<size_t>(lines)));
          } else {
            body["logs"] = {{"items", json::Json::array()}, {"unavailable", nullptr}};
          }
          return jsonResponse(200, body);
        });
}

}  // namespace plfm::cp
