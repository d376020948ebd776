// runExecSession (stdin within credit, signals, EOF, the end of a session),
// the signal pipe, FdSink and RawMode, over pipes and a fake connection: no
// terminal, no network.
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

#include "exec_fakes.h"
#include "exec_pump.h"
#include "exec_session.h"
#include "plfm/guest_proto/exec.h"
#include "plfm/http/websocket.h"

namespace plfm::vt {
namespace {

namespace gp = guest_proto;
using testing::FakeConnection;
using testing::StringSink;

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
