// Per-instance host networking: one persistent tap device per microVM, the
// host end configured over rtnetlink (libmnl), no `ip` binary involved.
//
// For an instance with address A (a /128 from the node's /64) on tap T:
//   - T exists (IFF_TAP | IFF_NO_PI, persistent, so the VMM opens it by name
//     and it survives an agent restart), its MTU is set, and it is up;
//   - T carries fe80::1/64 (no DAD), the guest's default gateway: the same
//     link-local address on every tap (docs/specs/scheduler/node-plan.md);
//   - the host routes A/128 to T;
//   - with a guest IPv4 B: T carries 169.254.0.1/32 (the guest's on-link
//     gateway) and the host routes B/32 to T;
//   - IPv6 forwarding is on for T, so traffic from the mesh reaches the guest.
// Every step is idempotent (EEXIST is success), so converging twice, or after
// a crash halfway, gives the same result. removeTap() deletes the link, which
// takes its addresses and routes with it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::netdev {

inline constexpr std::string_view kTapPrefix = "vt-";
inline constexpr std::string_view kGatewayLinkLocal = "fe80::1";
// The IPv4 twin: on every tap (/32) when the guest has an IPv4 (mesh.md "Egress").
inline constexpr std::string_view kGatewayIpv4 = "169.254.0.1";

struct TapConfig {
  std::string name;  // at most 15 bytes; tapNameFor() gives one
  int mtu = 1420;
  std::string guest_address;  // IPv6, routed as /128 to the tap; empty: none
  // IPv4 (dotted quad), routed as /32 to the tap, which then also carries
  // 169.254.0.1/32; empty: none.
  std::string guest_ipv4;
};

// "vt-" + 11 hex characters of sha256(instance_id): unique per instance,
// stable across restarts, and recognisable when cleaning up orphans.
[[nodiscard]] std::string tapNameFor(std::string_view instance_id);

// A locally administered unicast MAC derived from the instance id.
[[nodiscard]] std::string macFor(std::string_view instance_id);

[[nodiscard]] Result<void> ensureTap(const TapConfig& config);
// Deletes the tap; success when it does not exist.
[[nodiscard]] Result<void> removeTap(const std::string& name);
// The names of existing links that start with `prefix`, sorted.
[[nodiscard]] Result<std::vector<std::string>> listLinks(std::string_view prefix);
[[nodiscard]] bool linkExists(const std::string& name);

}  // namespace plfm::netdev
