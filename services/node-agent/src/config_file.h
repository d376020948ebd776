// The TOML file of `plfm-node-agent run --config FILE`: keys named like the
// flags (`listen = "[::1]:9102"`), and a [backup] section whose keys are the
// backup flags without their prefix (`repository` for --backup-repository,
// `restic-binary`, `verify-every`). A flag or a PLFM_AGENT_* variable wins
// over the file. (CLI11 2.1 reads a config file for the main app only, so
// `run` applies its own.) The file is read with plfm::config (the parser of
// every service's config file): the keys are `run`'s flags, so an error names
// the file, line and key as the control plane's and the ingress's do.
#pragma once

#include <string>

namespace CLI {
class App;
}  // namespace CLI

namespace plfm::agent {

// Applies `path` to the options of `run` that the command line and the
// environment left unset. Throws CLI::ConfigError (a CLI::ParseError) for an
// unreadable file, an unknown key or section, or a value a flag refuses; its
// message reads "FILE:LINE:COL: 'KEY' ...".
void applyConfigFile(CLI::App& run, const std::string& path);

}  // namespace plfm::agent
