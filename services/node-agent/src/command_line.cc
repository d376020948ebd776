// CLI11 lives only in the command files: its headers trip a GCC 12
// -Wnull-dereference false positive, silenced for these translation units
// alone (see CMakeLists.txt).
#include "command_line.h"

#include <CLI/CLI.hpp>
#include <csignal>

namespace plfm::agent {

int runMain(int argc, char** argv) {
  CLI::App app{"plfm-node-agent: runs plfm-vt workloads as microVMs on this host.",
               "plfm-node-agent"};
  app.require_subcommand(1);
  CommandAction action;
  registerImageCommands(app, &action);
  registerRunCommand(app, &action);
  registerMeshCommands(app, &action);
  registerLeftoversCommand(app, &action);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help exits 0; a usage error (printed by CLI11) exits 2.
    return app.exit(e) == 0 ? 0 : 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  return action ? action() : 2;
}

}  // namespace plfm::agent
