#include "workload.h"

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

#include "sys.h"

namespace plfm::init {

tl::expected<Workload, SpawnFailure> spawnWorkload(const guest_proto::Config& config,
                                                   const std::vector<std::string>& env) {
  auto program = resolveProgram(config.argv[0], pathOf(env), [&](const std::string& candidate) {
    struct stat st {};
    const std::string full = candidate[0] == '/' ? candidate : config.workdir + "/" + candidate;
    return ::stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0;
  });
  if (!program)
    return tl::unexpected(SpawnFailure{"exec " + config.argv[0] + ": " + program.error(), 127});

  int out[2];
  int err[2];
  int report[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(report, O_CLOEXEC) != 0) {
    return tl::unexpected(SpawnFailure{errnoText("pipe", errno), 1});
  }
  std::vector<char*> argv = cStringArray(config.argv);
  std::vector<char*> envp = cStringArray(env);
  std::vector<gid_t> groups(config.groups.begin(), config.groups.end());

  const pid_t pid = ::fork();
  if (pid < 0) return tl::unexpected(SpawnFailure{errnoText("fork", errno), 1});
  if (pid == 0) {
    sigset_t all;
    sigemptyset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::setsid();
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull < 0 || ::dup2(devnull, 0) < 0 || ::dup2(out[1], 1) < 0 || ::dup2(err[1], 2) < 0) {
      childFail(report[1], kStdio);
    }
    if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(config.gid) != 0 ||
        ::setuid(config.uid) != 0) {
      childFail(report[1], kCredentials);
    }
    if (::chdir(config.workdir.c_str()) != 0) childFail(report[1], kChdir);
    ::execve(program->c_str(), argv.data(), envp.data());
    childFail(report[1], kExec);
  }
  ::close(out[1]);
  ::close(err[1]);
  ::close(report[1]);
  int msg[2] = {0, 0};
  ssize_t n;
  do {
    n = ::read(report[0], msg, sizeof msg);
  } while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n == static_cast<ssize_t>(sizeof msg)) {
    // The child is gone (it _exit()ed); the SIGCHLD loop reaps it.
    ::close(out[0]);
    ::close(err[0]);
    const char* what = msg[0] == kChdir         ? "chdir "
                       : msg[0] == kCredentials ? "set uid/gid/groups for "
                       : msg[0] == kStdio       ? "set up stdio for "
                                                : "exec ";
    const std::string target = msg[0] == kChdir ? config.workdir : *program;
    return tl::unexpected(SpawnFailure{errnoText(what + target, msg[1]),
                                       msg[0] == kExec ? execFailureCode(msg[1]) : 1});
  }
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  ::fcntl(err[0], F_SETFL, O_NONBLOCK);
  return Workload{pid, out[0], err[0]};
}

}  // namespace plfm::init
