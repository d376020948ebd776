#include "plfm/core/process.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "plfm/core/strings.h"

extern char** environ;

namespace plfm {

Process& Process::operator=(Process&& o) noexcept {
  if (this != &o) {
    this->~Process();
    pid_ = o.pid_;
    status_ = o.status_;
    o.pid_ = -1;
  }
  return *this;
}

Process::~Process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  pid_ = -1;
}

std::optional<int> Process::poll() {
  if (status_ || pid_ <= 0) return status_;
  int st = 0;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) status_ = st;
  return status_;
}

int Process::wait() {
  if (status_ || pid_ <= 0) return status_.value_or(0);
  int st = 0;
  while (::waitpid(pid_, &st, 0) < 0) {
    if (errno != EINTR) return 0;
  }
  status_ = st;
  return st;
}

std::optional<int> Process::waitFor(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto step = std::chrono::milliseconds(1);
  while (!poll()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(step);
    step = std::min(step * 2, std::chrono::milliseconds(50));
  }
  return status_;
}

std::optional<int> Process::waitOrKill(std::chrono::milliseconds timeout, bool group) {
  if (auto st = waitFor(timeout)) return st;
  if (pid_ > 0) {
    if (group) ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
  }
  (void)wait();
  return std::nullopt;
}

void Process::signal(int sig) const {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

pid_t Process::release() {
  pid_t p = pid_;
  pid_ = -1;
  return p;
}

namespace {

// Everything between fork() and exec() must be async-signal-safe: we only
// call raw syscalls and write a fixed message on failure.
[[noreturn]] void childFail(int report_fd, const char* step) {
  int err = errno;
  (void)!::write(report_fd, &err, sizeof(err));
  (void)!::write(report_fd, step, std::strlen(step));
  ::_exit(127);
}

}  // namespace

Result<Process> spawn(const std::vector<std::string>& argv, const SpawnOptions& o) {
  if (argv.empty()) return Error(errc::kInvalidArgument, "spawn: empty argv");
  // Prepare everything that allocates before fork().
  std::vector<char*> cargv;
  cargv.reserve(argv.size() + 1);
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  std::vector<std::string> envStore;
  // Entries in o.env replace inherited ones of the same name (getenv() in the
  // child would otherwise see whichever comes first).
  auto nameOf = [](std::string_view e) { return e.substr(0, e.find('=')); };
  for (char** e = environ; o.inherit_env && *e != nullptr; ++e) {
    bool overridden = false;
    for (const auto& mine : o.env) overridden = overridden || nameOf(mine) == nameOf(*e);
    if (!overridden) envStore.emplace_back(*e);
  }
  for (const auto& e : o.env) envStore.push_back(e);
  std::vector<char*> cenv;
  cenv.reserve(envStore.size() + 1);
  for (auto& e : envStore) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  const std::string outPath = o.stdout_path.empty() ? "/dev/null" : o.stdout_path;
  const std::string errPath = o.stderr_path.empty() ? outPath : o.stderr_path;

  int report[2];  // child writes errno + step here if exec fails
  if (::pipe2(report, O_CLOEXEC) != 0) return errnoError("pipe2", errno);

  const pid_t pid = ::fork();
  if (pid < 0) {
    int err = errno;
    ::close(report[0]);
    ::close(report[1]);
    return errnoError("fork", err);
  }
  if (pid == 0) {
    ::close(report[0]);
    if (o.new_session && ::setsid() < 0) childFail(report[1], "setsid");
    int in = o.stdin_fd >= 0 ? o.stdin_fd : ::open("/dev/null", O_RDONLY);
    if (in < 0 || ::dup2(in, 0) < 0) childFail(report[1], "stdin");
    int out = o.stdout_fd >= 0 ? o.stdout_fd
                               : ::open(outPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (out < 0 || ::dup2(out, 1) < 0) childFail(report[1], "stdout");
    int err = o.stderr_fd >= 0 ? o.stderr_fd
              : o.stdout_fd >= 0 && o.stderr_path.empty()
                  ? 1
                  : ::open(errPath.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (err < 0 || ::dup2(err, 2) < 0) childFail(report[1], "stderr");
    if (o.gid) {
      if (::setgroups(0, nullptr) != 0) childFail(report[1], "setgroups");
      if (::setgid(*o.gid) != 0) childFail(report[1], "setgid");
    }
    if (o.uid && ::setuid(*o.uid) != 0) childFail(report[1], "setuid");
    if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) childFail(report[1], "chdir");
    // Restore default signal dispositions and an empty mask for the child.
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    if (std::strchr(cargv[0], '/') != nullptr) {
      ::execve(cargv[0], cargv.data(), cenv.data());
    } else {
      ::execvpe(cargv[0], cargv.data(), cenv.data());  // searches PATH
    }
    childFail(report[1], "exec");
  }
  ::close(report[1]);
  int childErr = 0;
  char step[32] = {};
  ssize_t n;
  while ((n = ::read(report[0], &childErr, sizeof(childErr))) < 0 && errno == EINTR) {
  }
  if (n == static_cast<ssize_t>(sizeof(childErr))) {
    ssize_t m = ::read(report[0], step, sizeof(step) - 1);
    (void)m;
    ::close(report[0]);
    int st = 0;
    ::waitpid(pid, &st, 0);
    return Error(errc::kIo,
                 "cannot start '" + argv[0] + "': " + step + ": " + std::strerror(childErr))
        .with("program", argv[0]);
  }
  ::close(report[0]);
  return Process(pid);
}

Result<void> runChecked(const std::vector<std::string>& argv, const SpawnOptions& options) {
  PLFM_ASSIGN_OR_RETURN(Process p, spawn(argv, options));
  std::optional<int> waited;
  if (options.timeout.count() > 0) {
    waited = p.waitOrKill(options.timeout, options.new_session);
    if (!waited) {
      return Error(errc::kDeadlineExceeded, "'" + argv[0] + "' ran longer than " +
                                                std::to_string(options.timeout.count()) +
                                                " ms and was killed")
          .with("program", argv[0]);
    }
  }
  const int st = waited ? *waited : p.wait();
  if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return ok();
  std::string tail = options.stdout_path.empty() ? "" : tailFile(options.stdout_path, 20);
  return Error(errc::kInternal,
               "'" + argv[0] + "' " + describeWaitStatus(st) + (tail.empty() ? "" : ":\n" + tail))
      .with("program", argv[0]);
}

std::string describeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended with status " + std::to_string(status);
}

int exitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

bool processAlive(pid_t pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

namespace {

// The state (field 3) and start time (field 22) of a process; the state is
// "" when it does not exist. Field 2 (comm) may hold spaces and parentheses:
// fields are read after the last ')'.
std::pair<std::string, uint64_t> statStateAndStart(pid_t pid) {
  if (pid <= 0) return {"", 0};
  const std::string text = readFile("/proc/" + std::to_string(pid) + "/stat").value_or("");
  const auto close = text.rfind(')');
  if (close == std::string::npos) return {"", 0};
  std::istringstream fields(text.substr(close + 1));
  std::string state;
  fields >> state;  // field 3
  std::string skip;
  for (int field = 4; field < 22; ++field) fields >> skip;
  uint64_t start = 0;
  fields >> start;  // field 22
  return {state, start};
}

bool zombie(const std::string& state) { return state == "Z" || state == "X"; }

}  // namespace

bool processRunning(pid_t pid) {
  const auto s = statStateAndStart(pid);
  return !s.first.empty() && !zombie(s.first);
}

uint64_t processStartTime(pid_t pid) {
  const auto s = statStateAndStart(pid);
  return s.first.empty() || zombie(s.first) ? 0 : s.second;
}

std::vector<pid_t> processesMentioning(const std::string& needle) {
  std::vector<pid_t> out;
  if (needle.empty()) return out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::atol(name.c_str()));
    if (pid == ::getpid()) continue;
    auto cmdline = readFile("/proc/" + name + "/cmdline");
    if (cmdline && cmdline->find(needle) != std::string::npos && processRunning(pid)) {
      out.push_back(pid);
    }
  }
  return out;
}

