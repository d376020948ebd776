// Route hostnames as the ingress matches them and the control plane stores
// them (docs/specs/ingress/edge-feed.md, "routes[].hostname"): a DNS name, a
// one-label wildcard "*.<name>", or "*" (a port's default route). Both sides
// normalize with this one function, so a name the control plane accepts is
// one the ingress accepts, and two spellings of a name conflict on both.
#pragma once

#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::net {

// Labels of 1..63 of [a-z0-9-_], at most 253 characters in all (lower case
// only: call it on a normalized name).
[[nodiscard]] bool validDnsName(std::string_view name);

// Lower-cases and strips one trailing dot, then checks the result is a DNS
// name, "*.<name>" or "*". The error (invalid_argument) names the hostname.
[[nodiscard]] Result<std::string> normalizeHostname(std::string_view hostname);

}  // namespace plfm::net
