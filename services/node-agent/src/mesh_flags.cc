#include "mesh_flags.h"

#include <CLI/CLI.hpp>

#include "agent/dns_responder.h"
#include "netdev/mesh.h"

namespace plfm::agent {

void addMeshInterfaceOption(CLI::App& app, std::string& target) {
  app.add_option("--mesh-interface", target,
                 "The mesh's WireGuard interface (1 to 15 of [a-z0-9-]; distinct per simulated "
                 "host on one machine)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            return netdev::validMeshInterfaceName(v) ? "" : "1 to 15 of [a-z0-9-]";
          },
          "NAME"));
}

void addMeshOptions(CLI::App& run, AgentOptions& o) {
  o.mesh_enabled = true;
  run.add_flag("!--no-mesh", o.mesh_enabled,
               "Do not join the WireGuard mesh (no interface, peers or routes)");
  addMeshInterfaceOption(run, o.mesh.mesh.interface);
  run.add_option("--mesh-port", o.facts.mesh_port,
                 "The mesh's UDP port on the underlay address (sent at enrollment)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
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
