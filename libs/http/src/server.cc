// http::Server: one acceptor thread per listen address, one thread per
// connection, Beast's HTTP/1.1 parser and serializer over a deadline-aware
// socket (socket.h), with TLS on TCP listeners when options.tls is set
// (tls.h).
//
// Admission (admit()): a connection is refused (503, or a bare close on TLS)
// when the server holds max_connections, or when its source (sourceKey())
// holds max_connections_per_source. `per_source` counts the connections in
// `conns` by source; it changes only where a ServerConn enters `conns` and in
// eraseLocked(), under `mu`, so every close path gives the slot back once.
//
// Shutdown protocol (stop()): the acceptor threads poll an eventfd that stop()
// makes readable, so they exit without closing a descriptor under a blocked
// call. Each connection records under `mu` whether it is idle (waiting for a
// request) or busy; stop() shuts down idle sockets, which wakes their threads
// with end of stream, and busy ones finish their request first. A connection
// thread closes its socket only after leaving `conns` (under `mu`), so stop()
// never shuts down a descriptor number that was already reused.
// GCC 12: a -Wnull-dereference false positive inside Asio, for this file
// and its unity batch only (libs/http/CMakeLists.txt).
#pragma GCC diagnostic ignored "-Wnull-dereference"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cerrno>
#include <condition_variable>
#include <functional>
#include <limits>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>

#include "beast_stream.h"
#include "internal.h"
#include "listener.h"
#include "plfm/core/assert.h"
#include "plfm/core/log.h"
#include "plfm/http/http.h"
#include "socket.h"
#include "tls.h"
#include "websocket_server.h"

namespace plfm::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using internal::Deadline;
using internal::SteadyClock;
using BoostError = boost::system::error_code;

// How long a connection we are closing may keep sending before we reset it
// (see Socket::linger).
constexpr auto kLingerTime = std::chrono::seconds(2);
// How long the acceptor may spend writing a 503 to a connection over the cap.
constexpr auto kRejectWriteTime = std::chrono::milliseconds(50);
// After accept() fails for lack of descriptors or memory, wait this long.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);
// A flood of refused connections logs one warning per this period, with the
// count of the refusals it stands for.
constexpr auto kRefusalLogPeriod = std::chrono::seconds(10);

Deadline after(std::chrono::steady_clock::duration d) { return SteadyClock::now() + d; }

// ---------------------------------------------------------------------------
// Responses.

bool validHeaderName(std::string_view name) {
  if (name.empty()) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

bool validHeaderValue(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Headers the server computes itself.
bool isFramingHeader(std::string_view name) {
  return internal::iequals(name, "Content-Length") ||
         internal::iequals(name, "Transfer-Encoding") || internal::iequals(name, "Connection");
}

bool wantsClose(const Response& r) {
  auto c = r.headers.get("Connection");
  return c && internal::iequals(*c, "close");
}

// Builds the wire response; a response that cannot be sent as given (bad
// status, header injection) becomes a 500.
bhttp::response<bhttp::string_body> toBeast(Response resp, unsigned version, bool keep_alive,
                                            bool head) {
  bool valid = resp.status >= 100 && resp.status <= 999;
  for (const auto& [name, value] : resp.headers.all()) {
    valid = valid && validHeaderName(name) && validHeaderValue(value);
  }
  if (!valid) {
    log::error("http handler returned an invalid response", {{"status", resp.status}});
    resp = internal::errorResponse(500, internal::kCodeInternal, "internal error");
  }
  bhttp::response<bhttp::string_body> res;
  res.version(version);
  res.result(static_cast<unsigned>(resp.status));
  for (const auto& [name, value] : resp.headers.all()) {
    if (!isFramingHeader(name)) res.insert(name, value);
  }
  res.body() = std::move(resp.body);
  res.keep_alive(keep_alive);
  res.prepare_payload();  // throws for a body on 1xx/204/304
  if (head) {
    // The headers describe the body a GET would have returned.
    const size_t length = res.body().size();
    res.body().clear();
    res.content_length(length);
  }
  return res;
}

const std::string& rejectResponse() {
  static const std::string kResponse = [] {
    const std::string body =
        internal::errorBody(internal::kCodeUnavailable, "server is at its connection limit");
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
           "Content-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
  }();
  return kResponse;
}

// The server whose connection the current thread serves, to catch a handler
// calling stop() (which would wait for that handler forever).
thread_local const void* t_serving = nullptr;

// Answers 503 on a connection we will not serve, without blocking the
// acceptor for long. A TLS client could not read a plain answer: it only
// sees the connection close.
void reject(internal::Socket& s, bool tls) {
  s.setDeadline(after(kRejectWriteTime));
  if (!tls) (void)internal::writeAll(s, rejectResponse());
  s.linger(SteadyClock::now());  // drain what already arrived, no waiting
}

template <class Stream>
BoostError writeRaw(Stream& stream, std::string_view data) {
  BoostError ec;
  boost::asio::write(stream, boost::asio::buffer(data.data(), data.size()), ec);
  return ec;
}

bool isParseError(const BoostError& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_method).category() &&
         ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message;
}

bool expectsContinue(const bhttp::request<bhttp::string_body>& req) {
  auto it = req.find(bhttp::field::expect);
  return it != req.end() && internal::iequals(it->value(), "100-continue");
}

}  // namespace

