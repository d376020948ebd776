// The real `vt exec` binary against a fake control plane in this process
// (exec_fake_control_plane.h), with pipes, files and a pseudo-terminal:
// exit status propagation, binary-safe stdin/stdout within credit, signal
// forwarding, raw mode and resize, lost and refused sessions, API errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "exec_fake_control_plane.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::vt {
namespace {

using nlohmann::json;
using testing::eventually;
using testing::FakeControlPlane;
using testing::kApp;
using testing::kEnv;
using testing::kInstance;
using testing::kMissing;
using testing::kOrg;
using testing::kOther;
using testing::Pty;

struct VtRun {
  int code = -1;
  std::string out;
  std::string err;
};

class VtExecTest : public ::testing::Test {
 protected:
  std::vector<std::string> env() {
    return {"VT_CONFIG_DIR=" + dir_.path(),
            "VT_URL=" + cp_.url(),
            "VT_TOKEN=vt_test",
            "VT_ORG=" + std::string(kOrg),
            "VT_APP=" + std::string(kApp),
            "VT_ENV=" + std::string(kEnv),
            "NO_COLOR=1"};
  }

  Result<Process> start(const std::vector<std::string>& args, const std::string& stdin_data = "") {
    std::vector<std::string> argv = {PLFM_VT_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    std::filesystem::remove(dir_.file("out"));
    std::filesystem::remove(dir_.file("err"));
    (void)writeFileAtomic(dir_.file("in"), stdin_data);
    SpawnOptions o;
    o.stdout_path = dir_.file("out");
    o.stderr_path = dir_.file("err");
    o.env = env();
    int in_fd = ::open(dir_.file("in").c_str(), O_RDONLY | O_CLOEXEC);
    o.stdin_fd = in_fd;
    auto p = spawn(argv, o);
    ::close(in_fd);
    return p;
  }

  VtRun finish(Process& p) {
    VtRun r;
    auto status = p.waitFor(std::chrono::seconds(60));
    if (!status) {
      p.signal(SIGKILL);
      r.err = "vt timed out";
      return r;
    }
    r.code = exitCodeOf(*status);
    r.out = readFile(dir_.file("out")).value_or("");
    r.err = readFile(dir_.file("err")).value_or("");
    return r;
  }

  VtRun vt(const std::vector<std::string>& args, const std::string& stdin_data = "") {
    auto p = start(args, stdin_data);
    if (!p) return {.code = -1, .out = "", .err = p.error().toString()};
    return finish(*p);
  }

  plfm::testing::TempDir dir_{"vt-exec"};
  FakeControlPlane cp_;
};

TEST_F(VtExecTest, TheRemoteExitStatusIsVtsStatus) {
  for (int code : {0, 1, 42, 255}) {
    VtRun r = vt({"exec", "--instance", kInstance, "--", "exit", std::to_string(code)});
    EXPECT_EQ(r.code, code) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "");
  }
  // Without a terminal: pipes, no size, argv as given.
  EXPECT_EQ(cp_.lastPost(), json({{"argv", {"exit", "255"}}, {"tty", false}}));
  EXPECT_EQ(cp_.lastPostInstance(), kInstance);
}

TEST_F(VtExecTest, StdoutAndStderrStaySeparateAndNotStartedSaysWhy) {
  VtRun r = vt({"exec", "--instance", kInstance, "--", "streams"});
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "to stdout\n");
  EXPECT_EQ(r.err, "to stderr\n");
  r = vt({"exec", "--instance", kInstance, "--", "notfound"});
  EXPECT_EQ(r.code, 127);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "vt: exec: nope: not found\n");
}

TEST_F(VtExecTest, StdinIsBinarySafeAndCreditIsRespected) {
  std::string data(4 << 20, '\0');
  std::mt19937 rng(17);
  for (char& c : data) c = static_cast<char>(rng() & 0xff);
  VtRun r = vt({"exec", "-i", "--instance", kInstance, "--", "cat"}, data);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(cp_.violation(), "");
  ASSERT_EQ(r.out.size(), data.size());
  EXPECT_TRUE(r.out == data);
  EXPECT_EQ(r.err, "");
  // Without -i, stdin is not read: the command gets EOF at once.
  r = vt({"exec", "--instance", kInstance, "--", "cat"}, "ignored");
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(VtExecTest, SignalsToVtReachTheRemoteCommand) {
  auto p = start({"exec", "--instance", kInstance, "--", "sleep"});
  ASSERT_TRUE(p);
  for (int i = 0; i < 1000 && !cp_.seen.ready.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(cp_.seen.ready.load());
  p->signal(SIGINT);
  VtRun r = finish(*p);
  EXPECT_EQ(cp_.seen.signal.load(), SIGINT);  // forwarded, not vt dying of it
  EXPECT_EQ(r.code, 130) << r.err;
  EXPECT_EQ(r.err, "");
}

TEST_F(VtExecTest, LostAndRefusedSessionsExit255WithAVtLine) {
  VtRun r = vt({"exec", "--instance", kInstance, "--", "lost"});
  EXPECT_EQ(r.code, 255);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "vt: exec session lost: the instance's VM exited\n");
  r = vt({"exec", "--instance", kInstance, "--", "refused"});
  EXPECT_EQ(r.code, 255);
  EXPECT_EQ(r.err, "vt: exec refused: too many exec sessions\n");
}

TEST_F(VtExecTest, ApiErrorsExit255WithTheServersMessage) {
  VtRun r = vt({"exec", "--instance", kMissing, "--", "exit", "0"});
  EXPECT_EQ(r.code, 255);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "vt: instance inst_01jc0000000000000000000009 not found\n");
}

