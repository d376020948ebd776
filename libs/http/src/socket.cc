#include "socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

namespace plfm::http::internal {
namespace {

std::error_code lastError() { return {errno, std::system_category()}; }

// Waits for `events` on `fd` until `deadline`; restarts after signals.
std::error_code waitFor(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, pollTimeoutMs(deadline));
    if (r > 0) return {};
    if (r == 0) {
      if (SteadyClock::now() >= deadline) return std::make_error_code(std::errc::timed_out);
      continue;  // woke early (rounding); wait for the remainder
    }
    if (errno != EINTR) return lastError();
  }
}

}  // namespace

int pollTimeoutMs(Deadline deadline) {
  if (deadline == kNoDeadline) return -1;
  const auto left = deadline - SteadyClock::now();
  if (left <= SteadyClock::duration::zero()) return 0;
  const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left).count();
  return static_cast<int>(std::min<int64_t>(ms, 1'000'000));
}

Socket& Socket::operator=(Socket&& o) noexcept {
  if (this != &o) {
    close();
    fd_ = o.fd_;
    deadline_ = o.deadline_;
    o.fd_ = -1;
  }
  return *this;
}

void Socket::close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

size_t Socket::readSome(void* data, size_t size, std::error_code& ec) {
  ec.clear();
  // The deadline bounds the whole exchange, not only each wait: a peer that
  // keeps sending (an endless body, a byte at a time) must not outlive it.
  if (deadline_ != kNoDeadline && SteadyClock::now() >= deadline_) {
    ec = std::make_error_code(std::errc::timed_out);
    return 0;
  }
  for (;;) {
    const ssize_t n = ::recv(fd_, data, size, 0);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = lastError();
      return 0;
    }
    ec = waitFor(fd_, POLLIN, deadline_);
    if (ec) return 0;
  }
}

size_t Socket::writeSome(const iovec* iov, size_t count, std::error_code& ec) {
  ec.clear();
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(iov);
  msg.msg_iovlen = count;
  for (;;) {
    // MSG_NOSIGNAL: a peer that went away is an error value, not SIGPIPE.
    const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      ec = lastError();
      return 0;
    }
    ec = waitFor(fd_, POLLOUT, deadline_);
    if (ec) return 0;
  }
}

std::error_code Socket::waitReadable(Deadline deadline) { return waitFor(fd_, POLLIN, deadline); }

void Socket::shutdown(int how) const {
  if (fd_ >= 0) ::shutdown(fd_, how);
}

void Socket::linger(Deadline deadline) {
  shutdown(SHUT_WR);
  setDeadline(deadline);
  std::array<char, 16 << 10> scratch{};
  std::error_code ec;
  while (readSome(scratch.data(), scratch.size(), ec) > 0) {
  }
}

bool Socket::peerClosedOrReadable() const {
  pollfd p{fd_, POLLIN, 0};
  return ::poll(&p, 1, 0) != 0;
}

std::error_code writeAll(Socket& socket, std::string_view data) {
  while (!data.empty()) {
    iovec iov{const_cast<char*>(data.data()), data.size()};
    std::error_code ec;
    const size_t n = socket.writeSome(&iov, 1, ec);
    if (ec) return ec;
    data.remove_prefix(n);
  }
  return {};
}

namespace {

// getaddrinfo for a stream socket with extra `flags`.
int lookup(const std::string& host, uint16_t port, int flags, std::vector<SockAddr>& out) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags;
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &list);
  if (rc != 0) return rc;
  for (const addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
    SockAddr a;
    std::memcpy(&a.storage, ai->ai_addr, ai->ai_addrlen);
    a.len = ai->ai_addrlen;
    out.push_back(a);
  }
  ::freeaddrinfo(list);
  return 0;
}

}  // namespace

std::optional<SockAddr> numericAddress(const std::string& host, uint16_t port) {
  std::vector<SockAddr> out;
  if (lookup(host, port, AI_NUMERICHOST | AI_NUMERICSERV, out) != 0 || out.empty()) {
    return std::nullopt;
  }
  return out.front();
}

Result<std::vector<SockAddr>> resolveTcp(const std::string& host, uint16_t port) {
  std::vector<SockAddr> out;
  const int rc = lookup(host, port, AI_NUMERICSERV, out);
  if (rc != 0) {
    return Error(errc::kUnavailable, "resolve " + host + ": " + ::gai_strerror(rc));
  }
  if (out.empty()) return Error(errc::kUnavailable, "resolve " + host + ": no addresses");
  return out;
}