// One connection of Server::Impl: not in the anonymous namespace, since
// Impl is not (in a unity batch GCC refuses members of such types).
namespace internal {

struct ServerConn {
  Socket socket;
  std::string remote;
  std::string source;  // the per-source cap's key; empty: not limited
  bool tls = false;
  bool idle = true;  // guarded by Server::Impl::mu
  // While a WebSocket session runs: starts its close with 1001 (guarded by mu).
  std::function<void()> going_away;
  std::thread thread;
};

}  // namespace internal

using internal::ServerConn;

// ---------------------------------------------------------------------------

struct Server::Impl {
  Impl(ServerOptions o, Handler h) : options(std::move(o)), handler(std::move(h)) {}

  Result<void> start();
  void stop(std::chrono::milliseconds grace);
  void stopLocked(std::chrono::milliseconds grace);  // holds lifecycle_mu

  void acceptLoop(internal::Listener& l);
  void admit(internal::Socket socket, std::string remote, std::string source, bool tls);
  // Why a new connection from `source` is refused, or empty to admit it.
  [[nodiscard]] std::string_view refusalLocked(const std::string& source) const;
  void logRefusal(std::string_view why, const std::string& remote, const std::string& source);
  void eraseLocked(std::list<ServerConn>::iterator it);
  void serve(std::list<ServerConn>::iterator it);
  void serveTls(ServerConn& conn);
  template <class Stream>
  bool serveOne(ServerConn& conn, Stream& stream, beast::flat_buffer& buffer);
  template <class Stream>
  void failRead(ServerConn& conn, Stream& stream, const BoostError& ec);
  template <class Stream>
  void respondAndClose(ServerConn& conn, Stream& stream, int status, std::string_view code,
                       std::string_view message);
  template <class Stream>
  bool writeResponse(ServerConn& conn, Stream& stream, Response resp, unsigned version,
                     bool keep_alive, bool head);
  void closeAfterResponse(ServerConn& conn);
  Response invoke(Request& req);
  bool setIdle(ServerConn& conn, bool idle);
  void setGoingAway(ServerConn& conn, std::function<void()> going_away);
  void finish(std::list<ServerConn>::iterator it);

  const ServerOptions options;
  const Handler handler;
  std::optional<internal::ServerTls> tls;  // loaded by start() when options.tls is set

  // start() and stop(); never held while a handler runs.
  std::mutex lifecycle_mu;
  enum class Phase { kNew, kRunning, kStopped } phase = Phase::kNew;
  std::vector<internal::Listener> listeners;
  internal::Socket wake;  // eventfd, readable once stop() begins