TEST_F(VtExecTest, WithoutInstanceTheLowestHealthyOneOfTheProcessIsPicked) {
  auto inst = [](const char* id, const char* type, const char* state) {
    return json{{"id", id},
                {"process_type", type},
                {"current_state", state},
                {"desired_state", "run"},
                {"node_id", nullptr},
                {"reason", nullptr}};
  };
  cp_.setInstances(json::array({inst("inst_01jc0000000000000000000003", "web", "healthy"),
                                inst(kOther, "web", "healthy"), inst(kInstance, "web", "booting"),
                                inst("inst_01jc0000000000000000000000", "worker", "healthy")}));
  VtRun r = vt({"exec", "--", "exit", "7"});
  EXPECT_EQ(r.code, 7) << r.err;
  EXPECT_EQ(cp_.lastPostInstance(), kOther);
  r = vt({"exec", "--process", "worker", "--", "exit", "8"});
  EXPECT_EQ(r.code, 8) << r.err;
  EXPECT_EQ(cp_.lastPostInstance(), "inst_01jc0000000000000000000000");
  cp_.setInstances(json::array({inst(kInstance, "web", "unhealthy")}));
  r = vt({"exec", "--", "exit", "0"});
  EXPECT_EQ(r.code, 255);
  EXPECT_EQ(r.err, "vt: no healthy instance of process `web` of env prod (app hello): " +
                       std::string(kInstance) +
                       " unhealthy\n"
                       "vt: hint: pick one that runs with --instance ID\n");
  r = vt({"exec", "--process", "cron", "--", "exit", "0"});
  EXPECT_EQ(r.code, 255);
  EXPECT_NE(r.err.find("vt: no instance of process `cron`"), std::string::npos) << r.err;
}

TEST_F(VtExecTest, OnATerminalKeysGoRawResizeFollowsAndTheTerminalIsRestored) {
  Pty pty;
  std::vector<std::string> argv = {PLFM_VT_BIN, "exec", "--instance", kInstance, "--", "tty"};
  SpawnOptions o;
  o.stdin_fd = pty.slave();
  o.stdout_path = pty.slaveName();
  o.stderr_path = dir_.file("tty-err");
  o.env = env();
  auto p = spawn(argv, o);
  ASSERT_TRUE(p);
  // -i -t by default, with the terminal's size; raw mode once the session runs.
  ASSERT_TRUE(eventually([&] { return pty.isRaw(); }));
  EXPECT_EQ(cp_.lastPost(), json({{"argv", {"tty"}}, {"tty", true}, {"rows", 30}, {"cols", 100}}));
  // Ctrl-C is a byte for the remote terminal, not a signal to vt.
  const std::string keys = {'a', '\x03', 'b'};  // Ctrl-C between two letters
  pty.type(keys);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(cp_.seen.mu);
    return cp_.seen.tty_input == keys;
  }));
  ASSERT_TRUE(eventually([&] { return pty.output().find(keys) != std::string::npos; }));
  pty.resize(40, 120);
  p->signal(SIGWINCH);
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(cp_.seen.mu);
    return cp_.seen.rows == 40 && cp_.seen.cols == 120;
  }));
  pty.type("q");
  auto status = p->waitFor(std::chrono::seconds(30));
  ASSERT_TRUE(status);
  EXPECT_EQ(exitCodeOf(*status), 5);
  EXPECT_TRUE(pty.restored());
  EXPECT_EQ(readFile(dir_.file("tty-err")).value_or("?"), "");
}

TEST_F(VtExecTest, SigtermDuringATerminalSessionKillsTheRemoteAndRestoresTheTerminal) {
  for (int sig : {SIGTERM, SIGHUP}) {
    Pty pty;
    std::vector<std::string> argv = {PLFM_VT_BIN, "exec", "--instance", kInstance, "--", "tty"};
    SpawnOptions o;
    o.stdin_fd = pty.slave();
    o.stdout_path = pty.slaveName();
    o.stderr_path = dir_.file("tty-err");
    std::filesystem::remove(dir_.file("tty-err"));
    o.env = env();
    {
      std::lock_guard lock(cp_.seen.mu);
      cp_.seen.aborted = false;
    }
    auto p = spawn(argv, o);
    ASSERT_TRUE(p);
    ASSERT_TRUE(eventually([&] { return pty.isRaw(); }));
    p->signal(sig);
    auto status = p->waitFor(std::chrono::seconds(30));
    ASSERT_TRUE(status) << sig;
    EXPECT_EQ(exitCodeOf(*status), 128 + sig);
    EXPECT_TRUE(pty.restored());
    EXPECT_TRUE(eventually([&] {
      std::lock_guard lock(cp_.seen.mu);
      return cp_.seen.aborted;
    }));
    EXPECT_EQ(readFile(dir_.file("tty-err")).value_or(""),
              std::string("vt: exec: stopped by ") + (sig == SIGTERM ? "SIGTERM" : "SIGHUP") +
                  "; the remote command was killed\n");
  }
}

