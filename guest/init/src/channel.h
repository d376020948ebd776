// vt-init's end of the host channel (host-channel.md §Transports): the
// virtio-serial port named "plfm" under QEMU, or an AF_VSOCK listener for
// Firecracker. The fd is nonblocking and output is queued, so a host that
// stops reading never blocks PID 1: LOG frames are dropped beyond a bound,
// control frames never are.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "plan.h"
#include "plfm/guest_proto/frame.h"

namespace plfm::init {

// Whether `sys_root`/bus/virtio/devices lists a device of virtio device ID
// `id` (virtio spec §5: 3 is a console, 19 a vsock device). Device files
// that cannot be read or parsed do not count.
[[nodiscard]] bool hasVirtioDevice(const std::string& sys_root, unsigned id);

inline constexpr unsigned kVirtioIdConsole = 3;
inline constexpr unsigned kVirtioIdVsock = 19;

class Channel {
 public:
  // Finds the transport, waiting up to `timeout_ms` for the device: the
  // virtio port "plfm" (QEMU), or vsock where the VM has a virtio vsock
  // device (Firecracker). `load_vsock` runs once (it loads the vsock
  // modules), only when there is such a device.
  [[nodiscard]] static Result<Channel> open(int timeout_ms,
                                            const std::function<void()>& load_vsock);

  // Adopts a connected, nonblocking stream fd (tests use a socketpair).
  [[nodiscard]] static Channel fromFd(int fd) { return Channel(fd, -1); }

  Channel(Channel&& other) noexcept;
  Channel& operator=(Channel&&) = delete;
  Channel(const Channel&) = delete;
  ~Channel();

  // The fd to poll and the events to poll for; -1 while there is nothing to
  // poll (virtio-serial with no host connected reports POLLHUP forever, so
  // the caller retries on a timer instead; see probe()).
  [[nodiscard]] int pollFd() const;
  [[nodiscard]] short pollEvents() const;

  // Queues a frame; a droppable one is dropped when kMaxQueuedBytes are
  // already waiting.
  void send(const std::string& frame, bool droppable = false);
  [[nodiscard]] bool idle() const { return out_.empty(); }

  // Call when poll reports events on pollFd(): writes what it can, reads
  // and decodes what is there into `frames`. An error means framing is lost.
  [[nodiscard]] Result<void> onEvents(short revents, std::vector<guest_proto::Frame>& frames);
  // Rechecks a disconnected transport (call on a timer).
  void probe();

  // Writes the queue out, blocking up to `timeout_ms`.
  void drain(int timeout_ms);

  [[nodiscard]] bool connected() const { return connected_; }
  [[nodiscard]] uint64_t droppedBytes() const { return dropped_bytes_; }

  static constexpr size_t kMaxQueuedBytes = size_t{1} << 20;

 private:
  Channel(int fd, int listen_fd) : fd_(fd), listen_fd_(listen_fd) {}
  void flushSome();
  void disconnect();

  int fd_ = -1;         // the stream (virtio port, or accepted vsock)
  int listen_fd_ = -1;  // vsock only
  bool connected_ = true;
  guest_proto::Decoder decoder_;
  void markConnected();

  // Whole frames; out_offset_ bytes of the first are written. On a
  // disconnect a half-written frame is dropped, so that a reconnecting host
  // starts at a frame boundary.
  std::deque<std::string> out_;
  size_t out_offset_ = 0;
  size_t queued_bytes_ = 0;
  uint64_t dropped_bytes_ = 0;
};

}  // namespace plfm::init