  mutable std::mutex mu;
  std::condition_variable cv;  // signalled when a connection leaves `conns`
  std::vector<std::string> endpoints;
  std::list<ServerConn> conns;
  std::unordered_map<std::string, size_t> per_source;  // open connections by ServerConn::source
  bool stopping = false;
  size_t refused = 0;
  // Rate limit of the refusal warning: the last one logged and the refusals
  // since.
  Deadline last_refusal_log{};
  size_t refused_unlogged = 0;
  // The most recently finished connection thread, joined by the next one to
  // finish or by stop(): finished threads never pile up unjoined.
  std::thread last_finished;
};

Result<void> Server::Impl::start() {
  std::lock_guard life(lifecycle_mu);
  if (phase != Phase::kNew) return Error(errc::kFailedPrecondition, "server already started");
  if (options.listen.empty()) return Error(errc::kInvalidArgument, "no listen addresses");
  if (options.tls) {
    PLFM_ASSIGN_OR_RETURN(internal::ServerTls loaded, internal::makeServerTls(*options.tls));
    tls = std::move(loaded);
  }
  wake = internal::Socket(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake.valid()) return errnoError("eventfd", errno);

  std::vector<internal::Listener> bound;
  for (const std::string& spec : options.listen) {
    auto l = internal::bindListener(spec);
    if (!l) {
      for (const internal::Listener& b : bound) internal::removeSocketFile(b);
      return std::move(l).error();
    }
    bound.push_back(std::move(*l));
  }
  listeners = std::move(bound);
  {
    std::lock_guard lock(mu);
    for (const internal::Listener& l : listeners) endpoints.push_back(l.endpoint);
  }
  phase = Phase::kRunning;
  for (internal::Listener& l : listeners) {
    try {
      l.thread = std::thread([this, &l] { acceptLoop(l); });
    } catch (const std::system_error& e) {
      stopLocked(std::chrono::milliseconds(0));
      return Error(errc::kResourceExhausted, std::string("starting acceptor thread: ") + e.what());
    }
  }
  return ok();
}

void Server::Impl::stop(std::chrono::milliseconds grace) {
  PLFM_ASSERT(t_serving != this, "Server::stop() called from its own handler would never return");
  std::lock_guard life(lifecycle_mu);
  stopLocked(grace);
}

void Server::Impl::stopLocked(std::chrono::milliseconds grace) {
  if (phase != Phase::kRunning) {
    phase = Phase::kStopped;
    return;
  }
  phase = Phase::kStopped;
  const Deadline deadline = after(grace);

  const uint64_t one = 1;
  if (::write(wake.fd(), &one, sizeof(one)) != static_cast<ssize_t>(sizeof(one))) {
    log::error("http server: cannot wake acceptors", {{"errno", errno}});
  }
  for (internal::Listener& l : listeners) {
    if (l.thread.joinable()) l.thread.join();
    l.socket.close();
    internal::removeSocketFile(l);
  }

  std::unique_lock lock(mu);
  stopping = true;
  for (ServerConn& c : conns) {
    if (c.idle) c.socket.shutdown(SHUT_RDWR);
    if (c.going_away) c.going_away();  // a WebSocket: close it with 1001
  }
  if (!cv.wait_until(lock, deadline, [&] { return conns.empty(); })) {
    if (grace.count() > 0) {
      log::warn("http server: grace period over, closing connections",
                {{"connections", conns.size()}});
    }
    for (ServerConn& c : conns) c.socket.shutdown(SHUT_RDWR);
    // A handler still running keeps its thread; wait for it to return.
    cv.wait(lock, [&] { return conns.empty(); });
  }
  std::thread last = std::move(last_finished);
  lock.unlock();
  if (last.joinable()) last.join();
}

