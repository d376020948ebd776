// The services feed (GET /v1/nodes/{node_id}/services, docs/specs/networking/
// mesh.md, "Internal names"): what a node's DNS responder answers for the
// `.internal` names of the orgs it hosts.
//
// Its body lists, for every env of every org that has at least one instance
// on the node (any state), per process type, the addresses of that
// process's serving instances on every node (projection::kServesSql:
// placed, meant to run, not lost, healthy), in instance-id order, at most
// 64. Its version is services_feed_view.version, the seq of the last event
// that changed any instance's serving state (projections_services.cc): one
// global number, so ServicesFeed wakes every waiter when it rises.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "plfm/core/json.h"
#include "plfm/pg/pg.h"
#include "version_feed.h"

namespace plfm::cp {

// The key of the one version ServicesFeed tracks.
inline constexpr std::string_view kServicesFeedKey = "services";
// The most addresses listed per process.
inline constexpr int kServicesFeedMaxAddresses = 64;

class ServicesFeed : public VersionFeed {
 public:
  ServicesFeed(std::string conninfo, ProjectionWorker& worker);
};

// The feed's current version (0 before anything served).
[[nodiscard]] Result<int64_t> servicesVersion(pg::Connection& conn);

// {"version","services":[{"org_tag","app","env","process","addresses"}]} for
// `node_id`, read in one snapshot so the version matches the services.
[[nodiscard]] Result<json::Json> buildServicesFeed(pg::Connection& conn,
                                                   const std::string& node_id);

}  // namespace plfm::cp
