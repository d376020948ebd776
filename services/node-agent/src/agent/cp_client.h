// The agent's side of the control plane's node API (docs/specs/scheduler/
// nodes.md and node-plan.md): enrollment, heartbeats, the NodePlan long-poll
// and instance status reports. One keep-alive connection per ControlPlaneClient;
// the agent keeps one for the long-poll and one for everything else, so a held
// poll never delays a report. A client may be given several control-plane URLs
// (the replicas, docs/specs/control-plane/ha.md "Clients"): it stays with the
// one that answers and moves to the next when it cannot be reached
// (http::FailoverClient); the long-polls resume from their cursor there.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "plfm/core/result.h"
#include "plfm/http/failover.h"
#include "plfm/http/http.h"

namespace plfm::agent {

struct NodeFacts {
  std::string hostname;
  int cores = 1;
  int64_t memory_mb = 1024;
  int64_t disk_mb = 0;
  nlohmann::json labels = nlohmann::json::object();
  std::string wireguard_public_key;
  std::string underlay_address;
  std::vector<std::string> runtimes = {"qemu"};
  // The node's WireGuard UDP port on its underlay address, and "worker" or
  // "edge" (a mesh member that runs no instances). Sent only when not the
  // defaults, so an older control plane still enrolls a default node.
  int mesh_port = 51820;
  std::string role = "worker";
};

// What enrollment gives the node, persisted as STATE/node.json (0600).
struct NodeCredential {
  // The control plane's base URLs, one per replica, in the order to try
  // them. Stored as "control_planes" with the first also as "control_plane",
  // which is all a credential from before replicas has.
  std::vector<std::string> control_planes;
  std::string node_id;
  std::string token;
  std::string ipv6_prefix;
  int heartbeat_interval_seconds = 10;
  // The control plane's relay signing key ("ed25519:<hex>"), pinned at
  // enrollment: the log endpoint accepts only requests it signed. Empty in
  // a credential from before signed relays: the first heartbeat pins it.
  std::string relay_public_key;

  [[nodiscard]] nlohmann::json toJson() const;
  [[nodiscard]] static Result<NodeCredential> fromJson(const nlohmann::json& j);
};

struct NodePlan {
  int64_t version = 0;
  nlohmann::json instances = nlohmann::json::array();  // WorkloadSpecs
  // The volumes placed on this node, as sent: each entry is parsed at the
  // edge (workload_check.h parseNodeVolume) before anything acts on it.
  nlohmann::json volumes = nlohmann::json::array();
  // The snapshots, restores and verifies this node should run, oldest first,
  // as sent: parsed at the edge (workload_check.h parseVolumeOp).
  nlohmann::json volume_ops = nlohmann::json::array();
  // This node's place in the WireGuard mesh, as sent (null: a control plane
  // from before the mesh); parsed at the edge by netdev::parseMeshPlan.
  nlohmann::json mesh;
};

// POST /v1/nodes/{node_id}/volumes/{volume_id}/status (volume-mounts.md
// §Agent routes).
struct VolumeReport {
  std::string state;  // "ready", "failed" or "deleted"
  uint64_t size_bytes = 0;
  std::string reason;  // for failed: at most 512 printable bytes

  bool operator==(const VolumeReport&) const = default;
};

// POST /v1/nodes/{node_id}/volumes/{volume_id}/snapshots/{snapshot_id}
// (volume-mounts.md "Agent routes" of increments 5 and 6). Which fields are
// sent depends on `state`.
struct SnapshotReport {
  std::string state;  // "taken", "failed", "backed_up" or "expired"
  // taken
  std::string origin;  // "api" or "schedule"
  std::string method;  // "reflink", "blockdev-backup" or "copy"
  bool consistent = false;
  int64_t freeze_ms = -1;
  uint64_t size_bytes = 0;
  std::string sha256;
  std::string taken_at;  // RFC 3339 UTC: the consistent point
  // failed
  std::string reason;  // at most 512 printable bytes
  // backed_up
  std::string backup_id;
  uint64_t bytes_added = 0;
  int64_t duration_ms = 0;
  // expired: what is gone now
  bool local = false;
  bool backup = false;

  [[nodiscard]] nlohmann::json toJson() const;
  [[nodiscard]] static Result<SnapshotReport> fromJson(const nlohmann::json& j);
  bool operator==(const SnapshotReport&) const = default;
};

// POST /v1/nodes/{node_id}/volume-ops/{op_id}.
struct VolumeOpReport {
  std::string kind;  // "restore" or "verify"
  std::string volume_id;
  std::string snapshot_id;
  bool ok = false;
  std::string reason;       // at most 512 printable bytes
  std::string sha256;       // restore: of the restored file
  int64_t duration_ms = 0;  // verify

  [[nodiscard]] nlohmann::json toJson() const;
  [[nodiscard]] static Result<VolumeOpReport> fromJson(const nlohmann::json& j);
  bool operator==(const VolumeOpReport&) const = default;
};

struct StatusReport {
  int generation = 1;
  int64_t seq = 1;
  std::string phase;
  std::optional<int> exit_code;
  std::string reason;
  nlohmann::json timings = nlohmann::json::object();
};

struct RegistryLogin {
  std::string registry;  // normalized host[:port], as the control plane names it
  std::string username;
  std::string password;
};

class ControlPlaneClient {
 public:
  // `tls`: how the control plane's certificate is verified (its CA file or a
  // pinned certificate); plain http:// only to loopback unless it opts in.
  // `base_urls`: one per control-plane replica, tried in order.
  ControlPlaneClient(std::vector<std::string> base_urls, std::string token,
                     http::ClientTlsOptions tls = {});
  ControlPlaneClient(std::string base_url, std::string token, http::ClientTlsOptions tls = {});

