// Shared by the test PostgreSQL harnesses (pg_cluster.cc, pg_auto_failover.cc):
// where the server binaries are, and whether the process that owns a test
// directory (its "owner" file: "PID START_TIME") is still the same process.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <string_view>

#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/testing/temp_dir.h"

#ifndef PLFM_PG_BINDIR
#define PLFM_PG_BINDIR ""
#endif

namespace plfm::testing::pgdirs {

// $PLFM_PG_BINDIR, else the configured or Debian bin dir holding `probe`
// (e.g. "initdb"); "" when none has it.
inline std::string findBindir(std::string_view probe) {
  if (const char* env = std::getenv("PLFM_PG_BINDIR"); env != nullptr && *env != '\0') return env;
  for (std::string dir : {std::string(PLFM_PG_BINDIR), std::string("/usr/lib/postgresql/15/bin")}) {
    if (!dir.empty() && ::access((dir + "/" + std::string(probe)).c_str(), X_OK) == 0) return dir;
  }
  return "";
}

// The owner file's PID still runs and started when the file says (PIDs are
// reused).
inline bool ownerAlive(const std::string& owner_line) {
  const auto space = owner_line.find(' ');
  const pid_t pid = static_cast<pid_t>(std::atoi(owner_line.substr(0, space).c_str()));
  const std::string started = space == std::string::npos ? "" : owner_line.substr(space + 1);
  return processAlive(pid) && std::to_string(processStartTime(pid)) == trim(started);
}

}  // namespace plfm::testing::pgdirs
