#include "netdev/firewall.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "netdev/errors.h"
#include "netdev/tap.h"
#include "plfm/core/assert.h"
#include "plfm/core/process.h"

namespace plfm::netdev {
namespace {

constexpr size_t kMaxTapSuffix = 12;  // "vt-" + 12 = 15 bytes, IFNAMSIZ - 1

bool validTapName(std::string_view tap) {
  if (tap.size() <= kTapPrefix.size() || tap.substr(0, kTapPrefix.size()) != kTapPrefix) {
    return false;
  }
  std::string_view suffix = tap.substr(kTapPrefix.size());
  static_assert(kTapPrefix.size() + kMaxTapSuffix < IFNAMSIZ);
  return suffix.size() <= kMaxTapSuffix && std::all_of(suffix.begin(), suffix.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
         });
}

// Only addresses a guest may own: global unicast (2000::/3) or unique local
// (fc00::/7). Everything else (link-local, multicast, loopback, ::, mapped
// IPv4, documentation ranges are fine) would widen the anti-spoofing set.
bool guestAddressAllowed(const in6_addr& a) {
  const uint8_t first = a.s6_addr[0];
  return (first & 0xe0) == 0x20 || (first & 0xfe) == 0xfc;
}

bool ipv4Allowed(const in_addr& a) {
  const uint32_t h = ntohl(a.s_addr);
  const uint32_t top = h >> 24;
  // Not 0/8, loopback, multicast/reserved, or the broadcast address.
  return top != 0 && top != 127 && top < 224;
}

// inet_pton reads up to a NUL; the whole view must be address characters.
bool onlyChars(std::string_view s, std::string_view allowed) {
  return s.find_first_not_of(allowed) == std::string_view::npos;
}

std::string format6(const in6_addr& a) {
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, &a, buf, sizeof buf);
  return buf;
}

std::string format4(const in_addr& a) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string ifname(std::string_view tap) { return "\"" + std::string(tap) + "\""; }

// `elements = { a, b }` or nothing for an empty set (nft rejects `{ }`).
std::string elements(const std::vector<std::string>& items) {
  if (items.empty()) return "";
  std::string out = "\t\telements = { ";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i != 0) out += ",\n\t\t\t     ";
    out += items[i];
  }
  return out + " }\n";
}

std::string set(const std::string& name, const std::string& type,
                const std::vector<std::string>& items, std::string_view comment) {
  return "\t# " + std::string(comment) + "\n\tset " + name + " {\n\t\ttype " + type + "\n" +
         elements(items) + "\t}\n";
}

// The chains are the same on every node; only the sets and the per-org
// chains above them change. "vt-*" is kTapPrefix: every tap, with an entry
// or not yet, goes through them.
static_assert(kTapPrefix == "vt-");
constexpr std::string_view kGuestChains =
    R"(	# Anything from a tap but its guest's own address is spoofed.
	chain guest_source {
		iifname . ip6 saddr @guest_src6 return
		iifname . ip saddr @guest_src4 return
		counter drop
	}
	# A guest talking to this host: neighbour discovery, Packet Too Big,
	# and replies to connections the host opened. Nothing else.
	chain guest_to_host {
		ip6 saddr { ::, fe80::/10 } ip6 hoplimit 255 icmpv6 type { nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert } accept
		jump guest_source
		ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
		icmpv6 type packet-too-big accept
		ct state established,related accept
		counter drop
	}
)";

// One node on its own (no cluster prefix).
constexpr std::string_view kSingleHostChains =
    R"(	# A new flow to an instance: from an instance, only within its org;
	# from outside the platform, only from the operator's allowed sources.
	chain to_instance {
		ip6 saddr vmap @org_of
		iifname "vt-*" counter drop
		ip6 saddr @inbound_allowed accept
		counter drop
	}
	chain input {
		type filter hook input priority filter - 10; policy accept;
		iifname "vt-*" jump guest_to_host
	}
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		iifname "vt-*" jump guest_source
		ct state established,related accept
		ip6 daddr @instances jump to_instance
		iifname "vt-*" ip6 daddr @egress_denied counter drop
	}
)";

