// `plfm-node-agent mesh status`: the node's view of the WireGuard mesh
// (docs/specs/networking/mesh.md, "The agent's mesh"; netdev/mesh_status.h).
// Reads the interface with `wg show dump` and `ip -6 route show` (root) and
// the last applied plan from STATE/mesh/plan.json; changes nothing.
#include <CLI/CLI.hpp>
#include <ctime>
#include <iostream>

#include "command_line.h"
#include "mesh_flags.h"
#include "netdev/mesh.h"
#include "netdev/mesh_rotation.h"
#include "netdev/mesh_status.h"
#include "plfm/core/process.h"

namespace plfm::agent {
namespace {

struct MeshFlags {
  std::string state_dir = "/var/lib/plfm-agent";
  netdev::MeshOptions mesh;
  std::string interface2;  // empty: derived from mesh.interface
  int port = netdev::kDefaultMeshPort;
  std::string format = "text";
};

int meshStatus(MeshFlags f) {
  f.mesh.state_dir = f.state_dir;
  std::optional<netdev::MeshPlan> plan;
  const std::string plan_path = netdev::Mesh(f.mesh).planPath();
  if (auto text = readFile(plan_path)) {
    auto parsed = netdev::parseMeshPlan(nlohmann::json::parse(*text, nullptr, false));
    if (!parsed) {
      std::cerr << "plfm-node-agent: " << plan_path << ": " << parsed.error().message() << "\n";
      return 1;
    }
    plan = std::move(parsed->plan);
  }
  // The active slot: the one whose port the plan names (mesh.md, "Agent").
  const std::string second =
      f.interface2.empty() ? netdev::defaultMeshInterface2(f.mesh.interface) : f.interface2;
  if (plan && !second.empty() && plan->self.listen_port == f.port + 1) f.mesh.interface = second;
  netdev::Mesh mesh(f.mesh);
  std::optional<netdev::WgDump> dump;
  std::vector<netdev::MeshRoute> routes;
  if (mesh.exists()) {
    auto d = mesh.dump();
    auto r = mesh.routes();
    if (!d || !r) {
      std::cerr << "plfm-node-agent: " << (d ? r.error() : d.error()).message() << "\n";
      return 1;
    }
    dump = std::move(*d);
    routes = std::move(*r);
  }
  auto s = netdev::meshStatus(f.mesh.interface, plan, dump, routes, std::time(nullptr));
  auto rotation = netdev::loadMeshRotation(f.state_dir);
  if (!rotation) {
    std::cerr << "plfm-node-agent: " << rotation.error().message() << "\n";
    return 1;
  }
  if (*rotation) s.rotation = netdev::rotationStatus(**rotation);
  if (f.format == "json") {
    std::cout << netdev::toJson(s).dump() << "\n";
  } else {
    std::cout << netdev::toText(s);
  }
  return 0;
}

}  // namespace

void registerMeshCommands(CLI::App& app, CommandAction* action) {
  auto* mesh = app.add_subcommand("mesh", "The node's WireGuard mesh");
  mesh->require_subcommand(1);
  auto flags = std::make_shared<MeshFlags>();
  auto* status = mesh->add_subcommand(
      "status",
      "Show the mesh interface, its port and public key, and per peer its node, endpoint, "
      "allowed IPs, latest handshake, bytes and route (needs root to read the interface)");
  status->add_option("--state-dir", flags->state_dir, "The agent's state dir")
      ->envname("PLFM_AGENT_STATE_DIR")
      ->capture_default_str();
  addMeshInterfaceOption(*status, flags->mesh.interface);
  addMeshInterface2Option(*status, flags->interface2);
  status
      ->add_option("--mesh-port", flags->port,
                   "The agent's --mesh-port (the active interface is the one on the plan's port)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65534));
  status->add_option("--format", flags->format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  status->add_option("--wg", flags->mesh.wg, "The wg binary")->capture_default_str();
  status->callback([flags, action] { *action = [flags] { return meshStatus(*flags); }; });
}

}  // namespace plfm::agent
