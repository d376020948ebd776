// http::request and http::Client: Beast's HTTP/1.1 serializer and parser over
// a deadline-aware socket (socket.h), under TLS for https:// (tls.h). Every Asio/Beast exception is
// caught here and becomes a plfm::Error.
// GCC 12: a -Wnull-dereference false positive inside Asio, for this file
// and its unity batch only (libs/http/CMakeLists.txt).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <sys/un.h>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <charconv>
#include <cstring>
#include <optional>

#include "beast_stream.h"
#include "client_conn.h"
#include "internal.h"
#include "plfm/core/assert.h"
#include "plfm/http/failover.h"
#include "plfm/http/http.h"
#include "socket.h"
#include "tls.h"

namespace plfm::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using internal::Deadline;
using internal::SteadyClock;
using BoostError = boost::system::error_code;

// Responses come from our own services; this only bounds a runaway body.
constexpr uint64_t kMaxResponseBodyBytes = uint64_t{1} << 30;

using internal::Connection;
using internal::Endpoint;
using internal::ParsedUrl;

Error badUrl(std::string_view url, std::string_view why) {
  return Error(errc::kInvalidArgument,
               "invalid URL \"" + std::string(url) + "\": " + std::string(why));
}

Result<ParsedUrl> parseUnixUrl(std::string_view url, bool base) {
  ParsedUrl out;
  std::string_view rest = url.substr(5);
  std::string_view path = rest;
  if (!base) {
    // "unix:/run/plfm.sock:/v1/orgs": the socket path ends at the first ":/".
    const size_t split = rest.find(":/");
    path = rest.substr(0, split);
    out.target = split == std::string_view::npos ? "/" : std::string(rest.substr(split + 1));
  }
  if (path.empty() || path.front() != '/') return badUrl(url, "unix socket path must be absolute");
  if (path.size() >= sizeof(sockaddr_un::sun_path)) {
    return badUrl(url, "unix socket path is longer than 107 bytes");
  }
  out.endpoint.is_unix = true;
  out.endpoint.unix_path = std::string(path);
  out.endpoint.authority = "localhost";
  out.endpoint.display = "unix:" + out.endpoint.unix_path;
  return out;
}

Result<ParsedUrl> parseHttpUrl(std::string_view url) {
  ParsedUrl out;
  std::string_view rest;
  if (url.starts_with("https://")) {
    out.endpoint.tls = true;
    out.endpoint.port = 443;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return badUrl(url, "expected https://, http:// or unix:");
  }
  const size_t path_start = rest.find_first_of("/?");
  const std::string_view authority = rest.substr(0, path_start);
  if (path_start != std::string_view::npos) {
    out.target = std::string(rest.substr(path_start));
    if (out.target.front() == '?') out.target.insert(0, "/");
  }
  Endpoint& ep = out.endpoint;
  std::string_view port;
  if (authority.starts_with("[")) {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return badUrl(url, "unterminated [IPv6 address]");
    ep.host = std::string(authority.substr(1, close - 1));
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return badUrl(url, "junk after ]");
    port = after.empty() ? after : after.substr(1);
  } else {
    const size_t colon = authority.rfind(':');
    ep.host = std::string(authority.substr(0, colon));
    port = colon == std::string_view::npos ? std::string_view() : authority.substr(colon + 1);
  }
  if (ep.host.empty()) return badUrl(url, "missing host");
  if (!port.empty()) {
    const auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), ep.port);
    if (err != std::errc() || end != port.data() + port.size()) return badUrl(url, "bad port");
  }
  ep.authority = std::string(authority);
  ep.display = ep.host.find(':') != std::string::npos
                   ? "[" + ep.host + "]:" + std::to_string(ep.port)
                   : ep.host + ":" + std::to_string(ep.port);
  return out;
}

}  // namespace

Result<ParsedUrl> internal::parseUrl(std::string_view url, bool base) {
  if (url.starts_with("unix:")) return parseUnixUrl(url, base);
  return parseHttpUrl(url);
}

