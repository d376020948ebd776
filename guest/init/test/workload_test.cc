// spawnWorkload on the host: output reaches the pipes, workdir and env are
// applied, and exec/chdir failures come back as messages with shell codes.
#include "workload.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace plfm::init {
namespace {

namespace gp = guest_proto;

std::string readAll(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

int waitFor(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

gp::Config shell(const std::string& script) {
  gp::Config c;
  c.argv = {"sh", "-c", script};
  c.uid = ::getuid();
  c.gid = ::getgid();
  return c;
}

TEST(WorkloadTest, PipesWorkdirAndEnv) {
  gp::Config c = shell("echo out:$GREETING; pwd; echo err >&2; exit 7");
  c.workdir = "/tmp";
  auto w = spawnWorkload(c, {"PATH=/usr/bin:/bin", "GREETING=hi"});
  ASSERT_TRUE(w.has_value()) << w.error().message;
  EXPECT_EQ(readAll(w->stdout_fd), "out:hi\n/tmp\n");
  EXPECT_EQ(readAll(w->stderr_fd), "err\n");
  EXPECT_EQ(exitFromWaitStatus(waitFor(w->pid)), (gp::Exit{gp::ExitKind::kExited, 7}));
}

TEST(WorkloadTest, ProgramNotFoundInTheWorkloadPath) {
  gp::Config c;
  c.argv = {"sh"};
  auto w = spawnWorkload(c, {"PATH=/nonexistent"});
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().exit_code, 127);
  EXPECT_EQ(w.error().message, "exec sh: sh: not found in PATH");
}

TEST(WorkloadTest, ExecFailureIsReportedFromTheChild) {
  char path[] = "/tmp/vt-init-noexec-XXXXXX";
  const int fd = ::mkstemp(path);  // mode 0600: exists, not executable
  ASSERT_GE(fd, 0);
  ::close(fd);
  gp::Config c;
  c.argv = {path};
  c.uid = ::getuid();
  c.gid = ::getgid();
  auto w = spawnWorkload(c, {"PATH=/bin"});
  ::unlink(path);
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().exit_code, 126);
  EXPECT_EQ(w.error().message, std::string("exec ") + path + ": Permission denied");
}

TEST(WorkloadTest, MissingWorkdir) {
  gp::Config c = shell("true");
  c.workdir = "/nonexistent-workdir";
  auto w = spawnWorkload(c, {"PATH=/usr/bin:/bin"});
  ASSERT_FALSE(w.has_value());
  EXPECT_EQ(w.error().exit_code, 1);
  EXPECT_EQ(w.error().message, "chdir /nonexistent-workdir: No such file or directory");
}

}  // namespace
}  // namespace plfm::init
