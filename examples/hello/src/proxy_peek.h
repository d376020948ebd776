// Finding a PROXY protocol v2 header (haproxy doc/proxy-protocol.txt §2.2) in
// front of the TLS handshake, for routes with proxy_protocol = "v2".
//
// The header is looked for, not required: the same port serves the plain
// passthrough route, so hello peeks (MSG_PEEK) at the first bytes and takes
// a header only when they are the 12-byte v2 signature; a TLS ClientHello
// starts with 0x16 and is left untouched. The header's bytes, and only
// those, are then consumed and decoded with libs/networking's parser.
//
// Trust: the spec (§2) says a receiver must not guess whether a header is
// present, because any client could send one. Through the ingress none can:
// it forwards only connections that start with a ClientHello and writes the
// header itself on routes that opt in (ADR 0007). A peer reaching the
// instance directly could; a real app takes headers from trusted peers only.
#pragma once

#include <chrono>
#include <string>

#include "plfm/net/proxy_protocol.h"

namespace plfm::hello {

struct ProxyPeek {
  enum class Kind { kNone, kHeader, kError };
  Kind kind = Kind::kNone;
  net::ProxyHeader header;  // kHeader
  std::string error;        // kError: why the connection should be closed
};

// Blocks until the first bytes decide it, at most `deadline` while they are
// a strict prefix of the signature (then longer reads are bounded by the
// socket's SO_RCVTIMEO).
[[nodiscard]] ProxyPeek readProxyV2(int fd, std::chrono::milliseconds deadline);

}  // namespace plfm::hello
