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
#include "netdev/mesh_status.h"
#include "plfm/core/process.h"

namespace plfm::agent {
namespace {

struct MeshFlags {
  std::string state_dir = "/var/lib/plfm-agent";
  netdev::MeshOptions mesh;
  std::string format = "text";
};

int meshStatus(MeshFlags f) {
  f.mesh.state_dir = f.state_dir;
  netdev::Mesh mesh(f.mesh);
  std::optional<netdev::MeshPlan> plan;
  if (auto text = readFile(mesh.planPath())) {
    auto parsed = netdev::parseMeshPlan(nlohmann::json::parse(*text, nullptr, false));
    if (!parsed) {
      std::cerr << "plfm-node-agent: " << mesh.planPath() << ": " << parsed.error().message()
                << "\n";
      return 1;
    }
    plan = std::move(parsed->plan);
  }
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
  const auto s = netdev::meshStatus(f.mesh.interface, plan, dump, routes, std::time(nullptr));
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
  status->add_option("--format", flags->format, "text or json")
      ->capture_default_str()
      ->check(CLI::IsMember({"text", "json"}));
  status->add_option("--wg", flags->mesh.wg, "The wg binary")->capture_default_str();
  status->callback([flags, action] { *action = [flags] { return meshStatus(*flags); }; });
}

}  // namespace plfm::agent
