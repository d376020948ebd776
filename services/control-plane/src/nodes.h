// The node registry: one-time enrollment tokens, enrollment (a node trades
// its token for a node id, an IPv6 /64 and a credential), heartbeats and the
// liveness transitions they drive. Each function runs inside the caller's
// transaction and returns the events that record what it did, so a command's
// write-side rows and its events commit together.
//
// Write-side state lives in node_enrollments, node_liveness and
// node_prefixes (migration 0004); nodes_view is built from the events.
// Liveness is decided on node_liveness.state (locked per row), never on the
// view, so two heartbeats or two scheduler replicas cannot both record one
// transition. See docs/specs/scheduler/nodes.md.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "agent_endpoint.h"
#include "event_store.h"
#include "mesh_plan.h"
#include "plfm/core/clock.h"
#include "plfm/core/json.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

struct NewEnrollment {
  std::string enrollment_id;  // enr_...
  std::string token;          // plaintext, shown once
  std::string expires_at;     // RFC 3339
  std::string created_at;
};

// Creates a one-time enrollment token valid for `ttl`. The event
// (node.enrollment_created) names the enrollment, never the token.
[[nodiscard]] Result<std::pair<NewEnrollment, NewEvent>> createEnrollment(
    pg::Transaction& tx, const Clock& clock, const std::string& created_by,
    std::chrono::seconds ttl);

// What an agent says about its host when it enrolls.
struct NodeFacts {
  std::string hostname;
  int64_t cores = 0;
  int64_t memory_mb = 0;
  int64_t disk_mb = 0;
  std::string labels_json = "{}";  // {"zone":"a"}
  std::string wireguard_public_key;
  std::string underlay_address;
  std::vector<std::string> runtimes;  // "qemu", "firecracker"
  int64_t mesh_port = kDefaultMeshPort;
  std::string role = std::string(kRoleWorker);
};

struct EnrolledNode {
  std::string node_id;
  std::string hostname;
  std::string ipv6_prefix;  // the node's /64
  std::string token;        // the node credential, plaintext, shown once
  std::string token_id;
  bool reissued = false;  // a retry: same node, fresh credential, old one revoked
};

// Redeems enrollment token `token` for the host described by `facts`:
//   - unknown or expired token: unauthenticated (like any bad credential);
//   - first use: a new node with the lowest free /64 of `cluster_prefix`, a
//     node credential, liveness `active`; events node.enrolled and
//     token.created;
//   - the same token again from the same hostname (the agent retrying after
//     a lost response) within `retry_window` of the first use, while no
//     credential of the node was ever used: the same node, a fresh
//     credential, the previous one revoked; event token.created;
//   - later, or once the node's credential was used (or revoked by
//     `vt nodes rm`): unauthenticated, and no identity is issued;
//   - from another hostname: failed_precondition.
[[nodiscard]] Result<std::pair<EnrolledNode, std::vector<NewEvent>>> redeemEnrollment(
    pg::Transaction& tx, const Clock& clock, std::string_view token, const NodeFacts& facts,
    const std::string& cluster_prefix, std::chrono::seconds retry_window);

struct HeartbeatResult {
  std::string state;                   // the liveness state before this heartbeat
  std::optional<NewEvent> transition;  // node.state_changed back to active, if it was not
};

// Records a heartbeat: one row update; an event only when the node was
// unreachable or down. not_found when the node has no liveness row.
// `endpoint` (the agent's log endpoint and its certificate, checked by
// checkAgentEndpoint; docs/specs/runtime/logs.md) is kept as it was when its
// url is empty. `volume_capacity_bytes` (the size of the filesystem that
// holds the node's volumes) is kept as it was when absent. `mesh` (the mesh
// figures, checked) replaces the last ones; nullopt clears them (no mesh).
[[nodiscard]] Result<HeartbeatResult> recordHeartbeat(
    pg::Transaction& tx, const Clock& clock, const std::string& node_id,
    const std::string& agent_version, const AgentEndpoint& endpoint = {},
    std::optional<int64_t> volume_capacity_bytes = std::nullopt,
    const std::optional<json::Json>& mesh = std::nullopt);

struct RemovedNode {
  std::string hostname;
  int64_t revoked_tokens = 0;  // 0 when it was removed before
};

// Removes node `node_id` (`vt nodes rm`): revokes its credentials at once
// (token.revoked each), marks it down for good (node.state_changed, unless it
// was down) and records node.removed, so the scheduler replaces its
// instances like those of a lost node. Removing a removed node changes
// nothing and appends nothing. not_found for a node that never enrolled.
[[nodiscard]] Result<std::pair<RemovedNode, std::vector<NewEvent>>> removeNode(
    pg::Transaction& tx, const Clock& clock, const std::string& node_id);

struct LivenessOptions {
  std::chrono::seconds heartbeat_timeout{30};  // active -> unreachable
  std::chrono::seconds down_after{600};        // unreachable -> down; 0: never
  // A mesh key older than this is rotated (mesh_keys.h); 0: never.
  std::chrono::seconds mesh_key_max_age{0};
};

// Marks nodes whose heartbeats stopped unreachable, and nodes unreachable
// for longer than down_after down. Returns the node.state_changed events.
[[nodiscard]] Result<std::vector<NewEvent>> expireLiveness(pg::Transaction& tx, const Clock& clock,
                                                           const LivenessOptions& options);

}  // namespace plfm::cp