  // The credential records every URL of `base_urls`.
  [[nodiscard]] static Result<NodeCredential> enroll(const std::vector<std::string>& base_urls,
                                                     const std::string& enrollment_token,
                                                     const NodeFacts& facts,
                                                     const http::ClientTlsOptions& tls = {});
  [[nodiscard]] static Result<NodeCredential> enroll(const std::string& base_url,
                                                     const std::string& enrollment_token,
                                                     const NodeFacts& facts,
                                                     const http::ClientTlsOptions& tls = {});
  // The URL the next request goes to first (the replica that answered last).
  [[nodiscard]] const std::string& currentUrl() const { return client_.currentUrl(); }
  struct HeartbeatReply {
    int64_t plan_version = 0;
    std::string relay_public_key;  // the control plane's, as it says now
  };
  // `agent_url` and `cert_sha256`: where the control plane reads this
  // node's logs and the certificate it pins there (docs/specs/runtime/
  // logs.md); empty when the agent has no listener (and the certificate
  // empty for a plain loopback listener). `mesh`: the mesh figures
  // (netdev::toHeartbeatJson), null when the node has no mesh interface.
  [[nodiscard]] Result<HeartbeatReply> heartbeat(const std::string& node_id,
                                                 const std::string& agent_version,
                                                 const std::string& agent_url = {},
                                                 const std::string& cert_sha256 = {},
                                                 uint64_t volume_capacity_bytes = 0,
                                                 const nlohmann::json& mesh = nullptr);
  // Holds up to `wait` when the plan is still at `after`.
  [[nodiscard]] Result<NodePlan> plan(const std::string& node_id, int64_t after,
                                      std::chrono::seconds wait);
  // The services feed for the DNS responder (GET /v1/nodes/{id}/services,
  // docs/specs/networking/mesh.md), unparsed: netdev::parseServicesFeed is
  // its edge. Holds up to `wait` when the feed is still at `after`.
  [[nodiscard]] Result<nlohmann::json> services(const std::string& node_id, int64_t after,
                                                std::chrono::seconds wait);
  // The fixed-format secrets file of `version` for an instance on this node
  // (docs/specs/secrets/delivery.md). The caller wipes it after use.
  [[nodiscard]] Result<std::string> fetchSecrets(const std::string& node_id,
                                                 const std::string& instance_id,
                                                 const std::string& version);
  // The credential of the instance's org for the registry its image names
  // (docs/specs/api/v1.md, "Registry credentials"); nullopt when the org has
  // none (404: pull anonymously). The caller wipes the password.
  [[nodiscard]] Result<std::optional<RegistryLogin>> registryCredentials(
      const std::string& node_id, const std::string& instance_id);
  // The state of a volume file on this node; true when it changed something.
  [[nodiscard]] Result<bool> reportVolume(const std::string& node_id, const std::string& volume_id,
                                          const VolumeReport& report);
  // A snapshot's progress; true when it changed something. A 404 or 409
  // (kNotFound, kFailedPrecondition) will not change by sending it again.
  [[nodiscard]] Result<bool> reportSnapshot(const std::string& node_id,
                                            const std::string& volume_id,
                                            const std::string& snapshot_id,
                                            const SnapshotReport& report);
  // A restore's or verify's outcome; true when it changed something.
  [[nodiscard]] Result<bool> reportVolumeOp(const std::string& node_id, const std::string& op_id,
                                            const VolumeOpReport& report);
  // POST /v1/nodes/{node_id}/mesh-key (docs/specs/networking/mesh.md,
  // "Contract for key rotation"): `phase` "next" with the staged public key
  // and its port, or "current" (`listen_port` unused) when the node has
  // moved its routes. Only the public key is sent. The Idempotency-Key is
  // made from the body, so a retry replays.
  [[nodiscard]] Result<void> reportMeshKey(const std::string& node_id, std::string_view phase,
                                           const std::string& public_key, int listen_port);
  // true when the report was applied, false when the control plane already had
  // it or a newer one (a duplicate is fine).
  [[nodiscard]] Result<bool> report(const std::string& node_id, const std::string& instance_id,
                                    const StatusReport& report);

 private:
  // GET /v1/nodes/{node_id}/{feed}?after=&wait= with room for the wait.
  [[nodiscard]] Result<nlohmann::json> longPoll(const std::string& node_id, std::string_view feed,
                                                int64_t after, std::chrono::seconds wait);
  [[nodiscard]] Result<nlohmann::json> call(const std::string& method, const std::string& target,
                                            const std::string& body,
                                            std::chrono::milliseconds timeout, int* status,
                                            const std::string& idempotency_key = {});
  std::string token_;
  http::FailoverClient client_;
};

// "control plane answered 401 unauthenticated: ..." from an error envelope.
[[nodiscard]] Error apiError(int status, const std::string& body, std::string_view what);

}  // namespace plfm::agent
