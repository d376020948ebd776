#include "exec_session.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <csignal>
#include <cstring>
#include <string>
#include <thread>

#include "plfm/core/assert.h"

namespace plfm::vt {
namespace {

// The signal (SIGINT, SIGTERM, ...) that stops the session instead of being
// forwarded: the third.
constexpr int kSignalsBeforeStop = 3;

// The most stdin read at once (split into 16 KiB frames by the pump).
constexpr size_t kStdinChunk = size_t{64} * 1024;

// The write end of the live SignalPipe, for the async-signal-safe handler.
std::atomic<int> g_signal_write_fd{-1};

extern "C" void onSignal(int sig) {
  const int saved = errno;
  const int fd = g_signal_write_fd.load();
  if (fd >= 0) {
    auto byte = static_cast<unsigned char>(sig);
    // A full pipe drops the signal: dozens are already queued.
    [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
  }
  errno = saved;
}

bool makePipe(int fds[2]) {  // NOLINT(cppcoreguidelines-avoid-c-arrays)
  return ::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0;
}

void poke(int fd) {
  const char byte = 1;
  [[maybe_unused]] ssize_t n = ::write(fd, &byte, 1);
}

void drain(int fd) {
  std::array<char, 256> buf{};
  while (::read(fd, buf.data(), buf.size()) > 0) {
  }
}

const char* signalName(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    case SIGQUIT:
      return "SIGQUIT";
    case SIGINT:
      return "SIGINT";
    default:
      return "a signal";
  }
}

class Session {
 public:
  Session(ExecConnection& conn, ExecPump& pump, const ExecSessionIo& io)
      : conn_(conn), pump_(pump), io_(io) {}

  ExecOutcome run() {
    // NOLINTNEXTLINE(cppcoreguidelines-avoid-c-arrays)
    int wake[2] = {-1, -1};
    if (!makePipe(wake)) {
      return {.status = kExecFailureStatus,
              .message = std::string("vt: exec: pipe: ") + std::strerror(errno)};
    }
    wake_read_ = wake[0];
    wake_write_ = wake[1];
    std::thread reader([this] { readLoop(); });
    stdin_open_ = io_.stdin_fd >= 0;
    if (!stdin_open_) (void)pump_.sendStdinEof();
    while (!pump_.done() && !reader_done_.load()) pollOnce();
    // The server closes the connection after EXIT (or an abort's EXIT): let
    // the reader see that close before anything closes from this side. Two
    // closes crossing on the wire are what a careless client adds to every
    // session's end, and libs/http's WebSocket can stall on them.
    waitForReader(io_.close_grace);
    if (!reader_done_.load()) {
      pump_.cancelOutput();  // a reader blocked on a stdout nobody reads
      (void)conn_.close(http::kCloseNormal, "");
    }
    reader.join();
    ::close(wake_read_);
    ::close(wake_write_);
    return pump_.outcome();
  }

 private:
  // Reads until the connection ends, also after the session is over, so
  // that the server's closing handshake completes on its own.
  void readLoop() {
    for (;;) {
      auto message = conn_.read();
      if (!message) {
        pump_.onReadError(message.error());  // nothing once the session is over
        break;
      }
      ExecPump::Step step = pump_.onMessage(*message);  // ignored once over
      if (step != ExecPump::Step::kContinue) poke(wake_write_);
    }
    reader_done_.store(true);
    poke(wake_write_);
  }

  void waitForReader(std::chrono::milliseconds grace) {
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (!reader_done_.load()) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return;
      pollfd p{.fd = wake_read_, .events = POLLIN, .revents = 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) > 0) drain(wake_read_);
    }
  }

  void pollOnce() {
    std::array<pollfd, 3> fds{};
    nfds_t n = 0;
    fds[n++] = {.fd = wake_read_, .events = POLLIN, .revents = 0};
    const nfds_t signal_slot = io_.signal_fd >= 0 ? n : fds.size();
    if (io_.signal_fd >= 0) fds[n++] = {.fd = io_.signal_fd, .events = POLLIN, .revents = 0};
    // Stdin is read only while the server has granted credit: what we do
    // not read stays in the pipe, and its writer blocks (backpressure).
    const uint32_t credit = stdin_open_ ? pump_.stdinCredit() : 0;
    const nfds_t stdin_slot = credit > 0 ? n : fds.size();
    if (credit > 0) fds[n++] = {.fd = io_.stdin_fd, .events = POLLIN, .revents = 0};
    if (::poll(fds.data(), n, -1) < 0) return;  // EINTR: the signal is in the pipe
    if ((fds[0].revents & POLLIN) != 0) drain(wake_read_);
    if (signal_slot < n && fds[signal_slot].revents != 0) handleSignals();
    if (stdin_slot < n && fds[stdin_slot].revents != 0) readStdin(credit);
  }

  void readStdin(uint32_t credit) {
    std::string buf(std::min<size_t>(credit, kStdinChunk), '\0');
    ssize_t got = ::read(io_.stdin_fd, buf.data(), buf.size());
    if (got < 0 && (errno == EINTR || errno == EAGAIN)) return;
    if (got > 0) {
      buf.resize(static_cast<size_t>(got));
      (void)pump_.sendStdin(buf);  // a failed write ends the session via read()
      return;
    }
    // EOF, or an error (EIO: the terminal hung up): the command's stdin ends.
    stdin_open_ = false;
    (void)pump_.sendStdinEof();
  }