Result<void> checkBaseUrl(std::string_view url) {
  PLFM_TRY(internal::parseUrl(url, /*base=*/true));
  return ok();
}

namespace {

Error transportError(const Endpoint& ep, std::string_view step, const BoostError& ec,
                     std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout || ec == boost::system::errc::timed_out) {
    return Error(errc::kDeadlineExceeded, std::string(step) + " " + ep.display +
                                              ": timed out after " +
                                              std::to_string(timeout.count()) + " ms")
        .with("address", ep.display);
  }
  return Error(errc::kUnavailable, std::string(step) + " " + ep.display + ": " + ec.message())
      .with("address", ep.display);
}

}  // namespace

Result<void> internal::checkPlain(const Endpoint& ep, const ClientTlsOptions& tls) {
  if (ep.is_unix || ep.tls || tls.unsafe_allow_plain_http || internal::isLoopbackHost(ep.host)) {
    return ok();
  }
  return Error(errc::kFailedPrecondition,
               "refusing plain http:// to " + ep.display +
                   ": it is not a loopback address and the request would cross the network "
                   "unencrypted; use https:// (or opt into unsafe plain HTTP)")
      .with("address", ep.display);
}

namespace {

Result<internal::Socket> connectTo(const Endpoint& ep, Deadline deadline,
                                   std::chrono::milliseconds timeout) {
  std::vector<internal::SockAddr> candidates;
  if (ep.is_unix) {
    candidates.push_back(internal::unixAddress(ep.unix_path));
  } else if (auto literal = internal::numericAddress(ep.host, ep.port)) {
    candidates.push_back(*literal);
  } else {
    // "localhost" may resolve to ::1 and 127.0.0.1: try each in turn.
    auto resolved = internal::resolveTcp(ep.host, ep.port);
    if (!resolved) return std::move(resolved.error()).with("address", ep.display);
    candidates = std::move(*resolved);
  }
  internal::Socket socket;
  BoostError last;
  for (const internal::SockAddr& candidate : candidates) {
    const std::error_code ec =
        internal::connectSocket(socket, candidate.get(), candidate.len, deadline);
    if (!ec) return socket;
    last = internal::toBoost(ec);
    if (last == beast::error::timeout) break;
  }
  return transportError(ep, "connect to", last, timeout);
}

}  // namespace

Result<std::unique_ptr<Connection>> internal::openConnection(const Endpoint& ep,
                                                             const ClientTls* tls,
                                                             Deadline deadline,
                                                             std::chrono::milliseconds timeout) {
  auto conn = std::make_unique<Connection>();
  PLFM_ASSIGN_OR_RETURN(conn->socket, connectTo(ep, deadline, timeout));
  if (ep.tls) {
    PLFM_ASSERT(tls != nullptr, "https endpoint without a TLS context");
    conn->tls =
        std::make_unique<internal::TlsStream>(internal::BeastStream(conn->socket), *tls->context);
    conn->socket.setDeadline(deadline);
    PLFM_TRY(internal::clientHandshake(*conn->tls, *tls, ep.host, ep.display));
  }
  return conn;
}

