// Starting one exec session's process (docs/specs/runtime/exec-sessions.md
// §PTY and pipes, §Environment, user and workdir): the request's overrides
// applied to the workload's defaults, then fork + setsid + (PTY: TIOCSCTTY)
// + credentials + chdir + execve. Exec failures come back over a CLOEXEC pipe
// with shell exit codes (127 not found, 126 not executable, 1 other).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plan.h"
#include "plfm/guest_proto/exec.h"

namespace plfm::init {

// What an exec'd command gets unless EXEC_OPEN overrides it: the workload's.
struct ExecDefaults {
  std::vector<std::string> env;  // "KEY=VALUE", secrets included when exported
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;
  std::string workdir = "/";
  std::string passwd_path = "/etc/passwd";  // for `user` names
};

struct ExecCredentials {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> groups;

  bool operator==(const ExecCredentials&) const = default;
};

// "UID", "UID:GID" or a name in `passwd` (the file's content). A name or a
// bare UID found in passwd takes its primary gid; a bare UID that is not
// there gets gid 0 (as Docker does). No supplementary groups.
[[nodiscard]] Result<ExecCredentials> parseExecUser(std::string_view user, std::string_view passwd);

// `base` with each KEY=VALUE of `overrides` replacing the same KEY or added.
[[nodiscard]] std::vector<std::string> mergeEnv(std::vector<std::string> base,
                                                const std::vector<std::string>& overrides);

struct ExecProcess {
  pid_t pid = -1;
  // Nonblocking, CLOEXEC. PTY: master_fd only. Pipes: stdin_fd (write end),
  // stdout_fd and stderr_fd (read ends).
  int master_fd = -1;
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
};

struct ExecSpawnFailure {
  std::string message;  // "exec nope: No such file or directory"
  int exit_code = 1;
};

[[nodiscard]] tl::expected<ExecProcess, ExecSpawnFailure> spawnExec(
    const guest_proto::ExecOpen& open, const ExecDefaults& defaults);

}  // namespace plfm::init