SockAddr unixAddress(const std::string& path) {
  SockAddr a;
  auto& un = reinterpret_cast<sockaddr_un&>(a.storage);
  un.sun_family = AF_UNIX;
  const size_t n = std::min(path.size(), sizeof(un.sun_path) - 1);
  std::memcpy(un.sun_path, path.data(), n);
  a.len = sizeof(sockaddr_un);
  return a;
}

std::error_code listenOn(Socket& out, const SockAddr& addr, std::string_view& step) {
  step = "socket";
  Socket s(::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.valid()) return lastError();
  const int one = 1;
  if (addr.family() != AF_UNIX) {
    step = "SO_REUSEADDR";
    if (::setsockopt(s.fd(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
      return lastError();
    }
  }
  if (addr.family() == AF_INET6) {
    step = "IPV6_V6ONLY";
    if (::setsockopt(s.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) {
      return lastError();
    }
  }
  step = "bind";
  if (::bind(s.fd(), addr.get(), addr.len) != 0) return lastError();
  step = "listen";
  if (::listen(s.fd(), SOMAXCONN) != 0) return lastError();
  out = std::move(s);
  return {};
}

std::error_code localAddress(const Socket& socket, SockAddr& out) {
  out.len = sizeof(out.storage);
  if (::getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&out.storage), &out.len) != 0) {
    return lastError();
  }
  return {};
}

std::error_code connectSocket(Socket& out, const sockaddr* addr, socklen_t len, Deadline deadline) {
  Socket s(::socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s.valid()) return lastError();
  if (::connect(s.fd(), addr, len) != 0) {
    if (errno == EAGAIN && addr->sa_family == AF_UNIX) {
      // A Unix socket with a full backlog; a TCP one would be EINPROGRESS.
      return std::make_error_code(std::errc::connection_refused);
    }
    if (errno != EINPROGRESS && errno != EINTR) return lastError();
    if (auto ec = waitFor(s.fd(), POLLOUT, deadline)) return ec;
    int err = 0;
    socklen_t err_len = sizeof(err);
    if (::getsockopt(s.fd(), SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) return lastError();
    if (err != 0) return {err, std::system_category()};
  }
  if (addr->sa_family != AF_UNIX) {
    int one = 1;
    ::setsockopt(s.fd(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  out = std::move(s);
  return {};
}

bool isIpLiteral(const std::string& host) {
  in6_addr a6{};
  in_addr a4{};
  return ::inet_pton(AF_INET6, host.c_str(), &a6) == 1 ||
         ::inet_pton(AF_INET, host.c_str(), &a4) == 1;
}

bool isLoopbackHost(const std::string& host) {
  if (host == "localhost") return true;
  in6_addr a6{};
  if (::inet_pton(AF_INET6, host.c_str(), &a6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
  }
  in_addr a4{};
  return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

std::string sourceKey(const sockaddr_storage& addr, int ipv6_prefix) {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  if (addr.ss_family == AF_INET) {
    const auto& a4 = reinterpret_cast<const sockaddr_in&>(addr);
    ::inet_ntop(AF_INET, &a4.sin_addr, buf.data(), buf.size());
    return buf.data();
  }
  if (addr.ss_family != AF_INET6) return {};
  in6_addr a6 = reinterpret_cast<const sockaddr_in6&>(addr).sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&a6)) {
    ::inet_ntop(AF_INET, &a6.s6_addr[12], buf.data(), buf.size());
    return buf.data();
  }
  const int bits = std::clamp(ipv6_prefix, 0, 128);
  for (int i = 0; i < 16; ++i) {
    const int keep = std::clamp(bits - (i * 8), 0, 8);
    a6.s6_addr[i] &= static_cast<uint8_t>(0xFF00U >> keep);
  }
  ::inet_ntop(AF_INET6, &a6, buf.data(), buf.size());
  return std::string(buf.data()) + "/" + std::to_string(bits);
}

std::string formatPeer(const sockaddr_storage& addr) {
  std::array<char, INET6_ADDRSTRLEN> buf{};
  if (addr.ss_family == AF_INET6) {
    const auto& a6 = reinterpret_cast<const sockaddr_in6&>(addr);
    ::inet_ntop(AF_INET6, &a6.sin6_addr, buf.data(), buf.size());
    return "[" + std::string(buf.data()) + "]:" + std::to_string(ntohs(a6.sin6_port));
  }
  if (addr.ss_family == AF_INET) {
    const auto& a4 = reinterpret_cast<const sockaddr_in&>(addr);
    ::inet_ntop(AF_INET, &a4.sin_addr, buf.data(), buf.size());
    return std::string(buf.data()) + ":" + std::to_string(ntohs(a4.sin_port));
  }
  return "unix";
}

}  // namespace plfm::http::internal
