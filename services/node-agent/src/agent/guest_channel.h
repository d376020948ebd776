// The host end of one VM's host channel (docs/specs/runtime/host-channel.md):
// a Unix stream socket to the VMM (QEMU virtio-serial, or Firecracker hybrid
// vsock after "CONNECT <port>"), framed by libs/guest-proto.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "plfm/core/result.h"
#include "plfm/guest_proto/guest_proto.h"
#include "runtime/microvm_runtime.h"

namespace plfm::agent {

// Error code of a send that missed its deadline.
inline constexpr std::string_view kChannelStalled = "agent.channel_stalled";

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
  // reading cannot hold the caller: past the deadline the channel is closed
  // (a frame may be half sent) and the error is agent.channel_stalled, and
  // the caller kills the VM (docs/specs/runtime/host-channel.md).
  [[nodiscard]] Result<void> send(const std::string& frame_bytes,
                                  std::chrono::milliseconds timeout = kSendTimeout);

  // Takes ownership of a connected stream socket (tests: a socketpair end).
  [[nodiscard]] static GuestChannel adopt(int fd) { return GuestChannel(fd); }

  [[nodiscard]] bool connected() const { return fd_ >= 0; }
  void close();

 private:
  explicit GuestChannel(int fd) : fd_(fd) {}
  int fd_ = -1;
  guest_proto::Decoder decoder_;
};

// Converts a guest-proto error into the agent's Error.
[[nodiscard]] Error fromGuestProto(const guest_proto::Error& e);

}  // namespace plfm::agent
