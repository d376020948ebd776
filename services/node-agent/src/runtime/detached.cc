#include "runtime/detached.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
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

// What the grandchild reports when it cannot exec: the step and its errno.
// `stage` points at a string literal, valid in the parent too (fork, no exec).
struct ChildFailure {
  int err = 0;
  const char* stage = nullptr;
};

[[noreturn]] void fail(int report_fd, int err, const char* stage) {
  const ChildFailure f{err, stage};
  writeAll(report_fd, &f, sizeof f);
  ::_exit(127);
}

// Moves the fds to inherit to 3, 4, ...: first above every target (so no
// source is overwritten before it is moved), then into place without
// close-on-exec. The report pipe moves above the targets too.
int placeInheritedFds(const std::vector<int>& fds, int& report_fd) {
  const int above = 3 + static_cast<int>(fds.size());
  const int moved_report = ::fcntl(report_fd, F_DUPFD_CLOEXEC, above);
  if (moved_report < 0) return errno;
  report_fd = moved_report;
  int tmp[64];
  if (fds.size() > 64) return EMFILE;
  for (size_t i = 0; i < fds.size(); ++i) {
    tmp[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, above);
    if (tmp[i] < 0) return errno;
  }
  for (size_t i = 0; i < fds.size(); ++i) {
    if (::dup2(tmp[i], 3 + static_cast<int>(i)) < 0) return errno;
  }
  return 0;
}

// Runs in the grandchild; never returns. Reports errno on the pipe if exec fails.
[[noreturn]] void execChild(char** args, const DetachedOptions& options, char** envp,
                            int report_fd) {
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
    fail(report_fd, errno, "chdir");
  }
  // The hook first: its own fds (cgroup files, a Landlock ruleset) may have
  // the numbers the inherited fds are about to take.
  if (options.pre_exec != nullptr) {
    const char* stage = "pre-exec";
    if (const int err = options.pre_exec(options.pre_exec_arg, &stage); err != 0) {
      fail(report_fd, err, stage);
    }
  }
  if (options.no_transparent_huge_pages && ::prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0) {
    fail(report_fd, errno, "turning off transparent huge pages");
  }
  if (!options.inherit_fds.empty()) {
    if (const int err = placeInheritedFds(options.inherit_fds, report_fd); err != 0) {
      fail(report_fd, err, "passing fds");
    }
  }
  // The agent blocks SIGTERM and SIGINT for sigwait() (daemon::run); a
  // blocked mask survives exec, and a VMM must stop on SIGTERM.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execvpe(args[0], args, envp);
  fail(report_fd, errno, "exec");
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
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

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
    if (grandchild == 0) execChild(args.data(), options, envp.data(), err_pipe[1]);
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
  ChildFailure failure;
  ssize_t m;
  do {
    m = ::read(err_pipe[0], &failure, sizeof failure);
  } while (m < 0 && errno == EINTR);
  ::close(err_pipe[0]);
  if (n != sizeof pid || pid <= 0) return Error(errc::kInternal, "fork of " + argv[0] + " failed");
  if (m == sizeof failure) {
    std::string message = "cannot run " + argv[0];
    if (failure.stage != nullptr && std::string_view(failure.stage) != "exec") {
      message += ": ";
      message += failure.stage;
    }
    message += ": ";
    message += std::strerror(failure.err);
    return Error(errc::kFailedPrecondition, message).with("program", argv[0]);
  }
  return pid;
}

}  // namespace plfm::runtime