// A node of a mesh: @CLUSTER@ is the cluster prefix, @MESH@ the quoted mesh
// interface (both validated by parseMeshFilter). Instances here are decided
// by the org sets as on one node (exact for local pairs, whatever their
// layout); other cluster addresses by the org tag in the address, on the
// sending host (tag_T_send) and again on the receiving one (tag_T_recv).
constexpr std::string_view kMeshChains =
    R"(	# The mesh carries cluster sources only (and WireGuard binds each peer
	# to its own /64).
	chain mesh_source {
		ip6 saddr @CLUSTER@ return
		counter drop
	}
	# Another node talking to this host over the mesh: neighbour discovery,
	# echo, Packet Too Big, and replies to connections this host opened.
	chain mesh_to_host {
		ip6 saddr { ::, fe80::/10 } ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
		jump mesh_source
		ip6 hoplimit 255 icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
		icmpv6 type { echo-request, packet-too-big } accept
		ct state established,related accept
		counter drop
	}
	# A new flow from a guest to a cluster address that is no instance here:
	# only to its own org tag. A guest of the old layout (tag 0) reaches no
	# other host, and no guest reaches a node's host address (tag 0).
	chain to_cluster {
		iifname vmap @send_tag_of
		counter drop
	}
	# A new flow to an instance: from an instance here, only within its org;
	# from a node's host address (interface id ::1: the ingress, the
	# platform); from another host, only with the instance's org tag; from
	# outside the platform, only from the operator's allowed sources.
	chain to_instance {
		ip6 saddr vmap @org_of
		iifname "vt-*" counter drop
		ip6 saddr @CLUSTER@ ip6 saddr & ::ffff:ffff:ffff:ffff == ::1 accept
		oifname vmap @recv_tag_of
		ip6 saddr @inbound_allowed accept
		counter drop
	}
	chain input {
		type filter hook input priority filter - 10; policy accept;
		iifname "vt-*" jump guest_to_host
		iifname @MESH@ jump mesh_to_host
	}
	chain forward {
		type filter hook forward priority filter - 10; policy accept;
		iifname "vt-*" jump guest_source
		iifname @MESH@ jump mesh_source
		ip6 saddr @CLUSTER@ iifname != "vt-*" iifname != @MESH@ counter drop
		ct state established,related accept
		ip6 daddr @instances jump to_instance
		iifname "vt-*" ip6 daddr @CLUSTER@ jump to_cluster
		iifname "vt-*" ip6 daddr @egress_denied counter drop
	}
)";

// `"plfm-wg0"`, or `{ "plfm-wg0", "plfm-wg1" }` with a rotation's second slot.
std::string meshIfnames(const MeshFilter& mesh) {
  if (mesh.interface2().empty()) return ifname(mesh.interface());
  return "{ " + ifname(mesh.interface()) + ", " + ifname(mesh.interface2()) + " }";
}

std::string replaceAll(std::string s, std::string_view from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
  return s;
}

// `::T_hi:T_lo:0:0`: the tag in bits 64..95, as nft compares it.
std::string tagValue(std::uint32_t tag) {
  in6_addr a{};
  a.s6_addr[8] = static_cast<uint8_t>(tag >> 24);
  a.s6_addr[9] = static_cast<uint8_t>(tag >> 16);
  a.s6_addr[10] = static_cast<uint8_t>(tag >> 8);
  a.s6_addr[11] = static_cast<uint8_t>(tag);
  return format6(a);
}

// The per-tag chains and the tap -> chain maps, for guests of the new layout.
std::string meshTags(const std::vector<GuestFilter>& guests, const MeshFilter& mesh) {
  std::vector<std::string> send;
  std::vector<std::string> recv;
  std::set<std::uint32_t> tags;
  for (const auto& g : guests) {
    const std::uint32_t tag = mesh.tagOf(g.address());
    if (tag == 0) continue;
    const std::string chain = "tag_" + std::to_string(tag);
    send.push_back(ifname(g.tap()) + " : jump " + chain + "_send");
    recv.push_back(ifname(g.tap()) + " : jump " + chain + "_recv");
    tags.insert(tag);
  }
  const std::string cluster = mesh.clusterPrefix().str();
  std::string s;
  s += "\t# A tap -> the chain of its guest's org tag, for its new flows to other hosts.\n";
  s += "\tmap send_tag_of {\n\t\ttype ifname : verdict\n" + elements(send) + "\t}\n";
  s += "\t# A tap -> the chain of its guest's org tag, for new flows from other hosts.\n";
  s += "\tmap recv_tag_of {\n\t\ttype ifname : verdict\n" + elements(recv) + "\t}\n";
  for (const std::uint32_t tag : tags) {
    const std::string chain = "tag_" + std::to_string(tag);
    const std::string value = tagValue(tag);
    s += "\tchain " + chain + "_send {\n";
    s += "\t\tip6 daddr & ::ffff:ffff:0:0 == " + value + " accept\n";
    s += "\t\tcounter drop\n";
    s += "\t}\n";
    s += "\tchain " + chain + "_recv {\n";
    s += "\t\tip6 saddr " + cluster;
    s += " ip6 saddr & ::ffff:ffff:0:0 == " + value + " accept\n";
    s += "\t}\n";
  }
  return s;
}

