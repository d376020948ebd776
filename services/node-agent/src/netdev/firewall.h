// The node's guest network filter: one nftables table the agent owns
// (`inet plfm_agent`), rewritten whole and atomically (one `nft -f`
// transaction) whenever a guest's tap appears or goes. The rules are in
// docs/specs/networking/node-firewall.md; in short:
//   - a packet from a tap must carry that guest's own address as its source;
//   - a guest reaches the host only with neighbour discovery, Packet Too Big
//     and replies to connections the host opened (ingress, health checks);
//   - a new flow to a platform instance is allowed from an instance of the
//     same org only (org chosen by source address, so the mesh can add
//     remote instances to the same sets), and from outside the platform;
//   - any tap named vt-* is covered by the default-deny chains from the moment
//     it exists, before its guest has an entry.
//
// Parse, then act: GuestFilter values are built only by parseGuestFilter(),
// which validates the tap name and parses the addresses; renderRuleset() is a
// pure function of them (golden-tested) and never emits a tenant string (orgs
// become numbers); NftFirewall runs `nft -f` on the result.
#pragma once

#include <netinet/in.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::netdev {

inline constexpr std::string_view kFirewallFamily = "inet";
inline constexpr std::string_view kFirewallTable = "plfm_agent";

// One guest on this node, as the filter sees it.
class GuestFilter {
 public:
  [[nodiscard]] const std::string& tap() const { return tap_; }
  [[nodiscard]] const in6_addr& address() const { return address_; }
  [[nodiscard]] const std::optional<in_addr>& ipv4() const { return ipv4_; }
  // Guests with equal org keys may open connections to each other. The key
  // is compared, never rendered.
  [[nodiscard]] const std::string& orgKey() const { return org_key_; }

 private:
  friend Result<GuestFilter> parseGuestFilter(std::string_view, std::string_view, std::string_view,
                                              std::string_view);
  std::string tap_;
  in6_addr address_{};
  std::optional<in_addr> ipv4_;
  std::string org_key_;
};

// An IPv6 prefix from operator configuration ("2001:db8::/32"), host bits
// zero; the only form it is rendered in is canonical.
struct Ipv6Prefix {
  in6_addr address{};
  int length = 0;
  [[nodiscard]] std::string str() const;
};
[[nodiscard]] Result<Ipv6Prefix> parseIpv6Prefix(std::string_view text);

// The node's policy for traffic that is not guest to guest (the operator's
// flags; fixed for the agent's lifetime).
struct FirewallPolicy {
  // Sources outside the platform that may open connections to instances
  // (an ingress on another host, until the mesh carries it). Everything
  // else from outside is dropped; this node's own ingress and health checks
  // are local traffic and always pass.
  std::vector<Ipv6Prefix> inbound_allowed;
  // Destinations guests may not reach (the underlay's private services:
  // Postgres, other nodes' agents). Instances are decided by org first.
  std::vector<Ipv6Prefix> egress_denied;
};

// Validates and parses: `tap` is kTapPrefix plus 1 to 12 of [0-9a-z];
// `address` a global unicast or unique-local IPv6 address (no link-local,
// multicast, loopback, unspecified or IPv4-mapped); `ipv4`, when not empty,
// a unicast dotted quad (the dedicated IPv4 add-on); `org_key` not empty.
[[nodiscard]] Result<GuestFilter> parseGuestFilter(std::string_view tap, std::string_view address,
                                                   std::string_view org_key,
                                                   std::string_view ipv4 = {});

// The whole nft script: create-if-missing, delete and re-create the table,
// so that applying it is one atomic transaction whatever was there before.
// Fails when two guests share a tap or an address.
[[nodiscard]] Result<std::string> renderRuleset(std::vector<GuestFilter> guests,
                                                const FirewallPolicy& policy = {});

// The script that removes the table (and succeeds when there is none).
[[nodiscard]] std::string renderRemoval();

// Applies rulesets with the nft binary. Not thread-safe: the agent
// serialises calls.
class NftFirewall {
 public:
  // `work_dir` holds the last script (ruleset.nft) and nft's output (nft.log);
  // `nft` is the binary, looked up on PATH when not absolute.
  explicit NftFirewall(std::string work_dir, std::string nft = "nft", FirewallPolicy policy = {});

  [[nodiscard]] Result<void> apply(std::vector<GuestFilter> guests);
  [[nodiscard]] Result<void> remove();

 private:
  Result<void> run(const std::string& script);
  std::string work_dir_;
  std::string nft_;
  FirewallPolicy policy_;
};

}  // namespace plfm::netdev