// `vt exec -- yes | head -c 10`: when the reader goes away, the remote command
// is stopped and vt ends as a local command would, of SIGPIPE (141).
TEST_F(VtExecTest, AClosedStdoutStopsTheRemoteCommand) {
  const std::string fifo = dir_.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(reader, 0);
  std::vector<std::string> argv = {PLFM_VT_BIN, "exec", "--instance", kInstance, "--", "yes"};
  SpawnOptions o;
  o.stdout_path = fifo;
  o.stderr_path = dir_.file("err");
  o.env = env();
  auto p = spawn(argv, o);
  ASSERT_TRUE(p);
  std::string got;
  ASSERT_TRUE(eventually([&] {
    std::array<char, 10> buf{};
    ssize_t n = ::read(reader, buf.data(), buf.size() - got.size());
    if (n > 0) got.append(buf.data(), static_cast<size_t>(n));
    return got.size() == 10;
  }));
  EXPECT_EQ(got, "yyyyyyyyyy");
  ::close(reader);
  auto status = p->waitFor(std::chrono::seconds(30));
  ASSERT_TRUE(status);
  EXPECT_EQ(exitCodeOf(*status), 141);
  EXPECT_TRUE(eventually([&] {
    std::lock_guard lock(cp_.seen.mu);
    return cp_.seen.aborted;
  }));
  EXPECT_EQ(readFile(dir_.file("err")).value_or("?"), "");
}

// The ticket goes only to the control plane vt asked: an exec URL that
// names another host is refused before anything is sent there.
TEST_F(VtExecTest, TheTicketIsNeverSentToAnotherHost) {
  for (const char* url : {"//evil.example/v1/exec", "https://evil.example/v1/exec", ""}) {
    cp_.setExecUrl(url);
    VtRun r = vt({"exec", "--instance", kInstance, "--", "exit", "0"});
    EXPECT_EQ(r.code, 255) << url;
    EXPECT_EQ(r.err,
              "vt: the control plane named an exec URL that is not a path on it\n"
              "vt: hint: the ticket was not sent anywhere; check the URL `vt context show` "
              "prints\n");
  }
  EXPECT_EQ(cp_.sessions(), 0);
}

TEST_F(VtExecTest, AReplayWithoutTicketOrARefusedTicketExit255) {
  VtRun r = vt({"exec", "--instance", kInstance, "--", "replay"});
  EXPECT_EQ(r.code, 255);
  EXPECT_EQ(r.err,
            "vt: the control plane replayed an earlier exec request without its ticket\n"
            "vt: hint: run the command again\n");
  r = vt({"exec", "--instance", kInstance, "--", "stale"});
  EXPECT_EQ(r.code, 255);
  EXPECT_EQ(r.err,
            "vt: the control plane refused the exec ticket (expired or already used)\n"
            "vt: hint: run the command again\n");
  EXPECT_EQ(cp_.sessions(), 0);
}

// `vt exec -- yes | stuck-reader`: a stdout nobody reads blocks the output
// (backpressure), and three Ctrl-C still end vt: the remote command is
// aborted and vt does not hang on its blocked write.
TEST_F(VtExecTest, ThreeSignalsEndVtEvenWhenItsStdoutIsStuck) {
  const std::string fifo = dir_.file("stuck");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  int reader = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);  // never read
  ASSERT_GE(reader, 0);
  std::vector<std::string> argv = {PLFM_VT_BIN, "exec", "--instance", kInstance, "--", "yes"};
  SpawnOptions o;
  o.stdout_path = fifo;
  o.stderr_path = dir_.file("err");
  o.env = env();
  auto p = spawn(argv, o);
  ASSERT_TRUE(p);
  ASSERT_TRUE(eventually([&] { return cp_.sessions() == 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // the pipe fills up
  for (int i = 0; i < 3; ++i) {
    p->signal(SIGINT);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto status = p->waitFor(std::chrono::seconds(20));
  ::close(reader);
  ASSERT_TRUE(status) << "vt hung on its blocked stdout";
  EXPECT_EQ(exitCodeOf(*status), 130);
  EXPECT_EQ(readFile(dir_.file("err")).value_or(""),
            "vt: exec: stopped by SIGINT; the remote command was killed\n");
}

}  // namespace
}  // namespace plfm::vt
