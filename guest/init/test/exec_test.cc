// ExecSessions driven over a socketpair with real processes, as vt-init's
// main loop drives it in the guest (no VM): the test plays the agent, with a
// frame decoder, per-stream credit, and the guest's Channel on the other end.
#include "exec.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <functional>
#include <map>
#include <optional>

#include "channel.h"
#include "plfm/guest_proto/guest_proto.h"
#include "sys.h"

namespace plfm::init {
namespace {

namespace gp = guest_proto;

// What the host knows about one session.
struct HostStream {
  std::string out;  // stdout (unless on_stdout consumes it)
  std::string err;
  std::optional<gp::ExecExit> exit;
  uint32_t stdin_credit = gp::kExecInitialWindow;
  std::string stdin_pending;
  bool eof_after_stdin = false;
  bool grant = true;  // give output credit back as it arrives
  uint64_t received = 0;
  std::function<void(std::string_view)> on_stdout;
  std::function<std::string()> stdin_source;  // "" when done
};

class ExecTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    host_fd_ = fds[1];
    channel_.emplace(Channel::fromFd(fds[0]));
    ExecDefaults defaults;
    defaults.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "FROM_WORKLOAD=yes"};
    defaults.uid = ::getuid();
    defaults.gid = ::getgid();
    defaults.workdir = "/";
    sessions_ = std::make_unique<ExecSessions>(
        defaults, [this](const std::string& f) { channel_->send(f); },
        [] { return monotonicMs(); });
  }
  void TearDown() override {
    sessions_.reset();
    channel_.reset();
    ::close(host_fd_);
  }

  void hostSend(const gp::Result<std::string>& frame) {
    ASSERT_TRUE(frame.has_value()) << frame.error().toString();
    host_out_ += *frame;
  }

  uint16_t open(const gp::ExecOpen& request) {
    const uint16_t stream = next_stream_++;
    streams_[stream];
    hostSend(gp::encode(request, stream));
    return stream;
  }
  uint16_t open(std::vector<std::string> argv) {
    gp::ExecOpen o;
    o.argv = std::move(argv);
    return open(o);
  }

  void onHostFrame(const gp::Frame& f) {
    HostStream& s = streams_[f.stream];
    switch (f.type) {
      case gp::FrameType::kExecData: {
        auto d = gp::decodeExecData(f.payload);
        ASSERT_TRUE(d.has_value()) << d.error().toString();
        s.received += d->data.size();
        if (d->fd == gp::ExecFd::kStderr) {
          s.err += d->data;
        } else if (s.on_stdout) {
          s.on_stdout(d->data);
        } else {
          s.out += d->data;
        }
        if (s.grant) {
          hostSend(gp::encode(gp::ExecWindow{static_cast<uint32_t>(d->data.size())}, f.stream));
        }
        return;
      }
      case gp::FrameType::kExecWindow: {
        auto w = gp::decodeExecWindow(f.payload);
        ASSERT_TRUE(w.has_value());
        s.stdin_credit += w->increment;
        return;
      }
      case gp::FrameType::kExecExit: {
        auto e = gp::decodeExecExit(f.payload);
        ASSERT_TRUE(e.has_value()) << e.error().toString();
        EXPECT_FALSE(s.exit.has_value()) << "two EXITs on stream " << f.stream;
        s.exit = *e;
        return;
      }
      default:
        ADD_FAILURE() << "unexpected " << gp::frameTypeName(f.type);
    }
  }

  // Queues stdin within the credit the guest granted.
  void feedStdin() {
    for (auto& [stream, s] : streams_) {
      while (host_out_.size() < (size_t{1} << 20) && s.stdin_credit > 0) {
        if (s.stdin_pending.empty() && s.stdin_source) s.stdin_pending = s.stdin_source();
        if (s.stdin_pending.empty()) break;
        const auto n =
            std::min<size_t>({s.stdin_pending.size(), s.stdin_credit, gp::kMaxExecDataBytes});
        hostSend(
            gp::encode(gp::ExecData{gp::ExecFd::kStdin, s.stdin_pending.substr(0, n)}, stream));
        s.stdin_pending.erase(0, n);
        s.stdin_credit -= static_cast<uint32_t>(n);
      }
      if (s.eof_after_stdin && s.stdin_pending.empty() &&
          (!s.stdin_source || (s.stdin_pending = s.stdin_source()).empty())) {
        hostSend(gp::encode(gp::ExecClose{gp::ExecCloseKind::kStdinEof}, stream));
        s.eof_after_stdin = false;
      }
    }
  }

  // One round of the guest's loop and the host's.
  void pump() {
    feedStdin();
    std::vector<pollfd> fds;
    fds.push_back(pollfd{channel_->pollFd(), channel_->pollEvents(), 0});
    fds.push_back(
        pollfd{host_fd_, static_cast<short>(POLLIN | (host_out_.empty() ? 0 : POLLOUT)), 0});
    sessions_->addPollFds(fds);
    int timeout = sessions_->nextTimeoutMs();
    if (timeout < 0 || timeout > 5) timeout = 5;  // no SIGCHLD here: reap on a timer
    ASSERT_GE(::poll(fds.data(), fds.size(), timeout), 0);
    if (fds[0].revents != 0) {
      std::vector<gp::Frame> frames;
      auto r = channel_->onEvents(fds[0].revents, frames);
      ASSERT_TRUE(r.has_value()) << r.error();
      for (const gp::Frame& f : frames) sessions_->onFrame(f);
    }
    if (!host_out_.empty()) {
      const ssize_t n = ::write(host_fd_, host_out_.data(), host_out_.size());
      if (n > 0) host_out_.erase(0, static_cast<size_t>(n));
    }
    char buf[65536];
    for (int i = 0; i < 8; ++i) {
      const ssize_t n = ::read(host_fd_, buf, sizeof buf);
      if (n <= 0) break;
      host_decoder_.feed(buf, static_cast<size_t>(n));
    }
    while (true) {
      auto f = host_decoder_.next();
      ASSERT_TRUE(f.has_value()) << f.error().toString();
      if (!*f) break;
      onHostFrame(**f);
    }
    sessions_->onPoll(fds);
    sessions_->reapOwn();
    sessions_->onTick();
    peak_buffered_ = std::max(peak_buffered_, sessions_->bufferedBytes());
  }

  bool runUntil(const std::function<bool()>& done, uint64_t timeout_ms = 20'000) {
    const uint64_t deadline = monotonicMs() + timeout_ms;
    while (!done()) {
      if (monotonicMs() > deadline || HasFatalFailure()) return false;
      pump();
    }
    return true;
  }

  gp::ExecExit waitExit(uint16_t stream) {
    EXPECT_TRUE(runUntil([&] { return streams_[stream].exit.has_value(); }))
        << "no EXIT on stream " << stream;
    return streams_[stream].exit.value_or(gp::ExecExit{});
  }

  // Runs a shell command to completion; its exit status as vt exec reports it.
  int status(const std::string& script) { return waitExit(open({"sh", "-c", script})).status(); }

  int host_fd_ = -1;
  std::optional<Channel> channel_;
  std::unique_ptr<ExecSessions> sessions_;
  std::string host_out_;
  gp::Decoder host_decoder_;
  std::map<uint16_t, HostStream> streams_;
  uint16_t next_stream_ = gp::kFirstExecStream;
  size_t peak_buffered_ = 0;
};

