// Mesh key rotation on the control plane's side (docs/specs/networking/
// mesh.md, "Contract for key rotation"): a node stages the public key and
// port of its second WireGuard interface, then commits it once its routes
// moved; an operator or the key's age asks it to start. The control plane
// only ever sees public keys.
//
// Parse, then act: parseMeshKeyCommand checks a request body, decideMeshKey
// turns it and the node's current state into at most one event (none for a
// retry), and meshKeyJson is the answer of both routes.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "event_store.h"
#include "plfm/core/clock.h"
#include "plfm/core/json.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

// A node's mesh key as nodes_view has it.
struct MeshKeyState {
  std::string node_id;
  std::string public_key;
  int64_t listen_port = 0;
  std::optional<std::string> next_public_key;  // staged, or nullopt
  std::optional<int64_t> next_listen_port;
  bool rotation_requested = false;
  std::string key_since;  // RFC 3339
  int version = 0;        // the view's aggregate_seq: the next event is version + 1
};

// The node's state, read in `tx` under the log lock (so the events decided
// from it are appended without a race); not_found for an unknown or removed
// node, unavailable (retry) while its view lags its log.
[[nodiscard]] Result<MeshKeyState> lockMeshKey(pg::Transaction& tx, const std::string& node_id);

// POST /v1/nodes/{node_id}/mesh-key: {"phase": "next", "public_key", "listen_port"} or
// {"phase": "current", "public_key"}.
struct MeshKeyCommand {
  bool commit = false;  // phase "current"
  std::string public_key;
  int64_t listen_port = 0;  // phase "next" only
};
[[nodiscard]] Result<MeshKeyCommand> parseMeshKeyCommand(const json::Json& body);

// failed_precondition naming `public_key` when another node (not removed)
// has `key` as its current or staged key: the agents' plan parser leaves out
// peers that repeat a key, so one node could cut another out of the mesh.
[[nodiscard]] Result<void> refuseAnotherNodesKey(pg::Transaction& tx, const std::string& node_id,
                                                 const std::string& key);

// The event `cmd` appends on `state` (nullopt: a retry, nothing changes), or
// failed_precondition naming `public_key`, or invalid_field naming
// `listen_port` (the node's current port). `state` is updated to what the
// answer shows, but for a commit's key_since: the event's time, known once
// it is appended.
[[nodiscard]] Result<std::optional<NewEvent>> decideMeshKey(MeshKeyState& state,
                                                            const MeshKeyCommand& cmd);

// POST /v1/nodes/{node_id}/mesh-key/rotate: node.mesh_key_rotation_requested
// {reason: "operator"}, unless one is pending or a key is staged.
[[nodiscard]] std::optional<NewEvent> requestRotation(MeshKeyState& state);

// The answer of both routes: {"node_id", "public_key", "listen_port", "next":
// {"public_key", "listen_port"} | null, "rotation_requested", "key_since"}.
[[nodiscard]] json::Json meshKeyJson(const MeshKeyState& state);

// The age-driven requests of the leader's liveness sweep: one
// node.mesh_key_rotation_requested {reason: "age"} for each active node whose
// key is older than `max_age` with no request pending and no key staged.
// `max_age` 0: none. A node whose view lags its log waits for the next sweep.
[[nodiscard]] Result<std::vector<NewEvent>> requestAgedRotations(pg::Transaction& tx,
                                                                 const Clock& clock,
                                                                 std::chrono::seconds max_age);

}  // namespace plfm::cp
