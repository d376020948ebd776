#include "event_store.h"

#include "plfm/core/json.h"
#include "plfm/core/strings.h"
#include "plfm/pg/prepared.h"

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

// A cheap shape check; PostgreSQL validates the JSON itself on insert.
bool looksLikeObject(std::string_view s) {
  s = trim(s);
  return s.size() >= 2 && s.front() == '{' && s.back() == '}';
}

constexpr std::string_view kSelectColumns =
    "seq, event_id, to_char(occurred_at AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), aggregate_type, aggregate_id, aggregate_seq, "
    "event_type, event_version, org_id, actor, request_id, correlation::text, payload::text";

}  // namespace

Result<AppendResult> EventStore::append(pg::Transaction& tx, const AppendContext& ctx,
                                        const std::vector<NewEvent>& events) {
  if (events.empty()) return Error(plfm::errc::kInternal, "append of zero events");
  // Serialize appenders: the lock is held until this transaction ends, and a
  // transaction becomes visible before its locks are released, so the next
  // appender's seq is always above every committed (visible) seq.
  PLFM_TRY(lockLog(tx));
  PLFM_ASSIGN_OR_RETURN(AppendResult out, insert(tx, ctx, events));
  PLFM_TRY(tx.exec("SELECT pg_notify($1, $2)",
                   {std::string(kNotifyChannel), std::to_string(out.last_seq)}));
  return out;
}

Result<AppendResult> EventStore::appendLocked(pg::Transaction& tx, const AppendContext& ctx,
                                              const std::vector<NewEvent>& events,
                                              const pg::Statement* then, int64_t* known_head) {
  if (known_head != nullptr) return queueInsert(tx, ctx, events, then, *known_head);
  return insert(tx, ctx, events, then);
}

Result<std::string> EventStore::rowsJson(const std::vector<NewEvent>& events) {
  // One JSON array of rows, inserted by a single statement. The text is
  // built directly, payloads embedded as they are: the scheduler appends
  // events by the hundred thousand, and PostgreSQL parses (and so
  // validates) every payload as jsonb anyway. The statement takes each
  // payload out of the parsed array as jsonb (`->`), so it is parsed once.
  size_t size = 2;
  for (const auto& ev : events) size += ev.payload.size() + ev.correlation.size() + 256;
  std::string rows;
  rows.reserve(size);
  rows += '[';
  for (size_t i = 0; i < events.size(); ++i) {
    const NewEvent& ev = events[i];
    if (!looksLikeObject(ev.payload) || !looksLikeObject(ev.correlation)) {
      return Error(plfm::errc::kInternal, "event " + ev.event_type + " has a non-object payload");
    }
    if (i > 0) rows += ',';
    rows += R"({"event_id":")";
    rows += EventId::generate(ids_).str();
    rows += R"(","aggregate_type":")";
    appendJsonEscaped(rows, ev.aggregate_type);
    rows += R"(","aggregate_id":")";
    appendJsonEscaped(rows, ev.aggregate_id);
    rows += R"(","aggregate_seq":)";
    rows += std::to_string(ev.aggregate_seq);
    rows += R"(,"event_type":")";
    appendJsonEscaped(rows, ev.event_type);
    rows += R"(","event_version":)";
    rows += std::to_string(ev.event_version);
    if (ev.org_id.empty()) {
      rows += R"(,"org_id":null)";
    } else {
      rows += R"(,"org_id":")";
      appendJsonEscaped(rows, ev.org_id);
      rows += '"';
    }
    rows += R"(,"correlation":)";
    rows += ev.correlation;
    rows += R"(,"payload":)";
    rows += ev.payload;
    rows += '}';
  }
  rows += ']';
  return rows;
}

namespace {

// The insert of a JSON array of rows ($1), numbered from `first_seq`, an SQL
// expression over a.ord (1, 2, ...) and, `from_head`, head.s (the highest
// seq, read by the statement itself).
std::string insertStatement(std::string_view first_seq, bool from_head) {
  std::string sql = from_head ? "WITH head AS (SELECT coalesce(max(seq), 0) AS s FROM events), "
                                "ins AS ("
                              : "";
  sql +=
      "INSERT INTO events (seq, event_id, occurred_at, aggregate_type, aggregate_id, "
      "aggregate_seq, event_type, event_version, org_id, actor, request_id, correlation, payload) "
      "SELECT ";
  sql += first_seq;
  sql +=
      ", a.doc->>'event_id', $2::timestamptz, a.doc->>'aggregate_type', "
      "a.doc->>'aggregate_id', (a.doc->>'aggregate_seq')::int, a.doc->>'event_type', "
      "(a.doc->>'event_version')::int, a.doc->>'org_id', $3, $4, a.doc->'correlation', "
      "a.doc->'payload' FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS a(doc, ord)";
  if (from_head) sql += ", head ORDER BY a.ord RETURNING seq) SELECT min(seq), max(seq) FROM ins";
  return sql;
}

}  // namespace

