// The agent's backup settings (volume-mounts.md, Contracts, "Agent"): the
// --backup-* flags of `plfm-node-agent run`, their PLFM_AGENT_* variables
// and the TOML [backup] section of its --config file, into
// AgentOptions::backup and verify_every. CLI11 stays in the command files.
#pragma once

#include "agent/agent.h"
#include "plfm/core/result.h"

namespace CLI {
class App;
}  // namespace CLI

namespace plfm::agent {

// Adds the flags to `run`, writing into `o` (config_file.h maps the TOML
// file's [backup] section onto them).
void addBackupOptions(CLI::App& run, AgentOptions& o);

// After parsing: the cache under STATE/restic-cache, and with a repository,
// a password file that checkPasswordFile accepts (the error says why not).
[[nodiscard]] Result<void> finishBackupOptions(AgentOptions& o);

}  // namespace plfm::agent
