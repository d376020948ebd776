#include "netdev/egress.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <vector>

#include "netdev/tap.h"

namespace plfm::netdev {
namespace {

std::string quoted(std::string_view name) { return "\"" + std::string(name) + "\""; }

// `table F T {}` + `delete table F T`: removes it whatever was there, in the
// same transaction as what follows.
std::string reset(std::string_view family, std::string_view table) {
  const std::string t = std::string(family) + " " + std::string(table);
  return "table " + t + " {}\ndelete table " + t + "\n";
}

std::string natTable(std::string_view family, std::string_view table, std::string_view comment,
                     const std::string& rule) {
  return "table " + std::string(family) + " " + std::string(table) + " {\n\t# " +
         std::string(comment) +
         "\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy "
         "accept;\n\t\t" +
         rule + "\n\t}\n}\n";
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos < line.size()) {
    const size_t start = line.find_first_not_of(" \t", pos);
    if (start == std::string_view::npos) break;
    size_t end = line.find_first_of(" \t", start);
    if (end == std::string_view::npos) end = line.size();
    out.push_back(line.substr(start, end - start));
    pos = end;
  }
  return out;
}

// The default route's interface: `is_default(fields)` picks the lines, the
// metric is hex in field `metric`, the device in field `device`.
template <typename IsDefault>
std::string lowestMetric(std::string_view text, size_t metric, size_t device,
                         IsDefault is_default) {
  std::string best;
  unsigned long best_metric = std::numeric_limits<unsigned long>::max();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const auto f = fields(text.substr(pos, end - pos));
    pos = end + 1;
    if (f.size() <= std::max(metric, device) || !is_default(f) || f[device] == "lo") continue;
    if (!validEgressInterfaceName(f[device])) continue;
    const unsigned long m = std::strtoul(std::string(f[metric]).c_str(), nullptr, 16);
    if (best.empty() || m < best_metric) {
      best = f[device];
      best_metric = m;
    }
  }
  return best;
}

