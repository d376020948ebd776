// Guest network setup over rtnetlink (no `ip` binary in the guest):
// guest-init.md §Network.
#pragma once

#include <optional>

#include "plan.h"
#include "plfm/guest_proto/messages.h"

namespace plfm::init {

inline constexpr const char* kGuestNic = "eth0";

// Brings lo up; with a network config, waits for eth0, sets its MTU, brings
// it up, adds the IPv6 address (no DAD: the /128 is ours alone) and the
// default route via the link-local gateway, then IPv4 if present.
[[nodiscard]] Result<void> configureNetwork(const std::optional<guest_proto::NetworkConfig>& net);

}  // namespace plfm::init