bool validMeshInterface(std::string_view name) {
  return !name.empty() && name.size() < IFNAMSIZ &&
         name.substr(0, kTapPrefix.size()) != kTapPrefix &&
         onlyChars(name, "abcdefghijklmnopqrstuvwxyz0123456789-");
}

std::string prefixSet(const std::string& name, const std::vector<Ipv6Prefix>& prefixes,
                      std::string_view comment) {
  std::vector<std::string> items;
  items.reserve(prefixes.size());
  for (const auto& p : prefixes) items.push_back(p.str());
  std::sort(items.begin(), items.end());
  items.erase(std::unique(items.begin(), items.end()), items.end());
  return "\t# " + std::string(comment) + "\n\tset " + name +
         " {\n\t\ttype ipv6_addr\n\t\tflags interval\n\t\tauto-merge\n" + elements(items) + "\t}\n";
}

// Guest IPv4 (mesh.md "Egress"), appended to the forward chain (the last
// chain of both layouts) after its established/related accept: no new flow
// to a guest's IPv4 from anywhere (other guests, the underlay), and none
// from a guest to the denied ranges.
std::string withIpv4(std::string chains, const Ipv4Prefix& subnet) {
  const size_t end = chains.rfind("\t}\n");
  chains.insert(end,
                "\t\t# Guest IPv4: no new flow to a guest, none to the denied ranges.\n"
                "\t\tip daddr " +
                    subnet.str() +
                    " counter drop\n"
                    "\t\tiifname \"vt-*\" ip daddr @egress_denied4 counter drop\n");
  return chains;
}

std::string table() { return std::string(kFirewallFamily) + " " + std::string(kFirewallTable); }

}  // namespace

std::string Ipv6Prefix::str() const { return format6(address) + "/" + std::to_string(length); }

bool Ipv6Prefix::contains(const in6_addr& a) const {
  for (int bit = 0; bit < length; ++bit) {
    const uint8_t m = 0x80 >> (bit % 8);
    if ((a.s6_addr[bit / 8] & m) != (address.s6_addr[bit / 8] & m)) return false;
  }
  return true;
}

std::uint32_t MeshFilter::tagOf(const in6_addr& a) const {
  if (!cluster_prefix_.contains(a)) return 0;
  return (std::uint32_t{a.s6_addr[8]} << 24) | (std::uint32_t{a.s6_addr[9]} << 16) |
         (std::uint32_t{a.s6_addr[10]} << 8) | std::uint32_t{a.s6_addr[11]};
}

Result<MeshFilter> parseMeshFilter(std::string_view cluster_prefix, std::string_view interface,
                                   std::string_view interface2) {
  PLFM_ASSIGN_OR_RETURN(Ipv6Prefix prefix, parseIpv6Prefix(cluster_prefix));
  if (prefix.length < 1 || prefix.length > 63) {
    return Error(errc::kInvalidArgument,
                 "the cluster prefix must be /1 to /63 (node /64s and org tags follow it)")
        .with("prefix", prefix.str());
  }
  std::vector<std::string_view> names = {interface};
  if (!interface2.empty()) names.push_back(interface2);
  for (std::string_view name : names) {
    if (!validMeshInterface(name)) {
      return Error(errc::kInvalidArgument,
                   "bad mesh interface name: 1 to 15 of [a-z0-9-], not a tap name (vt-*)")
          .with("device", std::string(name.substr(0, 64)));
    }
  }
  MeshFilter m;
  m.cluster_prefix_ = prefix;
  m.interface_ = interface;
  if (interface2 != interface) m.interface2_ = interface2;
  return m;
}