std::string slurp(const char* path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

Result<Egress6Mode> parseEgress6Mode(std::string_view text) {
  if (text == "nat66") return Egress6Mode::kNat66;
  if (text == "route") return Egress6Mode::kRoute;
  if (text == "off") return Egress6Mode::kOff;
  return Error(errc::kInvalidArgument, "egress6 must be nat66, route or off")
      .with("egress6", std::string(text.substr(0, 32)));
}

std::string_view egress6ModeName(Egress6Mode mode) {
  switch (mode) {
    case Egress6Mode::kNat66:
      return "nat66";
    case Egress6Mode::kRoute:
      return "route";
    case Egress6Mode::kOff:
      return "off";
  }
  return "off";
}

bool validEgressInterfaceName(std::string_view name) {
  return !name.empty() && name.size() < IFNAMSIZ &&
         name.substr(0, kTapPrefix.size()) != kTapPrefix && name != "." && name != ".." &&
         name.find_first_not_of(
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
             std::string_view::npos;
}

std::string defaultRouteInterface4(std::string_view text) {
  // Iface Destination Gateway Flags RefCnt Use Metric Mask ...
  return lowestMetric(text, 6, 0, [](const std::vector<std::string_view>& f) {
    return f.size() > 7 && f[1] == "00000000" && f[7] == "00000000";
  });
}

std::string defaultRouteInterface6(std::string_view text) {
  // dest dest_len src src_len next_hop metric refcnt use flags device
  return lowestMetric(text, 5, 9, [](const std::vector<std::string_view>& f) {
    return f[0] == "00000000000000000000000000000000" && f[1] == "00";
  });
}

std::string defaultRouteInterface(int family) {
  if (family == AF_INET) return defaultRouteInterface4(slurp("/proc/net/route"));
  return defaultRouteInterface6(slurp("/proc/net/ipv6_route"));
}

Result<std::optional<Ipv4Prefix>> guestSubnet4(std::string_view flag, uint32_t node_number) {
  if (flag == "off") return std::optional<Ipv4Prefix>();
  if (flag.empty()) {
    Ipv4Prefix p;
    p.address.s_addr = htonl((10U << 24) | (42U << 16) | ((node_number % 256) << 8));
    p.length = 24;
    return std::optional<Ipv4Prefix>(p);
  }
  PLFM_ASSIGN_OR_RETURN(Ipv4Prefix p, parseIpv4Prefix(flag));
  if (p.length < 16 || p.length > 29) {
    return Error(errc::kInvalidArgument,
                 "--guest-ipv4-subnet must be /16 to /29 (or off for no guest IPv4)")
        .with("prefix", p.str());
  }
  return std::optional<Ipv4Prefix>(p);
}

std::string formatIpv4(const in_addr& a) {
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

Result<std::string> lowestFreeGuestIpv4(const Ipv4Prefix& subnet,
                                        const std::vector<std::string>& used) {
  std::set<uint32_t> taken;
  for (const auto& u : used) {
    in_addr a{};
    if (inet_pton(AF_INET, u.c_str(), &a) == 1) taken.insert(ntohl(a.s_addr));
  }
  const uint32_t base = ntohl(subnet.address.s_addr);
  const uint32_t size = subnet.length == 0 ? 0 : uint32_t{1} << (32 - subnet.length);
  for (uint32_t offset = 2; offset + 1 < size; ++offset) {
    if (taken.count(base + offset) != 0) continue;
    in_addr a{};
    a.s_addr = htonl(base + offset);
    return formatIpv4(a);
  }
  return Error(errc::kResourceExhausted, "the node's guest IPv4 subnet is full")
      .with("prefix", subnet.str());
}

Result<void> validateGuestSubnet4Flag(std::string_view flag) {
  PLFM_TRY(guestSubnet4(flag, 0));
  return ok();
}

Result<std::string> renderEgress(const EgressPolicy& policy) {
  for (const std::string* name : {&policy.interface4, &policy.interface6}) {
    if (!name->empty() && !validEgressInterfaceName(*name)) {
      return Error(errc::kInvalidArgument,
                   "bad egress interface name: 1 to 15 of [A-Za-z0-9._-], not a tap (vt-*)")
          .with("device", name->substr(0, 64));
    }
  }
  std::string s;
  s += "# Generated by plfm-node-agent; rewritten whole on every change.\n";
  s += "# docs/specs/networking/mesh.md, \"Egress\"\n";
  s += reset("ip", kNat4Table);
  if (policy.guest_subnet4 && !policy.interface4.empty()) {
    s += natTable("ip", kNat4Table,
                  "Guest IPv4 leaves by the egress interface with the node's address.",
                  "ip saddr " + policy.guest_subnet4->str() + " oifname " +
                      quoted(policy.interface4) + " masquerade");
  }
  s += reset("ip6", kNat6Table);
  if (policy.interface6.empty()) return s;
  switch (policy.egress6) {
    case Egress6Mode::kNat66:
      if (policy.cluster_prefix) {
        s += natTable("ip6", kNat6Table,
                      "egress6 = nat66: cluster addresses leave with the node's address.",
                      "ip6 saddr " + policy.cluster_prefix->str() + " oifname " +
                          quoted(policy.interface6) + " masquerade");
      }
      break;
    case Egress6Mode::kRoute:
      break;  // the operator routes the cluster prefix
    case Egress6Mode::kOff:
      static_assert(kTapPrefix == "vt-");
      s += "table ip6 " + std::string(kNat6Table) +
           " {\n\t# egress6 = off: guests reach nothing by the egress interface.\n"
           "\tchain forward {\n\t\ttype filter hook forward priority filter - 5; policy "
           "accept;\n\t\tiifname \"vt-*\" oifname " +
           quoted(policy.interface6) + " counter drop\n\t}\n}\n";
      break;
  }
  return s;
}

std::string renderEgressRemoval() { return reset("ip", kNat4Table) + reset("ip6", kNat6Table); }

NftEgress::NftEgress(std::string work_dir, std::string nft)
    : work_dir_(std::move(work_dir)), nft_(std::move(nft)) {}

Result<void> NftEgress::apply(const EgressPolicy& policy) {
  if (applied_ == policy) return ok();
  PLFM_ASSIGN_OR_RETURN(std::string script, renderEgress(policy));
  PLFM_TRY(runNftScript(nft_, work_dir_, script, "the egress NAT"));
  applied_ = policy;
  return ok();
}

Result<void> NftEgress::remove() {
  applied_.reset();
  return runNftScript(nft_, work_dir_, renderEgressRemoval(), "the egress NAT");
}

}  // namespace plfm::netdev
