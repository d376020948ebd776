// The NodePlan's `mesh` section, typed (docs/specs/networking/mesh.md,
// "The NodePlan mesh section"): this node's place in the WireGuard mesh and
// its peers. Every byte of it comes from the control plane and is treated
// as hostile: parseMeshPlan() checks each field and is the only way to build
// the values the mesh renders into a wg configuration file, so no newline,
// '=' or other stray byte ever reaches that file.
//
//   auto parsed = parseMeshPlan(plan_json["mesh"]);
//   if (!parsed) ...;                      // the section as a whole is bad
//   for (const auto& e : parsed->skipped) log(e);  // peers left out
//   mesh.apply(parsed->plan);
#pragma once

#include <netinet/in.h>

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netdev/firewall.h"
#include "plfm/core/result.h"

namespace plfm::netdev {

// A WireGuard (Curve25519) public key: exactly 32 bytes.
class WgKey {
 public:
  // Standard base64 with padding, 44 characters, canonical (the unused low
  // bits of the last character are zero), as `wg` prints keys.
  [[nodiscard]] static Result<WgKey> parse(std::string_view base64);
  [[nodiscard]] static WgKey fromBytes(const std::array<uint8_t, 32>& bytes) {
    WgKey k;
    k.bytes_ = bytes;
    return k;
  }
  [[nodiscard]] std::string base64() const;
  // Zeroes the bytes (a private key once used).
  void wipe();
  [[nodiscard]] const std::array<uint8_t, 32>& bytes() const { return bytes_; }
  bool operator==(const WgKey&) const = default;
  bool operator<(const WgKey& o) const { return bytes_ < o.bytes_; }

 private:
  std::array<uint8_t, 32> bytes_{};
};

// Where a peer listens: "[v6]:port", "v4:port" or "hostname:port".
struct WgEndpoint {
  enum class Kind { kIpv6, kIpv4, kHostname };
  Kind kind = Kind::kIpv6;
  std::string host;  // canonical address text (no brackets), or a lowercase host name
  uint16_t port = 0;
  // "[fd00::b]:51820", "192.0.2.1:51820", "node-b.example:51820": the form
  // `wg` takes and, for addresses, the form `wg show dump` prints.
  [[nodiscard]] std::string str() const;
  bool operator==(const WgEndpoint&) const = default;
};
[[nodiscard]] Result<WgEndpoint> parseWgEndpoint(std::string_view text);

struct MeshSelf {
  uint32_t node_number = 0;
  Ipv6Prefix prefix;   // the node's /64
  in6_addr address{};  // its host address (prefix + ::1), on the mesh interface
  uint16_t listen_port = 51820;
  std::string role = "worker";  // "worker" or "edge"
  // Key rotation (mesh.md, "Contract for key rotation"): the node's current
  // key as the control plane has it, the staged one and its port (both or
  // neither), and whether a rotation is requested. Absent (an older control
  // plane): nullopt and false.
  std::optional<WgKey> public_key;
  std::optional<WgKey> next_public_key;
  std::optional<uint16_t> next_listen_port;
  bool rotate = false;
};

// A peer's staged key and where it listens with it (its second interface).
struct MeshPeerNext {
  WgKey public_key;
  WgEndpoint endpoint;
  bool operator==(const MeshPeerNext&) const = default;
};

struct MeshPeer {
  std::string node_id;  // node_<ulid>
  uint32_t node_number = 0;
  WgKey public_key;
  WgEndpoint endpoint;
  std::vector<Ipv6Prefix> allowed_ips;  // inside the cluster prefix, not this node's
  std::string role = "worker";
  // Set while the peer rotates its key: it is configured with this key and
  // endpoint instead of the ones above (peersSwitched()).
  std::optional<MeshPeerNext> next;
  // Not in the plan: set by peersSwitched() on a peer that rotates, so this
  // node shakes hands with the peer's new interface as soon as it switches
  // (a persistent keepalive sends one at once), and the peer moves its route
  // here at its next check instead of waiting for our traffic.
  uint16_t persistent_keepalive = 0;
};

struct MeshPlan {
  int64_t version = 0;
  Ipv6Prefix cluster_prefix;
  MeshSelf self;
  std::vector<MeshPeer> peers;  // ordered by node_number, unique keys and prefixes

  // The section again (STATE/mesh/plan.json; `mesh status` reads it back
  // with parseMeshPlan).
  [[nodiscard]] nlohmann::json toJson() const;
};

struct ParsedMeshPlan {
  MeshPlan plan;
  // The peers left out, one error each naming the peer's index and field.
  std::vector<Error> skipped;
};

inline constexpr size_t kMaxMeshPeers = 4096;
inline constexpr size_t kMaxAllowedIpsPerPeer = 16;

// The section as a whole fails (an error naming the field) when `version`,
// `cluster_prefix` or `self` is bad or `peers` is not an array; a peer with
// a bad field is skipped (and listed), as is one that repeats an earlier
// peer's key or node number, overlaps its allowed IPs, uses this node's own
// prefix, or names an allowed IP outside the cluster prefix.
[[nodiscard]] Result<ParsedMeshPlan> parseMeshPlan(const nlohmann::json& section);
// The plan as WireGuard is configured with it: each peer with a `next` takes
// that key and endpoint (its old key is left out, so `wg syncconf` moves the
// peer's allowed IPs to the new key), a persistent keepalive, and `next` is
// cleared.
inline constexpr uint16_t kRotationKeepaliveSeconds = 25;
[[nodiscard]] MeshPlan peersSwitched(const MeshPlan& plan);

// The section's `version` alone (nullopt: none that is an integer), to skip
// a section seen before without parsing it again.
[[nodiscard]] std::optional<int64_t> meshSectionVersion(const nlohmann::json& section);

// "fd7a:5c00::1": inet_ntop's canonical text.
[[nodiscard]] std::string ipv6Text(const in6_addr& a);
// True when `inner` lies inside `outer` (length at least outer's, same bits).
[[nodiscard]] bool prefixContains(const Ipv6Prefix& outer, const Ipv6Prefix& inner);
[[nodiscard]] bool prefixesOverlap(const Ipv6Prefix& a, const Ipv6Prefix& b);

}  // namespace plfm::netdev
