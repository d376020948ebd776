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
//     it exists, before its guest has an entry;
//   - with a mesh (a cluster prefix from the plan), a guest's org tag is read
//     from its address (bits 64..95): a new flow across hosts passes only
//     between addresses with one tag, checked on the sending host and again on
//     the receiving one, and the mesh interface only carries cluster sources.
//
// Parse, then act: GuestFilter values are built only by parseGuestFilter(),
// which validates the tap name and parses the addresses; renderRuleset() is a
// pure function of them (golden-tested) and never emits a tenant string (orgs
// become numbers); NftFirewall runs `nft -f` on the result.
#pragma once

#include <netinet/in.h>

#include <cstdint>
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
  [[nodiscard]] bool contains(const in6_addr& a) const;
  friend bool operator==(const Ipv6Prefix& a, const Ipv6Prefix& b) {
    return a.length == b.length && a.str() == b.str();
  }
};
[[nodiscard]] Result<Ipv6Prefix> parseIpv6Prefix(std::string_view text);

// The same for IPv4 ("10.42.1.0/24"), host bits zero.
struct Ipv4Prefix {
  in_addr address{};
  int length = 0;
  [[nodiscard]] std::string str() const;
  [[nodiscard]] bool contains(const in_addr& a) const;
  friend bool operator==(const Ipv4Prefix& a, const Ipv4Prefix& b) {
    return a.length == b.length && a.address.s_addr == b.address.s_addr;
  }
};
[[nodiscard]] Result<Ipv4Prefix> parseIpv4Prefix(std::string_view text);

// The mesh's part of the filter (docs/specs/networking/mesh.md, "Isolation
// across hosts"): the cluster prefix comes from the NodePlan at run time, the
// interfaces from the agent's --mesh-interface and --mesh-interface2 (both
// slots of a key rotation, named whether they exist or not). Built only by
// parseMeshFilter().
class MeshFilter {
 public:
  [[nodiscard]] const Ipv6Prefix& clusterPrefix() const { return cluster_prefix_; }
  [[nodiscard]] const std::string& interface() const { return interface_; }
  // Empty: one interface only.
  [[nodiscard]] const std::string& interface2() const { return interface2_; }
  // The org tag of an address: bits 64..95 when it is inside the cluster
  // prefix, else 0 (an old-layout or outside address).
  [[nodiscard]] std::uint32_t tagOf(const in6_addr& address) const;
  friend bool operator==(const MeshFilter&, const MeshFilter&) = default;

 private:
  friend Result<MeshFilter> parseMeshFilter(std::string_view, std::string_view, std::string_view);
  Ipv6Prefix cluster_prefix_;
  std::string interface_;
  std::string interface2_;
};

// `cluster_prefix` an IPv6 prefix of length 1..63 ("fd7a:5c00::/48");
// `interface` and `interface2` (empty: none) 1..15 of [a-z0-9-], not a tap
// name (vt-*).
[[nodiscard]] Result<MeshFilter> parseMeshFilter(std::string_view cluster_prefix,
                                                 std::string_view interface,
                                                 std::string_view interface2 = {});

// The node's policy for traffic that is not guest to guest (the operator's
// flags, fixed for the agent's lifetime; the mesh part follows the plan).
struct FirewallPolicy {
  // Sources outside the platform that may open connections to instances
  // (an ingress on another host, until the mesh carries it). Everything
  // else from outside is dropped; this node's own ingress and health checks
  // are local traffic and always pass.
  std::vector<Ipv6Prefix> inbound_allowed;
  // Destinations guests may not reach (the underlay's private services:
  // Postgres, other nodes' agents). Instances are decided by org first.
  std::vector<Ipv6Prefix> egress_denied;
  // Guest IPv4 (mesh.md "Egress"): IPv4 destinations guests may not reach
  // (the agent's defaults: the private, shared and link-local ranges).
  // Rendered only with a guest subnet (see NftFirewall::setGuestSubnet4).
  std::vector<Ipv4Prefix> egress_denied4;
  // The node's guest IPv4 subnet; without it the filter has no IPv4 rules
  // beyond anti-spoofing (byte for byte the IPv6-only one).
  std::optional<Ipv4Prefix> guest_subnet4;
  // The mesh across hosts; without it the filter is exactly the single-host
  // one (byte for byte).
  std::optional<MeshFilter> mesh;
  // The node's DNS responder (mesh.md, "Internal names"): guests may reach
  // UDP and TCP port 53 at exactly this host address. Unset: no rule.
  std::optional<Ipv6Prefix> dns_responder;  // a /128
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
// Fails when two guests share a tap or an address, or (with a mesh) when two
// guests of different orgs carry one org tag.
[[nodiscard]] Result<std::string> renderRuleset(std::vector<GuestFilter> guests,
                                                const FirewallPolicy& policy = {});

// The script that removes the table (and succeeds when there is none).
[[nodiscard]] std::string renderRemoval();

// Runs `nft -f` on `script`, kept as WORK_DIR/ruleset.nft with nft's output
// in WORK_DIR/nft.log; `nft` is looked up on PATH (plus the sbin dirs) when
// not absolute. `what` names the ruleset in errors. The guest filter and the
// egress NAT (netdev/egress.h) both apply through it.
[[nodiscard]] Result<void> runNftScript(const std::string& nft, const std::string& work_dir,
                                        const std::string& script, std::string_view what);

// Applies rulesets with the nft binary. Not thread-safe: the agent
// serialises calls.
class NftFirewall {
 public:
  // `work_dir` holds the last script (ruleset.nft) and nft's output (nft.log);
  // `nft` is the binary, looked up on PATH when not absolute.
  explicit NftFirewall(std::string work_dir, std::string nft = "nft", FirewallPolicy policy = {});

  [[nodiscard]] Result<void> apply(std::vector<GuestFilter> guests);
  // Sets (or clears) the mesh part of the policy for the next apply(); true
  // when it changed, so the caller rewrites the table.
  bool setMesh(std::optional<MeshFilter> mesh);
  // The same for the node's guest IPv4 subnet (the IPv4 rules).
  bool setGuestSubnet4(std::optional<Ipv4Prefix> subnet);
  // Sets (or clears) the DNS responder's address; true when it changed.
  bool setDnsResponder(std::optional<Ipv6Prefix> address);
  [[nodiscard]] Result<void> remove();

 private:
  Result<void> run(const std::string& script);
  std::string work_dir_;
  std::string nft_;
  FirewallPolicy policy_;
};

}  // namespace plfm::netdev
