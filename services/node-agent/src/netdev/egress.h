// The node's egress (docs/specs/networking/mesh.md, "Contracts for increments
// 4 and 5", "Egress"): two nftables tables the agent owns, rewritten whole
// and atomically (one `nft -f` transaction, as the guest filter):
//   - `ip plfm_nat4`: the node's guest IPv4 subnet masqueraded out of the
//     egress interface (NAT44);
//   - `ip6 plfm_nat6`: with egress6 = nat66, cluster-prefix sources
//     masqueraded out of the egress interface; with route, no table (the
//     operator routes the prefix); with off, guest traffic leaving by the
//     egress interface is dropped.
// What guests may reach at all (denied ranges, the host, other guests) is the
// guest filter's (netdev/firewall.h); these tables only translate.
//
// renderEgress() is a pure function of validated values (golden-tested);
// NftEgress applies it with the guest filter's nft runner.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "netdev/firewall.h"
#include "plfm/core/result.h"

namespace plfm::netdev {

inline constexpr std::string_view kNat4Table = "plfm_nat4";
inline constexpr std::string_view kNat6Table = "plfm_nat6";

enum class Egress6Mode { kNat66, kRoute, kOff };
// "nat66", "route" or "off".
[[nodiscard]] Result<Egress6Mode> parseEgress6Mode(std::string_view text);
[[nodiscard]] std::string_view egress6ModeName(Egress6Mode mode);

// An interface the operator names for egress: 1 to 15 of [A-Za-z0-9._-], not
// a tap (vt-*).
[[nodiscard]] bool validEgressInterfaceName(std::string_view name);

// The interface of the default route in /proc/net/route (IPv4) or
// /proc/net/ipv6_route (IPv6) text: the one with the lowest metric, never
// `lo`; empty when there is none.
[[nodiscard]] std::string defaultRouteInterface4(std::string_view proc_net_route);
[[nodiscard]] std::string defaultRouteInterface6(std::string_view proc_net_ipv6_route);
// The same read from /proc (empty when unreadable).
[[nodiscard]] std::string defaultRouteInterface(int family);

// The node's guest IPv4 subnet from --guest-ipv4-subnet: empty means the
// default 10.42.N.0/24 (N = the node number modulo 256), "off" none (no guest
// IPv4), else an IPv4 prefix of length 16 to 29.
[[nodiscard]] Result<std::optional<Ipv4Prefix>> guestSubnet4(std::string_view flag,
                                                             uint32_t node_number);
// The same checks without a node number (flag validation).
[[nodiscard]] Result<void> validateGuestSubnet4Flag(std::string_view flag);

// The lowest address >= .2 of `subnet` (below its broadcast address) that is
// not in `used` (dotted quads), as a dotted quad; kResourceExhausted when the
// subnet is full.
[[nodiscard]] Result<std::string> lowestFreeGuestIpv4(const Ipv4Prefix& subnet,
                                                      const std::vector<std::string>& used);
[[nodiscard]] std::string formatIpv4(const in_addr& a);

// Everything the tables depend on, validated.
struct EgressPolicy {
  Egress6Mode egress6 = Egress6Mode::kNat66;
  // Where guest traffic leaves, per family (validEgressInterfaceName); empty:
  // none (that family gets no table).
  std::string interface6;
  std::string interface4;
  // From the plan's mesh section; nat66 needs it (without it, no table).
  std::optional<Ipv6Prefix> cluster_prefix;
  // The node's guest IPv4 subnet; without it, no NAT44.
  std::optional<Ipv4Prefix> guest_subnet4;
  friend bool operator==(const EgressPolicy&, const EgressPolicy&) = default;
};

// The whole nft script for both tables (each created if missing, deleted and
// re-created when it has rules). Fails on an invalid interface name.
[[nodiscard]] Result<std::string> renderEgress(const EgressPolicy& policy);
// The script that removes both tables (and succeeds when there are none).
[[nodiscard]] std::string renderEgressRemoval();

// Applies the tables with nft; keeps WORK_DIR/ruleset.nft. Not thread-safe.
class NftEgress {
 public:
  explicit NftEgress(std::string work_dir, std::string nft = "nft");
  // Rewrites the tables when `policy` differs from the last applied one.
  [[nodiscard]] Result<void> apply(const EgressPolicy& policy);
  [[nodiscard]] Result<void> remove();

 private:
  std::string work_dir_;
  std::string nft_;
  std::optional<EgressPolicy> applied_;
};

}  // namespace plfm::netdev
