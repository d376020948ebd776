// Private to libs/http/src: how server.cc hands a connection whose handler
// returned acceptWebSocket() over to websocket.cc, which keeps Beast's
// websocket headers to itself.
#pragma once

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <functional>
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

// Called with a function that starts a close with 1001 (going away) without
// waiting, once the session runs, and with nullptr before it ends: the server
// calls it when it stops.
using GoingAwayHook = std::function<void(std::function<void()> going_away)>;

// Completes the handshake for `req` on `stream` (whose lowest layer is
// `socket`), runs the session on this thread, then closes. The stream and the
// socket stay open for the caller to close.
void serveWebSocket(BeastStream& stream, Socket& socket, const UpgradeRequest& req,
                    const WebSocketUpgrade& upgrade, const std::string& remote,
                    const GoingAwayHook& hook);
void serveWebSocket(TlsStream& stream, Socket& socket, const UpgradeRequest& req,
                    const WebSocketUpgrade& upgrade, const std::string& remote,
                    const GoingAwayHook& hook);

}  // namespace internal
}  // namespace plfm::http