Result<Ipv6Prefix> parseIpv6Prefix(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return Error(errc::kInvalidArgument,
                 "expected an IPv6 prefix like 2001:db8::/32: " + std::string(why))
        .with("prefix", std::string(text.substr(0, 64)));
  };
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return bad("no /length");
  const std::string addr(text.substr(0, slash));
  const std::string_view len = text.substr(slash + 1);
  Ipv6Prefix p;
  if (addr.size() >= INET6_ADDRSTRLEN || !onlyChars(addr, "0123456789abcdefABCDEF:.") ||
      inet_pton(AF_INET6, addr.c_str(), &p.address) != 1) {
    return bad("not an IPv6 address");
  }
  if (len.empty() || len.size() > 3 || !onlyChars(len, "0123456789")) return bad("bad length");
  p.length = std::atoi(std::string(len).c_str());
  if (p.length > 128) return bad("the length is at most 128");
  for (int bit = p.length; bit < 128; ++bit) {
    if ((p.address.s6_addr[bit / 8] & (0x80 >> (bit % 8))) != 0) {
      return bad("bits set after the prefix length");
    }
  }
  return p;
}

std::string Ipv4Prefix::str() const { return format4(address) + "/" + std::to_string(length); }

bool Ipv4Prefix::contains(const in_addr& a) const {
  const uint32_t mask = length == 0 ? 0 : ~uint32_t{0} << (32 - length);
  return (ntohl(a.s_addr) & mask) == ntohl(address.s_addr);
}

Result<Ipv4Prefix> parseIpv4Prefix(std::string_view text) {
  const auto bad = [&](std::string_view why) {
    return Error(errc::kInvalidArgument,
                 "expected an IPv4 prefix like 10.42.0.0/24: " + std::string(why))
        .with("prefix", std::string(text.substr(0, 64)));
  };
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) return bad("no /length");
  const std::string addr(text.substr(0, slash));
  const std::string_view len = text.substr(slash + 1);
  Ipv4Prefix p;
  if (addr.size() >= INET_ADDRSTRLEN || !onlyChars(addr, "0123456789.") ||
      inet_pton(AF_INET, addr.c_str(), &p.address) != 1) {
    return bad("not an IPv4 address");
  }
  if (len.empty() || len.size() > 2 || !onlyChars(len, "0123456789")) return bad("bad length");
  p.length = std::atoi(std::string(len).c_str());
  if (p.length > 32) return bad("the length is at most 32");
  const uint32_t mask = p.length == 0 ? 0 : ~uint32_t{0} << (32 - p.length);
  if ((ntohl(p.address.s_addr) & ~mask) != 0) return bad("bits set after the prefix length");
  return p;
}

Result<GuestFilter> parseGuestFilter(std::string_view tap, std::string_view address,
                                     std::string_view org_key, std::string_view ipv4) {
  GuestFilter g;
  if (!validTapName(tap)) {
    return Error(errc::kInvalidArgument, "bad tap name for the guest filter")
        .with("device", std::string(tap));
  }
  g.tap_ = tap;
  const std::string addr(address);
  if (addr.size() >= INET6_ADDRSTRLEN || !onlyChars(addr, "0123456789abcdefABCDEF:.") ||
      inet_pton(AF_INET6, addr.c_str(), &g.address_) != 1) {
    return Error(errc::kInvalidArgument, "bad guest IPv6 address").with("address", addr);
  }
  if (!guestAddressAllowed(g.address_)) {
    return Error(errc::kInvalidArgument,
                 "a guest address must be global unicast or unique local (2000::/3, fc00::/7)")
        .with("address", addr);
  }
  if (!ipv4.empty()) {
    const std::string v4(ipv4);
    in_addr a{};
    if (v4.size() >= INET_ADDRSTRLEN || !onlyChars(v4, "0123456789.") ||
        inet_pton(AF_INET, v4.c_str(), &a) != 1 || !ipv4Allowed(a)) {
      return Error(errc::kInvalidArgument, "bad guest IPv4 address").with("address", v4);
    }
    g.ipv4_ = a;
  }
  if (org_key.empty()) return Error(errc::kInvalidArgument, "a guest filter needs an org");
  g.org_key_ = org_key;
  return g;
}

