// A node's WireGuard key rotation on disk (docs/specs/networking/mesh.md,
// "Contract for key rotation", "Agent"): the two interface slots' names,
// STATE/mesh/next.key (the staged private key, 0600) and
// STATE/mesh/rotation.json, the record that lets every step resume after a
// restart. The steps themselves are agent/mesh_member.cc's.
//
//   auto r = loadMeshRotation(STATE);        // nullopt: none running
//   MeshRotation r{...}; PLFM_TRY(saveMeshRotation(STATE, r));
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "netdev/mesh_plan.h"
#include "plfm/core/result.h"

namespace plfm::netdev {

// The second slot's default name: the first with a final '0' made '1'
// ("plfm-wg0" -> "plfm-wg1"), else with '1' appended ("wg-1a2b3c4d-a" ->
// "wg-1a2b3c4d-a1"); empty when that is longer than 15 bytes (the operator
// names it with --mesh-interface2).
[[nodiscard]] std::string defaultMeshInterface2(std::string_view first);

struct MeshRotation {
  std::string interface;  // the interface carrying the new key
  uint16_t listen_port = 0;
  WgKey public_key;              // the new key's public half
  std::string phase = "staged";  // "staged" | "published"
  std::string retire_interface;  // set once the new key is current: the old interface
  int64_t retire_after = 0;      // Unix seconds; with retire_interface
  int64_t since = 0;             // Unix seconds: when the key was staged

  [[nodiscard]] nlohmann::json toJson() const;
  bool operator==(const MeshRotation&) const = default;
};
// Our own file, still checked field by field (an error names the field).
[[nodiscard]] Result<MeshRotation> parseMeshRotation(const nlohmann::json& j);

[[nodiscard]] std::string meshRotationPath(
    const std::string& state_dir);  // STATE/mesh/rotation.json
[[nodiscard]] std::string meshNextKeyPath(const std::string& state_dir);  // STATE/mesh/next.key
[[nodiscard]] std::string meshKeyPath(const std::string& state_dir);      // STATE/wireguard.key

// nullopt when there is no record; an error when there is one it cannot read.
[[nodiscard]] Result<std::optional<MeshRotation>> loadMeshRotation(const std::string& state_dir);
[[nodiscard]] Result<void> saveMeshRotation(const std::string& state_dir, const MeshRotation& r);
[[nodiscard]] Result<void> removeMeshRotation(const std::string& state_dir);

// Writes a private key as `wg` reads it (base64 and a newline), 0600; the
// text is wiped after the write.
[[nodiscard]] Result<void> writePrivateKeyFile(const std::string& path, const WgKey& key);

}  // namespace plfm::netdev
