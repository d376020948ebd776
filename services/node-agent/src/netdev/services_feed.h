// The control plane's services feed (docs/specs/networking/mesh.md,
// "Internal names": GET /v1/nodes/{node_id}/services) parsed at the agent's
// edge into the DNS responder's table. Hostile values are left out entry by
// entry, so one bad service cannot hide the others.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "netdev/dns_message.h"
#include "plfm/core/result.h"

namespace plfm::netdev {

struct ServicesFeed {
  std::int64_t version = 0;
  std::vector<dns::ServiceEntry> services;
  std::vector<std::string> skipped;  // why each left-out entry was refused
};

// `{"version": V, "services": [{"org_tag", "app", "env", "process",
// "addresses"}]}`: version >= 0; org_tag 1..4294967294; app, env and process
// 1 to 63 of [a-z0-9-] (a DNS label); addresses IPv6 literals, at most 64.
// An error when the envelope itself is bad.
[[nodiscard]] Result<ServicesFeed> parseServicesFeed(const nlohmann::json& j);

}  // namespace plfm::netdev