void Server::Impl::acceptLoop(internal::Listener& l) {
  const bool is_unix = !l.unix_path.empty();
  for (;;) {
    std::array<pollfd, 2> fds{pollfd{l.socket.fd(), POLLIN, 0}, pollfd{wake.fd(), POLLIN, 0}};
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      log::error("http server: poll failed; acceptor exits",
                 {{"endpoint", l.endpoint}, {"errno", errno}});
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    sockaddr_storage peer{};
    socklen_t len = sizeof(peer);
    const int fd = ::accept4(l.socket.fd(), reinterpret_cast<sockaddr*>(&peer), &len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED ||
          err == EPROTO) {
        continue;
      }
      log::error("http server: accept failed", {{"endpoint", l.endpoint}, {"errno", err}});
      pollfd w{wake.fd(), POLLIN, 0};
      ::poll(&w, 1, static_cast<int>(kAcceptBackoff.count()));
      continue;
    }
    internal::Socket socket(fd);
    if (!is_unix) {
      int on = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    }
    std::string source;
    if (!is_unix) source = internal::sourceKey(peer, options.ipv6_source_prefix);
    admit(std::move(socket), is_unix ? std::string("unix") : internal::formatPeer(peer),
          std::move(source), !is_unix && tls.has_value());
  }
}

std::string_view Server::Impl::refusalLocked(const std::string& source) const {
  if (stopping) return "stopping";
  if (conns.size() >= options.max_connections) return "max_connections";
  if (options.max_connections_per_source > 0 && !source.empty()) {
    auto it = per_source.find(source);
    if (it != per_source.end() && it->second >= options.max_connections_per_source) {
      return "max_connections_per_source";
    }
  }
  return {};
}

// One warning per kRefusalLogPeriod at most: a flood of connections must not
// become a flood of log lines.
void Server::Impl::logRefusal(std::string_view why, const std::string& remote,
                              const std::string& source) {
  size_t count = 0;
  {
    std::lock_guard lock(mu);
    ++refused;
    ++refused_unlogged;
    const Deadline now = SteadyClock::now();
    if (last_refusal_log != Deadline{} && now - last_refusal_log < kRefusalLogPeriod) return;
    last_refusal_log = now;
    count = std::exchange(refused_unlogged, 0);
  }
  log::warn("http server: connection refused at a limit",
            {{"limit", std::string(why)},
             {"remote", remote},
             {"source", source},
             {"max_connections", options.max_connections},
             {"max_connections_per_source", options.max_connections_per_source},
             {"refused_since_last_warning", count}});
}

void Server::Impl::admit(internal::Socket socket, std::string remote, std::string source,
                         bool use_tls) {
  std::unique_lock lock(mu);
  if (const std::string_view why = refusalLocked(source); !why.empty()) {
    lock.unlock();
    if (why != "stopping") logRefusal(why, remote, source);
    reject(socket, use_tls);
    return;
  }
  auto it = conns.emplace(conns.end());
  it->socket = std::move(socket);
  it->remote = std::move(remote);
  it->source = std::move(source);
  it->tls = use_tls;
  if (!it->source.empty()) ++per_source[it->source];
  try {
    it->thread = std::thread([this, it] { serve(it); });
  } catch (const std::system_error& e) {
    internal::Socket s = std::move(it->socket);
    eraseLocked(it);
    lock.unlock();
    log::error("http server: cannot start connection thread", {{"error", e.what()}});
    reject(s, use_tls);
  }
}

void Server::Impl::serve(std::list<ServerConn>::iterator it) {
  t_serving = this;
  ServerConn& conn = *it;
  try {
    if (conn.tls) {
      serveTls(conn);
    } else {
      internal::BeastStream stream(conn.socket);
      beast::flat_buffer buffer;
      while (serveOne(conn, stream, buffer)) {
      }
    }
  } catch (const std::exception& e) {
    log::error("http server: connection failed", {{"remote", conn.remote}, {"error", e.what()}});
  }
  finish(it);
}

// The handshake gets the budget of reading a request. A failed one (a plain
// HTTP client, an untrusting client) is logged without anything the peer sent.
void Server::Impl::serveTls(ServerConn& conn) {
  internal::BeastStream raw(conn.socket);
  internal::TlsStream stream(raw, *tls->context);
  conn.socket.setDeadline(after(options.read_timeout));
  BoostError ec;
  stream.handshake(internal::TlsStream::server, ec);
  if (ec) {
    log::info("http server: TLS handshake failed",
              {{"remote", conn.remote}, {"error", ec.message()}});
    return;
  }
  beast::flat_buffer buffer;
  while (serveOne(conn, stream, buffer)) {
  }
}

