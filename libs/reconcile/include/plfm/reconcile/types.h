// The scheduler's data model: what the control plane knows (Input) and what
// the reconciler decides (Plan). Everything here is a plain value, so one
// reconcile is a pure function of its Input.
//
// Input mirrors the control plane's views: `nodes_view` (Node),
// `env_scale_view` + `envs_view` + `releases_view` (Group), `instances_view`
// (Instance) and `deploys_view` (Deploy). IDs are the typed-ID strings of
// those views ("inst_01h...", "node_01h..."); the reconciler only compares
// them.
//
// Plan is a list of actions that map one-to-one onto events:
//   Allocate          -> instance.allocated
//   Restart           -> instance.restart_scheduled
//   Drain             -> instance.drain_requested
//   Lost              -> instance.lost
//   Stop              -> instance.stop_requested
//   DeployTransition  -> deploy.status_changed
//   Rollback          -> deploy.rollback_created
// and Pending, the per-group reasons why desired and current still differ
// (for `vt instances`; not an event). docs/specs/scheduler/reconciler.md
// gives the rules and how each action changes the next Input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace plfm::reconcile {

struct Resources {
  int vcpus = 1;
  std::int64_t memory_mb = 256;

  bool operator==(const Resources&) const = default;
};

// Liveness as decided from heartbeats: a node that misses them becomes
// kUnreachable; kDown is an operator's verdict (decommissioned, dead).
enum class NodeState { kActive, kUnreachable, kDown };

struct Node {
  std::string id;
  NodeState state = NodeState::kActive;
  bool cordoned = false;  // takes no new instances; its instances stay
  bool draining = false;  // takes no new instances; its instances move away
  int cores = 0;
  std::int64_t memory_mb = 0;             // allocatable to instances
  std::string prefix;                     // the node's IPv6 /64, e.g. "fd7a:115c:a1e0:1::/64"
  std::int64_t unreachable_since_ms = 0;  // meaningful when state == kUnreachable
  // Room for new volumes: the node's volume capacity minus the sizes of the
  // live volumes it holds (docs/specs/runtime/volume-mounts.md §Placement).
  std::int64_t volume_free_bytes = 0;
  // An edge-only node (nodes_view.role "edge"): a mesh member that runs the
  // ingress and never takes instances (docs/specs/networking/mesh.md).
  bool edge = false;
};

enum class StrategyKind { kRolling, kImmediate };

struct Strategy {
  StrategyKind kind = StrategyKind::kRolling;
  // Rolling only. Both 0 would never make progress and is treated as surge 1.
  int max_surge = 1;        // instances above count while rolling
  int max_unavailable = 0;  // healthy instances below count while rolling
  // A deploy in progress that sees no new instance become healthy for this
  // long fails (its reason names the instances that are not serving); the
  // stable revision keeps serving. 0: no deadline.
  std::int64_t progress_deadline_ms = 0;
  // When the deploy fails: true creates a new deploy of the stable revision
  // (a Rollback); false keeps every instance where it is (the failed ones
  // restart with backoff, for inspection) and drains nothing more.
  bool auto_rollback = true;
};

// What to run: a release, the deploy that asked for it, and the resources
// that release's manifest gives the process type.
struct Revision {
  std::string release_id;  // empty: nothing
  std::string deploy_id;   // empty: no deploy (e.g. a release set by hand)
  Resources resources;
  // The secrets version the deploy pins (empty: none). An instance of the
  // right release with another secrets version is replaced like an old one.
  std::string secrets_version{};
};

