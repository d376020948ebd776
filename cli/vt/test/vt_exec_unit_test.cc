// ExecPump (frames, credit, exit status) and runExecSession (stdin within
// credit, signals, EOF) with a fake connection, string sinks and pipes: no
// terminal, no network.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

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
#include "exec_pump.h"
#include "exec_session.h"
#include "plfm/guest_proto/exec.h"
#include "plfm/guest_proto/frame.h"
#include "plfm/http/websocket.h"

namespace plfm::vt {
namespace {

namespace gp = guest_proto;

// The server side of a connection, in memory. The test pushes server
// messages (or an end) with serve()/end(); what the client wrote is in
// sent(), decoded.
class FakeConnection : public ExecConnection {
 public:
  Result<std::string> read() override {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return !inbox_.empty() || end_.has_value(); });
    if (!inbox_.empty()) {
      std::string m = std::move(inbox_.front());
      inbox_.pop_front();
      return m;
    }
    return *end_;
  }
  Result<void> write(std::string_view message) override {
    std::lock_guard lock(mu_);
    if (closed_) return Error(http::kErrWebSocketClosed, "closed");
    gp::Decoder d;
    d.feed(message);
    auto f = d.next();
    EXPECT_TRUE(f && f->has_value() && d.buffered() == 0) << "one frame per message";
    if (f && f->has_value()) sent_.push_back(**f);
    cv_.notify_all();
    return {};
  }
  Result<void> close(uint16_t code, std::string_view reason) override {
    std::lock_guard lock(mu_);
    closed_ = true;
    close_code_ = code;
    close_reason_ = std::string(reason);
    if (!end_) end_ = closedError(code, std::string(reason));
    cv_.notify_all();
    return {};
  }

  template <class M>
  void serve(const M& m) {
    auto frame = gp::encode(m, gp::kFirstExecStream);
    ASSERT_TRUE(frame);
    serveRaw(*frame);
  }
  void serveRaw(std::string message) {
    std::lock_guard lock(mu_);
    inbox_.push_back(std::move(message));
    cv_.notify_all();
  }
  void end(Error e) {
    std::lock_guard lock(mu_);
    end_ = std::move(e);
    cv_.notify_all();
  }
  static Error closedError(uint16_t code, std::string reason) {
    return Error(http::kErrWebSocketClosed, "closed")
        .with("close_code", std::to_string(code))
        .with("close_reason", std::move(reason));
  }

