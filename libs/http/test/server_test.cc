#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "plfm/core/log.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"
#include "test_util.h"

namespace plfm::http {
namespace {

using namespace std::chrono_literals;
using testing::baseUrl;
using testing::Gate;
using testing::get;
using testing::RawConn;
using testing::urlFor;

// Answers "<method> <path> <body>" and reports the peer in X-Remote.
Response echo(Request& req) {
  Response r = Response::text(200, req.method + " " + req.path + " " + req.body);
  r.headers.set("X-Remote", req.remote);
  return r;
}

std::string errorCode(const std::string& body) {
  return nlohmann::json::parse(body).at("error").at("code").get<std::string>();
}
std::string errorCode(const Response& r) { return errorCode(r.body); }

std::string bodyOf(const std::string& raw) { return raw.substr(raw.find("\r\n\r\n") + 4); }

class ServerTest : public ::testing::Test {
 protected:
  void TearDown() override {
    server.reset();
    log::init(log::Options{});
  }

  // Starts `server` and returns its first endpoint.
  std::string start(Handler handler, ServerOptions options = {}) {
    server = std::make_unique<Server>(std::move(options), std::move(handler));
    auto started = server->start();
    EXPECT_TRUE(started) << started.error().toString();
    return server->endpoints().empty() ? std::string() : server->endpoints().front();
  }

  std::ostringstream log_out;  // outlives `server`, whose threads may log
  std::unique_ptr<Server> server;
};

TEST_F(ServerTest, RoundTripOverIpv6Ipv4AndUnixSocket) {
  plfm::testing::TempDir dir("plfm-http");
  ServerOptions options;
  options.listen = {"[::1]:0", "127.0.0.1:0", "unix:" + dir.file("api.sock")};
  start(echo, options);
  const auto endpoints = server->endpoints();
  ASSERT_EQ(endpoints.size(), 3U);
  EXPECT_TRUE(endpoints[0].starts_with("[::1]:")) << endpoints[0];
  EXPECT_NE(endpoints[0], "[::1]:0");
  EXPECT_TRUE(endpoints[1].starts_with("127.0.0.1:")) << endpoints[1];
  EXPECT_NE(endpoints[1], "127.0.0.1:0");
  EXPECT_EQ(endpoints[2], "unix:" + dir.file("api.sock"));

  const std::vector<std::string> remote_prefix = {"[::1]:", "127.0.0.1:", "unix"};
  for (size_t i = 0; i < endpoints.size(); ++i) {
    ClientRequest req;
    req.method = "POST";
    req.url = urlFor(endpoints[i], "/v1/orgs");
    req.body = "hello";
    auto resp = request(req);
    ASSERT_TRUE(resp) << endpoints[i] << ": " << resp.error().toString();
    EXPECT_EQ(resp->status, 200);
    EXPECT_EQ(resp->body, "POST /v1/orgs hello");
    EXPECT_TRUE(resp->headers.get("X-Remote")->starts_with(remote_prefix[i]));

    Client client(baseUrl(endpoints[i]));
    auto again = client.send("GET", "/v1/apps");
    ASSERT_TRUE(again) << endpoints[i] << ": " << again.error().toString();
    EXPECT_EQ(again->body, "GET /v1/apps ");
  }
}

TEST_F(ServerTest, KeepAliveReusesOneConnection) {
  const auto ep = start(echo);
  Client client(baseUrl(ep));
  std::string first_remote;
  for (int i = 0; i < 3; ++i) {
    auto resp = client.send("GET", "/x");
    ASSERT_TRUE(resp) << resp.error().toString();
    const std::string remote(*resp->headers.get("X-Remote"));
    if (i == 0) first_remote = remote;
    EXPECT_EQ(remote, first_remote);  // same client port: same connection
  }
  EXPECT_EQ(server->activeConnections(), 1U);
}

TEST_F(ServerTest, QueryIsDecoded) {
  std::map<std::string, std::string> seen;
  const auto ep = start([&](Request& req) {
    seen = req.query;
    return Response::text(200, req.path);
  });
  auto resp = request(get(urlFor(ep, "/a%20b?a=1&b=hello+world&c=%2F%26&a=2&flag&&")));
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->body, "/a b");
  EXPECT_EQ(seen, (std::map<std::string, std::string>{
                      {"a", "2"}, {"b", "hello world"}, {"c", "/&"}, {"flag", ""}}));
}

TEST_F(ServerTest, HeaderNamesAreCaseInsensitive) {
  const auto ep = start([](Request& req) {
    Response r = Response::text(200, std::string(req.header("x-custom-thing").value_or("-")));
    r.headers.add("X-Reply", "ok");
    return r;
  });
  Headers headers;
  headers.add("X-Custom-Thing", "v1");
  auto resp = Client(baseUrl(ep)).send("GET", "/", headers);
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->body, "v1");
  EXPECT_EQ(resp->headers.get("x-reply"), "ok");
}

