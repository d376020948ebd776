// Private to libs/http/src: URL parsing and connection setup shared by the
// HTTP client (client.cc) and the WebSocket client (websocket.cc).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "plfm/core/result.h"
#include "plfm/http/http.h"
#include "socket.h"
#include "tls.h"

namespace plfm::http::internal {

struct Endpoint {
  bool is_unix = false;
  bool tls = false;  // https://
  std::string unix_path;
  std::string host;  // without brackets
  uint16_t port = 80;
  std::string authority;  // the Host header
  std::string display;    // for errors: "[::1]:8080", "unix:/run/plfm.sock"
};

struct ParsedUrl {
  Endpoint endpoint;
  std::string target;  // "/v1/orgs?limit=5"; empty for a base URL without a path
};

// A request URL (https://, http://, unix:/path:/target), or with `base` a
// Client's base URL ("unix:/path" is then the socket path alone).
[[nodiscard]] Result<ParsedUrl> parseUrl(std::string_view url, bool base);

// Plain HTTP carries bearer tokens in clear: only to this host, unless the
// caller opted into the unsafe mode.
[[nodiscard]] Result<void> checkPlain(const Endpoint& ep, const ClientTlsOptions& tls);

// One connection: the socket, and the TLS session over it for https. Lives
// behind a unique_ptr: the TLS stream refers to the socket.
struct Connection {
  Socket socket;
  std::unique_ptr<TlsStream> tls;
};

// Connects (and handshakes TLS for an https endpoint, with `tls`) before
// `deadline`; `timeout` is what errors report.
[[nodiscard]] Result<std::unique_ptr<Connection>> openConnection(const Endpoint& ep,
                                                                 const ClientTls* tls,
                                                                 Deadline deadline,
                                                                 std::chrono::milliseconds timeout);

}  // namespace plfm::http::internal