// Serves one request; true to keep the connection for the next.
template <class Stream>
bool Server::Impl::serveOne(ServerConn& conn, Stream& stream, beast::flat_buffer& buffer) {
  if (!setIdle(conn, true)) return false;
  // Bytes of a pipelined request may already be buffered. Otherwise wait for
  // the first bytes through the stream, not on the socket: under TLS they may
  // already sit in the TLS layer (a request sent right behind the client's
  // handshake arrives with it).
  if (buffer.size() == 0) {
    constexpr size_t kFirstRead = 16 << 10;
    conn.socket.setDeadline(after(options.idle_timeout));
    BoostError first;
    buffer.commit(stream.read_some(buffer.prepare(kFirstRead), first));
    if (first) return false;
  }
  if (!setIdle(conn, false)) return false;

  conn.socket.setDeadline(after(options.read_timeout));
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(static_cast<uint32_t>(
      std::min<size_t>(options.max_header_bytes, std::numeric_limits<uint32_t>::max())));
  parser.body_limit(options.max_body_bytes);
  BoostError ec;
  bhttp::read_header(stream, buffer, parser, ec);
  if (!ec && expectsContinue(parser.get())) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    ec = writeRaw(stream, kContinue);
  }
  if (!ec && !parser.is_done()) bhttp::read(stream, buffer, parser, ec);
  if (ec) {
    failRead(conn, stream, ec);
    return false;
  }

  bhttp::request<bhttp::string_body> msg = parser.release();
  Request req;
  req.method = std::string(msg.method_string());
  req.target = std::string(msg.target());
  req.remote = conn.remote;
  if (auto parsed = internal::parseTarget(req); !parsed) {
    respondAndClose(conn, stream, 400, internal::kCodeBadRequest, parsed.error().message());
    return false;
  }
  for (const auto& field : msg) {
    req.headers.add(std::string(field.name_string()), std::string(field.value()));
  }
  req.body = std::move(msg.body());

  Response resp = invoke(req);
  if (resp.upgrade) {
    // The connection is the WebSocket's until its session returns.
    internal::serveWebSocket(stream, conn.socket, msg, *resp.upgrade, conn.remote,
                             [this, &conn](std::function<void()> going_away) {
                               setGoingAway(conn, std::move(going_away));
                             });
    return false;
  }
  bool keep_alive = msg.keep_alive() && !wantsClose(resp);
  {
    std::lock_guard lock(mu);
    keep_alive = keep_alive && !stopping;
  }
  if (!writeResponse(conn, stream, std::move(resp), msg.version(), keep_alive,
                     msg.method() == bhttp::verb::head)) {
    return false;
  }
  if (!keep_alive) closeAfterResponse(conn);
  return keep_alive;
}

template <class Stream>
void Server::Impl::failRead(ServerConn& conn, Stream& stream, const BoostError& ec) {
  if (ec == bhttp::error::body_limit) {
    respondAndClose(conn, stream, 413, internal::kCodePayloadTooLarge,
                    "request body exceeds " + std::to_string(options.max_body_bytes) + " bytes");
  } else if (ec == bhttp::error::header_limit) {
    respondAndClose(
        conn, stream, 431, internal::kCodeBadRequest,
        "request header exceeds " + std::to_string(options.max_header_bytes) + " bytes");
  } else if (isParseError(ec)) {
    respondAndClose(conn, stream, 400, internal::kCodeBadRequest,
                    "malformed request: " + ec.message());
  }
  // Otherwise the peer went away or was too slow: nobody to answer.
}