namespace {

using internal::checkPlain;
using internal::openConnection;
using internal::parseUrl;

bool idempotent(std::string_view method) {
  return method == "GET" || method == "HEAD" || method == "OPTIONS" || method == "PUT" ||
         method == "DELETE";
}

bool validHeader(std::string_view name, std::string_view value) {
  constexpr std::string_view kBad("\r\n\0", 3);
  return !name.empty() && name.find_first_of(kBad) == std::string_view::npos &&
         name.find_first_of(" :") == std::string_view::npos &&
         value.find_first_of(kBad) == std::string_view::npos;
}

struct OutgoingRequest {
  std::string_view method;
  std::string_view target;
  const Headers& headers;
  std::string_view body;
  bool keep_alive = true;
  uint64_t max_body_bytes = kMaxResponseBodyBytes;
};

struct Attempt {
  Result<Response> result;
  bool keep_alive = false;
  // Failed before the server could have acted on the request: safe to send
  // again on a fresh connection.
  bool retryable = false;
};

template <class Stream>
Attempt exchangeOn(Stream& stream, const Endpoint& ep, const OutgoingRequest& out,
                   std::chrono::milliseconds timeout) {
  if (out.target.empty() || out.target.front() != '/') {
    return {Error(errc::kInvalidArgument, "request target must start with '/'")};
  }
  bhttp::request<bhttp::string_body> req;
  req.version(11);
  req.method_string(out.method);
  req.target(out.target);
  req.set(bhttp::field::host, ep.authority);
  for (const auto& [name, value] : out.headers.all()) {
    if (!validHeader(name, value)) {
      return {Error(errc::kInvalidArgument, "invalid request header").with("header", name)};
    }
    if (internal::iequals(name, "Host")) {
      req.set(bhttp::field::host, value);
    } else if (!internal::iequals(name, "Content-Length") &&
               !internal::iequals(name, "Connection")) {
      req.insert(name, value);
    }
  }
  req.body() = std::string(out.body);
  req.keep_alive(out.keep_alive);
  req.prepare_payload();

  BoostError ec;
  bhttp::write(stream, req, ec);
  if (ec) {
    // The server cannot act on a request it did not fully receive.
    return {transportError(ep, "send to", ec, timeout), false, ec != beast::error::timeout};
  }

  beast::flat_buffer buffer;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser;
  for (;;) {
    parser.emplace();
    // Beast checks the limit against Content-Length up front and against
    // each chunk as it arrives: an oversized body is never read in full.
    parser->body_limit(out.max_body_bytes);
    if (out.method == "HEAD") parser->skip(true);
    bhttp::read(stream, buffer, *parser, ec);
    if (ec) break;
    const unsigned status = parser->get().result_int();
    if (status / 100 != 1 || status == 101) break;  // skip 100 Continue and friends
  }
  if (ec == bhttp::error::body_limit) {
    return {Error(errc::kResourceExhausted, "response from " + ep.display + " is larger than " +
                                                std::to_string(out.max_body_bytes) + " bytes")
                .with("address", ep.display)};
  }
  if (ec) {
    const bool nothing_received = !parser->got_some();
    // The request went out whole: the server may have acted on it.
    return {transportError(ep, "read response from", ec, timeout).with("request_sent", "true"),
            false, nothing_received && ec != beast::error::timeout && idempotent(out.method)};
  }
  bhttp::response<bhttp::string_body> msg = parser->release();
  Response resp;
  resp.status = static_cast<int>(msg.result_int());
  for (const auto& field : msg) {
    resp.headers.add(std::string(field.name_string()), std::string(field.value()));
  }
  resp.body = std::move(msg.body());
  // Bytes after the response would corrupt the next exchange.
  return {std::move(resp), msg.keep_alive() && buffer.size() == 0, false};
}

Attempt exchange(Connection& conn, const Endpoint& ep, const OutgoingRequest& out,
                 Deadline deadline, std::chrono::milliseconds timeout) {
  conn.socket.setDeadline(deadline);
  if (conn.tls) return exchangeOn(*conn.tls, ep, out, timeout);
  internal::BeastStream stream(conn.socket);
  return exchangeOn(stream, ep, out, timeout);
}

template <class Fn>
Result<Response> guarded(Fn&& fn) {
  try {
    return std::forward<Fn>(fn)();
  } catch (const std::exception& e) {
    return Error(errc::kInternal, std::string("http client: ") + e.what());
  }
}

}  // namespace

