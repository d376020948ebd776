// Health, metrics, the replicas' leadership and the org event feed (cursor +
// long-poll).
#include <array>

#include "api.h"
#include "node_plan.h"
#include "scheduler.h"
#include "version_feed.h"

namespace plfm::cp {
namespace {

// The primary's standbys as pg_stat_replication has them, or null when it
// has none. replay_lag is null while a caught-up standby idles; without
// pg_monitor (or superuser) the server hides state, sync_state and lag.
Result<json::Json> readReplication(pg::Connection& db) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, db.exec("SELECT application_name, coalesce(state, ''), coalesce(sync_state, ''), "
                       "(extract(epoch FROM replay_lag) * 1000)::bigint FROM pg_stat_replication "
                       "ORDER BY application_name"));
  if (rs.rows() == 0) return json::Json();
  json::Json standbys = json::Json::array();
  for (int i = 0; i < rs.rows(); ++i) {
    json::Json lag;
    if (!rs.isNull(i, 3)) {
      PLFM_ASSIGN_OR_RETURN(int64_t ms, rs.int64(i, 3));
      lag = ms;
    }
    standbys.push_back({{"name", std::string(rs.text(i, 0))},
                        {"state", std::string(rs.text(i, 1))},
                        {"sync_state", std::string(rs.text(i, 2))},
                        {"replay_lag_ms", lag}});
  }
  return json::Json{{"standbys", standbys}};
}

}  // namespace

void Api::registerSystemRoutes(http::Router& r) {
  route(r, "GET", "/healthz", Access::kPublic, [this](Ctx& ctx) -> Result<http::Response> {
    // The lane of the listener that asked: each listener's health is its own.
    auto lease = ctx.pool->acquire(std::chrono::seconds(2));
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
    auto& feed_queries = deps_.metrics.gauge(
        "plfm_feed_queries", "Queries of the views by the long-poll feeds (plan, edge, services).");
    const std::array<const VersionFeed*, 3> feeds = {deps_.plans, deps_.edge, deps_.services};
    for (const VersionFeed* feed : feeds) {
      if (feed != nullptr) {
        feed_queries.set(static_cast<double>(feed->queries()), {{"feed", feed->name()}});
      }
    }
    http::Response resp = http::Response::text(200, deps_.metrics.render());
    resp.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return resp;
  });

  // docs/specs/control-plane/ha.md, "Observing it".
  route(r, "GET", "/v1/system/status", Access::kAdmin, [this](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto leader, readLeader(ctx.db()));
    PLFM_ASSIGN_OR_RETURN(auto replication, readReplication(ctx.db()));
    // Leading: the scheduler acts as the leader and its fence is live. The
    // first alone stays true while a partitioned leader's scheduler thread
    // waits on the database, after its fence has lapsed.
    const bool leads = deps_.scheduler != nullptr && deps_.scheduler->leader() &&
                       deps_.scheduler->leadership().fence().has_value();
    return jsonResponse(200,
                        {{"replica_id", replicaId()},
                         {"leader",
                          {{"replica_id", leader.holder},
                           {"epoch", leader.epoch},
                           {"since", leader.since ? json::Json(*leader.since) : json::Json()}}},
                         {"this_replica_leads", leads},
                         {"checkpoint", deps_.worker.checkpoint()},
                         {"settled", leader.settled},
                         {"replication", replication}});
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
            PLFM_TRY(reacquire(ctx));
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
