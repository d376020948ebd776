// The control plane's exec relay (docs/specs/runtime/exec-sessions.md,
// "Wire protocol between hops"): copies exec frames between the client's
// WebSocket (`vt exec`) and the node agent's, one frame per binary message,
// without re-encoding them, and enforces the protocol on both sides:
//
// - each message is exactly one frame of an exec type allowed in its
//   direction (client: DATA on stdin, WINDOW, RESIZE, SIGNAL, CLOSE; agent:
//   DATA on stdout/stderr, WINDOW, then one EXIT); anything else closes
//   the sender with 1002;
// - credit: the client may send as many stdin bytes as the agent granted
//   (kExecInitialWindow, then its WINDOW frames), the agent as many output
//   bytes as the client granted (the EXEC_OPEN's window, then the client's
//   WINDOW frames); more closes the sender with 1008. A credit above
//   kMaxExecCredit is the same error.
//
// It reads each side only as fast as it can write to the other, so it never
// holds more than one message per direction. The session ends with the
// agent's EXIT (forwarded, then both sides close with 1000), with the agent
// gone (the client gets 4000 or the agent's 4001), or with the client gone
// (the agent gets EXEC_CLOSE abort).
//
//   RelayEnd end = relayExec(client_ws, agent_ws, gp::kExecInitialWindow);
//   audit(end.outcome, end.exit_code);
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "plfm/core/result.h"
#include "plfm/guest_proto/exec.h"
#include "plfm/http/websocket.h"

namespace plfm::cp {

// Application close codes of the exec WebSocket (exec-sessions.md).
inline constexpr uint16_t kCloseSessionLost = 4000;
inline constexpr uint16_t kCloseRefused = 4001;
// A close reason is at most 123 bytes (RFC 6455 §5.5: 125 minus the code).
inline constexpr size_t kMaxCloseReasonBytes = 123;

// `reason` cut to kMaxCloseReasonBytes on a UTF-8 character boundary, with
// control bytes (an agent's reason reaches a user's terminal) as '?'.
[[nodiscard]] std::string closeReason(std::string_view reason);

// The reason in an agent's refusal before the upgrade: the `error.message`
// of its JSON error envelope (at most 4 KiB of body is read), or nullopt
// when the body is not one. Parsed here, once, like any peer's bytes.
[[nodiscard]] std::optional<std::string> agentRefusalMessage(std::string_view body);

enum class ExecSide { kClient, kAgent };  // who sent the message

// One message, checked: its frame type and what the relay needs to know.
struct ExecMessage {
  guest_proto::FrameType type = guest_proto::FrameType::kExecData;
  uint32_t data_bytes = 0;        // EXEC_DATA: the data bytes (credit they use)
  uint32_t window_increment = 0;  // EXEC_WINDOW
  std::optional<guest_proto::ExecExit> exit;
};

// Checks `message` as one exec frame allowed from `side`. Errors
// (invalid_argument) say what is wrong, never the bytes.
[[nodiscard]] Result<ExecMessage> checkExecMessage(std::string_view message, ExecSide side);

// Credit one side may still spend (exec-sessions.md §Flow control).
class ExecCredit {
 public:
  explicit ExecCredit(uint32_t initial) : available_(initial) {}
  // false when `bytes` exceed the credit.
  [[nodiscard]] bool spend(uint32_t bytes);
  // false when the credit would exceed kMaxExecCredit.
  [[nodiscard]] bool grant(uint32_t increment);
  [[nodiscard]] uint64_t available() const { return available_; }

 private:
  uint64_t available_;
};

struct RelayEnd {
  // exited | signaled | not_started | timed_out (from the EXIT), lost (the
  // agent side ended first), aborted (the client side), refused (the agent
  // closed with 4001).
  std::string outcome;
  std::optional<int> exit_code;  // what `vt exec` exits with; only with an EXIT
  std::string reason;            // why it ended without an EXIT (for logs)
};

// Relays until the session ends (see the top of this file), then closes
// both WebSockets. `output_window` is the window of the EXEC_OPEN sent.
[[nodiscard]] RelayEnd relayExec(http::WebSocket& client, http::WebSocket& agent,
                                 uint32_t output_window);

}  // namespace plfm::cp
