// Test support: a small DSL to build scheduler Inputs, a deterministic id
// source, simulated agents that report phases, and a one-line-per-action
// summary of a Plan that table-driven tests compare against.
//
//   Cluster c;
//   c.node("node-a", 4, 4096).node("node-b", 4, 4096);
//   c.group("env-1", "web", 3, "rel-1");
//   Plan plan = c.reconcile();
//   c.apply(plan);          // the control plane's projections
//   c.agents.report(c.in);  // the agents: allocated -> healthy, drained -> stopped
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "plfm/reconcile/reconcile.h"

namespace plfm::reconcile::testing {

// "inst-0001", "inst-0002", ...: sorts in allocation order.
class Counter {
 public:
  explicit Counter(std::string prefix = "inst-") : prefix_(std::move(prefix)) {}
  std::string operator()();

 private:
  std::string prefix_;
  int next_ = 1;
};

// Simulated node agents: one report per call for every instance on an
// active node.
struct Agents {
  std::set<std::string> crashing_releases;   // their instances exit with code 1
  std::set<std::string> crashing_secrets;    // so do those run with these secrets versions
  std::set<std::string> unhealthy_releases;  // their instances run but fail their checks
  std::set<std::string> silent_processes;    // report nothing (still booting)
  bool remove_stopped = true;                // drop stopped instances from the Input

  // allocated/booting/running -> healthy (or exited, for a crashing
  // release); desired drain/stop -> stopped.
  void report(Input& in) const;
};

class Cluster {
 public:
  Cluster();

  // Nodes get consecutive /64s: fd00:0:0:1::/64, fd00:0:0:2::/64, ...
  Cluster& node(const std::string& id, int cores, std::int64_t memory_mb);
  Node& nodeRef(const std::string& id);

  // A group with target release `release` (and deploy `deploy`, if given).
  Cluster& group(const std::string& env, const std::string& process, int count,
                 const std::string& release, std::int64_t memory_mb = 256, int vcpus = 1,
                 const std::string& deploy = "");
  Group& groupRef(const std::string& env, const std::string& process);

  Cluster& deploy(const std::string& env, const std::string& id, const std::string& release,
                  std::int64_t created_ms, DeployStatus status = DeployStatus::kPending);
  Deploy& deployRef(const std::string& id);

  // An existing instance with the next free address on its node.
  Cluster& instance(const std::string& id, const std::string& env, const std::string& process,
                    const std::string& release, const std::string& node,
                    Phase phase = Phase::kHealthy, std::int64_t memory_mb = 256, int vcpus = 1);
  Instance& instanceRef(const std::string& id);

  // Starts a new deploy of `release` for every group of `env`: the old
  // target becomes the stable revision.
  Cluster& startDeploy(const std::string& env, const std::string& deploy_id,
                       const std::string& release, Strategy strategy = {});

  Plan reconcile();
  // applyPlan, plus what the scheduler does for a group with volumes: an
  // allocation for a slot whose volumes have no node places them on the
  // allocation's node (slot_nodes, and the node's free volume space).
  void apply(const Plan& plan);
  // agents.report + reconcile + apply + 1 s, until a plan has no actions
  // (at most `max_rounds`); returns the number of rounds that acted.
  int settle(int max_rounds = 50);

  [[nodiscard]] std::vector<const Instance*> live(const std::string& env,
                                                  const std::string& process) const;
  [[nodiscard]] int healthy(const std::string& env, const std::string& process,
                            const std::string& release = "") const;

  Input in;
  Counter ids;
  Counter deploy_ids{"dep-auto-"};  // auto-rollback deploys
  Agents agents;
};

// One line per action, in plan order, with ids and short reasons:
//   "allocate inst-0001 web rel-1 on node-a fd00:0:0:1::2"
//   "drain inst-0002: scale down: ..."
//   "deploy dep-1 pending -> in_progress"
//   "rollback dep-auto-0001 of dep-2: rel-1 (...)"
//   "pending env-1/web missing 1 outdated 0: waiting for capacity: ..."
std::vector<std::string> summarize(const Plan& plan);

}  // namespace plfm::reconcile::testing
