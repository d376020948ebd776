// The host end of one VM's host channel (docs/specs/runtime/host-channel.md):
// a Unix stream socket to the VMM (QEMU virtio-serial, or Firecracker hybrid
// vsock after "CONNECT <port>"), framed by libs/guest-proto.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "plfm/core/result.h"
#include "plfm/guest_proto/guest_proto.h"
#include "runtime/microvm_runtime.h"

namespace plfm::agent {

class GuestChannel {
 public:
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
  [[nodiscard]] Result<void> send(const std::string& frame_bytes);

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
