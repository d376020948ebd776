// Private to libs/http/src (Beast-free): the POSIX socket layer under the
// server and client.
//
// Socket is a non-blocking stream socket whose reads and writes block with
// poll() up to a deadline. Beast's own sync operations cannot time out or be
// interrupted (Asio's sync read polls forever after EAGAIN, so SO_RCVTIMEO
// does not help), so the server and client run Beast's parser and serializer
// over this socket instead (see beast_stream.h).
//
// Interrupting: another thread may call shutdown() on the descriptor while
// the owner keeps it open; a blocked read then sees end of stream.
//
// Below it: address parsing, resolution, listen and connect helpers.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::http::internal {

using SteadyClock = std::chrono::steady_clock;
using Deadline = SteadyClock::time_point;

inline constexpr Deadline kNoDeadline = Deadline::max();

class Socket {
 public:
  Socket() = default;
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& o) noexcept : fd_(o.fd_), deadline_(o.deadline_) { o.fd_ = -1; }
  Socket& operator=(Socket&& o) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  [[nodiscard]] bool valid() const { return fd_ >= 0; }
  [[nodiscard]] int fd() const { return fd_; }
  void close();

  // The deadline for every following readSome/writeSome.
  void setDeadline(Deadline d) { deadline_ = d; }
  [[nodiscard]] Deadline deadline() const { return deadline_; }

  // Bytes read; 0 without an error means end of stream. Past the deadline the
  // error is std::errc::timed_out.
  size_t readSome(void* data, size_t size, std::error_code& ec);
  // Bytes written from the gathered buffers (at least one byte unless ec).
  size_t writeSome(const iovec* iov, size_t count, std::error_code& ec);
  // Waits until a read would not block (data, end of stream or an error).
  std::error_code waitReadable(Deadline deadline);

  // Half- or full-closes the connection; safe from another thread.
  void shutdown(int how) const;
  // Before closing after a final response: stop sending, then read and
  // discard what the peer still sends until it closes or `deadline`, so that
  // closing does not reset the connection (destroying the response in the
  // peer's receive buffer) while the peer is still sending. Leaves the
  // descriptor open: the owner closes it.
  void linger(Deadline deadline);
  // True when the peer has closed or sent something unsolicited: a pooled
  // client connection in that state must not be reused.
  [[nodiscard]] bool peerClosedOrReadable() const;

 private:
  int fd_ = -1;
  Deadline deadline_ = kNoDeadline;
};

// Writes all of `data` (before the socket's deadline).
std::error_code writeAll(Socket& socket, std::string_view data);

// A socket address of any family.
struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;

  [[nodiscard]] const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
  [[nodiscard]] int family() const { return storage.ss_family; }
};

// A numeric host ("::1", "127.0.0.1", "fe80::1%eth0"); nullopt for anything
// else, host names included.
[[nodiscard]] std::optional<SockAddr> numericAddress(const std::string& host, uint16_t port);
// Resolves `host` for a TCP connection (getaddrinfo; does not time out).
[[nodiscard]] Result<std::vector<SockAddr>> resolveTcp(const std::string& host, uint16_t port);
// `path` must be shorter than sockaddr_un::sun_path.
[[nodiscard]] SockAddr unixAddress(const std::string& path);

// A non-blocking, close-on-exec listening socket bound to `addr`: TCP ones
// with SO_REUSEADDR, IPv6 ones with IPV6_V6ONLY (so that "[::]:p" and
// "0.0.0.0:p" can coexist). On failure `step` names the failed call.
std::error_code listenOn(Socket& out, const SockAddr& addr, std::string_view& step);
std::error_code localAddress(const Socket& socket, SockAddr& out);

// Connects a new non-blocking stream socket to `addr` before `deadline`.
std::error_code connectSocket(Socket& out, const sockaddr* addr, socklen_t len, Deadline deadline);

// "[::1]:53211" or "127.0.0.1:80" for an AF_INET6/AF_INET address, "unix" for
// AF_UNIX.
std::string formatPeer(const sockaddr_storage& addr);

// The per-source key of a peer for connection caps: "192.0.2.7" for IPv4
// (v4-mapped IPv6 included), the IPv6 address with all but its first
// `ipv6_prefix` bits cleared, "/" and the prefix length ("2001:db8::/64",
// "::1/128"); empty for AF_UNIX and anything else.
std::string sourceKey(const sockaddr_storage& addr, int ipv6_prefix);

// True for an IPv4 or IPv6 address literal (no brackets, no zone).
[[nodiscard]] bool isIpLiteral(const std::string& host);
// True for "localhost" and loopback IP literals (::1, 127/8, ::ffff:127/104).
[[nodiscard]] bool isLoopbackHost(const std::string& host);

// Milliseconds until `deadline` for poll(): -1 for no deadline, rounded up.
int pollTimeoutMs(Deadline deadline);

}  // namespace plfm::http::internal
