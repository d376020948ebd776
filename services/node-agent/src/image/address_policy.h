// Which network addresses the agent may fetch images from. An image
// reference is tenant input: without a check, a tenant names a registry on
// the node's loopback, link-local or private network (the agent's own
// endpoints, a metadata service, another tenant's instance) and the agent
// connects to it with its own network position. Registries are refused
// unless their address is public unicast or inside a prefix the operator
// allowed (`--registry-allow-cidr`). The check runs on every address a
// connection is about to use, after DNS resolution and on every redirect
// (registry_source.cc, CURLOPT_OPENSOCKETFUNCTION), not on the name.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::image {

struct IpPrefix {
  bool v4 = false;
  std::array<uint8_t, 16> bytes{};  // v4: the first 4
  int length = 0;                   // prefix bits

  [[nodiscard]] std::string str() const;
};

// "127.0.0.1/32", "fd00::/8", or a bare address (a /32 or /128).
[[nodiscard]] Result<IpPrefix> parseIpPrefix(std::string_view text);

// An address from a sockaddr_in or sockaddr_in6 (a v4-mapped IPv6 address
// counts as its IPv4 address). false for any other family.
struct IpAddress {
  bool v4 = false;
  std::array<uint8_t, 16> bytes{};
  [[nodiscard]] std::string str() const;
};
[[nodiscard]] bool fromSockaddr(const sockaddr* sa, IpAddress& out);

[[nodiscard]] bool contains(const IpPrefix& prefix, const IpAddress& addr);

// Public unicast: not unspecified, loopback, private (RFC 1918, ULA
// fc00::/7), shared (100.64/10), link-local, multicast, reserved,
// documentation or benchmarking space, nor NAT64 of such an address.
[[nodiscard]] bool isPublicUnicast(const IpAddress& addr);

// The registry address policy: public unicast, or inside one of `allowed`.
[[nodiscard]] bool registryAddressAllowed(const IpAddress& addr,
                                          const std::vector<IpPrefix>& allowed);

}  // namespace plfm::image
