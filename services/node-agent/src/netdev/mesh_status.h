// `plfm-node-agent mesh status`: the local view of the mesh (mesh.md,
// "The agent's mesh"), built from `wg show NAME dump`, `ip -6 route show dev
// NAME` and the last applied plan (STATE/mesh/plan.json, which names the
// node behind each key). Pure, so its output is tested without an interface.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "netdev/mesh.h"
#include "netdev/mesh_plan.h"
#include "netdev/mesh_rotation.h"
#include "netdev/wg_dump.h"

namespace plfm::netdev {

struct MeshPeerStatus {
  std::string node_id;       // empty: a key the plan does not name
  uint32_t node_number = 0;  // 0: likewise
  std::string public_key;
  std::string endpoint;  // what wg uses now ("" none); the plan's when wg has no such peer
  std::vector<std::string> allowed_ips;
  bool configured = false;                       // wg has the peer
  std::optional<int64_t> handshake_age_seconds;  // nullopt: no handshake yet
  uint64_t rx_bytes = 0;
  uint64_t tx_bytes = 0;
  bool route = false;  // every allowed IP is routed via the interface
};

// A key rotation running on this node (STATE/mesh/rotation.json).
struct MeshRotationStatus {
  std::string phase;      // "staged", "published" or "retiring"
  std::string interface;  // the interface with the new key
  int64_t since = 0;      // Unix seconds: when the key was staged
};

struct MeshStatus {
  std::string interface;
  std::optional<MeshRotationStatus> rotation;
  bool up = false;  // the interface exists
  uint16_t listen_port = 0;
  std::string public_key;
  int64_t plan_version = -1;  // -1: no plan applied yet
  // The plan's peers by node number, then keys only wg knows, by key.
  std::vector<MeshPeerStatus> peers;
};

// `dump` nullopt: the interface is absent (the plan's peers are listed,
// none configured). `now_unix`: the clock, for handshake ages.
[[nodiscard]] MeshStatus meshStatus(const std::string& interface,
                                    const std::optional<MeshPlan>& plan,
                                    const std::optional<WgDump>& dump,
                                    const std::vector<MeshRoute>& routes, int64_t now_unix);
[[nodiscard]] MeshRotationStatus rotationStatus(const MeshRotation& r);
[[nodiscard]] nlohmann::json toJson(const MeshStatus& s);
[[nodiscard]] std::string toText(const MeshStatus& s);

}  // namespace plfm::netdev
