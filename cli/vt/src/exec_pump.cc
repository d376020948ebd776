#include "exec_pump.h"

#include <algorithm>
#include <csignal>
#include <utility>

#include "plfm/guest_proto/exec.h"
#include "plfm/guest_proto/frame.h"
#include "plfm/http/websocket.h"

namespace plfm::vt {
namespace gp = guest_proto;

namespace {

// The reason a close frame may carry (RFC 6455 section 5.5).
constexpr size_t kMaxCloseReason = 123;

std::string lost(const std::string& why) { return "vt: exec session lost: " + why; }

}  // namespace

std::string printableText(std::string_view text, size_t max) {
  std::string out;
  out.reserve(std::min(text.size(), max));
  for (char c : text.substr(0, max)) {
    auto u = static_cast<unsigned char>(c);
    // C0 controls and DEL could move the cursor or retitle the terminal;
    // bytes >= 0x80 stay so that UTF-8 survives (C1 controls are 2-byte
    // sequences in UTF-8 and do nothing on their own).
    out += (u < 0x20 || u == 0x7f) ? '?' : c;
  }
  return out;
}

ExecPump::ExecPump(ExecConnection& conn, ByteSink& out, ByteSink& err, uint32_t output_window)
    : conn_(conn),
      out_(out),
      err_(err),
      output_window_(output_window),
      output_credit_(output_window),
      stdin_credit_(gp::kExecInitialWindow) {}

ExecPump::Step ExecPump::onMessage(std::string_view message) {
  if (done()) return Step::kDone;
  gp::Decoder decoder;
  decoder.feed(message);
  auto frame = decoder.next();
  if (!frame) return protocolError(http::kCloseProtocolError, frame.error().toString());
  if (!frame->has_value()) return protocolError(http::kCloseProtocolError, "a partial frame");
  if (decoder.buffered() != 0) {
    return protocolError(http::kCloseProtocolError, "more than one frame in a message");
  }
  // The stream id is ignored: one WebSocket carries one session.
  const gp::Frame& f = **frame;
  switch (f.type) {
    case gp::FrameType::kExecData:
      return handleData(f.payload);
    case gp::FrameType::kExecWindow:
      return handleWindow(f.payload);
    case gp::FrameType::kExecExit:
      return handleExit(f.payload);
    default:
      return protocolError(http::kCloseProtocolError,
                           gp::frameTypeName(f.type) + " is not a server -> client exec frame");
  }
}

ExecPump::Step ExecPump::handleData(std::string_view payload) {
  auto data = gp::decodeExecData(payload);
  if (!data) return protocolError(http::kCloseProtocolError, data.error().toString());
  if (data->fd == gp::ExecFd::kStdin) {
    return protocolError(http::kCloseProtocolError, "EXEC_DATA for stdin from the server");
  }
  if (data->data.size() > output_credit_) {
    return protocolError(http::kClosePolicyViolation, "output beyond the granted credit");
  }
  output_credit_ -= data->data.size();
  ByteSink& sink = data->fd == gp::ExecFd::kStdout ? out_ : err_;
  if (auto w = sink.write(data->data); !w) {
    // Like a local command whose reader went away: the remote one is
    // stopped, and `vt` ends as if killed by SIGPIPE (or reports the error).
    (void)sendAbort();
    if (w.error().is(kErrBrokenPipe)) {
      setOutcome({.status = 128 + SIGPIPE, .message = ""});
    } else {
      setOutcome({.status = kExecFailureStatus,
                  .message = "vt: exec: cannot write the command's output: " + w.error().message() +
                             "; the remote command was stopped"});
    }
    return Step::kDone;
  }
  output_consumed_ += data->data.size();
  // exec-sessions.md, Flow control: grant once half a window was passed on,
  // or when the sender is down to less than one data frame of credit (we
  // hold nothing: every byte was written before we got here).
  if (output_consumed_ >= output_window_ / 2 ||
      (output_consumed_ > 0 && output_credit_ < gp::kMaxExecDataBytes)) {
    auto increment = static_cast<uint32_t>(output_consumed_);
    output_credit_ += output_consumed_;
    output_consumed_ = 0;
    // A failed write means the connection is going away; read() says how.
    (void)send(gp::encode(gp::ExecWindow{.increment = increment}, gp::kFirstExecStream));
  }
  return Step::kContinue;
}

ExecPump::Step ExecPump::handleWindow(std::string_view payload) {
  auto window = gp::decodeExecWindow(payload);
  if (!window) return protocolError(http::kCloseProtocolError, window.error().toString());
  bool ok = false;
  {
    std::lock_guard lock(mu_);
    ok = stdin_credit_ + window->increment <= gp::kMaxExecCredit;
    if (ok) stdin_credit_ += window->increment;
  }
  if (ok) return Step::kCredit;
  return protocolError(http::kClosePolicyViolation, "stdin credit above 2^31-1");
}

ExecPump::Step ExecPump::handleExit(std::string_view payload) {
  auto exit = gp::decodeExecExit(payload);
  if (!exit) return protocolError(http::kCloseProtocolError, exit.error().toString());
  ExecOutcome o{.status = exit->status(), .message = ""};
  if (exit->kind == gp::ExecExitKind::kNotStarted) {
    o.message = "vt: exec: " + printableText(exit->message);
  }
  setOutcome(std::move(o));
  return Step::kDone;
}

ExecPump::Step ExecPump::protocolError(uint16_t code, const std::string& what) {
  (void)conn_.close(code, what.substr(0, kMaxCloseReason));
  setOutcome({.status = kExecFailureStatus,
              .message = lost("the control plane broke the exec protocol (" + what + ")")});
  return Step::kDone;
}

void ExecPump::onReadError(const Error& e) {
  if (done()) return;
  if (!e.is(http::kErrWebSocketClosed)) {
    setOutcome({.status = kExecFailureStatus, .message = lost(printableText(e.message()))});
    return;
  }
  const std::string code(e.detail("close_code"));
  const std::string reason = printableText(e.detail("close_reason"), kMaxCloseReason);
  if (code == std::to_string(kExecCloseSessionLost)) {
    setOutcome({.status = kExecFailureStatus,
                .message = lost(reason.empty() ? "no reason given" : reason)});
  } else if (code == std::to_string(kExecCloseRefused)) {
    setOutcome({.status = kExecFailureStatus,
                .message = "vt: exec refused: " + (reason.empty() ? "no reason given" : reason)});
  } else {
    setOutcome({.status = kExecFailureStatus,
                .message = lost("the control plane closed the connection before the command "
                                "exited (code " +
                                code + (reason.empty() ? "" : ": " + reason) + ")")});
  }
}

uint32_t ExecPump::stdinCredit() const {
  std::lock_guard lock(mu_);
  if (stdin_closed_ || outcome_) return 0;
  return static_cast<uint32_t>(stdin_credit_);
}

Result<void> ExecPump::sendStdin(std::string_view bytes) {
  {
    std::lock_guard lock(mu_);
    if (stdin_closed_ || bytes.size() > stdin_credit_) {
      return Error(errc::kFailedPrecondition, "stdin beyond the credit, or after EOF");
    }
    stdin_credit_ -= bytes.size();
  }
  while (!bytes.empty()) {
    size_t n = std::min(bytes.size(), gp::kMaxExecDataBytes);
    PLFM_TRY(send(
        gp::encode(gp::ExecData{.fd = gp::ExecFd::kStdin, .data = std::string(bytes.substr(0, n))},
                   gp::kFirstExecStream)));
    bytes.remove_prefix(n);
  }
  return {};
}

Result<void> ExecPump::sendStdinEof() {
  {
    std::lock_guard lock(mu_);
    if (stdin_closed_) return {};
    stdin_closed_ = true;
  }
  return send(
      gp::encode(gp::ExecClose{.kind = gp::ExecCloseKind::kStdinEof}, gp::kFirstExecStream));
}

Result<void> ExecPump::sendSignal(int signal) {
  return send(gp::encode(gp::ExecSignal{.signal = signal}, gp::kFirstExecStream));
}

Result<void> ExecPump::sendResize(uint16_t rows, uint16_t cols) {
  if (rows == 0 || cols == 0) return {};  // a terminal that reports no size
  return send(gp::encode(gp::ExecResize{.rows = rows, .cols = cols}, gp::kFirstExecStream));
}

Result<void> ExecPump::sendAbort() {
  return send(gp::encode(gp::ExecClose{.kind = gp::ExecCloseKind::kAbort}, gp::kFirstExecStream));
}

void ExecPump::finish(ExecOutcome outcome) { setOutcome(std::move(outcome)); }

void ExecPump::cancelOutput() {
  out_.cancel();
  err_.cancel();
}

bool ExecPump::done() const {
  std::lock_guard lock(mu_);
  return outcome_.has_value();
}

ExecOutcome ExecPump::outcome() const {
  std::lock_guard lock(mu_);
  return outcome_.value_or(ExecOutcome{});
}

uint32_t ExecPump::outputCredit() const { return static_cast<uint32_t>(output_credit_); }

void ExecPump::setOutcome(ExecOutcome outcome) {
  std::lock_guard lock(mu_);
  if (!outcome_) outcome_ = std::move(outcome);
}

Result<void> ExecPump::send(const gp::Result<std::string>& frame) {
  if (!frame) return Error(errc::kInternal, "exec frame: " + frame.error().toString());
  return conn_.write(*frame);
}

}  // namespace plfm::vt
