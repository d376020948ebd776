// spawnDetached starts a long-lived process that is not our child: it forks
// twice, so the process runs in its own session, is reparented to init, and
// survives (and is never reaped by) the agent. A VMM started this way is found
// again after an agent restart by pid and start time alone, the same way
// whether this agent process started it or an earlier one did.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::runtime {

struct DetachedOptions {
  std::string log_path;          // stdout and stderr are appended here; empty: /dev/null
  std::string cwd;               // empty: "/"
  std::vector<std::string> env;  // NAME=VALUE entries added to (or replacing) ours
};

// Returns the pid of the running process. An exec failure (no such binary,
// not executable) is an error naming argv[0], reported synchronously.
[[nodiscard]] Result<pid_t> spawnDetached(const std::vector<std::string>& argv,
                                          const DetachedOptions& options = {});

}  // namespace plfm::runtime