// --- The DNS responder (mesh.md, "Internal names") ---
// One rule in guest_to_host, after the anti-spoofing jump: UDP and TCP 53 to
// exactly the responder's address. Without a responder the chains are
// unchanged byte for byte.
std::string dnsResponderRule(std::string chains, const FirewallPolicy& policy) {
  if (!policy.dns_responder) return chains;
  constexpr std::string_view kAfter = "\t\tjump guest_source\n";
  const std::size_t at = chains.find(kAfter, chains.find("chain guest_to_host"));
  PLFM_ASSERT(at != std::string::npos, "guest_to_host has no guest_source jump");
  const std::string addr = policy.dns_responder->str();
  chains.insert(at + kAfter.size(), "\t\tip6 daddr " + addr.substr(0, addr.find('/')) +
                                        " meta l4proto { udp, tcp } th dport 53 accept\n");
  return chains;
}

Result<std::string> renderRuleset(std::vector<GuestFilter> guests, const FirewallPolicy& policy) {
  std::sort(guests.begin(), guests.end(),
            [](const GuestFilter& a, const GuestFilter& b) { return a.tap() < b.tap(); });
  std::set<std::string> taps;
  std::set<std::string> addresses;
  std::map<std::string, int> org_number;                // org key -> 1..n, in key order
  std::map<std::uint32_t, const std::string*> tag_org;  // org tag -> org key (new layout)
  for (const auto& g : guests) {
    if (!taps.insert(g.tap()).second) {
      return Error(errc::kInvalidArgument, "two guests on one tap").with("device", g.tap());
    }
    if (!addresses.insert(format6(g.address())).second) {
      return Error(errc::kInvalidArgument, "two guests with one address")
          .with("address", format6(g.address()));
    }
    org_number[g.orgKey()] = 0;
    const std::uint32_t tag = policy.mesh ? policy.mesh->tagOf(g.address()) : 0;
    if (tag == 0) continue;
    if (auto [it, fresh] = tag_org.emplace(tag, &g.orgKey()); !fresh && *it->second != g.orgKey()) {
      return Error(errc::kInvalidArgument, "two orgs with one org tag")
          .with("org_tag", std::to_string(tag));
    }
  }
  int n = 0;
  for (auto& [key, number] : org_number) number = ++n;

  std::vector<std::string> src6;
  std::vector<std::string> src4;
  std::vector<std::string> instances;
  std::vector<std::string> org_of;
  std::map<int, std::vector<std::string>> members;
  for (const auto& g : guests) {
    const std::string a = format6(g.address());
    const int org = org_number.at(g.orgKey());
    src6.push_back(ifname(g.tap()) + " . " + a);
    if (g.ipv4()) src4.push_back(ifname(g.tap()) + " . " + format4(*g.ipv4()));
    instances.push_back(a);
    org_of.push_back(a + " : jump org_" + std::to_string(org));
    members[org].push_back(a);
  }

  std::string s;
  s += "# Generated by plfm-node-agent; rewritten whole on every change.\n";
  s += "# docs/specs/networking/node-firewall.md\n";
  s += "table " + table() + " {}\n";
  s += "delete table " + table() + "\n";
  s += "table " + table() + " {\n";
  s += set("guest_src6", "ifname . ipv6_addr", src6, "The source address each tap may send from.");
  s += set("guest_src4", "ifname . ipv4_addr", src4, "The same for guests with dedicated IPv4.");
  s += set("instances", "ipv6_addr", instances,
           "Every platform instance address known here (the mesh adds remote ones).");
  s += prefixSet("inbound_allowed", policy.inbound_allowed,
                 "Sources outside the platform that may connect to instances.");
  s += prefixSet("egress_denied", policy.egress_denied,
                 "Destinations outside the platform guests may not reach.");
  if (policy.guest_subnet4) {
    std::vector<std::string> denied4;
    for (const auto& p : policy.egress_denied4) denied4.push_back(p.str());
    std::sort(denied4.begin(), denied4.end());
    denied4.erase(std::unique(denied4.begin(), denied4.end()), denied4.end());
    s += "\t# IPv4 destinations guests may not reach.\n\tset egress_denied4 {\n\t\ttype "
         "ipv4_addr\n\t\tflags interval\n\t\tauto-merge\n" +
         elements(denied4) + "\t}\n";
  }
  s += "\t# An instance address -> the chain of its org.\n";
  s += "\tmap org_of {\n\t\ttype ipv6_addr : verdict\n" + elements(org_of) + "\t}\n";
  for (const auto& [org, addrs] : members) {
    const std::string name = "org_" + std::to_string(org);
    s += set(name + "_members", "ipv6_addr", addrs, "The instances of one org.");
    s += "\tchain " + name + " {\n";
    s += "\t\tip6 daddr @" + name + "_members accept\n";
    s += "\t\tcounter drop\n";
    s += "\t}\n";
  }
  if (policy.mesh) s += meshTags(guests, *policy.mesh);
  s += dnsResponderRule(std::string(kGuestChains), policy);
  std::string chains(kSingleHostChains);
  if (policy.mesh) {
    chains = replaceAll(
        replaceAll(std::string(kMeshChains), "@CLUSTER@", policy.mesh->clusterPrefix().str()),
        "@MESH@", meshIfnames(*policy.mesh));
  }
  if (policy.guest_subnet4) chains = withIpv4(std::move(chains), *policy.guest_subnet4);
  s += chains;
  s += "}\n";
  return s;
}