Result<AppendResult> EventStore::queueInsert(pg::Transaction& tx, const AppendContext& ctx,
                                             const std::vector<NewEvent>& events,
                                             const pg::Statement* then, int64_t& head) {
  if (events.empty()) return Error(plfm::errc::kInternal, "append of zero events");
  const std::string occurred = toRfc3339(clock_.now());
  const pg::Param request_id =
      ctx.request_id.empty() ? pg::Param(std::nullopt) : pg::Param(ctx.request_id);
  pg::Connection& conn = tx.connection();
  if (events.size() == 1) {
    // One event (an API command's usual append): its row as parameters.
    const NewEvent& ev = events.front();
    if (!looksLikeObject(ev.payload) || !looksLikeObject(ev.correlation)) {
      return Error(plfm::errc::kInternal, "event " + ev.event_type + " has a non-object payload");
    }
    PLFM_TRY(conn.execDeferred(
        "INSERT INTO events (seq, event_id, occurred_at, aggregate_type, aggregate_id, "
        "aggregate_seq, event_type, event_version, org_id, actor, request_id, correlation, "
        "payload) VALUES ($1, $2, $3::timestamptz, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, "
        "$13::jsonb)",
        {head + 1, EventId::generate(ids_).str(), occurred, ev.aggregate_type, ev.aggregate_id,
         ev.aggregate_seq, ev.event_type, ev.event_version,
         ev.org_id.empty() ? pg::Param(std::nullopt) : pg::Param(ev.org_id), ctx.actor, request_id,
         ev.correlation, ev.payload}));
  } else {
    PLFM_ASSIGN_OR_RETURN(std::string rows, rowsJson(events));
    static const std::string kSql = insertStatement("$5::bigint + a.ord", false);
    PLFM_TRY(conn.execDeferred(kSql, {std::move(rows), occurred, ctx.actor, request_id, head}));
  }
  if (then != nullptr) PLFM_TRY(conn.execDeferred(then->sql, then->params));
  AppendResult out;
  out.occurred_at = occurred;
  out.first_seq = head + 1;
  out.last_seq = head + static_cast<int64_t>(events.size());
  head = out.last_seq;
  return out;
}

Result<AppendResult> EventStore::insert(pg::Transaction& tx, const AppendContext& ctx,
                                        const std::vector<NewEvent>& events,
                                        const pg::Statement* then) {
  if (events.empty()) return Error(plfm::errc::kInternal, "append of zero events");
  const std::string occurred = toRfc3339(clock_.now());
  PLFM_ASSIGN_OR_RETURN(std::string rows, rowsJson(events));
  static const std::string kSql = insertStatement("head.s + a.ord", true);
  std::vector<pg::Statement> statements;
  statements.push_back(
      {kSql,
       {std::move(rows), occurred, ctx.actor,
        ctx.request_id.empty() ? pg::Param(std::nullopt) : pg::Param(ctx.request_id)}});
  if (then != nullptr) statements.push_back(*then);
  PLFM_ASSIGN_OR_RETURN(auto results, pg::execPipeline(tx.connection(), statements));
  if (then != nullptr && results[0] && !results[1])
    return unexpected(std::move(results[1]).error());
  Result<pg::ResultSet>& rs = results[0];
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
  PLFM_ASSIGN_OR_RETURN(out.first_seq, rs->int64(0, 0));
  PLFM_ASSIGN_OR_RETURN(out.last_seq, rs->int64(0, 1));
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
  // The projection worker's read (no org) is the same range scan for every
  // after: prepared. An org's read stays planned per execution.
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        org_id ? conn.exec(sql, params) : pg::execPrepared(conn, sql, params));
  std::vector<StoredEvent> out;
  out.reserve(static_cast<size_t>(rs.rows()));
  for (int i = 0; i < rs.rows(); ++i) out.push_back(rowToEvent(rs, i));
  return out;
}

Result<int64_t> EventStore::headSeq(pg::Connection& conn) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT coalesce(max(seq), 0) FROM events"));
  return rs.int64(0, 0);
}

pg::Statement EventStore::lockLogStatement() {
  return {"SELECT pg_advisory_xact_lock($1)", {kAppendLockKey}};
}

Result<void> EventStore::lockLog(pg::Transaction& tx) {
  PLFM_TRY(tx.exec("SELECT pg_advisory_xact_lock($1)", {kAppendLockKey}));
  return ok();
}

Result<EventStore::LockedSeqs> EventStore::lockedSeqsOf(pg::Transaction& tx,
                                                        const pg::ResultSet& rows, int col) {
  LockedSeqs out;
  out.ids.reserve(static_cast<size_t>(rows.rows()));
  for (int i = 0; i < rows.rows(); ++i) out.ids.emplace_back(rows.text(i, col));
  PLFM_TRY(lockLog(tx));
  PLFM_ASSIGN_OR_RETURN(out.seqs, aggregateSeqs(tx, out.ids));
  return out;
}

Result<std::unordered_map<std::string, int>> EventStore::aggregateSeqs(
    pg::Transaction& tx, const std::vector<std::string>& ids) {
  std::unordered_map<std::string, int> out;
  out.reserve(ids.size());
  if (ids.empty()) return out;
  // Ids are typed ids ([a-z0-9_]), so the array literal needs no quoting.
  std::string array = "{";
  for (const auto& id : ids) {
    if (array.size() > 1) array += ',';
    array += id;
    out.emplace(id, 0);
  }
  array += '}';
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT aggregate_id, max(aggregate_seq) FROM events "
                                         "WHERE aggregate_id = ANY($1::text[]) "
                                         "GROUP BY aggregate_id",
                                         {array}));
  for (int i = 0; i < rs.rows(); ++i) {
    out[std::string(rs.text(i, 0))] = static_cast<int>(rs.int64(i, 1).value_or(0));
  }
  return out;
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
