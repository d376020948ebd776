// ExecMux: the exec sessions of one instance on its host channel
// (docs/specs/runtime/exec-sessions.md, "Agent endpoint" and "Flow control").
// It allocates stream ids (kFirstExecStream..kLastExecStream), sends each
// session's frames to the guest with the stream id rewritten, routes the
// guest's EXEC_* frames to their session, and keeps both credit windows of
// every session, so no session can make the agent buffer more than the
// window it granted.
//
//   worker:  mux->attach(send)                 channel up, Running, exec_revision != 0
//            mux->onGuestFrame(frame)          every EXEC_* frame the guest sends
//            mux->detach("the host channel closed")   ends every session (lost)
//   client:  auto s = mux->open(open_payload); // sends EXEC_OPEN on a fresh stream
//            s->fromClient(ws_message);        // stdin, WINDOW, RESIZE, SIGNAL, CLOSE
//            auto ev = s->next(timeout);       // DATA, WINDOW, EXIT, or lost
//
// Threads: onGuestFrame runs on the worker's reader thread and never waits for
// a client; sends from sessions are serialized (one frame at a time) and
// detach() waits for a send in progress, so the worker may close or replace
// its channel as soon as detach() returns. Testable without a VM: `send` is
// any function that takes whole frames.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "plfm/core/result.h"
#include "plfm/guest_proto/guest_proto.h"

namespace plfm::agent {

// The guest's limit, and so the agent's (exec-sessions.md §Several sessions).
inline constexpr size_t kMaxExecSessions = 64;

// Error codes of ExecMux and ExecSession.
inline constexpr std::string_view kExecRefused = "exec.refused";    // WebSocket close 4001
inline constexpr std::string_view kExecLost = "exec.lost";          // 4000
inline constexpr std::string_view kExecProtocol = "exec.protocol";  // 1002
inline constexpr std::string_view kExecCredit = "exec.credit";      // 1008

// What the guest sent for one session, in order, for its client. Frames are
// whole and carry stream kFirstExecStream (the WebSocket's).
struct ExecEvent {
  enum class Kind { kData, kWindow, kExit, kLost };
  Kind kind = Kind::kData;
  std::string frame;   // kData, kWindow, kExit
  std::string reason;  // kLost: for humans ("the instance's VM exited")
};

class ExecMux;

class ExecSession {
 public:
  ExecSession(std::weak_ptr<ExecMux> mux, uint16_t stream, uint32_t window);

  // The stream id on the instance's channel.
  [[nodiscard]] uint16_t stream() const { return stream_; }

  // A frame from the client (one WebSocket message), checked and sent to the
  // guest on this session's stream. Errors: kExecProtocol (not exactly one
  // frame, not a client frame type, does not decode, stdout data),
  // kExecCredit (stdin beyond the credit the guest granted, or a WINDOW that
  // takes the output credit past 2^31-1), kExecLost (the channel is gone).
  // Frames after the guest's EXIT are dropped.
  [[nodiscard]] Result<void> fromClient(std::string_view message);

  // The next event, waiting up to `timeout`; nullopt on timeout or when
  // wake() was called. A lost session reports kLost before anything queued.
  [[nodiscard]] std::optional<ExecEvent> next(std::chrono::milliseconds timeout);
  // Makes next() return now (the client went away).
  void wake();
  // The client is gone before EXIT: kill the command (EXEC_CLOSE abort).
  void abort();

  // --- for ExecMux ---
  // A guest frame for this session; false when it breaks the rules (the
  // session is then lost and must be aborted). EXIT ends the stream.
  bool deliver(const guest_proto::Frame& frame);
  void lose(const std::string& reason);
  [[nodiscard]] bool exited() const;

 private:
  const std::weak_ptr<ExecMux> mux_;
  const uint16_t stream_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t out_credit_;  // output bytes the guest may still send
  int64_t in_credit_;   // stdin bytes the client may still send
  std::deque<std::string> data_;
  uint64_t window_ = 0;  // stdin credit for the client, not yet handed out
  std::optional<std::string> exit_;
  std::optional<std::string> lost_;
  bool exited_ = false;   // EXIT seen: the stream is free
  bool aborted_ = false;  // EXEC_CLOSE abort sent
  bool woken_ = false;
};

class ExecMux : public std::enable_shared_from_this<ExecMux> {
 public:
  // Sends whole frames to the guest (GuestChannel::send).
  using SendFn = std::function<Result<void>(const std::string& frames)>;

  explicit ExecMux(std::string instance_id) : instance_id_(std::move(instance_id)) {}

  void attach(SendFn send);
  // Ends every session with kLost(reason) and refuses new ones until the
  // next attach(). Waits for a send in progress.
  void detach(const std::string& reason);
  // New sessions are refused (reason for humans); the live ones go on.
  void refuseNew(const std::string& reason);
  [[nodiscard]] bool attached() const;

  // Starts a session: `open_payload` is an EXEC_OPEN payload (checked), sent
  // as is on a fresh stream. Errors: kExecRefused (not attached, 64 sessions
  // live), kExecProtocol (it does not decode), kExecLost (the send failed).
  [[nodiscard]] Result<std::shared_ptr<ExecSession>> open(std::string_view open_payload);

  // An EXEC_* frame from the guest. Never waits for a client.
  void onGuestFrame(const guest_proto::Frame& frame);

  // Live streams (sessions whose EXIT has not arrived).
  [[nodiscard]] size_t sessions() const;

  // --- for ExecSession ---
  // Sends `frame` on behalf of `session`, unless the guest has ended it.
  [[nodiscard]] Result<void> sendFor(const ExecSession& session, const std::string& frame);

 private:
  const std::string instance_id_;
  std::mutex send_mu_;  // held across send_: one frame at a time
  SendFn send_;         // guarded by send_mu_; empty: detached
  mutable std::mutex mu_;
  bool attached_ = false;  // guarded by mu_
  std::string refuse_;     // guarded by mu_; non-empty: refuse new sessions
  uint16_t next_stream_ = guest_proto::kFirstExecStream;      // guarded by mu_
  std::map<uint16_t, std::shared_ptr<ExecSession>> streams_;  // guarded by mu_
};

// Rewrites the stream id of a whole frame in place (host-channel.md §Frame
// header: bytes 2-3, big-endian).
void setFrameStream(std::string& frame, uint16_t stream);

}  // namespace plfm::agent
