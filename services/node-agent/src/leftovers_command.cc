// `plfm-node-agent leftovers`: what a stopped agent's instance records still
// hold on this host (agent/leftovers.h), and with --remove, releases it.
// `vt dev down` calls it: the records' format stays the agent's own.
#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/leftovers.h"
#include "command_line.h"

namespace plfm::agent {
namespace {

struct LeftoverFlags {
  std::string state_dir = "/var/lib/plfm-agent";
  bool remove = false;
  std::string format = "text";
};

int leftovers(const LeftoverFlags& f) {
  const std::string dir = f.state_dir + "/instances";
  std::error_code ec;
  // No records dir (an agent that never ran an instance): nothing is left.
  Result<std::vector<InstanceRecord>> records = std::filesystem::is_directory(dir, ec)
                                                    ? StateStore(dir).peekAll()
                                                    : std::vector<InstanceRecord>{};
  if (!records) {
    std::cerr << "plfm-node-agent: " << records.error().message() << "\n";
    return 1;
  }
  const LeftoverProbe probe = hostLeftoverProbe();
  const auto left = f.remove ? removeLeftovers(*records, probe) : findLeftovers(*records, probe);
  if (f.format == "json") {
    std::cout << leftoversJson(left).dump() << "\n";
  } else {
    std::cout << leftoversText(left);
  }
  return 0;
}

}  // namespace

void registerLeftoversCommand(CLI::App& app, CommandAction* action) {
  auto flags = std::make_shared<LeftoverFlags>();
  auto* cmd = app.add_subcommand(
      "leftovers",
      "List what this agent's instance records still hold on the host after the agent stopped: "
      "running VMMs, taps and VMM cgroups. With --remove, release the taps and cgroups of every "
      "instance whose VMM is not running (a running VMM's are left) and list what remains");
  cmd->add_option("--state-dir", flags->state_dir, "The agent's state directory")
      ->capture_default_str();
  cmd->add_flag("--remove", flags->remove, "Release what no running VMM holds");
  cmd->add_option("--format", flags->format, "text or json")
      ->check(CLI::IsMember({"text", "json"}))
      ->capture_default_str();
  cmd->callback([flags, action] { *action = [flags] { return leftovers(*flags); }; });
}

}  // namespace plfm::agent