TEST_F(ServerTest, OversizedBodyIs413WithoutCallingHandler) {
  std::atomic<int> calls{0};
  ServerOptions options;
  options.max_body_bytes = 1024;
  const auto ep = start(
      [&](Request& req) {
        ++calls;
        return echo(req);
      },
      options);
  Client client(baseUrl(ep));
  auto resp = client.send("POST", "/upload", {}, std::string(4096, 'x'));
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->status, 413);
  EXPECT_EQ(
      resp->body,
      R"({"error":{"code":"payload_too_large","message":"request body exceeds 1024 bytes"}})");
  EXPECT_EQ(calls.load(), 0);

  auto fits = client.send("POST", "/upload", {}, std::string(1024, 'x'));
  ASSERT_TRUE(fits) << fits.error().toString();
  EXPECT_EQ(fits->status, 200);
  EXPECT_EQ(calls.load(), 1);
}

TEST_F(ServerTest, GarbageIs400AndClosesTheConnection) {
  const auto ep = start(echo);
  RawConn conn(ep);
  ASSERT_TRUE(conn.connected());
  ASSERT_TRUE(conn.send("\x01\x02 NOT HTTP AT ALL\r\n\r\n"));
  const std::string out = conn.readToEof();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 400 ")) << out;
  EXPECT_EQ(errorCode(bodyOf(out)), "bad_request");
  EXPECT_TRUE(conn.sawEof());
}

TEST_F(ServerTest, BadPercentEncodingIs400) {
  std::atomic<int> calls{0};
  const auto ep = start([&](Request& req) {
    ++calls;
    return echo(req);
  });
  auto resp = Client(baseUrl(ep)).send("GET", "/v1/%zz");
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->status, 400);
  EXPECT_EQ(errorCode(*resp), "bad_request");
  auto query = request(get(urlFor(ep, "/v1?q=%4")));
  ASSERT_TRUE(query) << query.error().toString();
  EXPECT_EQ(query->status, 400);
  EXPECT_EQ(calls.load(), 0);
}

TEST_F(ServerTest, HeaderOverLimitIs431) {
  ServerOptions options;
  options.max_header_bytes = 512;
  const auto ep = start(echo, options);
  Headers headers;
  headers.add("X-Big", std::string(1024, 'h'));
  auto resp = Client(baseUrl(ep)).send("GET", "/", headers);
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->status, 431);
}

TEST_F(ServerTest, HandlerExceptionIs500AndServerKeepsServing) {
  log::Options log_options;
  log_options.component = "test";
  log_options.stream = &log_out;
  log::init(log_options);
  const auto ep = start([](Request& req) {
    if (req.path == "/boom") throw std::runtime_error("kaboom");
    return echo(req);
  });
  Client client(baseUrl(ep));
  auto boom = client.send("POST", "/boom", {}, "s3cr3t-request-body");
  ASSERT_TRUE(boom) << boom.error().toString();
  EXPECT_EQ(boom->status, 500);
  EXPECT_EQ(boom->body, R"({"error":{"code":"internal","message":"internal error"}})");
  auto fine = client.send("GET", "/fine");
  ASSERT_TRUE(fine) << fine.error().toString();
  EXPECT_EQ(fine->status, 200);

  const std::string logged = log_out.str();
  EXPECT_NE(logged.find("http handler threw"), std::string::npos) << logged;
  EXPECT_NE(logged.find("kaboom"), std::string::npos) << logged;
  EXPECT_NE(logged.find("/boom"), std::string::npos) << logged;
  EXPECT_EQ(logged.find("s3cr3t"), std::string::npos) << logged;
}

TEST_F(ServerTest, InvalidResponseFromHandlerIs500) {
  const auto ep = start([](Request& req) {
    Response r = Response::text(req.path == "/status" ? 42 : 200, "x");
    if (req.path == "/inject") r.headers.add("X-Bad", "a\r\nSet-Cookie: evil=1");
    if (req.path == "/204") r.status = 204;  // with a body
    return r;
  });
  Client client(baseUrl(ep));
  for (const char* path : {"/status", "/inject", "/204"}) {
    auto resp = client.send("GET", path);
    ASSERT_TRUE(resp) << resp.error().toString();
    EXPECT_EQ(resp->status, 500) << path;
    EXPECT_EQ(resp->headers.get("Set-Cookie"), std::nullopt);
  }
}

