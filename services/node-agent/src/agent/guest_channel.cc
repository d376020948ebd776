#include "agent/guest_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "agent/errors.h"
#include "runtime/unix_line_client.h"

namespace plfm::agent {

Error fromGuestProto(const guest_proto::Error& e) {
  return Error(errc::kChannelProtocol, e.toString());
}

GuestChannel::~GuestChannel() { close(); }

// Moves are the owner's, while no other thread uses either channel (the
// exec mux is detached first).
GuestChannel::GuestChannel(GuestChannel&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)),
      stalled_(o.stalled_.exchange(false)),
      decoder_(std::move(o.decoder_)) {}

GuestChannel& GuestChannel::operator=(GuestChannel&& o) noexcept {
  if (this != &o) {
    close();
    std::lock_guard lock(send_mu_);
    fd_ = std::exchange(o.fd_, -1);
    stalled_ = o.stalled_.exchange(false);
    decoder_ = std::move(o.decoder_);
  }
  return *this;
}

void GuestChannel::close() {
  std::lock_guard lock(send_mu_);
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;  // stalled_ stays: the owner still has to learn of the stall
}

Result<GuestChannel> GuestChannel::connect(const runtime::VmHandle& vm,
                                           std::chrono::milliseconds timeout) {
  PLFM_ASSIGN_OR_RETURN(auto conn, runtime::UnixLineClient::connect(vm.channel_socket, timeout));
  if (vm.channel_vsock_port != 0) {
    // Firecracker hybrid vsock (docs/vsock.md): "CONNECT <port>\n" -> "OK <port>\n".
    PLFM_TRY(conn.writeAll("CONNECT " + std::to_string(vm.channel_vsock_port) + "\n", timeout));
    PLFM_ASSIGN_OR_RETURN(std::string line, conn.readLine(timeout, 64));
    if (line.rfind("OK ", 0) != 0) {
      return Error(errc::kChannelRefused, "vsock CONNECT refused: " + line)
          .with("instance_id", vm.instance_id);
    }
  }
  int fd = ::dup(conn.fd());
  if (fd < 0) return errnoError("dup", errno);
  return GuestChannel(fd);
}

Result<std::optional<guest_proto::Frame>> GuestChannel::read(std::chrono::milliseconds timeout) {
  if (fd_ < 0) return Error(errc::kChannelClosed, "host channel is not connected");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto frame = decoder_.next();
    if (!frame) return fromGuestProto(frame.error());
    if (*frame) return std::move(*frame);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::optional<guest_proto::Frame>();
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errnoError("poll", errno);
    if (r == 0) return std::optional<guest_proto::Frame>();
    char buf[65536];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) {
      close();
      return Error(errc::kChannelClosed, "the VM closed the host channel");
    }
    decoder_.feed(buf, static_cast<size_t>(n));
  }
}

Result<void> GuestChannel::send(const std::string& bytes, std::chrono::milliseconds timeout) {
  std::lock_guard lock(send_mu_);
  if (fd_ < 0) return Error(errc::kChannelClosed, "host channel is not connected");
  if (stalled_) return Error(std::string(errc::kChannelStalled), "channel stalled");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t off = 0;
  while (off < bytes.size()) {
    // Never block in send(): a full socket buffer means the guest (or its
    // VMM) is not reading, and only the deadline may decide how long to wait.
    ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      off += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      return errnoError("send on host channel", errno);
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    int r = 0;
    if (left.count() > 0) {
      pollfd p{fd_, POLLOUT, 0};
      r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errnoError("poll", errno);
    }
    if (r == 0) {
      // The stream may now end inside a frame: it cannot be used again.
      // Shut down, not closed: the owner may be reading this fd right now;
      // it sees the end of the stream and closes it.
      ::shutdown(fd_, SHUT_RDWR);
      stalled_ = true;
      return Error(std::string(errc::kChannelStalled), "channel stalled")
          .with("sent_bytes", std::to_string(off))
          .with("frame_bytes", std::to_string(bytes.size()))
          .with("timeout_ms", std::to_string(timeout.count()));
    }
  }
  return ok();
}

}  // namespace plfm::agent