template <class Stream>
void Server::Impl::respondAndClose(ServerConn& conn, Stream& stream, int status,
                                   std::string_view code, std::string_view message) {
  Response resp = internal::errorResponse(status, code, message);
  if (options.on_server_error) options.on_server_error(resp);
  if (writeResponse(conn, stream, std::move(resp), 11, /*keep_alive=*/false, /*head=*/false)) {
    closeAfterResponse(conn);
  }
}

template <class Stream>
bool Server::Impl::writeResponse(ServerConn& conn, Stream& stream, Response resp, unsigned version,
                                 bool keep_alive, bool head) {
  bhttp::response<bhttp::string_body> res;
  try {
    res = toBeast(std::move(resp), version, keep_alive, head);
  } catch (const std::exception& e) {
    log::error("http handler returned an invalid response", {{"error", e.what()}});
    res = toBeast(internal::errorResponse(500, internal::kCodeInternal, "internal error"), version,
                  keep_alive, head);
  }
  // Writing gets the same budget as reading a request.
  conn.socket.setDeadline(after(options.read_timeout));
  BoostError ec;
  bhttp::write(stream, res, ec);
  return !ec;
}

// The response is out; what is left is waiting for the peer to close. Such a
// connection counts as idle, so that stop() does not wait for it.
void Server::Impl::closeAfterResponse(ServerConn& conn) {
  if (setIdle(conn, true)) conn.socket.linger(after(kLingerTime));
  // The socket closes when the connection leaves `conns` (finish()).
}

Response Server::Impl::invoke(Request& req) {
  // The body may hold secrets: only the method and path reach the log.
  try {
    return handler(req);
  } catch (const std::exception& e) {
    log::error("http handler threw",
               {{"method", req.method}, {"path", req.path}, {"error", e.what()}});
  } catch (...) {
    log::error("http handler threw",
               {{"method", req.method}, {"path", req.path}, {"error", "unknown exception"}});
  }
  Response resp = internal::errorResponse(500, internal::kCodeInternal, "internal error");
  if (options.on_server_error) options.on_server_error(resp);
  return resp;
}

// Records whether the connection waits for a request (stop() may close it) or
// works on one. False once the server is stopping: close the connection.
bool Server::Impl::setIdle(ServerConn& conn, bool idle) {
  std::lock_guard lock(mu);
  if (stopping) return false;
  conn.idle = idle;
  return true;
}

// A WebSocket session that starts after stop() began is told to go away at
// once.
void Server::Impl::setGoingAway(ServerConn& conn, std::function<void()> going_away) {
  std::lock_guard lock(mu);
  conn.going_away = std::move(going_away);
  if (stopping && conn.going_away) conn.going_away();
}

void Server::Impl::finish(std::list<ServerConn>::iterator it) {
  std::thread previous;
  {
    std::lock_guard lock(mu);
    previous = std::move(it->thread);  // this thread's own handle
    eraseLocked(it);                   // closes the socket
    std::swap(previous, last_finished);
    cv.notify_all();
  }
  if (previous.joinable()) previous.join();
}

// Every connection leaves `conns` here, so the per-source counts stay exact.
void Server::Impl::eraseLocked(std::list<ServerConn>::iterator it) {
  if (!it->source.empty()) {
    auto count = per_source.find(it->source);
    PLFM_ASSERT(count != per_source.end() && count->second > 0, "per-source count underflow");
    if (--count->second == 0) per_source.erase(count);
  }
  conns.erase(it);
}

// ---------------------------------------------------------------------------

Server::Server(ServerOptions options, Handler handler)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(handler))) {}

Server::~Server() {
  if (impl_) impl_->stop(std::chrono::milliseconds(0));
}

Result<void> Server::start() { return impl_->start(); }

std::vector<std::string> Server::endpoints() const {
  std::lock_guard lock(impl_->mu);
  return impl_->endpoints;
}

void Server::stop(std::chrono::milliseconds grace) { impl_->stop(grace); }

size_t Server::activeConnections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->conns.size();
}

size_t Server::refusedConnections() const {
  std::lock_guard lock(impl_->mu);
  return impl_->refused;
}

}  // namespace plfm::http
