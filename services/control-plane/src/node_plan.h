// The NodePlan feed: what one node must run, as the agent long-polls it
// (GET /v1/nodes/{node_id}/plan, api/schemas/node-plan.json and
// workload-spec.json, docs/specs/scheduler/node-plan.md).
//
// A plan lists every instance placed on the node that has not reported
// `stopped`, each as a WorkloadSpec built from instances_view and the
// release's manifest. Its version is the seq of the last event that changed
// it (instances_view.plan_seq, nodes_view.plan_version), so it increases
// whenever the plan changes, needs no counter of its own, and rebuilds
// identically from the log.
//
// PlanFeed lets thousands of long-polls wait without each one querying the
// database whenever any event is applied: one thread asks once per
// checkpoint advance which nodes' plans changed, and wakes their waiters.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "plfm/core/json.h"
#include "plfm/pg/pg.h"
#include "projections.h"

namespace plfm::cp {

// Networking constants of every WorkloadSpec (docs/specs/scheduler/node-plan.md).
inline constexpr std::string_view kInstanceGateway = "fe80::1";  // the host end of each tap
inline constexpr int kInstanceMtu = 1420;                        // fits inside WireGuard

// The node's current plan version, or not_found for an unknown node.
[[nodiscard]] Result<int64_t> planVersion(pg::Connection& conn, const std::string& node_id);

// The node's whole plan: {"node_id","version","ipv6_prefix","instances":[WorkloadSpec]},
// read in one snapshot so the version matches the instances.
[[nodiscard]] Result<json::Json> buildNodePlan(pg::Connection& conn, const std::string& node_id);

class PlanFeed {
 public:
  PlanFeed(std::string conninfo, ProjectionWorker& worker);
  ~PlanFeed();
  PlanFeed(const PlanFeed&) = delete;
  PlanFeed& operator=(const PlanFeed&) = delete;

  [[nodiscard]] Result<void> start();
  void stop();
  [[nodiscard]] bool running() const { return running_.load(); }

  // Waits until the plan version of `node_id` known to the feed is above
  // `after`, or `timeout` passes, or the feed stops. The caller re-reads the
  // plan from the database either way.
  void waitBeyond(const std::string& node_id, int64_t after, std::chrono::milliseconds timeout);

 private:
  void run();
  Result<void> refresh(pg::Connection& conn, int64_t since);

  std::string conninfo_;
  ProjectionWorker& worker_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  int64_t seen_ = 0;  // the checkpoint the versions reflect (feed thread only)
  std::mutex mu_;
  std::condition_variable cv_;
  std::unordered_map<std::string, int64_t> versions_;
  std::optional<pg::Connection> conn_;
};

}  // namespace plfm::cp
