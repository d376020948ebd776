// Starting and supervising child processes without a shell: an argv vector,
// optional user switch, redirected stdio, and a fresh session so that signals
// meant for our process group do not reach the child.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm {

struct SpawnOptions {
  std::optional<uid_t> uid;      // switch to this user (needs root)
  std::optional<gid_t> gid;      // and group; supplementary groups are cleared
  std::string stdout_path;       // append stdout here; empty: /dev/null
  std::string stderr_path;       // append stderr here; empty: same as stdout
  int stdin_fd = -1;             // dup2'ed to stdin; -1: /dev/null
  int stdout_fd = -1;            // dup2'ed to stdout; wins over stdout_path
  int stderr_fd = -1;            // dup2'ed to stderr; wins over stderr_path
  std::string cwd;               // empty: inherit
  std::vector<std::string> env;  // extra NAME=VALUE entries on top of ours
  // False: the child's environment is `env` alone, nothing of ours (a child
  // that must not see what the operator's environment may hold).
  bool inherit_env = true;
  bool new_session = true;  // setsid() in the child
  // runChecked only: past this the child (its whole process group, when it
  // has its own session) is killed and the run fails. Zero: no limit.
  std::chrono::milliseconds timeout{0};
};

class Process {
 public:
  Process() = default;
  explicit Process(pid_t pid) : pid_(pid) {}
  Process(Process&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }
  Process& operator=(Process&& o) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  ~Process();  // kills (SIGKILL) and reaps a child that is still running

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] bool valid() const { return pid_ > 0; }

  // Non-blocking: the exit status when the child has exited, else nullopt.
  [[nodiscard]] std::optional<int> poll();
  // Blocks until exit; returns the wait status (use exitCodeOf()).
  int wait();
  // Waits up to `timeout`; nullopt if still running.
  std::optional<int> waitFor(std::chrono::milliseconds timeout);
  // Waits up to `timeout`; past it SIGKILLs the child (its process group
  // too when `group`: a child started with new_session leads one) and reaps
  // it, and returns nullopt.
  std::optional<int> waitOrKill(std::chrono::milliseconds timeout, bool group);
  void signal(int sig) const;
  // Releases ownership: the destructor will no longer kill the child.
  pid_t release();

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

[[nodiscard]] Result<Process> spawn(const std::vector<std::string>& argv,
                                    const SpawnOptions& options = {});

// Runs argv to completion; fails unless it exits 0 (or, with
// options.timeout, when it runs longer: killed, errc::kDeadlineExceeded).
// The error carries the tail of the output captured at stdout_path.
[[nodiscard]] Result<void> runChecked(const std::vector<std::string>& argv,
                                      const SpawnOptions& options);

// "exited 3", "killed by signal 9".
[[nodiscard]] std::string describeWaitStatus(int status);
// Exit code for a normal exit, 128+signal for a signal death.
[[nodiscard]] int exitCodeOf(int status);

// True when a process with this pid exists (kill(pid, 0)).
[[nodiscard]] bool processAlive(pid_t pid);
// Exists and is not a zombie (from /proc/PID/stat).
[[nodiscard]] bool processRunning(pid_t pid);
// The start time of `pid` in clock ticks since boot (/proc/PID/stat field
// 22), 0 when it does not exist or is a zombie. With the pid it names one
// process for good: a recycled pid has another start time.
[[nodiscard]] uint64_t processStartTime(pid_t pid);
// Running processes other than this one whose command line contains
// `needle` (nothing for an empty needle).
[[nodiscard]] std::vector<pid_t> processesMentioning(const std::string& needle);
// Sends `sig`, waits up to `grace` for the process to go, then SIGKILLs it
// (and waits up to 2 s more). True when it went before the deadline.
bool stopProcess(pid_t pid, int sig, std::chrono::milliseconds grace);

// Reads the whole file; errors name the path.
[[nodiscard]] Result<std::string> readFile(const std::string& path);
// Writes atomically: temp file in the same directory, fsync, rename, fsync
// of the directory (so the new name survives a power loss).
[[nodiscard]] Result<void> writeFileAtomic(const std::string& path, std::string_view data,
                                           mode_t mode = 0644);
// fsyncs a file or a directory.
[[nodiscard]] Result<void> fsyncPath(const std::string& path);
// fsyncs the directory holding `path`: makes a rename or create in it durable.
[[nodiscard]] Result<void> fsyncParentDir(const std::string& path);
// The last `max_lines` lines of a file ("" when unreadable).
[[nodiscard]] std::string tailFile(const std::string& path, size_t max_lines);

}  // namespace plfm
