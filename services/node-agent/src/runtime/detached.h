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
  // Open fds the process inherits, as fd 3, 4, ... in this order (whatever
  // their numbers here); every other fd of ours is close-on-exec.
  std::vector<int> inherit_fds;
  // Runs in the child before the inherited fds are moved into place, e.g.
  // to drop privileges (confine.h). Must be async-signal-safe. Returns 0 or
  // an errno, and names the failed step in *stage (a string literal); spawn
  // then fails with "<stage>: <strerror>".
  int (*pre_exec)(const void* arg, const char** stage) noexcept = nullptr;
  const void* pre_exec_arg = nullptr;
  // PR_SET_THP_DISABLE before exec (kept across exec): the process's anonymous
  // memory is never backed by transparent huge pages, madvise or not, so a
  // touched 4 KiB page costs 4 KiB, not a 2 MiB block.
  bool no_transparent_huge_pages = false;
};

// Returns the pid of the running process. An exec failure (no such binary,
// not executable) is an error naming argv[0], reported synchronously.
[[nodiscard]] Result<pid_t> spawnDetached(const std::vector<std::string>& argv,
                                          const DetachedOptions& options = {});

}  // namespace plfm::runtime
