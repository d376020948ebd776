// Error codes of the node agent's netdev/: taps, the guest network filter and the WireGuard mesh
// (docs/specs/networking/). Codes are contract (the agent reports them to the control plane, and
// tests match them): never change one's meaning. The generic codes
// (plfm::errc, plfm/core/error.h) read the same through this namespace.
#pragma once

#include <string_view>

#include "plfm/core/error.h"

namespace plfm::netdev::errc {

using namespace ::plfm::errc;  // so that errc::kIo reads the same in this component

inline constexpr std::string_view kFirewallFailed = "netdev.firewall_failed";
inline constexpr std::string_view kMeshBringupFailed = "netdev.mesh_bringup_failed";
inline constexpr std::string_view kMeshCommandFailed = "netdev.mesh_command_failed";
inline constexpr std::string_view kNetlinkFailed = "netdev.netlink_failed";
inline constexpr std::string_view kNftMissing = "netdev.nft_missing";
inline constexpr std::string_view kTapFailed = "netdev.tap_failed";

}  // namespace plfm::netdev::errc
