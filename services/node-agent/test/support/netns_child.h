// Runs a check in a forked child inside a fresh network namespace, so tests
// of taps and nftables never touch the host's links or ruleset.
#pragma once

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

namespace plfm::netdev::testing {

// `body`'s return value, the number of failed checks, is the child's exit
// code (gtest assertions do not cross fork); 100: unshare failed, 101: the
// child died.
inline int inNetns(const std::function<int()>& body) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::unshare(CLONE_NEWNET) != 0) ::_exit(100);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 101;
}

}  // namespace plfm::netdev::testing
