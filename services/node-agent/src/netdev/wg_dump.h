// What `wg show NAME dump` says about an interface, typed. The dump is one
// tab-separated line for the interface (private key, public key, listen
// port, fwmark) and one per peer (public key, preshared key, endpoint,
// allowed IPs, latest handshake, rx bytes, tx bytes, keepalive); "(none)"
// and "off" stand for nothing (wireguard-tools' wg-show(8)).
//
// The first field is the interface's PRIVATE key: the parser skips it and
// never copies it, and no error quotes a line of the input. The caller
// wipes the text it captured.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netdev/mesh_plan.h"
#include "plfm/core/result.h"

namespace plfm::netdev {

struct WgDumpPeer {
  WgKey public_key;
  std::optional<WgEndpoint> endpoint;   // nullopt: "(none)" (never heard of, none configured)
  std::vector<Ipv6Prefix> allowed_ips;  // IPv6 only; IPv4 entries are counted in ipv4_allowed_ips
  int ipv4_allowed_ips = 0;
  int64_t latest_handshake = 0;  // Unix seconds; 0: never
  uint64_t rx_bytes = 0;
  uint64_t tx_bytes = 0;
};

struct WgDump {
  std::optional<WgKey> public_key;  // nullopt: the interface has no key yet
  uint16_t listen_port = 0;
  std::vector<WgDumpPeer> peers;  // as printed (wg's order, not the plan's)
};

[[nodiscard]] Result<WgDump> parseWgDump(std::string_view text);

// The heartbeat's `mesh` figures (mesh.md, "Operator view and the bench"):
// a peer is up when its latest handshake is at most kPeerUpWithin old.
inline constexpr int64_t kPeerUpWithinSeconds = 180;
struct MeshTotals {
  int peers = 0;
  int peers_up = 0;
  int64_t latest_handshake = 0;  // Unix seconds, the newest over all peers; 0: never
  uint64_t rx_bytes = 0;
  uint64_t tx_bytes = 0;
};
[[nodiscard]] MeshTotals meshTotals(const WgDump& dump, int64_t now_unix);
// {"peers", "peers_up", "latest_handshake_at" (RFC 3339 or null), "rx_bytes", "tx_bytes"}.
[[nodiscard]] nlohmann::json toHeartbeatJson(const MeshTotals& t);

}  // namespace plfm::netdev