  std::vector<gp::Frame> sent() {
    std::lock_guard lock(mu_);
    return sent_;
  }
  // Waits until a frame of `type` was sent; returns it.
  std::optional<gp::Frame> waitFor(gp::FrameType type, size_t nth = 0) {
    std::unique_lock lock(mu_);
    std::optional<gp::Frame> found;
    cv_.wait_for(lock, std::chrono::seconds(10), [&] {
      size_t seen = 0;
      for (const auto& f : sent_) {
        if (f.type == type && seen++ == nth) {
          found = f;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  std::optional<uint16_t> closeCode() {
    std::lock_guard lock(mu_);
    return close_code_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> inbox_;
  std::optional<Error> end_;
  std::vector<gp::Frame> sent_;
  bool closed_ = false;
  std::optional<uint16_t> close_code_;
  std::string close_reason_;
};

class StringSink : public ByteSink {
 public:
  Result<void> write(std::string_view bytes) override {
    if (broken) return Error(kErrBrokenPipe, "gone");
    data += bytes;
    return {};
  }
  std::string data;
  bool broken = false;
};

gp::ExecData out(std::string s) { return {.fd = gp::ExecFd::kStdout, .data = std::move(s)}; }

uint32_t windowSum(const std::vector<gp::Frame>& frames) {
  uint32_t sum = 0;
  for (const auto& f : frames) {
    if (f.type != gp::FrameType::kExecWindow) continue;
    sum += gp::decodeExecWindow(f.payload)->increment;
  }
  return sum;
}

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

// ---- runExecSession over pipes ----

struct Pipe {
  int r = -1;
  int w = -1;
  Pipe() {
    // NOLINTNEXTLINE(cppcoreguidelines-avoid-c-arrays)
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    closeRead();
    closeWrite();
  }
  void closeRead() {
    if (r >= 0) ::close(r);
    r = -1;
  }
  void closeWrite() {
    if (w >= 0) ::close(w);
    w = -1;
  }
};

TEST(ExecSessionTest, StdinIsCopiedWithinCreditThenEof) {
  FakeConnection conn;
  StringSink o;
  StringSink e;
  ExecPump pump(conn, o, e);
  Pipe in;
  // 300 KiB: more than the initial 256 KiB of credit.
  std::string data(size_t{300} * 1024, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 7);
  std::thread writer([&] {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(in.w, data.data() + off, data.size() - off);
      if (n <= 0) break;
      off += static_cast<size_t>(n);
    }
    in.closeWrite();
  });
  std::optional<ExecOutcome> outcome;
  std::thread session([&] { outcome = runExecSession(conn, pump, {.stdin_fd = in.r}); });
  // Wait until the whole initial credit was sent, then check that nothing
  // more goes out before a WINDOW.
  auto received = [&] {
    size_t n = 0;
    for (const auto& f : conn.sent()) {
      if (f.type == gp::FrameType::kExecData) n += gp::decodeExecData(f.payload)->data.size();
    }
    return n;
  };
  for (int i = 0; i < 1000 && received() < gp::kExecInitialWindow; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(received(), gp::kExecInitialWindow);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(received(), gp::kExecInitialWindow);
  conn.serve(gp::ExecWindow{.increment = gp::kExecInitialWindow});
  ASSERT_TRUE(conn.waitFor(gp::FrameType::kExecClose));
  EXPECT_EQ(received(), data.size());
  std::string got;
  for (const auto& f : conn.sent()) {
    if (f.type == gp::FrameType::kExecData) got += gp::decodeExecData(f.payload)->data;
  }
  EXPECT_EQ(got, data);
  EXPECT_EQ(gp::decodeExecClose(conn.sent().back().payload)->kind, gp::ExecCloseKind::kStdinEof);
  conn.serve(gp::ExecExit{.kind = gp::ExecExitKind::kExited, .code = 3, .message = ""});
  conn.end(FakeConnection::closedError(1000, ""));  // as the server does after EXIT
  session.join();
  writer.join();
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, 3);
  // The server's close ended it: vt sent no close of its own to cross it.
  EXPECT_FALSE(conn.closeCode());
}

TEST(ExecSessionTest, WithoutStdinEofIsSentAtOnce) {
  FakeConnection conn;
  StringSink o;
  StringSink e;
  ExecPump pump(conn, o, e);
  std::optional<ExecOutcome> outcome;
  std::thread session([&] { outcome = runExecSession(conn, pump, {}); });
  auto close = conn.waitFor(gp::FrameType::kExecClose);
  ASSERT_TRUE(close);
  EXPECT_EQ(gp::decodeExecClose(close->payload)->kind, gp::ExecCloseKind::kStdinEof);
  conn.end(FakeConnection::closedError(4000, "the node agent is stopping"));
  session.join();
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, 255);
  EXPECT_EQ(outcome->message, "vt: exec session lost: the node agent is stopping");
}

TEST(ExecSessionTest, SignalsBecomeSignalFramesOrAnAbortOnARawTerminal) {
  {
    FakeConnection conn;
    StringSink o;
    StringSink e;
    ExecPump pump(conn, o, e);
    Pipe sigs;
    std::optional<ExecOutcome> outcome;
    std::thread session(
        [&] { outcome = runExecSession(conn, pump, {.signal_fd = sigs.r, .raw_tty = false}); });
    for (unsigned char s : {SIGINT, SIGTERM, SIGWINCH}) ASSERT_EQ(::write(sigs.w, &s, 1), 1);
    auto second = conn.waitFor(gp::FrameType::kExecSignal, 1);
    ASSERT_TRUE(second);
    EXPECT_EQ(gp::decodeExecSignal(second->payload)->signal, SIGTERM);
    EXPECT_EQ(gp::decodeExecSignal(conn.waitFor(gp::FrameType::kExecSignal)->payload)->signal,
              SIGINT);
    conn.serve(gp::ExecExit{.kind = gp::ExecExitKind::kSignaled, .code = SIGINT, .message = ""});
    conn.end(FakeConnection::closedError(1000, ""));
    session.join();
    EXPECT_EQ(outcome->status, 130);
    // SIGWINCH without a terminal sends nothing.
    for (const auto& f : conn.sent()) EXPECT_NE(f.type, gp::FrameType::kExecResize);
  }
  {
    FakeConnection conn;
    StringSink o;
    StringSink e;
    ExecPump pump(conn, o, e);
    Pipe sigs;
    std::optional<ExecOutcome> outcome;
    std::thread session([&] {
      outcome = runExecSession(
          conn, pump,
          {.signal_fd = sigs.r, .raw_tty = true, .close_grace = std::chrono::milliseconds(50)});
    });
    unsigned char s = SIGHUP;
    ASSERT_EQ(::write(sigs.w, &s, 1), 1);
    session.join();
    EXPECT_EQ(outcome->status, 128 + SIGHUP);
    EXPECT_EQ(outcome->message, "vt: exec: stopped by SIGHUP; the remote command was killed");
    auto abort = conn.waitFor(gp::FrameType::kExecClose, 1);  // after stdin_eof
    ASSERT_TRUE(abort);
    EXPECT_EQ(gp::decodeExecClose(abort->payload)->kind, gp::ExecCloseKind::kAbort);
    // This fake never answers the abort: vt closes after the grace period.
    EXPECT_EQ(conn.closeCode(), http::kCloseNormal);
  }
}

TEST(ExecSessionTest, TheThirdSignalStopsTheRemoteCommand) {
  FakeConnection conn;
  StringSink o;
  StringSink e;
  ExecPump pump(conn, o, e);
  Pipe sigs;
  std::optional<ExecOutcome> outcome;
  std::thread session([&] {
    outcome = runExecSession(conn, pump,
                             {.signal_fd = sigs.r, .close_grace = std::chrono::milliseconds(50)});
  });
  for (unsigned char s : {SIGINT, SIGINT, SIGINT}) ASSERT_EQ(::write(sigs.w, &s, 1), 1);
  session.join();
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->status, 130);
  EXPECT_EQ(outcome->message, "vt: exec: stopped by SIGINT; the remote command was killed");
  int forwarded = 0;
  for (const auto& f : conn.sent()) forwarded += f.type == gp::FrameType::kExecSignal ? 1 : 0;
  EXPECT_EQ(forwarded, 2);
  EXPECT_EQ(gp::decodeExecClose(conn.waitFor(gp::FrameType::kExecClose, 1)->payload)->kind,
            gp::ExecCloseKind::kAbort);
}

TEST(ExecSessionTest, SignalPipeCatchesAndRestores) {
  struct sigaction before {};
  ::sigaction(SIGHUP, nullptr, &before);
  {
    SignalPipe pipe({SIGHUP});
    ASSERT_EQ(::raise(SIGHUP), 0);
    unsigned char got = 0;
    ASSERT_EQ(::read(pipe.fd(), &got, 1), 1);
    EXPECT_EQ(got, SIGHUP);
  }
  struct sigaction after {};
  ::sigaction(SIGHUP, nullptr, &after);
  EXPECT_EQ(after.sa_handler, before.sa_handler);
}

TEST(ExecSessionTest, FdSinkReportsABrokenPipe) {
  SignalPipe ignore_sigpipe({});
  Pipe p;
  p.closeRead();
  FdSink sink(p.w);
  auto r = sink.write("x");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(kErrBrokenPipe));
}

TEST(ExecSessionTest, ABlockedFdSinkCanBeCancelled) {
  Pipe p;
  // Fill the pipe, as a reader that stopped reading would leave it.
  ASSERT_EQ(::fcntl(p.w, F_SETFL, O_NONBLOCK), 0);
  std::string chunk(4096, 'x');
  while (::write(p.w, chunk.data(), chunk.size()) > 0) {
  }
  ASSERT_EQ(::fcntl(p.w, F_SETFL, 0), 0);
  FdSink sink(p.w);
  std::optional<Result<void>> result;
  std::thread writer([&] { result = sink.write("more"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(result.has_value());  // blocked
  sink.cancel();
  writer.join();
  ASSERT_TRUE(result.has_value());
  EXPECT_FALSE(*result);
}

TEST(ExecSessionTest, RawModeIsANoOpOffATerminal) {
  Pipe p;
  RawMode raw(p.r);
  EXPECT_FALSE(raw.ok());
  EXPECT_FALSE(terminalSize(p.r));
}

}  // namespace
}  // namespace plfm::vt

// ---- the command line ----

namespace plfm::vt {
namespace {

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
