// The NodePlan feed: what one node must run, as the agent long-polls it
// (GET /v1/nodes/{node_id}/plan, api/schemas/node-plan.json and
// workload-spec.json, docs/specs/scheduler/node-plan.md).
//
// A plan lists every instance placed on the node that has not reported
// `stopped`, each as a WorkloadSpec built from instances_view and the
// release's manifest (with the volumes of the instance's slot), and every
// live volume placed on the node. Its version is the seq of the last event
// that changed it (instances_view.plan_seq, nodes_view.plan_version,
// volumes_view.plan_seq) or, when greater, the mesh version (the last event
// that changed any node's mesh membership, mesh_plan.h), so it increases
// whenever the plan changes, needs no counter of its own, and rebuilds
// identically from the log.
//
// PlanFeed (a VersionFeed keyed by node id) lets thousands of long-polls
// wait without each one querying the database whenever any event is applied.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "plfm/core/json.h"
#include "plfm/pg/pg.h"
#include "projections.h"
#include "version_feed.h"

namespace plfm::cp {

// Networking constants of every WorkloadSpec (docs/specs/scheduler/node-plan.md).
inline constexpr std::string_view kInstanceGateway = "fe80::1";  // the host end of each tap
inline constexpr int kInstanceMtu = 1420;                        // fits inside WireGuard

// The node's current plan version, or not_found for an unknown node.
[[nodiscard]] Result<int64_t> planVersion(pg::Connection& conn, const std::string& node_id);

// The node's whole plan: {"node_id","version","ipv6_prefix","instances":[WorkloadSpec],
// "volumes":[{"volume_id","size_bytes","state"}],"volume_ops":[...],"mesh":{...}},
// read in one snapshot so the version matches the instances. `cluster_prefix`
// (cluster_ipv6_prefix) numbers the nodes in the mesh section (mesh_plan.h).
[[nodiscard]] Result<json::Json> buildNodePlan(pg::Connection& conn, const std::string& node_id,
                                               const std::string& cluster_prefix);

// The plan versions of every node, for the plan long-polls. The mesh
// version is every node's: when it rises, every waiter wakes.
class PlanFeed : public VersionFeed {
 public:
  static constexpr std::string_view kMeshKey = "*mesh";
  PlanFeed(std::string conninfo, ProjectionWorker& worker);
};

}  // namespace plfm::cp
