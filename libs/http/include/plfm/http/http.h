// A small HTTP/1.1 server and client for our services, built on Boost.Beast.
// Beast and Asio stay inside libs/http/src: includers of this header never
// see them, which keeps compile times low.
//
// Server model: one thread per connection with blocking I/O. Our HTTP
// servers are control-plane APIs with long-polls (NodePlan, events tail, edge
// feed), where a handler may block for seconds; a thread per connection keeps
// handlers plain synchronous functions. Connections are capped, in total and
// per source address.
//
//   http::Router router;
//   router.add("GET", "/v1/orgs/{org_id}", [](const http::Request& req) {
//     return http::Response::json(200, R"({"id":")" + req.param("org_id") + "\"}");
//   });
//   http::Server server(options, [&](const http::Request& r) { return router.dispatch(r); });
//   PLFM_TRY(server.start());          // binds; port 0 picks a free port
//   server.endpoints();                // what it bound, e.g. "[::1]:43121"
//   server.stop(std::chrono::seconds(10));  // graceful: in-flight requests finish
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::http {

// Header names compare case-insensitively; the first matching header wins.
class Headers {
 public:
  void add(std::string name, std::string value);
  void set(std::string name, std::string value);  // replaces all of that name
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const;
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& all() const {
    return items_;
  }

 private:
  std::vector<std::pair<std::string, std::string>> items_;
};

struct Request {
  std::string method;                        // "GET", "POST", ...
  std::string target;                        // path plus query, as received
  std::string path;                          // percent-decoded path without the query
  std::map<std::string, std::string> query;  // decoded; last value of a repeated key wins
  Headers headers;
  std::string body;
  std::string remote;                         // "[::1]:53211" or "unix"
  std::map<std::string, std::string> params;  // filled by Router from {placeholders}

  [[nodiscard]] std::string_view param(std::string_view name) const;
  [[nodiscard]] std::optional<std::string_view> queryParam(std::string_view name) const;
  [[nodiscard]] std::optional<std::string_view> header(std::string_view name) const {
    return headers.get(name);
  }
};

struct WebSocketUpgrade;  // websocket.h

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  // Set by acceptWebSocket() (websocket.h): instead of sending this response,
  // the server completes the WebSocket handshake and runs the session.
  std::shared_ptr<const WebSocketUpgrade> upgrade = nullptr;

  // Content-Type: application/json.
  [[nodiscard]] static Response json(int status, std::string body);
  // Content-Type: text/plain; charset=utf-8.
  [[nodiscard]] static Response text(int status, std::string body);
};

using Handler = std::function<Response(Request&)>;

// Method + path-pattern routing. Patterns are literal segments and
// `{name}` placeholders matching one non-empty segment: "/v1/apps/{app_id}".
// dispatch() answers 404 for an unknown path and 405 (with Allow) for a known
// path with another method, using the error envelope
//   {"error":{"code":"not_found"|"method_not_allowed","message":...}}.
class Router {
 public:
  void add(std::string method, std::string pattern, Handler handler);
  [[nodiscard]] Response dispatch(Request& req) const;

  struct Route {
    std::string method;
    std::string pattern;
  };
  // Every registered route, in registration order (for contract tests).
  [[nodiscard]] std::vector<Route> routes() const;

