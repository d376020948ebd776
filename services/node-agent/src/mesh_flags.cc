#include "mesh_flags.h"

#include <CLI/CLI.hpp>

#include "agent/dns_responder.h"
#include "netdev/egress.h"
#include "netdev/mesh.h"

namespace plfm::agent {

namespace {

CLI::Validator meshInterfaceName() {
  return CLI::Validator(
      [](std::string& v) -> std::string {
        return netdev::validMeshInterfaceName(v) ? "" : "1 to 15 of [a-z0-9-]";
      },
      "NAME");
}

}  // namespace

void addMeshInterfaceOption(CLI::App& app, std::string& target) {
  app.add_option("--mesh-interface", target,
                 "The mesh's WireGuard interface (1 to 15 of [a-z0-9-]; distinct per simulated "
                 "host on one machine)")
      ->capture_default_str()
      ->check(meshInterfaceName());
}

void addMeshInterface2Option(CLI::App& app, std::string& target) {
  app.add_option("--mesh-interface2", target,
                 "The second WireGuard interface a key rotation brings up, on --mesh-port + 1 "
                 "(default: --mesh-interface with a final 0 made 1, else with 1 appended)")
      ->check(meshInterfaceName());
}

namespace {

// A CLI11 validator from a parser: its error message, or "" when it parses.
template <typename Parse>
CLI::Validator checkedBy(Parse parse, const std::string& what) {
  return CLI::Validator(
      [parse](std::string& v) -> std::string {
        auto r = parse(v);
        return r ? std::string() : r.error().message();
      },
      what);
}

}  // namespace

void addEgressOptions(CLI::App& run, AgentOptions& o) {
  o.firewall_policy.egress_denied4.clear();
  for (const char* p :
       {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"}) {
    o.firewall_policy.egress_denied4.push_back(*netdev::parseIpv4Prefix(p));
  }
  run.add_option_function<std::string>(
         "--egress6", [&o](const std::string& v) { o.egress6 = *netdev::parseEgress6Mode(v); },
         "How guests' IPv6 leaves the node: nat66 (masquerade the cluster prefix; the default), "
         "route (forward unchanged: the operator routes the prefix) or off (drop it)")
      ->check(checkedBy(netdev::parseEgress6Mode, "MODE"));
  run.add_option("--egress-interface", o.egress_interface,
                 "The interface guest traffic leaves by (default: the interface of the IPv6, "
                 "respectively IPv4, default route at start)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            return netdev::validEgressInterfaceName(v)
                       ? ""
                       : "1 to 15 of [A-Za-z0-9._-], not a tap name (vt-*)";
          },
          "NAME"));
  run.add_option("--guest-ipv4-subnet", o.guest_ipv4_subnet,
                 "The node's guest IPv4 subnet, /16 to /29 (default 10.42.N.0/24, N = the node "
                 "number modulo 256; off: no guest IPv4)")
      ->check(checkedBy(netdev::validateGuestSubnet4Flag, "CIDR"));
  run.add_option_function<std::vector<std::string>>(
         "--guest-egress-deny4",
         [&o](const std::vector<std::string>& v) {
           o.firewall_policy.egress_denied4.clear();
           for (const auto& p : v) {
             o.firewall_policy.egress_denied4.push_back(*netdev::parseIpv4Prefix(p));
           }
         },
         "An IPv4 prefix guests may not reach (repeatable; replaces the default 10.0.0.0/8, "
         "172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 169.254.0.0/16)")
      ->check(checkedBy(netdev::parseIpv4Prefix, "CIDR"));
}

void addMeshOptions(CLI::App& run, AgentOptions& o) {
  o.mesh_enabled = true;
  run.add_flag("!--no-mesh", o.mesh_enabled,
               "Do not join the WireGuard mesh (no interface, peers or routes)");
  addMeshInterfaceOption(run, o.mesh.mesh.interface);
  addMeshInterface2Option(run, o.mesh.interface2);
  run.add_option("--mesh-port", o.facts.mesh_port,
                 "The mesh's UDP port on the underlay address (sent at enrollment)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65534));
  run.add_option_function<int64_t>(
         "--mesh-rotation-settle-ms",
         [&o](int64_t ms) { o.mesh.rotation_settle = std::chrono::milliseconds(ms); },
         "During a key rotation, move the routes of peers that have not shaken hands on the new "
         "interface after this many milliseconds (default 2000)")
      ->check(CLI::Range(int64_t{0}, int64_t{60000}));
  run.add_flag_callback(
      "--edge", [&o] { o.facts.role = "edge"; },
      "Enroll as an edge-only node: a mesh member that runs no instances (the ingress host)");
  run.add_option("--wg", o.mesh.mesh.wg, "The wg binary (wireguard-tools)")->capture_default_str();
  run.add_option("--wireguard-go", o.mesh.mesh.wireguard_go,
                 "The userspace WireGuard, used when the kernel has no WireGuard module")
      ->capture_default_str();
  run.add_option_function<int64_t>(
         "--mesh-reconcile-seconds",
         [&o](int64_t s) { o.mesh.reconcile_every = std::chrono::seconds(s); },
         "Seconds between full mesh reconciles (wg show dump and routes against the plan; "
         "default 30)")
      ->check(CLI::Range(int64_t{1}, int64_t{3600}));
  run.add_flag("!--no-dns", o.dns_enabled,
               "Do not run the DNS responder for the guests' internal names (mesh nodes)");
  run.add_option("--dns-upstream", o.dns_upstreams,
                 "A resolver the DNS responder forwards other names to (repeatable; default: "
                 "the nameservers of /etc/resolv.conf)")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            return parseDnsUpstream(v) ? "" : "an IP address, [IPv6]:PORT or IPv4:PORT";
          },
          "ADDR"));
}

}  // namespace plfm::agent
