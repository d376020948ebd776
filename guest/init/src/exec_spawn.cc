#include "exec_spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>

#include "sys.h"

namespace plfm::init {

namespace gp = guest_proto;

namespace {

std::optional<uint32_t> parseId(std::string_view s) {
  uint32_t v = 0;
  const auto* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return v;
}

// Fields of one /etc/passwd line: name:pw:uid:gid:gecos:home:shell.
struct PasswdEntry {
  std::string_view name;
  uint32_t uid = 0;
  uint32_t gid = 0;
};

std::vector<PasswdEntry> parsePasswd(std::string_view text) {
  std::vector<PasswdEntry> out;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    std::string_view f[4];
    size_t n = 0;
    while (n < 4) {
      const size_t colon = line.find(':');
      f[n++] = line.substr(0, colon);
      if (colon == std::string_view::npos) break;
      line.remove_prefix(colon + 1);
    }
    if (n < 4) continue;
    auto uid = parseId(f[2]);
    auto gid = parseId(f[3]);
    if (uid && gid && !f[0].empty()) out.push_back(PasswdEntry{f[0], *uid, *gid});
  }
  return out;
}

void closeAll(ExecProcess& p, int& slave) {
  closeFd(p.master_fd);
  closeFd(p.stdin_fd);
  closeFd(p.stdout_fd);
  closeFd(p.stderr_fd);
  closeFd(slave);
}

// The child's side: its stdio, a new session (and the PTY as its
// controlling terminal), default signal handling, credentials, workdir, exec.
[[noreturn]] void execChild(int report, int slave, const int child_fds[3],
                            const ExecCredentials& creds, const std::vector<gid_t>& groups,
                            const char* workdir, const char* program, char* const argv[],
                            char* const envp[]) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int sig = 1; sig < 32; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) ::signal(sig, SIG_DFL);
  }
  ::setsid();
  if (slave >= 0) {
    if (::ioctl(slave, TIOCSCTTY, 0) != 0) childFail(report, kStdio);
    for (int fd = 0; fd < 3; ++fd) {
      if (::dup2(slave, fd) < 0) childFail(report, kStdio);
    }
  } else {
    for (int fd = 0; fd < 3; ++fd) {
      if (::dup2(child_fds[fd], fd) < 0) childFail(report, kStdio);
    }
  }
  if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(creds.gid) != 0 ||
      ::setuid(creds.uid) != 0) {
    childFail(report, kCredentials);
  }
  if (::chdir(workdir) != 0) childFail(report, kChdir);
  ::execve(program, argv, envp);
  childFail(report, kExec);
}

}  // namespace

Result<ExecCredentials> parseExecUser(std::string_view user, std::string_view passwd) {
  const size_t colon = user.find(':');
  if (colon != std::string_view::npos) {
    auto uid = parseId(user.substr(0, colon));
    auto gid = parseId(user.substr(colon + 1));
    if (!uid || !gid) return fail("user must be UID, UID:GID or a user name");
    return ExecCredentials{*uid, *gid, {}};
  }
  const auto entries = parsePasswd(passwd);
  if (auto uid = parseId(user)) {
    for (const PasswdEntry& e : entries) {
      if (e.uid == *uid) return ExecCredentials{e.uid, e.gid, {}};
    }
    return ExecCredentials{*uid, 0, {}};
  }
  for (const PasswdEntry& e : entries) {
    if (e.name == user) return ExecCredentials{e.uid, e.gid, {}};
  }
  return fail("unknown user " + std::string(user) + " (not in /etc/passwd)");
}

std::vector<std::string> mergeEnv(std::vector<std::string> base,
                                  const std::vector<std::string>& overrides) {
  for (const std::string& o : overrides) {
    const std::string_view key = std::string_view(o).substr(0, o.find('=') + 1);
    bool replaced = false;
    for (std::string& b : base) {
      if (std::string_view(b).substr(0, key.size()) == key) {
        b = o;
        replaced = true;
      }
    }
    if (!replaced) base.push_back(o);
  }
  return base;
}

