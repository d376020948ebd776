// The mesh flags of `plfm-node-agent run` (docs/specs/networking/mesh.md,
// "The agent's mesh"): --no-mesh, --mesh-interface, --mesh-interface2,
// --mesh-port, --mesh-rotation-settle-ms, --edge, --wg, --wireguard-go,
// --mesh-reconcile-seconds. Apart from run_command.cc
// so a test parses them as `run` does.
#pragma once

#include "agent/agent.h"

namespace CLI {
class App;
}  // namespace CLI

namespace plfm::agent {

// Adds the flags to `run`, writing into `o` (and turns the mesh on: `run`
// joins it unless --no-mesh).
void addMeshOptions(CLI::App& run, AgentOptions& o);
// The egress flags (mesh.md "Egress"): --egress6, --egress-interface,
// --guest-ipv4-subnet and the repeatable --guest-egress-deny4 (whose default
// is the private, shared and link-local IPv4 ranges).
void addEgressOptions(CLI::App& run, AgentOptions& o);
// --mesh-interface alone (`mesh status` has it too).
void addMeshInterfaceOption(CLI::App& app, std::string& target);
// --mesh-interface2 alone (the second slot of a key rotation; empty: derived).
void addMeshInterface2Option(CLI::App& app, std::string& target);

}  // namespace plfm::agent
