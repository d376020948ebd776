#include "event_store.h"

#include "plfm/core/json.h"

namespace plfm::cp {
namespace {

// The append lock. Any constant works as long as every appender uses it.
constexpr int64_t kAppendLockKey = 0x706c666d65766e74;  // "plfmevnt"

StoredEvent rowToEvent(const pg::ResultSet& rs, int i) {
  StoredEvent e;
  e.seq = rs.int64(i, 0).value_or(0);
  e.event_id = rs.text(i, 1);
  e.occurred_at = rs.text(i, 2);
  e.aggregate_type = rs.text(i, 3);
  e.aggregate_id = rs.text(i, 4);
  e.aggregate_seq = static_cast<int>(rs.int64(i, 5).value_or(0));
  e.event_type = rs.text(i, 6);
  e.event_version = static_cast<int>(rs.int64(i, 7).value_or(1));
  e.org_id = rs.optText(i, 8);
  e.actor = rs.text(i, 9);
  e.request_id = rs.optText(i, 10);
  e.correlation = rs.text(i, 11);
  e.payload = rs.text(i, 12);
  return e;
}

constexpr std::string_view kSelectColumns =
    "seq, event_id, to_char(occurred_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), aggregate_type, aggregate_id, aggregate_seq, "
    "event_type, event_version, org_id, actor, request_id, correlation::text, payload::text";

}  // namespace

Result<AppendResult> EventStore::append(pg::Transaction& tx, const AppendContext& ctx,
                                        const std::vector<NewEvent>& events) {
  if (events.empty()) return Error(plfm::errc::kInternal, "append of zero events");
  const std::string occurred = toRfc3339(clock_.now());
  // Build one JSON array and insert it with a single statement.
  json::Json rows = json::Json::array();
  for (const auto& ev : events) {
    auto payload = json::parse(ev.payload);
    auto corr = json::parse(ev.correlation);
    if (!payload || !payload->is_object() || !corr || !corr->is_object()) {
      return Error(plfm::errc::kInternal, "event " + ev.event_type + " has a non-object payload");
    }
    rows.push_back({{"event_id", EventId::generate(ids_).str()},
                    {"aggregate_type", ev.aggregate_type},
                    {"aggregate_id", ev.aggregate_id},
                    {"aggregate_seq", ev.aggregate_seq},
                    {"event_type", ev.event_type},
                    {"event_version", ev.event_version},
                    {"org_id", ev.org_id.empty() ? json::Json() : json::Json(ev.org_id)},
                    {"correlation", std::move(*corr)},
                    {"payload", std::move(*payload)}});
  }
  // Serialize appenders: the lock is held until this transaction ends, and a
  // transaction becomes visible before its locks are released, so the next
  // appender's seq is always above every committed (visible) seq.
  PLFM_TRY(tx.exec("SELECT pg_advisory_xact_lock($1)", {kAppendLockKey}));
  auto rs = tx.exec(
      "WITH head AS (SELECT coalesce(max(seq), 0) AS s FROM events) "
      "INSERT INTO events (seq, event_id, occurred_at, aggregate_type, aggregate_id, "
      "aggregate_seq, event_type, event_version, org_id, actor, request_id, correlation, payload) "
      "SELECT head.s + a.ord, a.doc->>'event_id', $2::timestamptz, a.doc->>'aggregate_type', "
      "a.doc->>'aggregate_id', (a.doc->>'aggregate_seq')::int, a.doc->>'event_type', "
      "(a.doc->>'event_version')::int, a.doc->>'org_id', $3, $4, a.doc->'correlation', "
      "a.doc->'payload' "
      "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(doc, ord), head "
      "ORDER BY a.ord RETURNING seq",
      {json::dump(rows), occurred, ctx.actor,
       ctx.request_id.empty() ? pg::Param(std::nullopt) : pg::Param(ctx.request_id)});
  if (!rs) {
    if (rs.error().is(pg::errc::kUniqueViolation) &&
        rs.error().detail("constraint") == "events_aggregate_seq_unique") {
      return Error(errc::kConcurrencyConflict,
                   "the resource was changed by another request; retry with fresh state")
          .with("aggregate_id", std::string(events.front().aggregate_id));
    }
    return unexpected(std::move(rs).error());
  }
  AppendResult out;
  out.occurred_at = occurred;
  for (int i = 0; i < rs->rows(); ++i) {
    const int64_t s = rs->int64(i, 0).value_or(0);
    out.first_seq = out.first_seq == 0 ? s : std::min(out.first_seq, s);
    out.last_seq = std::max(out.last_seq, s);
  }
  PLFM_TRY(tx.exec("SELECT pg_notify($1, $2)",
                   {std::string(kNotifyChannel), std::to_string(out.last_seq)}));
  return out;
}

Result<std::vector<StoredEvent>> EventStore::readAfter(pg::Connection& conn, int64_t after,
                                                       int limit,
                                                       const std::optional<std::string>& org_id) {
  std::string sql = "SELECT " + std::string(kSelectColumns) + " FROM events WHERE seq > $1";
  pg::Params params{after, limit};
  if (org_id) {
    sql += " AND org_id = $3";
    params.emplace_back(*org_id);
  }
  sql += " ORDER BY seq LIMIT $2";
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec(sql, params));
  std::vector<StoredEvent> out;
  out.reserve(static_cast<size_t>(rs.rows()));
  for (int i = 0; i < rs.rows(); ++i) out.push_back(rowToEvent(rs, i));
  return out;
}

Result<int64_t> EventStore::headSeq(pg::Connection& conn) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT coalesce(max(seq), 0) FROM events"));
  return rs.int64(0, 0);
}

std::string EventStore::envelopeJson(const StoredEvent& e) {
  json::Json j = {{"seq", e.seq},
                  {"event_id", e.event_id},
                  {"occurred_at", e.occurred_at},
                  {"aggregate_type", e.aggregate_type},
                  {"aggregate_id", e.aggregate_id},
                  {"aggregate_seq", e.aggregate_seq},
                  {"event_type", e.event_type},
                  {"event_version", e.event_version},
                  {"org_id", e.org_id ? json::Json(*e.org_id) : json::Json()},
                  {"actor", e.actor},
                  {"request_id", e.request_id ? json::Json(*e.request_id) : json::Json()},
                  {"correlation", json::parse(e.correlation).value_or(json::Json::object())},
                  {"payload", json::parse(e.payload).value_or(json::Json::object())}};
  return json::dump(j);
}

}  // namespace plfm::cp
