// Process bookkeeping for `vt dev`: pid files that survive pid reuse, stops
// with a deadline, and the sweeps that prove `vt dev down` left nothing.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/result.h"

namespace plfm::vt::dev {

// From libs/core: start times, liveness, stops with a grace, sweeps.
using plfm::processesMentioning;
using plfm::processStartTime;
using plfm::stopProcess;
// Exists and is not a zombie.
inline bool isRunning(pid_t pid) { return plfm::processRunning(pid); }

// Writes "PID STARTTIME\n".
[[nodiscard]] Result<void> writePidFile(const std::string& path, pid_t pid);
// The pid in the file when that process still runs with the recorded start
// time, else -1.
[[nodiscard]] pid_t readPidFile(const std::string& path);

// The pid in the file whether or not it still runs (-1 when none): a
// component's session id, after it died.
[[nodiscard]] pid_t recordedPid(const std::string& path);
// The live processes of session `sid` (each component leads its own).
[[nodiscard]] std::vector<pid_t> processesInSession(pid_t sid);

// True when `pid` is this process or one of its ancestors.
[[nodiscard]] bool isAncestor(pid_t pid);
// Unix sockets under `dir` (recursively).
[[nodiscard]] std::vector<std::string> socketsUnder(const std::string& dir);
// Mount points at or under `dir` (from /proc/self/mountinfo).
[[nodiscard]] std::vector<std::string> mountsUnder(const std::string& dir);
// False when `ip` ("::1", "127.0.0.1") `port` cannot be bound (already in use).
[[nodiscard]] bool tcpPortFree(const std::string& ip, int port);
// Network interfaces named vt-* in this network namespace.
[[nodiscard]] std::vector<std::string> vtTaps();

// The first executable `name` in a directory of $PATH, "" when none.
[[nodiscard]] std::string onPath(const std::string& name);

// PostgreSQL refuses root: as root, vt dev runs it (and pg_autoctl) as the
// `postgres` system user when there is one.
[[nodiscard]] bool runsPostgresAsPostgres();
// `argv` run as `postgres` through setpriv when runsPostgresAsPostgres(),
// with CAP_DAC_READ_SEARCH (ambient, nothing else), so that it reaches a
// state dir under a 0700 home such as /root/.local/state without loosening
// any directory's mode; `argv` itself otherwise.
[[nodiscard]] std::vector<std::string> asPostgres(std::vector<std::string> argv);
// Creates `dir` (and its parents) with `mode`, owned by `postgres` when
// `for_postgres` and runsPostgresAsPostgres().
[[nodiscard]] Result<void> mkdirOwned(const std::string& dir, mode_t mode, bool for_postgres);

}  // namespace plfm::vt::dev
