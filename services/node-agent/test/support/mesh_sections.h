// NodePlan mesh sections for tests (docs/specs/networking/mesh.md, "The
// NodePlan mesh section"), in the cluster prefix fd7a:5c00::/48 with node N
// at fd7a:5c00:0:N::/64 (N written as hex digits).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "netdev/mesh_plan.h"

namespace plfm::netdev::testing {

// A made-up public key: 32 bytes of `fill`, as base64.
inline std::string meshTestKey(uint8_t fill) {
  std::array<uint8_t, 32> b{};
  b.fill(fill);
  return WgKey::fromBytes(b).base64();
}

inline std::string meshNodePrefix(uint32_t number) {
  return "fd7a:5c00:0:" + std::to_string(number) + "::/64";
}

// One peer; node ids differ by the number's last three digits.
inline nlohmann::json meshPeer(uint32_t number, const std::string& public_key,
                               const std::string& endpoint) {
  std::string id = std::to_string(number % 1000);
  id.insert(0, 3 - id.size(), '0');
  return {{"node_id", "node_01jdq3v7k2m9x4c8r6t0w5y" + id},
          {"node_number", number},
          {"public_key", public_key},
          {"endpoint", endpoint},
          {"allowed_ips", {meshNodePrefix(number)}},
          {"role", "worker"}};
}

inline nlohmann::json meshSection(int64_t version, uint32_t self, nlohmann::json peers,
                                  uint16_t listen_port = 51820) {
  const std::string n = std::to_string(self);
  return {{"version", version},
          {"cluster_prefix", "fd7a:5c00::/48"},
          {"self",
           {{"node_number", self},
            {"prefix", meshNodePrefix(self)},
            {"address", "fd7a:5c00:0:" + n + "::1"},
            {"listen_port", listen_port},
            {"role", "worker"}}},
          {"peers", std::move(peers)}};
}

}  // namespace plfm::netdev::testing
