// Private to libs/http/src, included by server.cc, client.cc and tls.cc:
// TLS (OpenSSL through asio::ssl::stream) over the deadline-aware
// BeastStream, so that handshakes, reads and writes keep Socket's deadlines
// and can still be interrupted by shutdown().
#pragma once

#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <memory>
#include <string>

#include "beast_stream.h"
#include "plfm/core/result.h"
#include "plfm/http/http.h"

namespace plfm::http::internal {

using TlsStream = boost::asio::ssl::stream<BeastStream>;

// A server's certificate and key, loaded once at start().
struct ServerTls {
  std::shared_ptr<boost::asio::ssl::context> context;
};
// Fails with a message naming the file that cannot be used (never its
// contents).
[[nodiscard]] Result<ServerTls> makeServerTls(const ServerTlsOptions& options);

// How a client verifies one server.
struct ClientTls {
  std::shared_ptr<boost::asio::ssl::context> context;
  std::string pinned_der;     // DER of the pinned certificate; empty: CA + name checks
  std::string pinned_sha256;  // or the hex SHA-256 of that DER
};
[[nodiscard]] Result<ClientTls> makeClientTls(const ClientTlsOptions& options);

// Handshakes as a client with `host` (SNI for a name, and the DNS name or IP
// address that the certificate must carry). `display` names the server in
// errors. The socket's deadline bounds the handshake.
[[nodiscard]] Result<void> clientHandshake(TlsStream& stream, const ClientTls& tls,
                                           const std::string& host, const std::string& display);

}  // namespace plfm::http::internal
