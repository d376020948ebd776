#include "runtime/detached.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

namespace plfm::runtime {
namespace {

// Writes all of `len` bytes, retrying on EINTR; for the child's report pipe.
void writeAll(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    len -= static_cast<size_t>(n);
  }
}

// Runs in the grandchild; never returns. Reports errno on the pipe if exec fails.
[[noreturn]] void execChild(const std::vector<std::string>& argv, const DetachedOptions& options,
                            char** envp, int report_fd) {
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) ::dup2(null_fd, 0);
  int out_fd = null_fd;
  if (!options.log_path.empty()) {
    out_fd = ::open(options.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  }
  if (out_fd >= 0) {
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
  }
  if (::chdir(options.cwd.empty() ? "/" : options.cwd.c_str()) != 0) {
    int err = errno;
    writeAll(report_fd, &err, sizeof err);
    ::_exit(127);
  }
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execvpe(args[0], args.data(), envp);
  int err = errno;
  writeAll(report_fd, &err, sizeof err);
  ::_exit(127);
}

}  // namespace

Result<pid_t> spawnDetached(const std::vector<std::string>& argv, const DetachedOptions& options) {
  if (argv.empty()) return Error(errc::kInvalidArgument, "spawnDetached: empty argv");
  // The environment is built before fork: allocation after fork is unsafe in
  // a threaded process.
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool replaced = false;
    for (const auto& extra : options.env) {
      auto eq = extra.find('=');
      if (eq != std::string::npos &&
          entry.substr(0, eq + 1) == std::string_view(extra).substr(0, eq + 1)) {
        replaced = true;
        break;
      }
    }
    if (!replaced) env_store.emplace_back(entry);
  }
  for (const auto& extra : options.env) env_store.push_back(extra);
  std::vector<char*> envp;
  envp.reserve(env_store.size() + 1);
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);

  // pid_pipe carries the grandchild's pid from the middle process; err_pipe
  // carries an exec errno from the grandchild (closed on a successful exec).
  int pid_pipe[2];
  int err_pipe[2];
  if (::pipe2(pid_pipe, O_CLOEXEC) != 0) return errnoError("pipe", errno);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int err = errno;
    ::close(pid_pipe[0]);
    ::close(pid_pipe[1]);
    return errnoError("pipe", err);
  }
  pid_t middle = ::fork();
  if (middle < 0) {
    int err = errno;
    for (int fd : {pid_pipe[0], pid_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    return errnoError("fork", err);
  }
  if (middle == 0) {
    ::setsid();
    pid_t grandchild = ::fork();
    if (grandchild == 0) execChild(argv, options, envp.data(), err_pipe[1]);
    writeAll(pid_pipe[1], &grandchild, sizeof grandchild);
    ::_exit(grandchild < 0 ? 1 : 0);
  }
  ::close(pid_pipe[1]);
  ::close(err_pipe[1]);
  int status = 0;
  while (::waitpid(middle, &status, 0) < 0 && errno == EINTR) {
  }
  pid_t pid = -1;
  ssize_t n = ::read(pid_pipe[0], &pid, sizeof pid);
  ::close(pid_pipe[0]);
  int exec_errno = 0;
  ssize_t m;
  do {
    m = ::read(err_pipe[0], &exec_errno, sizeof exec_errno);
  } while (m < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n != sizeof pid || pid <= 0) return Error(errc::kInternal, "fork of " + argv[0] + " failed");
  if (m == sizeof exec_errno) {
    return Error(errc::kFailedPrecondition,
                 "cannot run " + argv[0] + ": " + std::strerror(exec_errno))
        .with("program", argv[0]);
  }
  return pid;
}

}  // namespace plfm::runtime
