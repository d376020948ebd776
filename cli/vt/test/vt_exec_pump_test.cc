// ExecPump (frames, credit, exit status) with a fake connection and string
// sinks, and `vt exec`'s command line: no terminal, no network.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli.h"
#include "commands.h"
#include "exec_fakes.h"
#include "exec_pump.h"
#include "plfm/guest_proto/exec.h"
#include "plfm/http/websocket.h"

namespace plfm::vt {
namespace {

namespace gp = guest_proto;
using testing::FakeConnection;
using testing::out;
using testing::StringSink;
using testing::windowSum;

struct PumpTest : ::testing::Test {
  FakeConnection conn;
  StringSink stdout_sink;
  StringSink stderr_sink;
  ExecPump pump{conn, stdout_sink, stderr_sink};

  ExecPump::Step feed(const auto& m) {
    auto frame = gp::encode(m, gp::kFirstExecStream);
    EXPECT_TRUE(frame);
    return pump.onMessage(*frame);
  }
};

TEST_F(PumpTest, OutputGoesToItsSinkAndExitSetsTheStatus) {
  EXPECT_EQ(feed(out("hello ")), ExecPump::Step::kContinue);
  EXPECT_EQ(feed(gp::ExecData{.fd = gp::ExecFd::kStderr, .data = "oops"}),
            ExecPump::Step::kContinue);
  EXPECT_EQ(feed(out(std::string("\0\xff", 2))), ExecPump::Step::kContinue);
  EXPECT_FALSE(pump.done());
  EXPECT_EQ(feed(gp::ExecExit{.kind = gp::ExecExitKind::kExited, .code = 42, .message = ""}),
            ExecPump::Step::kDone);
  EXPECT_EQ(stdout_sink.data, std::string("hello \0\xff", 8));
  EXPECT_EQ(stderr_sink.data, "oops");
  EXPECT_TRUE(pump.done());
  EXPECT_EQ(pump.outcome().status, 42);
  EXPECT_EQ(pump.outcome().message, "");
  // Later messages (and the closing 1000) change nothing.
  EXPECT_EQ(feed(out("late")), ExecPump::Step::kDone);
  pump.onReadError(FakeConnection::closedError(1000, ""));
  EXPECT_EQ(pump.outcome().status, 42);
  EXPECT_EQ(stdout_sink.data.size(), 8U);
}

TEST_F(PumpTest, ExitKindsMapToTheStatusTable) {
  struct Case {
    gp::ExecExit exit;
    int status;
  };
  for (const Case& c : {Case{{gp::ExecExitKind::kExited, 0, ""}, 0},
                        Case{{gp::ExecExitKind::kSignaled, 2, ""}, 130},
                        Case{{gp::ExecExitKind::kSignaled, 9, ""}, 137},
                        Case{{gp::ExecExitKind::kTimedOut, 9, ""}, 137},
                        Case{{gp::ExecExitKind::kNotStarted, 127, "nope: not found"}, 127}}) {
    FakeConnection conn2;
    StringSink o;
    StringSink e;
    ExecPump p(conn2, o, e);
    auto frame = gp::encode(c.exit, gp::kFirstExecStream);
    ASSERT_TRUE(frame);
    EXPECT_EQ(p.onMessage(*frame), ExecPump::Step::kDone);
    EXPECT_EQ(p.outcome().status, c.status);
  }
  EXPECT_EQ(feed(gp::ExecExit{.kind = gp::ExecExitKind::kNotStarted,
                              .code = 126,
                              .message = "x: permission denied\x1b]0;pwned\x07"}),
            ExecPump::Step::kDone);
  EXPECT_EQ(pump.outcome().status, 126);
  // The guest's text cannot drive the terminal.
  EXPECT_EQ(pump.outcome().message, "vt: exec: x: permission denied?]0;pwned?");
}

// exec-sessions.md, Flow control: WINDOW once half the window was written,
// or when the server is down to less than one data frame of credit.
TEST_F(PumpTest, OutputCreditIsGrantedInLargeIncrements) {
  const std::string chunk(gp::kMaxExecDataBytes, 'x');
  // 7 frames = 112 KiB < 128 KiB: no WINDOW yet.
  for (int i = 0; i < 7; ++i) feed(out(chunk));
  EXPECT_EQ(windowSum(conn.sent()), 0U);
  EXPECT_EQ(pump.outputCredit(), gp::kExecInitialWindow - 7 * gp::kMaxExecDataBytes);
  feed(out(chunk));  // 128 KiB: half the window
  EXPECT_EQ(windowSum(conn.sent()), 128U * 1024);
  EXPECT_EQ(pump.outputCredit(), gp::kExecInitialWindow);
  EXPECT_EQ(stdout_sink.data.size(), 8 * gp::kMaxExecDataBytes);
}

TEST_F(PumpTest, SmallCreditLeftIsTopedUpAfterAWrite) {
  FakeConnection c;
  StringSink o;
  StringSink e;
  ExecPump p(c, o, e, /*output_window=*/gp::kMinExecWindow);  // 16 KiB: one frame
  auto frame = gp::encode(out("abc"), gp::kFirstExecStream);
  ASSERT_TRUE(frame);
  p.onMessage(*frame);
  // 16 KiB - 3 < one frame: granted at once, so the sender never waits on
  // bytes we already wrote.
  EXPECT_EQ(windowSum(c.sent()), 3U);
  EXPECT_EQ(p.outputCredit(), gp::kMinExecWindow);
}

// The sink writes synchronously and credit is granted after each write, so
// the server's credit never drops below half a window (or one frame with a
// small window): a well-behaved server never waits on a byte we wrote.
TEST_F(PumpTest, CreditNeverRunsOutWhileTheSinkKeepsUp) {
  const std::string chunk(gp::kMaxExecDataBytes, 'x');
  for (int i = 0; i < 64; ++i) {  // 1 MiB through a 256 KiB window
    ASSERT_EQ(feed(out(chunk)), ExecPump::Step::kContinue);
    EXPECT_GE(pump.outputCredit(), gp::kExecInitialWindow / 2);
  }
  EXPECT_EQ(stdout_sink.data.size(), 64 * gp::kMaxExecDataBytes);
  // credit = initial - received + granted
  EXPECT_EQ(uint64_t{pump.outputCredit()} + 64 * gp::kMaxExecDataBytes,
            uint64_t{gp::kExecInitialWindow} + windowSum(conn.sent()));
}

TEST_F(PumpTest, StdinCreditIsEnforcedAndRefilledByWindow) {
  EXPECT_EQ(pump.stdinCredit(), gp::kExecInitialWindow);
  std::string big(gp::kExecInitialWindow, 's');
  ASSERT_TRUE(pump.sendStdin(big));
  EXPECT_EQ(pump.stdinCredit(), 0U);
  EXPECT_FALSE(pump.sendStdin("x"));  // beyond the credit: refused, nothing sent
  auto sent = conn.sent();
  ASSERT_EQ(sent.size(), gp::kExecInitialWindow / gp::kMaxExecDataBytes);
  for (const auto& f : sent) {
    ASSERT_EQ(f.type, gp::FrameType::kExecData);
    auto d = gp::decodeExecData(f.payload);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->fd, gp::ExecFd::kStdin);
    EXPECT_EQ(d->data.size(), gp::kMaxExecDataBytes);
  }
  EXPECT_EQ(feed(gp::ExecWindow{.increment = 1000}), ExecPump::Step::kCredit);
  EXPECT_EQ(pump.stdinCredit(), 1000U);
  ASSERT_TRUE(pump.sendStdinEof());
  EXPECT_EQ(pump.stdinCredit(), 0U);  // no stdin after EOF
  EXPECT_FALSE(pump.sendStdin("x"));
  EXPECT_EQ(conn.sent().back().type, gp::FrameType::kExecClose);
}

TEST_F(PumpTest, StdinCreditAboveTheLimitIsAPolicyViolation) {
  EXPECT_EQ(feed(gp::ExecWindow{.increment = gp::kMaxExecCredit}), ExecPump::Step::kDone);
  EXPECT_EQ(conn.closeCode(), http::kClosePolicyViolation);
  EXPECT_EQ(pump.outcome().status, kExecFailureStatus);
  EXPECT_NE(pump.outcome().message.find("vt: exec session lost: "), std::string::npos);
}

TEST_F(PumpTest, FramesAClientMustNotReceiveAreProtocolErrors) {
  EXPECT_EQ(feed(gp::ExecSignal{.signal = 2}), ExecPump::Step::kDone);
  EXPECT_EQ(conn.closeCode(), http::kCloseProtocolError);
  EXPECT_EQ(pump.outcome().status, kExecFailureStatus);

  for (const std::string& bad :
       {std::string("junk"), std::string(),
        *gp::encode(out("a"), gp::kFirstExecStream) + *gp::encode(out("b"), gp::kFirstExecStream),
        *gp::encode(gp::ExecData{.fd = gp::ExecFd::kStdin, .data = "x"}, gp::kFirstExecStream)}) {
    FakeConnection c;
    StringSink o;
    StringSink e;
    ExecPump p(c, o, e);
    EXPECT_EQ(p.onMessage(bad), ExecPump::Step::kDone);
    EXPECT_EQ(c.closeCode(), http::kCloseProtocolError);
    EXPECT_EQ(p.outcome().status, kExecFailureStatus);
    EXPECT_EQ(o.data, "");
  }
}

TEST_F(PumpTest, CloseCodesBeforeExitAreLostOrRefused) {
  struct Case {
    Error error;
    std::string message;
  };
  for (const Case& c : {
           Case{FakeConnection::closedError(4000, "the instance's VM exited"),
                "vt: exec session lost: the instance's VM exited"},
           Case{FakeConnection::closedError(4001, "too many sessions"),
                "vt: exec refused: too many sessions"},
           Case{FakeConnection::closedError(4000, "evil\x1b[2J"),
                "vt: exec session lost: evil?[2J"},
           Case{FakeConnection::closedError(1000, ""),
                "vt: exec session lost: the control plane closed the connection before the "
                "command exited (code 1000)"},
           Case{Error(errc::kDeadlineExceeded, "the peer stopped answering"),
                "vt: exec session lost: the peer stopped answering"},
       }) {
    FakeConnection conn2;
    StringSink o;
    StringSink e;
    ExecPump p(conn2, o, e);
    p.onReadError(c.error);
    EXPECT_TRUE(p.done());
    EXPECT_EQ(p.outcome().status, kExecFailureStatus);
    EXPECT_EQ(p.outcome().message, c.message);
  }
}

TEST_F(PumpTest, ABrokenStdoutAbortsTheRemoteCommand) {
  stdout_sink.broken = true;
  EXPECT_EQ(feed(out("x")), ExecPump::Step::kDone);
  EXPECT_EQ(pump.outcome().status, 128 + SIGPIPE);
  auto close = gp::decodeExecClose(conn.sent().back().payload);
  ASSERT_TRUE(close);
  EXPECT_EQ(close->kind, gp::ExecCloseKind::kAbort);
}

// ---- the command line ----

std::vector<std::string> words(std::initializer_list<const char*> w) {
  return {w.begin(), w.end()};
}

TEST(ExecArgsTest, BundledSwitchesAndTheCommandAfterDashDash) {
  static const Command root = buildRootCommand();
  auto p = parseArgs(root, words({"exec", "-it", "--process", "worker", "--", "sh", "-c", "x"}));
  ASSERT_TRUE(p) << p.error().message();
  EXPECT_EQ(p->commandLine(), "vt exec");
  EXPECT_TRUE(p->has("interactive"));
  EXPECT_TRUE(p->has("tty"));
  EXPECT_EQ(p->value("process"), "worker");
  EXPECT_EQ(p->positionals, words({"sh", "-c", "x"}));
  // A bundle with a flag that takes a value (or an unknown letter) is no bundle.
  EXPECT_FALSE(parseArgs(root, words({"exec", "-iz", "--", "sh"})));
}

// Like ssh, vt's own failures exit 255 so that they stand apart from the
// remote command's statuses (usage errors included).
TEST(ExecArgsTest, UsageErrorsExit255WithAVtLine) {
  std::ostringstream out;
  std::ostringstream err;
  EXPECT_EQ(run(words({"exec"}), out, err, false), 255);
  EXPECT_EQ(err.str().rfind("vt: `vt exec` needs CMD", 0), 0U) << err.str();
  err.str("");
  EXPECT_EQ(run(words({"exec", "-t", "-T", "--", "sh"}), out, err, false), 255);
  EXPECT_EQ(err.str(), "vt: -t/--tty and -T/--no-tty contradict each other\n");
  err.str("");
  EXPECT_EQ(run(words({"exec", "--instance", "nope", "--", "sh"}), out, err, false), 255);
  EXPECT_EQ(err.str().rfind("vt: --instance: ", 0), 0U) << err.str();
  EXPECT_EQ(out.str(), "");
  err.str("");
  EXPECT_EQ(run({"exec", "--", "echo", "\xff"}, out, err, false), 255);
  EXPECT_EQ(err.str(),
            "vt: argument 2 of the command is not valid UTF-8, which the API cannot carry\n");
  // Other commands keep their codes.
  EXPECT_EQ(run(words({"apps", "lisst"}), out, err, false), 2);
}

}  // namespace
}  // namespace plfm::vt