bool stopProcess(pid_t pid, int sig, std::chrono::milliseconds grace) {
  if (!processRunning(pid)) return true;
  ::kill(pid, sig);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!processRunning(pid)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ::kill(pid, SIGKILL);
  for (int i = 0; i < 100 && processRunning(pid); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

Result<std::string> readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return errnoError("open " + path, errno);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return errnoError("read " + path, errno);
  return ss.str();
}

Result<void> fsyncPath(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errnoError("open " + path, errno);
  const int r = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (r != 0) return errnoError("fsync " + path, err);
  return ok();
}

Result<void> fsyncParentDir(const std::string& path) {
  const size_t slash = path.rfind('/');
  return fsyncPath(slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash));
}

Result<void> writeFileAtomic(const std::string& path, std::string_view data, mode_t mode) {
  // Unique per call, so threads of one process writing the same path never
  // share (and truncate) each other's temp file.
  static std::atomic<uint64_t> counter{0};
  std::string tmp = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return errnoError("create " + tmp, errno);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return errnoError("write " + tmp, err);
    }
    off += static_cast<size_t>(n);
  }
  if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return errnoError("sync " + tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errnoError("rename to " + path, err);
  }
  // The rename lives in the directory: without this, a power loss can leave
  // the old file (or none) although the call succeeded.
  return fsyncParentDir(path);
}

std::string tailFile(const std::string& path, size_t max_lines) {
  auto content = readFile(path);
  if (!content) return "";
  std::deque<std::string_view> last;
  for (auto line : splitLines(*content)) {
    last.push_back(line);
    if (last.size() > max_lines) last.pop_front();
  }
  std::string out;
  for (auto l : last) {
    out.append(l);
    out += '\n';
  }
  return out;
}

}  // namespace plfm