  void handleSignals() {
    std::array<unsigned char, 64> sigs{};
    ssize_t got = ::read(io_.signal_fd, sigs.data(), sigs.size());
    for (ssize_t i = 0; i < got; ++i) {
      const int sig = sigs[static_cast<size_t>(i)];
      if (sig == SIGWINCH) {
        if (io_.winsize_fd < 0) continue;
        if (auto size = terminalSize(io_.winsize_fd)) {
          (void)pump_.sendResize(size->first, size->second);
        }
      } else if ((io_.raw_tty && (sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT)) ||
                 ++forwarded_ >= kSignalsBeforeStop) {
        // On a raw terminal these mean "stop"; elsewhere the third signal
        // does, so that a command that ignores signals (or a platform that
        // no longer answers) cannot hold the user.
        stopRemote(sig);
        return;
      } else {
        (void)pump_.sendSignal(sig);
      }
    }
  }

  // vt itself is told to stop while a terminal session runs, or a third
  // time: kill the remote command (an interactive shell would ignore a
  // forwarded SIGTERM) and end; the caller restores the terminal.
  void stopRemote(int sig) {
    // The outcome first: the EXIT signaled(9) that the abort brings back
    // must not win the race.
    pump_.finish({.status = 128 + sig,
                  .message = std::string("vt: exec: stopped by ") + signalName(sig) +
                             "; the remote command was killed"});
    (void)pump_.sendAbort();  // the server answers with EXIT and closes
  }

  ExecConnection& conn_;
  ExecPump& pump_;
  const ExecSessionIo& io_;
  int wake_read_ = -1;
  int wake_write_ = -1;
  bool stdin_open_ = false;
  int forwarded_ = 0;  // signals forwarded so far
  std::atomic<bool> reader_done_{false};
};

}  // namespace

ExecOutcome runExecSession(ExecConnection& conn, ExecPump& pump, const ExecSessionIo& io) {
  Session session(conn, pump, io);
  return session.run();
}

FdSink::FdSink(int fd) : fd_(fd) {
  // NOLINTNEXTLINE(cppcoreguidelines-avoid-c-arrays)
  int fds[2] = {-1, -1};
  PLFM_ASSERT(makePipe(fds), "FdSink: pipe2 failed");
  cancel_read_ = fds[0];
  cancel_write_ = fds[1];
}

FdSink::~FdSink() {
  ::close(cancel_read_);
  ::close(cancel_write_);
}

void FdSink::cancel() { poke(cancel_write_); }

Result<void> FdSink::write(std::string_view bytes) {
  while (!bytes.empty()) {
    std::array<pollfd, 2> p{{{.fd = fd_, .events = POLLOUT, .revents = 0},
                             {.fd = cancel_read_, .events = POLLIN, .revents = 0}}};
    if (::poll(p.data(), p.size(), -1) < 0) {
      if (errno == EINTR) continue;
      return Error(errc::kIo, std::string("poll: ") + std::strerror(errno));
    }
    if (p[1].revents != 0) return Error(errc::kIo, "the session is closing");
    // At most PIPE_BUF: a pipe that reports room takes that much at once.
    ssize_t n = ::write(fd_, bytes.data(), std::min<size_t>(bytes.size(), PIPE_BUF));
    if (n > 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0 && errno == EPIPE) return Error(kErrBrokenPipe, "the reader closed the pipe");
    return Error(errc::kIo, std::string("write: ") + std::strerror(n < 0 ? errno : EIO));
  }
  return {};
}

SignalPipe::SignalPipe(std::initializer_list<int> signals) {
  // NOLINTNEXTLINE(cppcoreguidelines-avoid-c-arrays)
  int fds[2] = {-1, -1};
  PLFM_ASSERT(makePipe(fds), "SignalPipe: pipe2 failed");
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  int expected = -1;
  PLFM_ASSERT(g_signal_write_fd.compare_exchange_strong(expected, write_fd_),
              "only one SignalPipe at a time");
  struct ::sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (int sig : signals) {
    struct ::sigaction old {};
    if (::sigaction(sig, &sa, &old) == 0) saved_.emplace_back(sig, old);
  }
  struct ::sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  struct ::sigaction old {};
  if (::sigaction(SIGPIPE, &ignore, &old) == 0) saved_.emplace_back(SIGPIPE, old);
}

SignalPipe::~SignalPipe() {
  for (const auto& [sig, old] : saved_) {  // one entry per signal: order does not matter
    ::sigaction(sig, &old, nullptr);
  }
  g_signal_write_fd.store(-1);
  ::close(read_fd_);
  ::close(write_fd_);
}

RawMode::RawMode(int fd) : fd_(fd) {
  if (::tcgetattr(fd_, &saved_) != 0) return;
  termios raw = saved_;
  ::cfmakeraw(&raw);
  active_ = ::tcsetattr(fd_, TCSADRAIN, &raw) == 0;
}

RawMode::~RawMode() {
  if (active_) ::tcsetattr(fd_, TCSADRAIN, &saved_);
}

std::optional<std::pair<uint16_t, uint16_t>> terminalSize(int fd) {
  winsize ws{};
  if (::ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_row == 0 || ws.ws_col == 0) return std::nullopt;
  return std::make_pair(ws.ws_row, ws.ws_col);
}

}  // namespace plfm::vt