TEST_F(ExecTest, ExitCodesAreExact) {
  EXPECT_EQ(status("exit 0"), 0);
  EXPECT_EQ(status("exit 1"), 1);
  EXPECT_EQ(status("exit 42"), 42);
  EXPECT_EQ(status("exit 254"), 254);
  EXPECT_EQ(sessions_->size(), 0u);
}

TEST_F(ExecTest, SignalsMapTo128PlusN) {
  EXPECT_EQ(status("kill -TERM $$"), 143);
  EXPECT_EQ(status("kill -KILL $$"), 137);
  EXPECT_EQ(status("kill -INT $$"), 130);
  // Forwarded by EXEC_SIGNAL to the process group.
  for (int sig : {SIGTERM, SIGKILL, SIGINT}) {
    const uint16_t s = open({"sleep", "30"});
    ASSERT_TRUE(runUntil([&] { return sessions_->size() == 1; }));
    hostSend(gp::encode(gp::ExecSignal{sig}, s));
    const gp::ExecExit e = waitExit(s);
    EXPECT_EQ(e.kind, gp::ExecExitKind::kSignaled);
    EXPECT_EQ(e.status(), 128 + sig);
  }
}

TEST_F(ExecTest, CommandNotFoundIs127WithAMessage) {
  const gp::ExecExit e = waitExit(open({"no-such-command-xyz"}));
  EXPECT_EQ(e.kind, gp::ExecExitKind::kNotStarted);
  EXPECT_EQ(e.status(), 127);
  EXPECT_NE(e.message.find("no-such-command-xyz"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("not found"), std::string::npos) << e.message;
  // The shell's own convention for a missing program inside a script.
  EXPECT_EQ(status("no-such-command-xyz 2>/dev/null"), 127);
}

TEST_F(ExecTest, BadWorkdirAndUserAreNotStarted) {
  gp::ExecOpen o;
  o.argv = {"true"};
  o.workdir = "/no/such/dir";
  gp::ExecExit e = waitExit(open(o));
  EXPECT_EQ(e.kind, gp::ExecExitKind::kNotStarted);
  EXPECT_EQ(e.code, 1);
  EXPECT_NE(e.message.find("chdir /no/such/dir"), std::string::npos) << e.message;
  o.workdir.reset();
  o.user = "no-such-user-xyz";
  e = waitExit(open(o));
  EXPECT_EQ(e.kind, gp::ExecExitKind::kNotStarted);
  EXPECT_NE(e.message.find("unknown user"), std::string::npos) << e.message;
}

TEST_F(ExecTest, EnvWorkdirAndStreamsAreSeparate) {
  gp::ExecOpen o;
  o.argv = {"sh", "-c", "echo $FROM_WORKLOAD $EXTRA; pwd; echo oops >&2"};
  o.env = {"EXTRA=over"};
  o.workdir = "/tmp";
  const uint16_t s = open(o);
  EXPECT_EQ(waitExit(s).status(), 0);
  EXPECT_EQ(streams_[s].out, "yes over\n/tmp\n");
  EXPECT_EQ(streams_[s].err, "oops\n");
}

TEST_F(ExecTest, StdinEofEndsCat) {
  const uint16_t s = open({"cat"});
  streams_[s].stdin_pending = "hello\nworld";
  streams_[s].eof_after_stdin = true;
  EXPECT_EQ(waitExit(s).status(), 0);
  EXPECT_EQ(streams_[s].out, "hello\nworld");
}

// Deterministic, non-repeating-looking bytes: byte i of the stream.
char patternByte(uint64_t i) { return static_cast<char>(((i * 2654435761u) >> 11) ^ (i >> 17)); }

TEST_F(ExecTest, SixtyFourMiBThroughCatIsByteExactWithBoundedMemory) {
  constexpr uint64_t kTotal = uint64_t{64} << 20;
  const uint16_t s = open({"cat"});
  HostStream& h = streams_[s];
  uint64_t sent = 0;
  uint64_t checked = 0;
  bool mismatch = false;
  h.stdin_source = [&] {
    std::string chunk(std::min<uint64_t>(kTotal - sent, uint64_t{64} * 1024), '\0');
    for (char& c : chunk) c = patternByte(sent++);
    return chunk;
  };
  h.eof_after_stdin = true;
  h.on_stdout = [&](std::string_view data) {
    for (char c : data) mismatch |= c != patternByte(checked++);
  };
  const gp::ExecExit e = waitExit(s);
  EXPECT_EQ(e.status(), 0);
  EXPECT_EQ(checked, kTotal);
  EXPECT_FALSE(mismatch);
  EXPECT_LE(peak_buffered_, gp::kExecInitialWindow);
  EXPECT_LE(host_decoder_.buffered(), gp::kHeaderBytes + gp::kMaxExecDataBytes + 4);
}

TEST_F(ExecTest, ASlowReaderStallsOnlyItsOwnSession) {
  gp::ExecOpen flood;
  flood.argv = {"sh", "-c", "while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done"};
  flood.window = gp::kMinExecWindow;
  const uint16_t slow = open(flood);
  streams_[slow].grant = false;  // the host never gives credit back
  ASSERT_TRUE(runUntil([&] { return streams_[slow].received == gp::kMinExecWindow; }));
  const uint16_t fast = open({"sh", "-c", "echo fast; exit 7"});
  EXPECT_EQ(waitExit(fast).status(), 7);
  EXPECT_EQ(streams_[fast].out, "fast\n");
  // Nothing beyond the window arrived, and the guest buffered nothing.
  for (int i = 0; i < 20; ++i) pump();
  EXPECT_EQ(streams_[slow].received, gp::kMinExecWindow);
  EXPECT_EQ(sessions_->bufferedBytes(), 0u);
  hostSend(gp::encode(gp::ExecClose{gp::ExecCloseKind::kAbort}, slow));
  EXPECT_EQ(waitExit(slow).status(), 137);
}

TEST_F(ExecTest, TwentyConcurrentSessions) {
  std::map<uint16_t, int> expected;
  for (int i = 0; i < 20; ++i) {
    std::string script = "sleep 0.2; echo session ";
    script.append(std::to_string(i)).append("; exit ").append(std::to_string(i));
    expected[open({"sh", "-c", script})] = i;
  }
  ASSERT_TRUE(runUntil([&] { return sessions_->size() == 20; }, 5'000));
  for (const auto& [stream, i] : expected) {
    EXPECT_EQ(waitExit(stream).status(), i);
    EXPECT_EQ(streams_[stream].out, "session " + std::to_string(i) + "\n");
  }
  EXPECT_EQ(sessions_->size(), 0u);
}

TEST_F(ExecTest, SessionsBeyondTheLimitAreRefused) {
  for (size_t i = 0; i < ExecSessions::kMaxSessions; ++i) open({"sleep", "30"});
  ASSERT_TRUE(runUntil([&] { return sessions_->size() == ExecSessions::kMaxSessions; }));
  const gp::ExecExit e = waitExit(open({"true"}));
  EXPECT_EQ(e.kind, gp::ExecExitKind::kNotStarted);
  EXPECT_EQ(e.status(), 1);
  EXPECT_EQ(e.message, "too many exec sessions");
}

TEST_F(ExecTest, TimeoutIsEnforcedInTheGuest) {
  gp::ExecOpen o;
  o.argv = {"sleep", "30"};
  o.timeout_ms = 200;
  const uint64_t start = monotonicMs();
  const gp::ExecExit e = waitExit(open(o));
  EXPECT_EQ(e.kind, gp::ExecExitKind::kTimedOut);
  EXPECT_EQ(e.status(), 137);
  EXPECT_LT(monotonicMs() - start, 5'000u);
}

TEST_F(ExecTest, ABackgroundChildHoldingThePipeDoesNotHoldTheSession) {
  const uint16_t s = open({"sh", "-c", "sleep 2 & echo started; exit 3"});
  EXPECT_EQ(waitExit(s).status(), 3);
  EXPECT_EQ(streams_[s].out, "started\n");
}

TEST_F(ExecTest, AbortAllKillsEverySessionSilently) {
  const uint16_t a = open({"sleep", "30"});
  const uint16_t b = open({"cat"});
  ASSERT_TRUE(runUntil([&] { return sessions_->size() == 2; }));
  sessions_->abortAll();
  EXPECT_EQ(sessions_->size(), 0u);
  for (int i = 0; i < 20; ++i) pump();
  EXPECT_FALSE(streams_[a].exit.has_value());
  EXPECT_FALSE(streams_[b].exit.has_value());
}

TEST_F(ExecTest, ProtocolViolationsAbortOnlyTheirSession) {
  const uint16_t bad = open({"sleep", "30"});
  const uint16_t good = open({"sh", "-c", "sleep 0.3; exit 5"});
  ASSERT_TRUE(runUntil([&] { return sessions_->size() == 2; }));
  hostSend(gp::encode(gp::ExecData{gp::ExecFd::kStdout, "not stdin"}, bad));
  EXPECT_EQ(waitExit(bad).status(), 137);
  EXPECT_EQ(waitExit(good).status(), 5);
  // A frame for a stream with no session is dropped.
  hostSend(gp::encode(gp::ExecSignal{SIGTERM}, 0x0fff));
  for (int i = 0; i < 5; ++i) pump();

  // Credit above 2^31-1, and a second OPEN on a live stream.
  const uint16_t greedy = open({"sleep", "30"});
  const uint16_t twice = open({"sleep", "30"});
  ASSERT_TRUE(runUntil([&] { return sessions_->size() == 2; }));
  hostSend(gp::encode(gp::ExecWindow{gp::kMaxExecCredit}, greedy));
  gp::ExecOpen again;
  again.argv = {"true"};
  hostSend(gp::encode(again, twice));
  EXPECT_EQ(waitExit(greedy).status(), 137);
  EXPECT_EQ(waitExit(twice).status(), 137);
}

TEST_F(ExecTest, PtyHasTheInitialSizeAndFollowsResize) {
  gp::ExecOpen o;
  o.argv = {"sh", "-c", "stty size; read line; stty size; echo TERM=$TERM"};
  o.tty = true;
  o.rows = 30;
  o.cols = 100;
  const uint16_t s = open(o);
  ASSERT_TRUE(runUntil([&] { return streams_[s].out.find("30 100") != std::string::npos; }))
      << streams_[s].out;
  hostSend(gp::encode(gp::ExecResize{40, 120}, s));
  streams_[s].stdin_pending = "go\n";
  EXPECT_EQ(waitExit(s).status(), 0);
  EXPECT_NE(streams_[s].out.find("40 120"), std::string::npos) << streams_[s].out;
  EXPECT_NE(streams_[s].out.find("TERM=xterm-256color"), std::string::npos);
  EXPECT_TRUE(streams_[s].err.empty());
}

TEST_F(ExecTest, CtrlCOnAPtyInterruptsTheCommand) {
  gp::ExecOpen o;
  o.argv = {"sh", "-c", "echo ready; exec sleep 30"};
  o.tty = true;
  const uint16_t s = open(o);
  ASSERT_TRUE(runUntil([&] { return streams_[s].out.find("ready") != std::string::npos; }));
  for (int i = 0; i < 10; ++i) pump();  // let sh exec sleep
  streams_[s].stdin_pending = "\x03";
  const gp::ExecExit e = waitExit(s);
  EXPECT_EQ(e.kind, gp::ExecExitKind::kSignaled);
  EXPECT_EQ(e.status(), 130);
}

TEST_F(ExecTest, StdinEofOnAPtyEndsCat) {
  gp::ExecOpen o;
  o.argv = {"cat"};
  o.tty = true;
  const uint16_t s = open(o);
  streams_[s].stdin_pending = "line\npartial";
  streams_[s].eof_after_stdin = true;
  EXPECT_EQ(waitExit(s).status(), 0) << testing::PrintToString(streams_[s].out);
  // The terminal echoes the input and cat repeats it.
  EXPECT_NE(streams_[s].out.find("partial"), std::string::npos) << streams_[s].out;
}

}  // namespace
}  // namespace plfm::init