Result<Response> request(const ClientRequest& req) {
  return guarded([&]() -> Result<Response> {
    const Deadline deadline = SteadyClock::now() + req.timeout;
    PLFM_ASSIGN_OR_RETURN(ParsedUrl url, parseUrl(req.url, /*base=*/false));
    if (url.target.empty()) url.target = "/";
    PLFM_TRY(checkPlain(url.endpoint, req.tls));
    std::optional<internal::ClientTls> tls;
    if (url.endpoint.tls) {
      PLFM_ASSIGN_OR_RETURN(tls, internal::makeClientTls(req.tls));
    }
    PLFM_ASSIGN_OR_RETURN(
        std::unique_ptr<Connection> conn,
        openConnection(url.endpoint, tls ? &*tls : nullptr, deadline, req.timeout));
    const OutgoingRequest out{
        req.method,
        url.target,
        req.headers,
        req.body,
        /*keep_alive=*/false,
        req.max_response_body_bytes > 0 ? req.max_response_body_bytes : kMaxResponseBodyBytes};
    return exchange(*conn, url.endpoint, out, deadline, req.timeout).result;
  });
}

struct Client::Impl {
  Impl(std::string url, ClientTlsOptions tls)
      : base_url(std::move(url)),
        tls_options(std::move(tls)),
        base(parseUrl(base_url, /*base=*/true)) {
    if (base && !base->target.empty()) {
      // "http://host/api/" + "/v1/x" -> "/api/v1/x"; a query in a base URL is
      // meaningless and dropped.
      prefix = std::string(internal::targetPath(base->target));
      while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    }
  }

  // The TLS context, made on first use (loading a CA file is not free).
  Result<const internal::ClientTls*> clientTls() {
    if (!tls_context) {
      PLFM_ASSIGN_OR_RETURN(tls_context, internal::makeClientTls(tls_options));
    }
    return &*tls_context;
  }

  std::string base_url;
  ClientTlsOptions tls_options;
  Result<ParsedUrl> base;
  std::string prefix;
  std::optional<internal::ClientTls> tls_context;
  std::unique_ptr<Connection> conn;  // the kept-alive connection, if any
};

Client::Client(std::string base_url, ClientTlsOptions tls)
    : impl_(std::make_unique<Impl>(std::move(base_url), std::move(tls))) {}
Client::~Client() = default;
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;

Result<Response> Client::send(std::string method, std::string target, Headers headers,
                              std::string body, std::chrono::milliseconds timeout) {
  PLFM_ASSERT(impl_ != nullptr, "use of a moved-from http::Client");
  return guarded([&]() -> Result<Response> {
    if (!impl_->base) return impl_->base.error();
    if (target.empty() || target.front() != '/') {
      return Error(errc::kInvalidArgument, "request target must start with '/'");
    }
    const Endpoint& ep = impl_->base->endpoint;
    PLFM_TRY(checkPlain(ep, impl_->tls_options));
    const internal::ClientTls* tls = nullptr;
    if (ep.tls) {
      PLFM_ASSIGN_OR_RETURN(tls, impl_->clientTls());
    }
    const Deadline deadline = SteadyClock::now() + timeout;
    const std::string full_target = impl_->prefix + target;
    std::unique_ptr<Connection>& conn = impl_->conn;
    // A pooled connection the server has closed meanwhile (idle timeout,
    // restart) would fail the request: replace it before sending anything.
    if (conn && conn->socket.peerClosedOrReadable()) conn.reset();
    bool reused = conn != nullptr;
    const OutgoingRequest out{method, full_target, headers, body, /*keep_alive=*/true};
    for (;;) {
      if (!conn) {
        PLFM_ASSIGN_OR_RETURN(conn, openConnection(ep, tls, deadline, timeout));
      }
      Attempt attempt = exchange(*conn, ep, out, deadline, timeout);
      if (!attempt.result || !attempt.keep_alive) conn.reset();
      // The server closed the kept-alive connection just as we sent: once,
      // try again on a new one.
      if (!attempt.result && attempt.retryable && reused) {
        reused = false;
        continue;
      }
      return std::move(attempt.result);
    }
  });
}

}  // namespace plfm::http
