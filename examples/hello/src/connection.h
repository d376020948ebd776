// One accepted connection, start to end: on the HTTPS port an optional PROXY
// v2 header, the TLS handshake, one request and its answer; on the health
// port the same in plain HTTP. Every outcome is one log line.
#pragma once

#include <openssl/ssl.h>

#include <chrono>

#include "answer.h"
#include "config.h"
#include "plfm/net/proxy_protocol.h"

namespace plfm::hello {

// A slow or silent client holds its thread this long per read or write.
inline constexpr std::chrono::seconds kIoTimeout{10};

// Serves the connection and closes `fd`. `tls` is used on the HTTPS port.
void serveConnection(int fd, Listener listener, const net::IpEndpoint& peer, const Config& config,
                     SSL_CTX* tls);

}  // namespace plfm::hello
