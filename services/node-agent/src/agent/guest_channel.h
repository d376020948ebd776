// The host end of one VM's host channel (docs/specs/runtime/host-channel.md):
// a Unix stream socket to the VMM (QEMU virtio-serial, or Firecracker hybrid
// vsock after "CONNECT <port>"), framed by libs/guest-proto.
//
// Threads: one owner (the InstanceWorker) reads, connects, moves and closes
// the channel; any number of other threads (exec sessions) may send() at the
// same time as the owner reads or sends. Sends are serialized by a mutex, so
// frames are never interleaved. A send that stalls does not close the fd
// (another thread may be reading it): it shuts the socket down, so the
// owner's read() sees the end of the stream, and marks the channel stalled.
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "agent/errors.h"
#include "plfm/core/result.h"
#include "plfm/guest_proto/guest_proto.h"
#include "runtime/microvm_runtime.h"

namespace plfm::agent {

class GuestChannel {
 public:
  // A frame is at most a few hundred KiB (CONFIG); a guest that reads its
  // channel takes it in milliseconds, even under TCG.
  static constexpr std::chrono::milliseconds kSendTimeout{5000};

  GuestChannel() = default;
  ~GuestChannel();
  GuestChannel(GuestChannel&& o) noexcept;
  GuestChannel& operator=(GuestChannel&& o) noexcept;
  GuestChannel(const GuestChannel&) = delete;
  GuestChannel& operator=(const GuestChannel&) = delete;

  // Connects to the VM's channel socket, retrying until `timeout`.
  [[nodiscard]] static Result<GuestChannel> connect(const runtime::VmHandle& vm,
                                                    std::chrono::milliseconds timeout);

  // The next frame, or nullopt when `timeout` passed with no complete frame.
  // A closed connection is agent.channel_closed; a broken stream is
  // agent.channel_protocol.
  [[nodiscard]] Result<std::optional<guest_proto::Frame>> read(std::chrono::milliseconds timeout);
  // Writes one or more whole frames within `timeout`. A guest that stops
  // reading cannot hold the caller: past the deadline the channel is shut
  // down (a frame may be half sent), stalled() turns true, the error is
  // agent.channel_stalled, and the owner kills the VM
  // (docs/specs/runtime/host-channel.md). Safe from any thread.
  [[nodiscard]] Result<void> send(const std::string& frame_bytes,
                                  std::chrono::milliseconds timeout = kSendTimeout);

  // Takes ownership of a connected stream socket (tests: a socketpair end).
  [[nodiscard]] static GuestChannel adopt(int fd) { return GuestChannel(fd); }

  // Owner only. False once closed or stalled.
  [[nodiscard]] bool connected() const { return fd_ >= 0 && !stalled_.load(); }
  // A send missed its deadline (any thread's): the stream is unusable. Stays
  // true after close(), until another channel is moved in.
  [[nodiscard]] bool stalled() const { return stalled_.load(); }
  // Owner only; waits for a send in progress.
  void close();

 private:
  explicit GuestChannel(int fd) : fd_(fd) {}
  std::mutex send_mu_;  // held by send() and close(): never by read()
  int fd_ = -1;         // written by the owner under send_mu_
  std::atomic<bool> stalled_{false};
  guest_proto::Decoder decoder_;
};

// Converts a guest-proto error into the agent's Error.
[[nodiscard]] Error fromGuestProto(const guest_proto::Error& e);

}  // namespace plfm::agent