std::string renderRemoval() { return "table " + table() + " {}\ndelete table " + table() + "\n"; }

NftFirewall::NftFirewall(std::string work_dir, std::string nft, FirewallPolicy policy)
    : work_dir_(std::move(work_dir)), nft_(std::move(nft)), policy_(std::move(policy)) {}

Result<void> NftFirewall::apply(std::vector<GuestFilter> guests) {
  PLFM_ASSIGN_OR_RETURN(std::string script, renderRuleset(std::move(guests), policy_));
  return run(script);
}

bool NftFirewall::setMesh(std::optional<MeshFilter> mesh) {
  if (policy_.mesh == mesh) return false;
  policy_.mesh = std::move(mesh);
  return true;
}

bool NftFirewall::setGuestSubnet4(std::optional<Ipv4Prefix> subnet) {
  if (policy_.guest_subnet4 == subnet) return false;
  policy_.guest_subnet4 = subnet;
  return true;
}

bool NftFirewall::setDnsResponder(std::optional<Ipv6Prefix> address) {
  if (policy_.dns_responder == address) return false;
  policy_.dns_responder = address;
  return true;
}

Result<void> NftFirewall::remove() { return run(renderRemoval()); }

Result<void> NftFirewall::run(const std::string& script) {
  return runNftScript(nft_, work_dir_, script, "the guest filter");
}

Result<void> runNftScript(const std::string& nft_binary, const std::string& work_dir,
                          const std::string& script, std::string_view what) {
  namespace fs = std::filesystem;
  std::string nft = nft_binary;
  if (nft.find('/') == std::string::npos) {
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
    // Root's PATH may lack sbin when started from a user shell.
    dirs += ":/usr/sbin:/sbin";
    std::string found;
    for (size_t pos = 0; pos <= dirs.size();) {
      size_t end = dirs.find(':', pos);
      if (end == std::string::npos) end = dirs.size();
      std::string candidate = dirs.substr(pos, end - pos) + "/" + nft;
      if (end > pos && ::access(candidate.c_str(), X_OK) == 0) {
        found = candidate;
        break;
      }
      pos = end + 1;
    }
    nft = found;
  } else if (::access(nft.c_str(), X_OK) != 0) {
    nft.clear();
  }
  if (nft.empty()) {
    return Error(
               errc::kNftMissing,
               "the nft binary was not found (install nftables): cannot apply " + std::string(what))
        .with("nft", nft_binary);
  }
  std::error_code ec;
  fs::create_directories(work_dir, ec);
  if (ec) return Error(errc::kIo, "creating " + work_dir + ": " + ec.message());
  const std::string script_path = work_dir + "/ruleset.nft";
  const std::string log_path = work_dir + "/nft.log";
  PLFM_TRY(writeFileAtomic(script_path, script, 0600));
  fs::remove(log_path, ec);
  SpawnOptions so;
  so.stdout_path = log_path;
  if (auto r = runChecked({nft, "-f", script_path}, so); !r) {
    return Error(errc::kFirewallFailed,
                 "nft could not apply " + std::string(what) + ": " + r.error().message())
        .with("script", script_path);
  }
  return ok();
}

}  // namespace plfm::netdev
