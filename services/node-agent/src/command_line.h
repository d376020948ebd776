// The plfm-node-agent command line. main.cc calls runMain; each group of
// subcommands registers itself on the CLI11 app (image_command.cc holds
// `image pull|rootfs|gc|list`), so adding `run` means one more register
// function. CLI11 stays in the command .cc files (see CMakeLists.txt).
#pragma once

#include <functional>

namespace CLI {
class App;
}  // namespace CLI

namespace plfm::agent {

// What a parsed subcommand does; returns the process exit code.
using CommandAction = std::function<int()>;

// Adds `image ...` to `app`; the chosen subcommand stores its action in `*action`.
void registerImageCommands(CLI::App& app, CommandAction* action);

// Adds `run`: the agent itself (run_command.cc).
void registerRunCommand(CLI::App& app, CommandAction* action);

// Adds `mesh status`: the local view of the WireGuard mesh (mesh_command.cc).
void registerMeshCommands(CLI::App& app, CommandAction* action);

// Adds `leftovers`: what a stopped agent's records still hold (leftovers_command.cc).
void registerLeftoversCommand(CLI::App& app, CommandAction* action);

int runMain(int argc, char** argv);

}  // namespace plfm::agent