 private:
  struct Entry {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Entry> entries_;
};

// TLS for a server: a PEM certificate chain (leaf first) and its PEM private
// key. TLS 1.2 is the minimum.
struct ServerTlsOptions {
  std::string cert_file = {};
  std::string key_file = {};
};

// True for a listen address only this host can reach: "unix:/path", a
// loopback IP ("[::1]:p", "127.x.y.z:p"). Plain HTTP is safe only there.
[[nodiscard]] bool isLoopbackListen(std::string_view spec);

struct ServerOptions {
  // Addresses to listen on: "[::1]:8080", "127.0.0.1:0", "[::]:443", or
  // "unix:/path/to.sock". Port 0 picks a free port (see endpoints()).
  std::vector<std::string> listen = {"[::1]:0"};
  // When set, every TCP listener speaks TLS (Unix sockets stay plain: file
  // permissions guard them). start() fails when the files cannot be loaded.
  std::optional<ServerTlsOptions> tls = std::nullopt;
  size_t max_body_bytes = 1 << 20;  // larger bodies get 413 without calling the handler
  size_t max_header_bytes = 16 << 10;
  size_t max_connections = 512;  // beyond it, new connections get 503 and close
  // Open connections one source may hold; 0 for no limit. A source is an IPv4
  // address, or an IPv6 address cut to `ipv6_source_prefix` bits (128: each
  // address; 64: a subnet, since one host often holds a whole /64). Over it, a
  // new connection gets 503 and closes (a TLS listener only closes it), so one
  // client holding idle sockets cannot take every slot. Unix-socket peers are
  // not limited (file permissions guard the socket).
  size_t max_connections_per_source = 64;
  int ipv6_source_prefix = 128;
  // A TLS handshake and the request after it share read_timeout; a
  // connection that sends nothing after its last response closes after
  // idle_timeout.
  std::chrono::seconds idle_timeout{60};  // keep-alive connection with no request
  std::chrono::seconds read_timeout{30};  // reading one request
  // Called on each error response the server writes on its own (400 for a
  // malformed request, 413, 431, and 500 when a handler throws) before it is
  // sent, so a service can stamp its request id and envelope fields on it.
  // (The 503 for connections over max_connections is prebuilt and skips it.)
  std::function<void(Response&)> on_server_error = nullptr;
};

class Server {
 public:
  Server(ServerOptions options, Handler handler);
  ~Server();  // stop(0s) if still running
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds every listen address and starts accepting. Fails (and binds
  // nothing) if any address cannot be bound; the error names the address.
  [[nodiscard]] Result<void> start();
  // The bound endpoints in `listen` order, with real ports: "[::1]:43121",
  // "127.0.0.1:8080", "unix:/path".
  [[nodiscard]] std::vector<std::string> endpoints() const;
  // Graceful: stop accepting, close idle keep-alive connections, let
  // in-flight requests finish (up to `grace`), then close the rest.
  void stop(std::chrono::milliseconds grace);

  [[nodiscard]] size_t activeConnections() const;
  // Connections refused so far (over max_connections or the per-source cap).
  [[nodiscard]] size_t refusedConnections() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// How a client trusts an https server, and whether it may speak plain http.
struct ClientTlsOptions {
  // PEM bundle of the CAs that may sign the server's certificate; the
  // certificate must also name the host of the URL (DNS name or IP SAN).
  // Empty: the system's default CA store.
  std::string ca_file = {};
  // PEM certificate the server must present exactly (pinning); replaces CA
  // and name checks. Takes precedence over ca_file.
  std::string pinned_cert_file = {};
  // The same, by the lowercase hex SHA-256 of the certificate's DER (what
  // certificateSha256 in pki.h computes): for a peer that reported its
  // self-signed certificate over another authenticated channel. Takes
  // precedence over pinned_cert_file and ca_file.
  std::string pinned_cert_sha256 = {};
  // Plain http:// to an address that is not loopback ("localhost", ::1,
  // 127/8) is refused unless this is set: bearer tokens would cross the
  // network in clear.
  bool unsafe_allow_plain_http = false;
};

struct ClientRequest {
  std::string method = "GET";
  // "https://cp.example:8443/v1/orgs", "http://[::1]:8080/v1/orgs?limit=5",
  // or "unix:/run/plfm.sock:/v1/orgs" (socket path, then the request target).
  std::string url;
  Headers headers;
  std::string body;
  std::chrono::milliseconds timeout{30'000};  // whole exchange: connect, send, read
  ClientTlsOptions tls = {};
  // The largest response body accepted, enforced while reading: a longer
  // body fails with errc::kResourceExhausted as soon as the limit is passed,
  // before the rest arrives. 0: the built-in bound of 1 GiB.
  size_t max_response_body_bytes = 0;
};

// One request on a new connection. Transport failures are errors with code
// errc::kUnavailable (connect refused, reset) or errc::kDeadlineExceeded; a
// server that is not trusted (CA, name, pin) or plain http:// refused is
// errc::kFailedPrecondition (do not retry); a body over
// max_response_body_bytes is errc::kResourceExhausted. Any HTTP status is a
// successful Result.
[[nodiscard]] Result<Response> request(const ClientRequest& req);

// A keep-alive client bound to one base URL ("https://cp:8443",
// "http://[::1]:8080" or "unix:/path"); reconnects transparently when the
// server closed the connection between requests. Not thread-safe: one per
// thread.
class Client {
 public:
  explicit Client(std::string base_url, ClientTlsOptions tls = {});
  ~Client();
  Client(Client&&) noexcept;
  Client& operator=(Client&&) noexcept;

  [[nodiscard]] Result<Response> send(std::string method, std::string target, Headers headers = {},
                                      std::string body = {},
                                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Percent-decoding for paths and query strings ('+' is a space in queries).
[[nodiscard]] Result<std::string> percentDecode(std::string_view s, bool plus_is_space);

}  // namespace plfm::http
