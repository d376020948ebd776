#include "runtime/unix_line_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace plfm::runtime {
namespace {

using SteadyClock = std::chrono::steady_clock;

int remainingMs(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

UnixLineClient::~UnixLineClient() {
  if (fd_ >= 0) ::close(fd_);
}

UnixLineClient::UnixLineClient(UnixLineClient&& o) noexcept
    : fd_(o.fd_), buffer_(std::move(o.buffer_)) {
  o.fd_ = -1;
}

UnixLineClient& UnixLineClient::operator=(UnixLineClient&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    buffer_ = std::move(o.buffer_);
    o.fd_ = -1;
  }
  return *this;
}

Result<UnixLineClient> UnixLineClient::connect(const std::string& path,
                                               std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) {
    return Error(errc::kInvalidArgument, "socket path too long").with("path", path);
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  auto deadline = SteadyClock::now() + timeout;
  while (true) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errnoError("socket", errno);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
      return UnixLineClient(fd);
    }
    int err = errno;
    ::close(fd);
    if ((err != ENOENT && err != ECONNREFUSED) || SteadyClock::now() >= deadline) {
      return errnoError("connect " + path, err);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

Result<void> UnixLineClient::writeAll(std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = SteadyClock::now() + timeout;
  while (!data.empty()) {
    pollfd p{fd_, POLLOUT, 0};
    int r = ::poll(&p, 1, remainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errnoError("poll", errno);
    if (r == 0) return Error(errc::kDeadlineExceeded, "write timed out");
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return errnoError("send", errno);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok();
}

Result<void> UnixLineClient::writeAllWithFd(std::string_view data, int pass_fd,
                                            std::chrono::milliseconds timeout) {
  if (data.empty()) return ok();
  pollfd p{fd_, POLLOUT, 0};
  const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
  if (ready <= 0) return Error(errc::kDeadlineExceeded, "write timed out");
  iovec iov{const_cast<char*>(data.data()), 1};  // NOLINT(cppcoreguidelines-pro-type-const-cast)
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
  cmsg->cmsg_level = SOL_SOCKET;
  cmsg->cmsg_type = SCM_RIGHTS;
  cmsg->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(cmsg), &pass_fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n != 1) return errnoError("sendmsg", errno);
  return writeAll(data.substr(1), timeout);
}

Result<std::string> UnixLineClient::readLine(std::chrono::milliseconds timeout, size_t max_bytes) {
  auto deadline = SteadyClock::now() + timeout;
  while (true) {
    auto nl = buffer_.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      return line;
    }
    if (buffer_.size() > max_bytes) return Error(errc::kResourceExhausted, "line too long");
    pollfd p{fd_, POLLIN, 0};
    int r = ::poll(&p, 1, remainingMs(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errnoError("poll", errno);
    if (r == 0) return Error(errc::kDeadlineExceeded, "read timed out");
    char chunk[4096];
    ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return errnoError("recv", errno);
    if (n == 0) return Error(errc::kUnavailable, "connection closed");
    buffer_.append(chunk, static_cast<size_t>(n));
  }
}

}  // namespace plfm::runtime
