// A network namespace held by a forked child that dies with the test process
// (PR_SET_PDEATHSIG), so the namespace goes even when the test crashes; for
// tests that build small networks of namespaces (firewall_mesh_test,
// egress_netns_test).
#pragma once

#include <fcntl.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <csignal>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/result.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::netdev::testing {

// A network namespace held by a forked child.
class Netns {
 public:
  Netns() = default;
  Netns(const Netns&) = delete;
  Netns& operator=(const Netns&) = delete;
  ~Netns() {
    for (pid_t p : background_) stop(p);
    if (holder_ > 0) stop(holder_);
  }

  Result<void> start() {
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return Error(errc::kIo, "pipe");
    holder_ = ::fork();
    if (holder_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::unshare(CLONE_NEWNET) != 0) ::_exit(1);
      char c = 1;
      (void)!::write(ready[1], &c, 1);
      for (;;) ::pause();
    }
    ::close(ready[1]);
    char c = 0;
    const bool ok = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
    if (!ok) return Error(errc::kIo, "could not make a network namespace");
    return plfm::ok();
  }

  [[nodiscard]] pid_t pid() const { return holder_; }

  // argv inside the namespace (nsenter); stdout to `out` when given.
  [[nodiscard]] Result<void> run(std::vector<std::string> argv, const std::string& out = {}) const {
    argv.insert(argv.begin(), {"nsenter", "--net=/proc/" + std::to_string(holder_) + "/ns/net"});
    SpawnOptions so;
    so.stdout_path = out.empty() ? "/dev/null" : out;
    so.timeout = std::chrono::seconds(20);
    return runChecked(argv, so);
  }

  // `body` in a forked child inside the namespace; its return value.
  [[nodiscard]] int inside(const std::function<int()>& body) const {
    const pid_t p = fork(body);
    int status = 0;
    ::waitpid(p, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 101;
  }

  // `body` in a forked child inside the namespace until the namespace goes.
  void background(const std::function<int()>& body) { background_.push_back(fork(body)); }

  // A child that joined the namespace; the caller waits for it.
  [[nodiscard]] pid_t fork(const std::function<int()>& body) const {
    const std::string path = "/proc/" + std::to_string(holder_) + "/ns/net";
    const pid_t p = ::fork();
    if (p == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) ::_exit(100);
      ::_exit(body());
    }
    return p;
  }

 private:
  static void stop(pid_t p) {
    ::kill(p, SIGKILL);
    ::waitpid(p, nullptr, 0);
  }
  pid_t holder_ = -1;
  std::vector<pid_t> background_;
};

// Writes a sysctl of the current namespace (/proc/sys/net follows the caller's).
inline int sysctl(const std::string& name, const char* value) {
  const std::string path = "/proc/sys/net/" + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return 1;
  const bool ok = ::write(fd, value, std::strlen(value)) > 0;
  ::close(fd);
  return ok ? 0 : 1;
}

// A test suite over a small world of namespaces, built once by
// `Suite::build()` (a static member; befriend this class) and gone with the
// suite. Needs root and nft; skips otherwise.
template <typename Suite>
class NetnsSuite : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (::geteuid() != 0 || ::access("/usr/sbin/nft", X_OK) != 0) return;
    dir_ = new plfm::testing::TempDir(Suite::kDirName);
    world_ = new std::map<std::string, std::unique_ptr<Netns>>();
    if (auto r = Suite::build(); !r) setup_error_ = new std::string(r.error().toString());
  }
  static void TearDownTestSuite() {
    delete world_;  // kills the holders: the namespaces go
    world_ = nullptr;
    delete dir_;
    dir_ = nullptr;
    delete setup_error_;
    setup_error_ = nullptr;
  }
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces, nft)";
    if (::access("/usr/sbin/nft", X_OK) != 0) GTEST_SKIP() << "nft is not installed";
    ASSERT_EQ(setup_error_, nullptr) << *setup_error_;
  }

  static Netns& ns(const std::string& name) { return *world_->at(name); }

  // Starts the namespaces `names` (no DAD, lo up); those `router` picks
  // forward IPv6 and IPv4.
  template <typename Router>
  static Result<void> startAll(std::initializer_list<const char*> names, Router router) {
    for (const char* name : names) {
      auto n = std::make_unique<Netns>();
      PLFM_TRY(n->start());
      const bool forwards = router(std::string_view(name));
      if (n->inside([forwards] {
            return sysctl("ipv6/conf/all/accept_dad", "0") +
                   sysctl("ipv6/conf/default/accept_dad", "0") +
                   (forwards
                        ? sysctl("ipv6/conf/all/forwarding", "1") + sysctl("ipv4/ip_forward", "1")
                        : 0);
          }) != 0) {
        return Error(errc::kIo, std::string("sysctls in ") + name);
      }
      PLFM_TRY(n->run({"ip", "link", "set", "lo", "up"}));
      world_->emplace(name, std::move(n));
    }
    return plfm::ok();
  }

  inline static plfm::testing::TempDir* dir_ = nullptr;
  inline static std::map<std::string, std::unique_ptr<Netns>>* world_ = nullptr;
  inline static std::string* setup_error_ = nullptr;
};

}  // namespace plfm::netdev::testing
