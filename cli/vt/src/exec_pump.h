// The client end of one exec session (docs/specs/runtime/exec-sessions.md,
// "Wire protocol between hops"): frame handling, credit accounting and the
// mapping of how the session ended to `vt exec`'s exit status. No terminal,
// no sockets and no threads of its own, so tests drive it with fakes; the
// driver that connects it to real file descriptors is exec_session.h.
//
// One connection carries one session. Each message is exactly one
// guest-proto exec frame on stream kFirstExecStream. The server sends
// EXEC_DATA (stdout/stderr), EXEC_WINDOW (stdin credit) and one EXEC_EXIT;
// the client sends EXEC_DATA (stdin), EXEC_WINDOW (output credit),
// EXEC_RESIZE, EXEC_SIGNAL and EXEC_CLOSE.
//
//   ExecPump pump(conn, stdout_sink, stderr_sink);
//   while (auto m = conn.read()) { if (pump.onMessage(*m) == ExecPump::Step::kDone) break; }
//   ... if the read failed: pump.onReadError(error);
//   return pump.outcome().status;
//
// Threads: onMessage/onReadError from one reader thread; the send* calls and
// stdinCredit() from any other thread. State is guarded by one mutex, which
// is never held while writing to the connection or a sink.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "plfm/core/result.h"
#include "plfm/guest_proto/constants.h"
#include "plfm/guest_proto/error.h"

namespace plfm::vt {

// Close codes of an exec WebSocket (exec-sessions.md, "Ending without EXIT").
inline constexpr uint16_t kExecCloseSessionLost = 4000;
inline constexpr uint16_t kExecCloseRefused = 4001;

// `vt exec`'s own failures (auth, not found, lost session) exit with this,
// as ssh does, so they stand apart from the remote command's statuses.
inline constexpr int kExecFailureStatus = 255;

// Whole messages both ways, like http::WebSocket (which the real one wraps).
class ExecConnection {
 public:
  virtual ~ExecConnection() = default;
  // The next message; an error once the connection ended (http::WebSocket's
  // errors: websocket_closed with details close_code and close_reason, or a
  // transport/keepalive failure).
  [[nodiscard]] virtual Result<std::string> read() = 0;
  // Safe from several threads.
  [[nodiscard]] virtual Result<void> write(std::string_view message) = 0;
  [[nodiscard]] virtual Result<void> close(uint16_t code, std::string_view reason) = 0;
};

// Where stdout or stderr bytes go. write() takes all of them or fails; a
// failure with code kErrBrokenPipe means the reader went away (EPIPE).
class ByteSink {
 public:
  virtual ~ByteSink() = default;
  [[nodiscard]] virtual Result<void> write(std::string_view bytes) = 0;
  // Makes a write() that blocks now (a local reader that stopped reading)
  // or later fail, so that a session being torn down cannot hang on it.
  virtual void cancel() {}
};
inline constexpr std::string_view kErrBrokenPipe = "broken_pipe";

// How `vt exec` ends: the status to exit with and a line for stderr
// ("vt: exec session lost: ..."), empty when there is nothing to say.
struct ExecOutcome {
  int status = kExecFailureStatus;
  std::string message;
};

// Text from the platform or the guest (a close reason, a not_started
// message) made safe for a terminal: control characters become '?', and
// it is cut at `max` bytes.
[[nodiscard]] std::string printableText(std::string_view text, size_t max = 1024);

class ExecPump {
 public:
  enum class Step {
    kContinue,
    kCredit,  // stdin credit grew: a reader waiting for credit may go on
    kDone,    // the session is over (EXIT, a protocol error, output failed)
  };

  // `output_window`: the output credit the server starts with (the
  // EXEC_OPEN's window, kExecInitialWindow). The client's stdin credit
  // starts at kExecInitialWindow.
  ExecPump(ExecConnection& conn, ByteSink& out, ByteSink& err,
           uint32_t output_window = guest_proto::kExecInitialWindow);
  ExecPump(const ExecPump&) = delete;
  ExecPump& operator=(const ExecPump&) = delete;

  // One message from the server. A message that is not exactly one valid
  // frame of a server -> client exec type closes the connection with 1002;
  // output beyond the granted credit, or stdin credit above 2^31-1, with
  // 1008. Messages after the session is over are ignored.
  Step onMessage(std::string_view message);
  // The connection ended (read() failed). Before EXIT this is a lost or
  // refused session; after it, nothing.
  void onReadError(const Error& e);

  [[nodiscard]] uint32_t stdinCredit() const;
  // Sends stdin: `bytes` must fit in stdinCredit(). Split into EXEC_DATA
  // frames of at most kMaxExecDataBytes.
  [[nodiscard]] Result<void> sendStdin(std::string_view bytes);
  [[nodiscard]] Result<void> sendStdinEof();
  [[nodiscard]] Result<void> sendSignal(int signal);
  [[nodiscard]] Result<void> sendResize(uint16_t rows, uint16_t cols);
  // EXEC_CLOSE abort: the guest kills the process group.
  [[nodiscard]] Result<void> sendAbort();
  // Ends the session from this side with `outcome` (a signal to vt, say).
  void finish(ExecOutcome outcome);
  // Cancels both sinks (ByteSink::cancel), for a reader blocked on output.
  void cancelOutput();

  [[nodiscard]] bool done() const;
  // How the session ended; meaningful once done().
  [[nodiscard]] ExecOutcome outcome() const;

  // Bytes of output credit the server holds now (for tests).
  [[nodiscard]] uint32_t outputCredit() const;

 private:
  Step handleData(std::string_view payload);
  Step handleWindow(std::string_view payload);
  Step handleExit(std::string_view payload);
  Step protocolError(uint16_t code, const std::string& what);
  void setOutcome(ExecOutcome outcome);
  [[nodiscard]] Result<void> send(const guest_proto::Result<std::string>& frame);

  ExecConnection& conn_;
  ByteSink& out_;
  ByteSink& err_;
  const uint32_t output_window_;

  mutable std::mutex mu_;
  // Output credit the server holds, and bytes written onward since the
  // last EXEC_WINDOW we sent (reader thread only).
  uint64_t output_credit_;
  uint64_t output_consumed_ = 0;
  uint64_t stdin_credit_;  // guarded by mu_
  bool stdin_closed_ = false;
  std::optional<ExecOutcome> outcome_;  // guarded by mu_
};

}  // namespace plfm::vt
