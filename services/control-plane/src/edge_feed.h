// The edge side of the control plane: the edge credential and the edge feed
// (GET /v1/edge/config, docs/specs/ingress/edge-feed.md).
//
// The feed's document is every route with its backends: the instances of the
// route's env and process type that are placed, meant to run, not lost and
// running (phase running, healthy or unhealthy), each as its IPv6 address and
// the route's backend port, `healthy` only when its last phase is `healthy`.
// Its cursor is edge_feed_view.cursor, the seq of the last event that changed
// a route or a routed instance (projections_routes.cc), so it rises whenever
// the document may have changed and rebuilds identically from the log.
// EdgeFeed wakes the long-polls when it rises.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "event_store.h"
#include "plfm/core/clock.h"
#include "plfm/core/json.h"
#include "plfm/pg/pg.h"
#include "version_feed.h"

namespace plfm::cp {

// The key of the one version EdgeFeed tracks.
inline constexpr std::string_view kEdgeFeedKey = "edge";

class EdgeFeed : public VersionFeed {
 public:
  EdgeFeed(std::string conninfo, ProjectionWorker& worker);
};

// The feed's current cursor (0 before anything was routed).
[[nodiscard]] Result<int64_t> edgeCursor(pg::Connection& conn);

// The whole edge config {"cursor","routes":[...]}, read in one snapshot so
// the cursor matches the routes and backends.
[[nodiscard]] Result<json::Json> buildEdgeConfig(pg::Connection& conn);

// One route's backends as its org sees them (GET /v1/routes/{route_id}/backends):
// {"items":[{"instance_id","node_id","address","port","phase","healthy"}]}, by instance id,
// the same instances the edge feed lists.
[[nodiscard]] Result<json::Json> routeBackends(pg::Connection& conn, const std::string& route_id);

struct NewEdgeToken {
  std::string token_id;
  std::string name;
  std::string token;  // plaintext, shown once
  std::optional<std::string> expires_at;
  std::string created_at;
};

// Issues a token of kind `edge` for the edge named `name` (no expiry when
// `ttl` is empty) and returns the token.created event that records it.
[[nodiscard]] Result<std::pair<NewEdgeToken, NewEvent>> createEdgeToken(
    pg::Transaction& tx, const Clock& clock, const std::string& name,
    std::optional<std::chrono::seconds> ttl);

// `plfm-control-plane edge-token`: issues an edge token straight into the
// database and writes it to `file` (mode 0600, atomically) before the
// transaction commits, so a token exists only if its file does. The token
// never reaches stdout or the logs.
[[nodiscard]] Result<NewEdgeToken> mintEdgeTokenFile(pg::Connection& conn, EventStore& store,
                                                     const Clock& clock, const std::string& name,
                                                     std::optional<std::chrono::seconds> ttl,
                                                     const std::string& file);

}  // namespace plfm::cp
