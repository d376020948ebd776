// Spawning the workload: pipes for stdout/stderr, credentials, workdir,
// exec; exec failures come back over a CLOEXEC pipe so that the host gets
// "exec /bin/app: No such file or directory" rather than a bare 127.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "plan.h"
#include "plfm/guest_proto/messages.h"

namespace plfm::init {

struct Workload {
  pid_t pid = -1;
  int stdout_fd = -1;  // read ends, nonblocking
  int stderr_fd = -1;
};

struct SpawnFailure {
  std::string message;
  int exit_code = 1;
};

[[nodiscard]] tl::expected<Workload, SpawnFailure> spawnWorkload(
    const guest_proto::Config& config, const std::vector<std::string>& env);

}  // namespace plfm::init
