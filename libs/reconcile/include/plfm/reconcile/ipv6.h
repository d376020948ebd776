// IPv6 addressing for instances. The cluster owns a prefix (a /48, say);
// each node gets a /64 from it when it registers, and each instance gets a
// /128 from its node's /64. In a node's /64, ::0 is the subnet-router anycast
// address and ::1 is the host side of the instances' links, so instances
// start at ::2. Lowest-free allocation keeps addresses small and stable.
//
//   PLFM_ASSIGN_OR_RETURN(auto p, parseIpv6Prefix("fd7a:115c:a1e0::/48"));
//   allocateNodePrefix("fd7a:115c:a1e0::/48", {"fd7a:115c:a1e0:1::/64"})
//     -> "fd7a:115c:a1e0:2::/64"
//   allocateInstanceAddress("fd7a:115c:a1e0:1::/64", {"fd7a:115c:a1e0:1::2"})
//     -> "fd7a:115c:a1e0:1::3"
//
// Text forms follow RFC 4291 section 2.2 when parsing (no embedded IPv4) and
// RFC 5952 when formatting (lowercase, longest zero run compressed).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::reconcile {

// An address as two 64-bit halves: `hi` is the /64 prefix part, `lo` the
// interface identifier.
struct Ipv6 {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;

  bool operator==(const Ipv6&) const = default;
};

struct Ipv6Prefix {
  Ipv6 address;  // host bits are zero
  int length = 0;

  bool operator==(const Ipv6Prefix&) const = default;
};

// The first interface identifier instances may use in a node's /64.
inline constexpr std::uint64_t kFirstInstanceIid = 2;

[[nodiscard]] Result<Ipv6> parseIpv6(std::string_view text);
// "addr/len"; rejects host bits that are set ("fd00::1/64").
[[nodiscard]] Result<Ipv6Prefix> parseIpv6Prefix(std::string_view text);
[[nodiscard]] std::string formatIpv6(const Ipv6& a);
[[nodiscard]] std::string formatIpv6Prefix(const Ipv6Prefix& p);

// The lowest interface identifier >= kFirstInstanceIid that is not in `used`.
[[nodiscard]] std::uint64_t lowestFreeIid(std::vector<std::uint64_t> used);

// The lowest free /128 in `node_prefix` (a /64) given the addresses in use.
// Addresses outside the prefix, or unparsable, are ignored.
[[nodiscard]] Result<std::string> allocateInstanceAddress(
    std::string_view node_prefix, const std::vector<std::string>& used_addresses);

// The lowest free /64 in `cluster_prefix` (length 1 to 63) given the node
// prefixes in use. Subnet 0 is kept for the control plane and never handed
// out. Fails with resource_exhausted when every /64 is taken.
[[nodiscard]] Result<std::string> allocateNodePrefix(std::string_view cluster_prefix,
                                                     const std::vector<std::string>& used_prefixes);

}  // namespace plfm::reconcile
