// Process bookkeeping for `vt dev`: pid files that survive pid reuse, stops
// with a deadline, and the sweeps that prove `vt dev down` left nothing.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::vt::dev {

// Field 22 of /proc/PID/stat (start time in clock ticks), or "".
[[nodiscard]] std::string processStartTime(pid_t pid);
// Exists and is not a zombie.
[[nodiscard]] bool isRunning(pid_t pid);

// Writes "PID STARTTIME\n".
[[nodiscard]] Result<void> writePidFile(const std::string& path, pid_t pid);
// The pid in the file when that process still runs with the recorded start
// time, else -1.
[[nodiscard]] pid_t readPidFile(const std::string& path);

// Sends `sig`, waits up to `grace`, then SIGKILLs. True when it stopped
// before the deadline.
bool stopProcess(pid_t pid, int sig, std::chrono::milliseconds grace);

// Running processes (not us) whose command line contains `needle`.
[[nodiscard]] std::vector<pid_t> processesMentioning(const std::string& needle);
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

}  // namespace plfm::vt::dev
