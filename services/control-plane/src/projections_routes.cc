// Appliers of the route events, and the edge feed's cursor
// (docs/specs/state/event-types.md, docs/specs/ingress/edge-feed.md).
//
// edge_feed_view holds the seq of the last event that changed what the edge
// feed serves: a route event, or an event of an instance whose (env, process
// type) some route targets. Like every applier these take each value from the
// event, and a replay changes nothing (the cursor only moves up).
#include "projection_appliers.h"

namespace plfm::cp::projection {
namespace {

Result<void> bumpEdgeCursor(pg::Transaction& tx, int64_t seq) {
  return exec(tx,
              "INSERT INTO edge_feed_view (id, cursor) VALUES (1, $1) ON CONFLICT (id) DO UPDATE "
              "SET cursor = GREATEST(edge_feed_view.cursor, EXCLUDED.cursor)",
              {seq});
}

}  // namespace

Result<void> routeCreated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::RouteCreated>());
  PLFM_TRY(exec(
      tx,
      "INSERT INTO routes_view (route_id, org_id, app_id, env_id, hostname, "
      "listener_port, protocol, process_type, backend_port, proxy_protocol, version, "
      "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
      "$12, $12) ON CONFLICT (route_id) DO NOTHING",
      {ev.route_id, ev.org_id, ev.app_id, ev.env_id, ev.hostname, ev.listener_port, ev.protocol,
       ev.process_type, ev.backend_port, ev.proxy_protocol, p.e.aggregate_seq, p.e.occurred_at}));
  return bumpEdgeCursor(tx, p.e.seq);
}

Result<void> routeUpdated(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::RouteUpdated>());
  PLFM_TRY(exec(tx,
                "UPDATE routes_view SET process_type = $2, backend_port = $3, proxy_protocol = $4, "
                "version = $5, updated_at = $6 WHERE route_id = $1 AND version < $5",
                {ev.route_id, ev.process_type, ev.backend_port, ev.proxy_protocol,
                 p.e.aggregate_seq, p.e.occurred_at}));
  return bumpEdgeCursor(tx, p.e.seq);
}

Result<void> routeDeleted(pg::Transaction& tx, const Payload& p) {
  PLFM_ASSIGN_OR_RETURN(auto ev, p.as<events::RouteDeleted>());
  PLFM_TRY(exec(tx, "DELETE FROM routes_view WHERE route_id = $1", {ev.route_id}));
  return bumpEdgeCursor(tx, p.e.seq);
}

Result<void> touchEdgeForInstance(pg::Transaction& tx, const StoredEvent& e) {
  // instance.allocated never changes a backend: an allocated instance is not
  // running yet, and only running ones are backends.
  if (!e.event_type.starts_with("instance.") || e.event_type == "instance.allocated") return ok();
  PLFM_ASSIGN_OR_RETURN(
      auto rs, tx.exec("SELECT 1 FROM instances_view i JOIN routes_view r ON r.env_id = i.env_id "
                       "AND r.process_type = i.process_type WHERE i.instance_id = $1 LIMIT 1",
                       {e.aggregate_id}));
  if (rs.rows() == 0) return ok();
  return bumpEdgeCursor(tx, e.seq);
}

}  // namespace plfm::cp::projection
