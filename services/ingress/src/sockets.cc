#include "sockets.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace plfm::ingress {

void toSockaddr(const net::IpEndpoint& e, sockaddr_storage& ss, socklen_t& len) {
  std::memset(&ss, 0, sizeof ss);
  if (e.v6) {
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_port = htons(e.port);
    std::memcpy(&sa.sin6_addr, e.address.data(), 16);
    std::memcpy(&ss, &sa, sizeof sa);
    len = sizeof sa;
  } else {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(e.port);
    std::memcpy(&sa.sin_addr, e.address.data(), 4);
    std::memcpy(&ss, &sa, sizeof sa);
    len = sizeof sa;
  }
}

std::optional<net::IpEndpoint> endpointFromSockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6) {
    sockaddr_in6 sa{};
    std::memcpy(&sa, &ss, sizeof sa);
    std::array<uint8_t, 16> a{};
    std::memcpy(a.data(), &sa.sin6_addr, 16);
    return net::IpEndpoint::ipv6(a, ntohs(sa.sin6_port));
  }
  if (ss.ss_family == AF_INET) {
    sockaddr_in sa{};
    std::memcpy(&sa, &ss, sizeof sa);
    std::array<uint8_t, 4> a{};
    std::memcpy(a.data(), &sa.sin_addr, 4);
    return net::IpEndpoint::ipv4(a, ntohs(sa.sin_port));
  }
  return std::nullopt;
}

std::optional<net::IpEndpoint> localEndpoint(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return std::nullopt;
  return endpointFromSockaddr(ss);
}

Result<int> listenTcp(const net::IpEndpoint& at, const ListenOptions& options) {
  const int family = at.v6 ? AF_INET6 : AF_INET;
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errnoError("socket", errno);
  auto fail = [fd, &at](const char* what) {
    const int err = errno;
    ::close(fd);
    return errnoError(std::string(what) + " " + at.toString(), err);
  };
  const int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
    return fail("SO_REUSEADDR");
  }
  if (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
    return fail("SO_REUSEPORT");
  }
  if (at.v6 && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
    return fail("IPV6_V6ONLY");
  }
  // Accepted sockets inherit TCP_NODELAY from the listener: one setsockopt
  // per listener instead of one per connection.
  if (options.nodelay && ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    return fail("TCP_NODELAY");
  }
  if (options.defer_accept_secs > 0) {
    const int secs = options.defer_accept_secs;
    if (::setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof secs) != 0) {
      return fail("TCP_DEFER_ACCEPT");
    }
  }
  sockaddr_storage ss{};
  socklen_t len = 0;
  toSockaddr(at, ss, len);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0) return fail("bind");
  if (::listen(fd, options.backlog) != 0) return fail("listen");
  return fd;
}

Result<std::string> proxyV2Header(const net::IpEndpoint& client, const net::IpEndpoint& listener) {
  return net::encodeProxyV2(net::ProxyHeader::tcp(client, listener));
}

}  // namespace plfm::ingress