tl::expected<ExecProcess, ExecSpawnFailure> spawnExec(const gp::ExecOpen& open,
                                                      const ExecDefaults& defaults) {
  ExecCredentials creds{defaults.uid, defaults.gid, defaults.groups};
  if (open.user) {
    auto passwd = readFile(defaults.passwd_path);
    auto parsed = parseExecUser(*open.user, passwd ? *passwd : std::string());
    if (!parsed) return tl::unexpected(ExecSpawnFailure{parsed.error(), 1});
    creds = std::move(*parsed);
  }
  const std::string workdir = open.workdir ? *open.workdir : defaults.workdir;
  std::vector<std::string> env = defaults.env;
  if (open.tty) env = mergeEnv(std::move(env), {"TERM=xterm-256color"});
  env = mergeEnv(std::move(env), open.env);

  auto program = resolveProgram(open.argv[0], pathOf(env), [&](const std::string& candidate) {
    struct stat st {};
    const std::string full = candidate[0] == '/' ? candidate : workdir + "/" + candidate;
    return ::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0;
  });
  if (!program) {
    return tl::unexpected(ExecSpawnFailure{"exec " + open.argv[0] + ": " + program.error(), 127});
  }

  ExecProcess p;
  int slave = -1;
  int child_fds[3] = {-1, -1, -1};
  int report[2] = {-1, -1};
  if (open.tty) {
    winsize ws{};
    ws.ws_row = open.rows;
    ws.ws_col = open.cols;
    if (::openpty(&p.master_fd, &slave, nullptr, nullptr, &ws) != 0) {
      return tl::unexpected(ExecSpawnFailure{errnoText("openpty", errno), 1});
    }
    ::fcntl(p.master_fd, F_SETFD, FD_CLOEXEC);
    ::fcntl(slave, F_SETFD, FD_CLOEXEC);
  } else {
    int in[2];
    int out[2];
    int err[2];
    if (::pipe2(in, O_CLOEXEC) != 0) {
      return tl::unexpected(ExecSpawnFailure{errnoText("pipe", errno), 1});
    }
    p.stdin_fd = in[1];
    child_fds[0] = in[0];
    if (::pipe2(out, O_CLOEXEC) == 0) {
      p.stdout_fd = out[0];
      child_fds[1] = out[1];
    }
    if (::pipe2(err, O_CLOEXEC) == 0) {
      p.stderr_fd = err[0];
      child_fds[2] = err[1];
    }
  }
  if ((!open.tty && (p.stdout_fd < 0 || p.stderr_fd < 0)) || ::pipe2(report, O_CLOEXEC) != 0) {
    const int err = errno;
    closeAll(p, slave);
    for (int& fd : child_fds) closeFd(fd);
    return tl::unexpected(ExecSpawnFailure{errnoText("pipe", err), 1});
  }

  std::vector<char*> argv = cStringArray(open.argv);
  std::vector<char*> envp = cStringArray(env);
  const std::vector<gid_t> groups(creds.groups.begin(), creds.groups.end());

  const pid_t pid = ::fork();
  if (pid == 0) {
    execChild(report[1], slave, child_fds, creds, groups, workdir.c_str(), program->c_str(),
              argv.data(), envp.data());
  }
  const int fork_errno = errno;
  closeFd(slave);
  for (int& fd : child_fds) closeFd(fd);
  closeFd(report[1]);
  if (pid < 0) {
    closeFd(report[0]);
    closeAll(p, slave);
    return tl::unexpected(ExecSpawnFailure{errnoText("fork", fork_errno), 1});
  }
  int msg[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(report[0], msg, sizeof msg);
  } while (n < 0 && errno == EINTR);
  closeFd(report[0]);
  p.pid = pid;
  if (n == static_cast<ssize_t>(sizeof msg)) {
    // The child is _exit()ing: reap it here, since no session will own it.
    closeAll(p, slave);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    const char* what = msg[0] == kChdir         ? "chdir "
                       : msg[0] == kCredentials ? "set uid/gid/groups for "
                       : msg[0] == kStdio       ? "set up the terminal for "
                                                : "exec ";
    const std::string target = msg[0] == kChdir ? workdir : *program;
    return tl::unexpected(ExecSpawnFailure{errnoText(what + target, msg[1]),
                                           msg[0] == kExec ? execFailureCode(msg[1]) : 1});
  }
  for (int fd : {p.master_fd, p.stdin_fd, p.stdout_fd, p.stderr_fd}) {
    if (fd >= 0) ::fcntl(fd, F_SETFL, O_NONBLOCK);
  }
  return p;
}

}  // namespace plfm::init