// Desired state of one process type in one env.
struct Group {
  std::string env_id;
  std::string process;
  int count = 0;
  // The env's current deploy (envs_view.current_deploy_id) and its release.
  Revision target;
  // The release that served before `target` (envs_view.current_release_id)
  // and its deploy. When target's deploy has failed, the group runs this
  // instead; empty when there is nothing to fall back to.
  Revision stable;
  Strategy strategy;
  // Volume locality, per slot (docs/specs/runtime/volume-mounts.md §Slots):
  // slot_nodes[i], when non-empty, is the node that holds slot i's volumes,
  // and slot i's instance must run there. Slots past the end are free.
  std::vector<std::string> slot_nodes{};
  // The process's [[volumes]] in the target release's manifest, by name
  // ("uploads"), in manifest order; empty: it has none. A process with
  // volumes rolls stop-then-start per slot, never places a slot away from
  // its volumes' node, and places a slot whose volumes have no node yet on
  // a node with `volume_bytes_per_slot` (the sum of their sizes) free.
  std::vector<std::string> volume_names{};
  std::int64_t volume_bytes_per_slot = 0;
  // The org's network tag (org_net_tags.net_tag, 1..2^32-2): new instances
  // get interface id (org_tag << 32) | n, so `address & ::ffff:ffff:0:0`
  // names the org on any node (docs/specs/networking/mesh.md, Addressing).
  // 0: unknown, the old layout (lowest free from ::2).
  std::uint32_t org_tag = 0;

  // The node slot `slot` is pinned to; empty when none.
  [[nodiscard]] const std::string& slotNode(int slot) const;
  [[nodiscard]] bool hasVolumes() const { return !volume_names.empty(); }
  // Slot `slot`'s volumes for reasons: "volume uploads-1", "volumes
  // uploads-1, logs-1", or "the volumes of db slot 1" when the names are
  // not known.
  [[nodiscard]] std::string slotVolumes(int slot) const;
};

// The last phase an agent reported for an instance's current generation.
// kHealthy means running with its health checks passing (an instance with no
// checks reports kHealthy once started); only kHealthy counts as serving.
enum class Phase {
  kAllocated,  // scheduled, not yet picked up by the agent
  kBooting,
  kRunning,  // started, health checks not passing yet
  kHealthy,
  kUnhealthy,
  kExited,    // the workload exited (exit_code)
  kFailed,    // the VM could not be started (image, boot, resources)
  kDraining,  // being stopped gracefully
  kStopped,   // gone for good; its resources and address are free
};

// What the control plane wants for an instance (instances_view.desired_state).
enum class Desired { kRun, kDrain, kStop };

struct Instance {
  std::string id;
  std::string env_id;
  std::string process;
  std::string release_id;
  std::string deploy_id;
  std::string node_id;
  std::string address;  // its /128, without the length
  std::int64_t generation = 1;
  Phase phase = Phase::kAllocated;
  Desired desired = Desired::kRun;
  // Written off by the scheduler (its node stayed unreachable) and replaced
  // elsewhere. Stays set when the node comes back, so the stale copy is
  // stopped rather than counted.
  bool lost = false;
  int restarts = 0;
  std::int64_t phase_since_ms = 0;  // when `phase` was reported
  int exit_code = 0;                // for kExited
  Resources resources;
  std::string secrets_version{};  // the one it runs with (empty: none)
  // Its stable index among its group's instances (0 .. count-1), which a
  // replacement inherits; -1 for instances allocated before slots existed.
  int slot = -1;
};

enum class DeployStatus { kPending, kInProgress, kSucceeded, kFailed, kSuperseded };

struct Deploy {
  std::string id;
  std::string env_id;
  std::string release_id;
  DeployStatus status = DeployStatus::kPending;
  std::int64_t created_ms = 0;  // the newest deploy of an env supersedes older ones
  // Set on a deploy the system created to roll back this failed deploy; such
  // a deploy is never rolled back in turn.
  std::string rollback_of{};
};

struct Config {
  int cpu_overcommit = 4;  // vCPUs per core a node may promise
  std::int64_t unreachable_grace_ms = 60'000;
  std::int64_t backoff_base_ms = 1'000;  // first restart delay; doubles each time
  std::int64_t backoff_max_ms = 60'000;
  int max_deploy_failures = 3;  // a deploy fails at the failure after this many
  // An instance whose health checks fail (phase kUnhealthy) is restarted in
  // place with backoff this many times, then rescheduled.
  int unhealthy_restarts_in_place = 3;
};

