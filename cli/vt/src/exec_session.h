// Drives an ExecPump (exec_pump.h) from real file descriptors: stdin within
// the credit the server grants, signals as EXEC_SIGNAL or EXEC_RESIZE, output
// to stdout/stderr. Also the pieces `vt exec` needs around a session: the
// terminal's raw mode, a self-pipe for signals, fd sinks and the WebSocket
// adapter (docs/specs/runtime/exec-sessions.md, "CLI").
//
// runExecSession uses two threads: a reader that feeds the server's messages
// to the pump (and blocks writing stdout when the local reader is slow:
// that is the backpressure, since output credit is granted only after a
// write), and the caller's, which polls stdin, the signal pipe and a wake-up
// pipe. Nothing here needs a terminal; tests use pipes and a fake connection.
#pragma once

#include <termios.h>

#include <csignal>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "exec_pump.h"
#include "plfm/http/websocket.h"

namespace plfm::vt {

struct ExecSessionIo {
  int stdin_fd = -1;     // copied to the command; -1: none (stdin_eof is sent at once)
  int winsize_fd = -1;   // a terminal whose size SIGWINCH sends; -1: none
  int signal_fd = -1;    // SignalPipe::fd(), or -1
  bool raw_tty = false;  // the local terminal is raw: SIGTERM/SIGHUP/SIGQUIT abort the session
  // Once the session is over, how long to wait for the server's close
  // before closing from this side.
  std::chrono::milliseconds close_grace{2000};
};

// Runs the session until the pump is done and the server closed the
// connection (or close_grace passed); returns how it ended.
// SIGINT/SIGTERM/SIGHUP/SIGQUIT read from signal_fd become EXEC_SIGNAL
// (except the last three with raw_tty: the remote command is aborted, since
// an interactive shell ignores SIGTERM, and `vt` ends with 128 + N);
// SIGWINCH becomes EXEC_RESIZE. The third forwarded signal aborts the
// remote command instead and ends with 128 + N, so that a command that
// ignores signals, or a platform that stopped answering, cannot hold vt.
ExecOutcome runExecSession(ExecConnection& conn, ExecPump& pump, const ExecSessionIo& io);

// Writes to a file descriptor (stdout, stderr), all of it; EPIPE is
// kErrBrokenPipe. It waits for room with poll() and writes at most PIPE_BUF
// at a time, so that cancel() can interrupt it even when the reader of a
// pipe stopped reading (the descriptor itself stays blocking: it is shared
// with other processes).
class FdSink : public ByteSink {
 public:
  explicit FdSink(int fd);
  ~FdSink() override;
  FdSink(const FdSink&) = delete;
  FdSink& operator=(const FdSink&) = delete;

  [[nodiscard]] Result<void> write(std::string_view bytes) override;
  void cancel() override;

 private:
  int fd_;
  int cancel_read_ = -1;
  int cancel_write_ = -1;
};

// The real connection: a WebSocket from http::connectWebSocket.
class WebSocketExecConnection : public ExecConnection {
 public:
  explicit WebSocketExecConnection(std::unique_ptr<http::WebSocket> ws) : ws_(std::move(ws)) {}
  [[nodiscard]] Result<std::string> read() override { return ws_->read(); }
  [[nodiscard]] Result<void> write(std::string_view message) override {
    return ws_->write(message);
  }
  [[nodiscard]] Result<void> close(uint16_t code, std::string_view reason) override {
    return ws_->close(code, reason);
  }

 private:
  std::unique_ptr<http::WebSocket> ws_;
};

// Catches `signals` for its lifetime: each one writes its number (one byte)
// to a non-blocking pipe that fd() reads. Also ignores SIGPIPE, so a closed
// stdout is EPIPE rather than death. The destructor restores the previous
// dispositions. One instance at a time (asserted).
class SignalPipe {
 public:
  explicit SignalPipe(std::initializer_list<int> signals);
  ~SignalPipe();
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;

  [[nodiscard]] int fd() const { return read_fd_; }

 private:
  int read_fd_ = -1;
  int write_fd_ = -1;
  std::vector<std::pair<int, struct ::sigaction>> saved_;
};

// Puts a terminal in raw mode (cfmakeraw) and restores its settings when
// destroyed, on every way out of the scope (return, exception; signals end
// the session through SignalPipe, so they return too).
class RawMode {
 public:
  // nullopt-like: ok() is false when `fd` is no terminal or tcsetattr failed.
  explicit RawMode(int fd);
  ~RawMode();
  RawMode(const RawMode&) = delete;
  RawMode& operator=(const RawMode&) = delete;

  [[nodiscard]] bool ok() const { return active_; }

 private:
  int fd_;
  bool active_ = false;
  termios saved_{};
};

// The size of the terminal on `fd` (rows, cols), or nullopt.
[[nodiscard]] std::optional<std::pair<uint16_t, uint16_t>> terminalSize(int fd);

}  // namespace plfm::vt
