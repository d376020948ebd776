// Socket helpers of the data path: sockaddr <-> IpEndpoint conversion,
// listener sockets, and the PROXY v2 header for one connection. Every
// address is handled as IPv6 or IPv4 by its family; nothing assumes IPv4.
#pragma once

#include <sys/socket.h>

#include <optional>
#include <string>

#include "plfm/core/result.h"
#include "plfm/net/proxy_protocol.h"

namespace plfm::ingress {

[[nodiscard]] std::optional<net::IpEndpoint> endpointFromSockaddr(const sockaddr_storage& ss);
// The inverse: fills `ss` (zeroed first) and its length.
void toSockaddr(const net::IpEndpoint& e, sockaddr_storage& ss, socklen_t& len);

// The local address a connected socket was accepted on (getsockname).
[[nodiscard]] std::optional<net::IpEndpoint> localEndpoint(int fd);

struct ListenOptions {
  int backlog = 4096;
  bool reuse_port = false;    // SO_REUSEPORT: another socket may bind the same address
  bool nodelay = false;       // TCP_NODELAY, inherited by every accepted socket
  int defer_accept_secs = 0;  // TCP_DEFER_ACCEPT; 0: off
};

// A non-blocking listening TCP socket. IPv6 sockets are IPV6_V6ONLY, so
// "[::]:443" never takes IPv4 connections: IPv4 needs its own listener.
[[nodiscard]] Result<int> listenTcp(const net::IpEndpoint& at, const ListenOptions& options);

// The PROXY v2 header (PROXY command, TCP) that tells a backend the client
// address and the listener address the client connected to.
[[nodiscard]] Result<std::string> proxyV2Header(const net::IpEndpoint& client,
                                                const net::IpEndpoint& listener);

}  // namespace plfm::ingress
