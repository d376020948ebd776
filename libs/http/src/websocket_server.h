// Private to libs/http/src: how server.cc hands a connection whose handler
// returned acceptWebSocket() over to websocket.cc, which keeps Beast's
// websocket headers to itself.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <string>

#include "beast_stream.h"
#include "plfm/http/websocket.h"
#include "socket.h"
#include "tls.h"

namespace plfm::http {

// What acceptWebSocket() puts in Response::upgrade.
struct WebSocketUpgrade {
  WebSocketOptions options;
  WebSocketSession session;
};

namespace internal {

using UpgradeRequest = boost::beast::http::request<boost::beast::http::string_body>;

// Completes the handshake for `req` on `stream` (whose lowest layer is
// `socket`), runs the session on this thread, then closes. The stream and the
// socket stay open for the caller to close.
void serveWebSocket(BeastStream& stream, Socket& socket, const UpgradeRequest& req,
                    const WebSocketUpgrade& upgrade, const std::string& remote);
void serveWebSocket(TlsStream& stream, Socket& socket, const UpgradeRequest& req,
                    const WebSocketUpgrade& upgrade, const std::string& remote);

}  // namespace internal
}  // namespace plfm::http
