// WebSocket connections (websocket.h): the server's handover from an HTTP
// connection, the client's connect and handshake, and acceptWebSocket()'s
// checks of an upgrade request. The connection itself is websocket_session.h.
// GCC 12: a -Wnull-dereference false positive inside Asio, for this file
// and its unity batch only (libs/http/CMakeLists.txt).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include "plfm/http/websocket.h"

#include <algorithm>
#include <boost/beast/websocket/stream.hpp>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "client_conn.h"
#include "internal.h"
#include "plfm/core/log.h"
#include "websocket_server.h"
#include "websocket_session.h"

namespace plfm::http {

struct WebSocket::Impl {
  std::string remote;
  uint16_t finish_code = kCloseNormal;
  // A client connection owns its transport; a server's belongs to its thread.
  std::unique_ptr<internal::Connection> conn;
  std::unique_ptr<internal::BeastStream> plain;
  std::unique_ptr<internal::Session> session;  // declared last: goes first
};

WebSocket::WebSocket(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WebSocket::~WebSocket() {
  if (!impl_ || !impl_->session) return;
  impl_->session->finish(impl_->finish_code);
  impl_->session.reset();
}

Result<std::string> WebSocket::read() { return impl_->session->read(); }
Result<void> WebSocket::write(std::string_view message) { return impl_->session->write(message); }
Result<void> WebSocket::close(uint16_t code, std::string_view reason) {
  return impl_->session->close(code, reason);
}
std::optional<CloseStatus> WebSocket::closeStatus() const { return impl_->session->closeStatus(); }
const std::string& WebSocket::remote() const { return impl_->remote; }

namespace internal {
namespace {

template <class Stream>
void serveOn(Stream& stream, Socket& socket, const UpgradeRequest& req,
             const WebSocketUpgrade& upgrade, const std::string& remote,
             const GoingAwayHook& hook) {
  auto session = std::make_unique<SessionImpl<Stream>>(stream, socket, upgrade.options);
  socket.setDeadline(SteadyClock::now() + upgrade.options.handshake_timeout);
  BoostError ec;
  session->ws().accept(req, ec);
  if (ec) {
    log::info("websocket: handshake failed", {{"remote", remote}, {"error", ec.message()}});
    return;
  }
  if (auto started = session->start(); !started) {
    log::error("websocket: cannot start",
               {{"remote", remote}, {"error", started.error().message()}});
    return;
  }
  auto impl = std::make_unique<WebSocket::Impl>();
  WebSocket::Impl* raw = impl.get();
  raw->remote = remote;
  raw->session = std::move(session);
  WebSocket ws(std::move(impl));
  Session* const live = raw->session.get();
  hook([live] { live->startClose(kCloseGoingAway, "server shutting down"); });
  try {
    upgrade.session(ws);
  } catch (const std::exception& e) {
    log::error("websocket session threw", {{"remote", remote}, {"error", e.what()}});
    raw->finish_code = kCloseInternalError;
  } catch (...) {
    log::error("websocket session threw", {{"remote", remote}, {"error", "unknown exception"}});
    raw->finish_code = kCloseInternalError;
  }
  hook(nullptr);
}

bool validHeader(std::string_view name, std::string_view value) {
  constexpr std::string_view kBad("\r\n\0", 3);
  return !name.empty() && name.find_first_of(kBad) == std::string_view::npos &&
         name.find_first_of(" :") == std::string_view::npos &&
         value.find_first_of(kBad) == std::string_view::npos;
}

Error declined(const Endpoint& ep, const bws::response_type& res) {
  const int status = static_cast<int>(res.result_int());
  std::string_view code = errc::kFailedPrecondition;
  if (status == 401) code = errc::kUnauthenticated;
  if (status == 403) code = errc::kPermissionDenied;
  if (status == 404) code = errc::kNotFound;
  return Error(code, "websocket upgrade to " + ep.display + " declined with HTTP " +
                         std::to_string(status))
      .with("status", std::to_string(status))
      .with("body", res.body())
      .with("address", ep.display);
}

template <class Stream>
Result<std::unique_ptr<Session>> handshakeAsClient(Stream& stream, Socket& socket,
                                                   const Endpoint& ep, const std::string& target,
                                                   const WebSocketConnectOptions& o) {
  auto session = std::make_unique<SessionImpl<Stream>>(stream, socket, o.options);
  for (const auto& [name, value] : o.headers.all()) {
    if (!validHeader(name, value)) {
      return Error(errc::kInvalidArgument, "invalid request header").with("header", name);
    }
  }
  session->ws().set_option(
      bws::stream_base::decorator([headers = o.headers.all()](bws::request_type& r) {
        for (const auto& header : headers) r.set(header.first, header.second);
      }));
  bws::response_type res;
  BoostError ec;
  session->ws().handshake(res, ep.authority, target, ec);
  if (ec == bws::error::upgrade_declined) return declined(ep, res);
  if (ec == beast::error::timeout) {
    return Error(errc::kDeadlineExceeded,
                 "websocket handshake with " + ep.display + " timed out after " +
                     std::to_string(o.options.handshake_timeout.count()) + " ms")
        .with("address", ep.display);
  }
  if (ec) {
    return Error(errc::kUnavailable, "websocket handshake with " + ep.display + ": " + ec.message())
        .with("address", ep.display);
  }
  PLFM_TRY(session->start());
  return std::unique_ptr<Session>(std::move(session));
}

bool hasToken(std::optional<std::string_view> header, std::string_view token) {
  if (!header) return false;
  std::string_view rest = *header;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

// 16 bytes in base64: 22 characters of the alphabet and "==" (RFC 6455
// section 4.1, item 7).
bool validKey(std::optional<std::string_view> key) {
  if (!key || key->size() != 24 || !key->ends_with("==")) return false;
  return std::all_of(key->begin(), key->end() - 2, [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
  });
}

Response upgradeRequired(std::string_view message) {
  Response r = errorResponse(426, "upgrade_required", message);
  r.headers.set("Upgrade", "websocket");
  r.headers.set("Sec-WebSocket-Version", "13");
  return r;
}

}  // namespace

void serveWebSocket(BeastStream& stream, Socket& socket, const UpgradeRequest& req,
                    const WebSocketUpgrade& upgrade, const std::string& remote,
                    const GoingAwayHook& hook) {
  serveOn(stream, socket, req, upgrade, remote, hook);
}

void serveWebSocket(TlsStream& stream, Socket& socket, const UpgradeRequest& req,
                    const WebSocketUpgrade& upgrade, const std::string& remote,
                    const GoingAwayHook& hook) {
  serveOn(stream, socket, req, upgrade, remote, hook);
}

}  // namespace internal

Response acceptWebSocket(const Request& req, WebSocketOptions options, WebSocketSession session) {
  if (!internal::hasToken(req.header("Upgrade"), "websocket") ||
      !internal::hasToken(req.header("Connection"), "upgrade")) {
    return internal::upgradeRequired(
        "this endpoint speaks WebSocket only: send Upgrade: websocket and Connection: Upgrade");
  }
  if (req.method != "GET") {
    Response r = internal::errorResponse(405, internal::kCodeMethodNotAllowed,
                                         "a WebSocket upgrade must be a GET");
    r.headers.set("Allow", "GET");
    return r;
  }
  const auto version = req.header("Sec-WebSocket-Version");
  if (!version || *version != "13") {
    return internal::upgradeRequired(
        "unsupported WebSocket version: send Sec-WebSocket-Version: 13");
  }
  if (!internal::validKey(req.header("Sec-WebSocket-Key"))) {
    return internal::errorResponse(400, internal::kCodeBadRequest,
                                   "Sec-WebSocket-Key must be 16 bytes in base64");
  }
  Response r;
  r.status = 101;
  r.upgrade =
      std::make_shared<const WebSocketUpgrade>(WebSocketUpgrade{options, std::move(session)});
  return r;
}

Result<std::unique_ptr<WebSocket>> connectWebSocket(const WebSocketConnectOptions& o) {
  try {
    std::string url = o.url;
    if (url.starts_with("ws://")) url.replace(0, 2, "http");
    if (url.starts_with("wss://")) url.replace(0, 3, "https");
    PLFM_ASSIGN_OR_RETURN(internal::ParsedUrl parsed, internal::parseUrl(url, /*base=*/false));
    if (parsed.target.empty()) parsed.target = "/";
    const internal::Endpoint& ep = parsed.endpoint;
    PLFM_TRY(internal::checkPlain(ep, o.tls));
    std::optional<internal::ClientTls> tls;
    if (ep.tls) {
      PLFM_ASSIGN_OR_RETURN(tls, internal::makeClientTls(o.tls));
    }
    const internal::Deadline deadline = internal::SteadyClock::now() + o.options.handshake_timeout;
    auto impl = std::make_unique<WebSocket::Impl>();
    impl->remote = ep.display;
    PLFM_ASSIGN_OR_RETURN(impl->conn, internal::openConnection(ep, tls ? &*tls : nullptr, deadline,
                                                               o.options.handshake_timeout));
    internal::Connection& conn = *impl->conn;
    conn.socket.setDeadline(deadline);
    if (conn.tls) {
      PLFM_ASSIGN_OR_RETURN(
          impl->session, internal::handshakeAsClient(*conn.tls, conn.socket, ep, parsed.target, o));
    } else {
      impl->plain = std::make_unique<internal::BeastStream>(conn.socket);
      PLFM_ASSIGN_OR_RETURN(impl->session, internal::handshakeAsClient(*impl->plain, conn.socket,
                                                                       ep, parsed.target, o));
    }
    return std::make_unique<WebSocket>(std::move(impl));
  } catch (const std::exception& e) {
    return Error(errc::kInternal, std::string("websocket client: ") + e.what());
  }
}

}  // namespace plfm::http
