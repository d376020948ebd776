// Parses `plfm-node-agent run <args>` for flag tests: the options `add` puts
// on `run`, and --config applied as run_command.cc applies it. Include only
// from tests built with -Wno-null-dereference (CLI11, see CMakeLists.txt).
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>

#include "config_file.h"

namespace plfm::agent::testing {

// False on a usage error (a bad flag or file value).
inline bool parseRun(const std::string& args, const std::function<void(CLI::App&)>& add) {
  CLI::App app;
  auto* run = app.add_subcommand("run");
  std::string config;
  run->add_option("--config", config);
  add(*run);
  run->callback([run, &config] { applyConfigFile(*run, config); });
  try {
    app.parse("run " + args, false);
  } catch (const CLI::ParseError&) {
    return false;
  }
  return true;
}

}  // namespace plfm::agent::testing
