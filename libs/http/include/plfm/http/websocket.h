// WebSocket (RFC 6455) connections for our services, server and client, on
// Boost.Beast's websocket stream. Beast and Asio stay inside libs/http/src.
//
// A connection carries whole binary messages. Its limits are fixed when it
// opens (WebSocketOptions): the largest message, how long the peer may stay
// silent, and how long the closing handshake may take. docs/specs/api/
// websocket.md describes the framing and limits as exec uses them.
//
// Server: a route handler parses and authenticates the request as usual, then
// returns acceptWebSocket(); the server answers 101 and runs `session` on the
// connection's own thread. The connection ends when `session` returns.
//
//   router.add("GET", "/v1/exec/{id}/ws", [&](http::Request& req) {
//     if (!authorized(req)) return http::Response::json(401, ...);
//     return http::acceptWebSocket(req, {}, [](http::WebSocket& ws) {
//       while (auto msg = ws.read()) {
//         if (!ws.write(*msg)) break;
//       }
//     });
//   });
//
// Client:
//   PLFM_ASSIGN_OR_RETURN(std::unique_ptr<http::WebSocket> ws,
//                         http::connectWebSocket({.url = "wss://cp:8443/v1/exec/x/ws",
//                                                 .headers = auth, .tls = {.ca_file = ca}}));
//
// Threads: every method of WebSocket may be called from any thread. Writes are
// queued and sent one at a time, whole, in the order they were queued (a
// message is never interleaved with another): there is no way to write to the
// stream concurrently. One read() at a time (concurrent readers wait for each
// other). The connection reads continuously in the background into a small
// inbox (one message), so pings are answered and a close from the peer is seen
// even while nobody calls read(); a full inbox pauses reading (backpressure).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "plfm/core/result.h"
#include "plfm/http/http.h"

namespace plfm::http {

// Close codes (RFC 6455 section 7.4.1).
inline constexpr uint16_t kCloseNormal = 1000;
inline constexpr uint16_t kCloseGoingAway = 1001;
inline constexpr uint16_t kCloseProtocolError = 1002;
inline constexpr uint16_t kCloseUnsupportedData = 1003;  // a text message: we speak binary
inline constexpr uint16_t kClosePolicyViolation = 1008;
inline constexpr uint16_t kCloseMessageTooBig = 1009;
inline constexpr uint16_t kCloseInternalError = 1011;

// The error code of read(), write() and close() once the connection has been
// closed by a close handshake (either side's). details: close_code,
// close_reason (the peer's, when it sent one).
inline constexpr std::string_view kErrWebSocketClosed = "websocket_closed";

struct WebSocketOptions {
  // The largest message either way. A larger incoming message fails the
  // connection with close code 1009 (read() gets errc::kResourceExhausted); a
  // larger outgoing one is refused by write() with errc::kInvalidArgument.
  size_t max_message_bytes = 1 << 20;
  // Keepalive: when nothing arrives for idle_timeout / 2, a ping goes out; when
  // nothing (not even the pong) arrives for idle_timeout, the peer is dead and
  // the connection fails with errc::kDeadlineExceeded. A live peer answers
  // pings by itself, so an idle session lasts forever. Paused while the inbox
  // is full (a slow local reader is not a dead peer).
  std::chrono::milliseconds idle_timeout{60'000};
  // The opening handshake (client: connect, TLS and upgrade) and the closing
  // one; a peer that does not answer a close in time is disconnected.
  std::chrono::milliseconds handshake_timeout{10'000};
};

struct CloseStatus {
  uint16_t code = kCloseNormal;
  std::string reason;
};

class WebSocket {
 public:
  struct Impl;
  explicit WebSocket(std::unique_ptr<Impl> impl);
  // Closes with 1000 if still open (bounded by handshake_timeout), then
  // releases the connection. No other thread may still be using it.
  ~WebSocket();
  WebSocket(const WebSocket&) = delete;
  WebSocket& operator=(const WebSocket&) = delete;

  // The next message. Errors: kErrWebSocketClosed after a close handshake
  // (the peer's close code in details, also closeStatus());
  // errc::kResourceExhausted for a message over max_message_bytes;
  // errc::kDeadlineExceeded when the peer went silent (keepalive);
  // errc::kFailedPrecondition for a text message (closed with 1003);
  // errc::kUnavailable when the transport failed. The same error repeats.
  [[nodiscard]] Result<std::string> read();
  // Sends one binary message and waits until it is written to the transport.
  // Safe from several threads at once (see the top of this file).
  [[nodiscard]] Result<void> write(std::string_view message);
  // Starts the closing handshake with `code` and `reason` (at most 123
  // bytes) and waits for the peer's answer (bounded by handshake_timeout).
  // Writes after it fail; read() returns the messages already received, then
  // kErrWebSocketClosed. A second close() waits for the first.
  [[nodiscard]] Result<void> close(uint16_t code = kCloseNormal, std::string_view reason = {});
  // The close frame the peer sent, once it arrived.
  [[nodiscard]] std::optional<CloseStatus> closeStatus() const;
  // The peer: "[::1]:53211" (or "unix") on the server; the server's address
  // ("[::1]:8080", "cp.example:443", "unix:/run/plfm.sock") on a client.
  [[nodiscard]] const std::string& remote() const;

 private:
  std::unique_ptr<Impl> impl_;
};

// The body of a WebSocket session on the server, run on the connection's
// thread once the 101 response is out. It may hand `ws` to other threads, but
// must join them before it returns: the connection closes (1000) when it
// returns. A throw closes with 1011.
using WebSocketSession = std::function<void(WebSocket& ws)>;

// Upgrades `req` to a WebSocket when it is a valid upgrade request (RFC 6455
// section 4.2.1): GET with "Upgrade: websocket", "Connection: Upgrade",
// "Sec-WebSocket-Version: 13" and a Sec-WebSocket-Key. Otherwise it returns
// the error response to send instead, in the JSON error envelope: 426
// (upgrade_required, with "Upgrade: websocket" and "Sec-WebSocket-Version:
// 13") for a request that is no WebSocket upgrade or asks for another
// version, 400 (bad_request) for a malformed key, 405 for another method.
// Returned from a handler, the response makes the server take over the
// connection and run `session` (Response::upgrade).
[[nodiscard]] Response acceptWebSocket(const Request& req, WebSocketOptions options,
                                       WebSocketSession session);

struct WebSocketConnectOptions {
  // "wss://cp.example:8443/v1/x", "ws://[::1]:8080/v1/x", the http(s):// forms
  // of the same, or "unix:/run/plfm.sock:/v1/x" (as ClientRequest::url).
  // Plain ws:// to a non-loopback host needs tls.unsafe_allow_plain_http.
  std::string url = {};
  Headers headers = {};  // added to the upgrade request (Authorization, ...)
  ClientTlsOptions tls = {};
  WebSocketOptions options = {};
};

// Connects, handshakes (TLS, then the upgrade) within
// options.handshake_timeout. An HTTP answer other than 101 is an error with
// details status and body: errc::kUnauthenticated (401),
// errc::kPermissionDenied (403), errc::kNotFound (404), otherwise
// errc::kFailedPrecondition. Transport errors as for http::request().
[[nodiscard]] Result<std::unique_ptr<WebSocket>> connectWebSocket(
    const WebSocketConnectOptions& options);

}  // namespace plfm::http