struct Input {
  std::int64_t now_ms = 0;
  Config config;
  std::vector<Node> nodes;
  std::vector<Group> groups;
  std::vector<Instance> instances;  // including stopped ones is allowed
  std::vector<Deploy> deploys;      // at least the env's pending and in_progress ones
};

// --- Actions ---------------------------------------------------------------

// A new instance, generation 1, desired kRun.
struct Allocate {
  std::string instance_id;
  std::string env_id;
  std::string process;
  std::string release_id;
  std::string deploy_id;
  std::string node_id;
  std::string address;
  Resources resources;
  std::string reason;
  std::string secrets_version{};  // the revision's (empty: none)
  // The slot it fills: the slot of the instance it replaces, else the
  // lowest of 0 .. count-1 that no current instance of the group holds.
  int slot = 0;
};

// Start the instance again on the same node as `generation`, no earlier than
// `not_before_ms` (exponential backoff). `restarts` is the new restart count.
struct Restart {
  std::string instance_id;
  std::string node_id;
  std::int64_t generation = 0;
  int restarts = 0;
  std::int64_t not_before_ms = 0;
  std::string reason;
};

// Graceful stop: replaced by a rollout, scaled down, or no longer desired.
// The instance still occupies its node until it reports kStopped.
struct Drain {
  std::string instance_id;
  std::string reason;
};

// The instance's node stayed unreachable past the grace period (or is down):
// it no longer counts, and a replacement is allocated elsewhere.
struct Lost {
  std::string instance_id;
  std::string node_id;
  std::string reason;
};

// Immediate stop, for a stale copy of a lost instance.
struct Stop {
  std::string instance_id;
  std::string reason;
};

struct DeployTransition {
  std::string deploy_id;
  std::string env_id;
  DeployStatus from = DeployStatus::kPending;
  DeployStatus to = DeployStatus::kPending;
  std::string reason;
};

// A failed deploy's auto-rollback: a new deploy, created by the system, of
// the env's last successful release (its groups' `stable` revision). From
// the next round on the groups target it like any deploy.
struct Rollback {
  std::string deploy_id;  // the new deploy
  std::string env_id;
  std::string release_id;
  std::string secrets_version;  // the stable revision's (empty: none)
  StrategyKind strategy = StrategyKind::kRolling;
  std::string rollback_of;  // the failed deploy
  std::string reason;       // "auto-rollback after dep_... failed: ..."
};

// Why a group is not (yet) what its desired state says after this plan.
struct Pending {
  std::string env_id;
  std::string process;
  int missing = 0;   // desired instances that have no instance yet
  int outdated = 0;  // instances still to be replaced or removed
  std::string reason;
};

struct Plan {
  std::vector<Allocate> allocations;
  std::vector<Restart> restarts;
  std::vector<Drain> drains;
  std::vector<Lost> lost;
  std::vector<Stop> stops;
  std::vector<DeployTransition> deploys;
  std::vector<Rollback> rollbacks;
  std::vector<Pending> pending;

  // True when there is nothing to do (pending reasons may remain).
  [[nodiscard]] bool noActions() const {
    return allocations.empty() && restarts.empty() && drains.empty() && lost.empty() &&
           stops.empty() && deploys.empty() && rollbacks.empty();
  }
};

// The spellings used in the views and events ("in_progress", "healthy", ...).
[[nodiscard]] std::string_view toString(NodeState s);
[[nodiscard]] std::string_view toString(StrategyKind k);
[[nodiscard]] std::string_view toString(Phase p);
[[nodiscard]] std::string_view toString(Desired d);
[[nodiscard]] std::string_view toString(DeployStatus s);
[[nodiscard]] std::optional<NodeState> parseNodeState(std::string_view s);
[[nodiscard]] std::optional<StrategyKind> parseStrategyKind(std::string_view s);
[[nodiscard]] std::optional<Phase> parsePhase(std::string_view s);
[[nodiscard]] std::optional<Desired> parseDesired(std::string_view s);
[[nodiscard]] std::optional<DeployStatus> parseDeployStatus(std::string_view s);

}  // namespace plfm::reconcile