TEST_F(ServerTest, PipelinedRequestsAreAnsweredInOrder) {
  const auto ep = start(echo);
  RawConn conn(ep);
  ASSERT_TRUE(
      conn.send("GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string out = conn.readResponses(2);
  const size_t one = out.find("GET /one");
  const size_t two = out.find("GET /two");
  ASSERT_NE(one, std::string::npos) << out;
  ASSERT_NE(two, std::string::npos) << out;
  EXPECT_LT(one, two);
}

TEST_F(ServerTest, ExpectContinueGetsInterimResponse) {
  const auto ep = start(echo);
  RawConn conn(ep);
  ASSERT_TRUE(conn.send(
      "POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(conn.readResponses(1), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(conn.send("hello"));
  const std::string out = conn.readResponses(1);
  EXPECT_TRUE(out.starts_with("HTTP/1.1 200 ")) << out;
  EXPECT_EQ(bodyOf(out), "POST /e hello");
}

TEST_F(ServerTest, Http10AndConnectionCloseCloseAfterResponse) {
  const auto ep = start(echo);
  RawConn old(ep);
  ASSERT_TRUE(old.send("GET /old HTTP/1.0\r\n\r\n"));
  std::string out = old.readToEof();
  EXPECT_TRUE(out.starts_with("HTTP/1.0 200 ")) << out;
  EXPECT_TRUE(old.sawEof());

  RawConn closing(ep);
  ASSERT_TRUE(closing.send("GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  out = closing.readToEof();
  EXPECT_NE(out.find("Connection: close"), std::string::npos) << out;
  EXPECT_EQ(bodyOf(out), "GET /c ");
  EXPECT_TRUE(closing.sawEof());
}

TEST_F(ServerTest, HeadGetsLengthWithoutBody) {
  const auto ep = start(echo);
  auto resp = Client(baseUrl(ep)).send("HEAD", "/h");
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "");
  EXPECT_EQ(resp->headers.get("Content-Length"), "8");  // "HEAD /h "
}

TEST_F(ServerTest, IdleAndReadTimeoutsCloseConnections) {
  ServerOptions options;
  options.idle_timeout = 1s;
  options.read_timeout = 1s;
  const auto ep = start(echo, options);
  const auto t0 = std::chrono::steady_clock::now();
  RawConn idle(ep);
  RawConn partial(ep);
  ASSERT_TRUE(partial.send("GET / HTTP/1.1\r\nHost"));
  EXPECT_EQ(idle.readToEof(3s), "");
  EXPECT_TRUE(idle.sawEof());
  EXPECT_EQ(partial.readToEof(3s), "");
  EXPECT_TRUE(partial.sawEof());
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(elapsed, 900ms);
  EXPECT_LT(elapsed, 2500ms);
}

TEST_F(ServerTest, GracefulStopLetsInFlightRequestFinish) {
  Gate gate;
  const auto ep = start([&](Request& req) {
    if (req.path == "/slow") gate.pass();
    return echo(req);
  });
  RawConn idle(ep);  // a kept-alive connection between requests
  ASSERT_TRUE(idle.send("GET /warm HTTP/1.1\r\nHost: x\r\n\r\n"));
  ASSERT_FALSE(idle.readResponses(1).empty());

  auto slow = std::async(std::launch::async, [&] { return request(get(urlFor(ep, "/slow"))); });
  ASSERT_TRUE(gate.waitArrived());
  const auto t0 = std::chrono::steady_clock::now();
  auto stopped = std::async(std::launch::async, [&] { server->stop(10s); });

  // The idle connection is closed at once (stop() closes the acceptors
  // before that, so new connections are refused from here on).
  EXPECT_EQ(idle.readToEof(2s), "");
  EXPECT_TRUE(idle.sawEof());
  RawConn late(ep);
  EXPECT_FALSE(late.connected());
  EXPECT_EQ(late.connectErrno(), ECONNREFUSED);
  EXPECT_EQ(stopped.wait_for(0ms), std::future_status::timeout);  // still waiting for /slow

  gate.open();
  auto resp = slow.get();
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "GET /slow ");
  EXPECT_EQ(resp->headers.get("Connection"), "close");
  stopped.get();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_EQ(server->activeConnections(), 0U);
}

TEST_F(ServerTest, IdleKeepAliveConnectionsDoNotDelayStop) {
  const auto ep = start(echo);
  std::vector<Client> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(baseUrl(ep));
    ASSERT_TRUE(clients.back().send("GET", "/"));
  }
  EXPECT_EQ(server->activeConnections(), 3U);
  const auto t0 = std::chrono::steady_clock::now();
  server->stop(10s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
  EXPECT_EQ(server->activeConnections(), 0U);
}

TEST_F(ServerTest, StopForceClosesAfterGrace) {
  Gate gate;
  const auto ep = start([&](Request& req) {
    gate.pass();
    return echo(req);
  });
  auto stuck = std::async(std::launch::async, [&] { return request(get(urlFor(ep, "/"))); });
  ASSERT_TRUE(gate.waitArrived());
  const auto t0 = std::chrono::steady_clock::now();
  auto stopped = std::async(std::launch::async, [&] { server->stop(100ms); });
  // After the grace period the connection is closed under the handler...
  auto resp = stuck.get();
  ASSERT_FALSE(resp);
  EXPECT_TRUE(resp.error().is(errc::kUnavailable)) << resp.error().toString();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 100ms);
  // ...and stop() returns once the handler does.
  EXPECT_EQ(stopped.wait_for(0ms), std::future_status::timeout);
  gate.open();
  stopped.get();
  EXPECT_EQ(server->activeConnections(), 0U);
}

TEST_F(ServerTest, StopIsIdempotent) {
  Server never(ServerOptions{}, echo);
  never.stop(0ms);  // before start
  EXPECT_FALSE(never.start());
  start(echo);
  server->stop(0ms);
  server->stop(0ms);
}

TEST_F(ServerTest, MaxConnectionsAnswers503) {
  ServerOptions options;
  options.max_connections = 1;
  const auto ep = start(echo, options);
  Client first(baseUrl(ep));
  ASSERT_TRUE(first.send("GET", "/"));  // holds the only slot while idle

  RawConn second(ep);
  ASSERT_TRUE(second.connected());
  second.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string out = second.readToEof();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 503 ")) << out;
  EXPECT_EQ(errorCode(bodyOf(out)), "unavailable");
  EXPECT_TRUE(second.sawEof());

  auto again = first.send("GET", "/again");
  ASSERT_TRUE(again) << again.error().toString();
  EXPECT_EQ(again->status, 200);
}

// Waits (bounded) until the server holds exactly `n` connections.
bool waitConnections(const Server& s, size_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (s.activeConnections() != n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// A connection over the per-source cap gets 503 and is closed.
void expectRefused(const std::string& ep, const std::string& source = {}) {
  RawConn over(ep, source);
  ASSERT_TRUE(over.connected());
  over.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string out = over.readToEof();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 503 ")) << out;
  EXPECT_EQ(errorCode(bodyOf(out)), "unavailable");
  EXPECT_TRUE(over.sawEof());
}

void expectServed(const std::string& ep, const std::string& source = {}) {
  RawConn conn(ep, source);
  ASSERT_TRUE(conn.connected());
  conn.send("GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string out = conn.readToEof();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 200 ")) << out;
}

TEST_F(ServerTest, PerSourceCapRefusesThatSourceOnlyAndLogsOnce) {
  ServerOptions options;
  options.listen = {"127.0.0.1:0"};
  options.max_connections_per_source = 3;
  log::Options log_options;
  log_options.level = log::Level::kWarn;
  log_options.stream = &log_out;
  log::init(log_options);
  const auto ep = start(echo, options);
  std::vector<std::unique_ptr<RawConn>> idle;
  idle.reserve(3);
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<RawConn>(ep));
    ASSERT_TRUE(idle.back()->connected());
  }
  ASSERT_TRUE(waitConnections(*server, 3));
  for (int i = 0; i < 5; ++i) expectRefused(ep);
  EXPECT_EQ(server->refusedConnections(), 5U);
  // Another source (127.0.0.0/8 is all loopback) is not affected.
  expectServed(ep, "127.0.0.2");
  // One warning for the flood, naming the source and the limit.
  const std::string logged = log_out.str();
  EXPECT_NE(logged.find("max_connections_per_source"), std::string::npos) << logged;
  EXPECT_NE(logged.find("127.0.0.1"), std::string::npos) << logged;
  size_t warnings = 0;
  for (size_t at = 0; (at = logged.find("connection refused at a limit", at)) != std::string::npos;
       ++at) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1U) << logged;
  // A slot freed by the client is that source's again.
  idle.pop_back();
  ASSERT_TRUE(waitConnections(*server, 2));
  expectServed(ep);
}

// Every way a connection ends gives its slot back, exactly once: after each
// of them the source again holds exactly `max_connections_per_source`.
TEST_F(ServerTest, PerSourceCountIsExactOnEveryClosePath) {
  ServerOptions options;
  options.listen = {"127.0.0.1:0"};
  options.max_connections_per_source = 2;
  options.idle_timeout = 1s;
  const auto ep = start(echo, options);
  {
    RawConn client_closes(ep);  // the client goes away while idle
    ASSERT_TRUE(waitConnections(*server, 1));
  }
  ASSERT_TRUE(waitConnections(*server, 0));
  {
    RawConn malformed(ep);  // 400, then the server closes
    malformed.send("NOT HTTP\r\n\r\n");
    EXPECT_TRUE(malformed.readToEof().starts_with("HTTP/1.1 400 "));
  }
  expectServed(ep);  // Connection: close
  {
    RawConn silent(ep);  // the server closes it after idle_timeout
    EXPECT_EQ(silent.readToEof(5s), "");
    EXPECT_TRUE(silent.sawEof());
  }
  ASSERT_TRUE(waitConnections(*server, 0));
  RawConn a(ep);
  RawConn b(ep);
  ASSERT_TRUE(waitConnections(*server, 2));
  expectRefused(ep);
}

TEST_F(ServerTest, PerSourceCapOfZeroIsNoLimit) {
  ServerOptions options;
  options.listen = {"127.0.0.1:0"};
  options.max_connections_per_source = 0;
  options.max_connections = 8;
  const auto ep = start(echo, options);
  std::vector<std::unique_ptr<RawConn>> idle;
  idle.reserve(7);
  for (int i = 0; i < 7; ++i) idle.push_back(std::make_unique<RawConn>(ep));
  ASSERT_TRUE(waitConnections(*server, 7));
  expectServed(ep);
  EXPECT_EQ(server->refusedConnections(), 0U);
}

TEST_F(ServerTest, Ipv6ListenerIsV6OnlySoIpv4CanShareThePort) {
  ServerOptions v6;
  v6.listen = {"[::]:0"};
  const auto ep = start(echo, v6);
  const std::string port = ep.substr(ep.rfind(':') + 1);
  ServerOptions v4;
  v4.listen = {"0.0.0.0:" + port};
  Server other(v4, echo);
  auto started = other.start();
  ASSERT_TRUE(started) << started.error().toString();
  EXPECT_EQ(other.endpoints().front(), "0.0.0.0:" + port);
}

TEST_F(ServerTest, StartFailsOnBadOrBusyAddressAndNamesIt) {
  for (const char* bad : {"localhost:80", "[::1]", "1.2.3.4.5:1", "127.0.0.1:99999", "unix:rel"}) {
    ServerOptions options;
    options.listen = {"127.0.0.1:0", bad};
    Server s(options, echo);
    auto started = s.start();
    ASSERT_FALSE(started) << bad;
    EXPECT_TRUE(started.error().is(errc::kInvalidArgument)) << started.error().toString();
    EXPECT_EQ(started.error().detail("address"), bad);
  }
  const auto ep = start(echo, ServerOptions{.listen = {"127.0.0.1:0"}});
  ServerOptions busy;
  busy.listen = {"[::1]:0", ep};
  Server s(busy, echo);
  auto started = s.start();
  ASSERT_FALSE(started);
  EXPECT_EQ(started.error().detail("address"), ep);
  EXPECT_TRUE(s.endpoints().empty());
}

TEST_F(ServerTest, UnixSocketReplacesStaleFileButNotALiveServer) {
  plfm::testing::TempDir dir("plfm-http");
  const std::string path = dir.file("s.sock");
  {
    // A socket file left behind by a process that died.
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
  }
  const auto ep = start(echo, ServerOptions{.listen = {"unix:" + path}});
  ASSERT_TRUE(request(get(urlFor(ep, "/"))));

  Server thief(ServerOptions{.listen = {"unix:" + path}}, echo);
  auto started = thief.start();
  ASSERT_FALSE(started);
  EXPECT_TRUE(started.error().is(errc::kUnavailable)) << started.error().toString();
  ASSERT_TRUE(request(get(urlFor(ep, "/"))));

  server->stop(0ms);
  struct stat st {};
  EXPECT_NE(::lstat(path.c_str(), &st), 0);  // removed on stop
}

}  // namespace
}  // namespace plfm::http
