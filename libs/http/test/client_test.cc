#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"
#include "test_util.h"

namespace plfm::http {
namespace {

using namespace std::chrono_literals;
using testing::baseUrl;
using testing::Gate;
using testing::get;
using testing::urlFor;

Response target(Request& req) { return Response::text(200, req.target); }

// A started server; fails the test if it cannot start.
std::unique_ptr<Server> startServer(Handler handler,
                                    std::vector<std::string> listen = {"[::1]:0"}) {
  auto server =
      std::make_unique<Server>(ServerOptions{.listen = std::move(listen)}, std::move(handler));
  auto started = server->start();
  EXPECT_TRUE(started) << started.error().toString();
  return server;
}

TEST(ClientTest, ConnectionRefusedIsUnavailableAndNamesTheAddress) {
  auto server = startServer(target);
  const std::string ep = server->endpoints().front();
  server->stop(0ms);

  auto resp = request(get(urlFor(ep, "/x")));
  ASSERT_FALSE(resp);
  EXPECT_TRUE(resp.error().is(errc::kUnavailable)) << resp.error().toString();
  EXPECT_NE(resp.error().message().find(ep), std::string::npos) << resp.error().toString();

  Client client(baseUrl(ep));
  auto again = client.send("GET", "/x");
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(errc::kUnavailable)) << again.error().toString();
}

TEST(ClientTest, MissingUnixSocketIsUnavailable) {
  plfm::testing::TempDir dir("plfm-http");
  auto resp = request(get("unix:" + dir.file("none.sock") + ":/x"));
  ASSERT_FALSE(resp);
  EXPECT_TRUE(resp.error().is(errc::kUnavailable)) << resp.error().toString();
  EXPECT_NE(resp.error().message().find("none.sock"), std::string::npos);
}

TEST(ClientTest, SlowHandlerIsDeadlineExceeded) {
  Gate gate;
  auto server = startServer([&](Request& req) {
    gate.pass();
    return target(req);
  });
  const std::string ep = server->endpoints().front();
  const auto t0 = std::chrono::steady_clock::now();
  auto resp = request(get(urlFor(ep, "/slow"), 100ms));
  const auto elapsed = std::chrono::steady_clock::now() - t0;
  ASSERT_FALSE(resp);
  EXPECT_TRUE(resp.error().is(errc::kDeadlineExceeded)) << resp.error().toString();
  EXPECT_GE(elapsed, 100ms);
  EXPECT_LT(elapsed, 1s);

  Client client(baseUrl(ep));
  auto again = client.send("GET", "/slow", {}, {}, 100ms);
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(errc::kDeadlineExceeded)) << again.error().toString();
  gate.open();
  server->stop(5s);  // let the released handlers finish
}

TEST(ClientTest, ReconnectsWhenTheServerClosedAnIdleConnection) {
  auto first = startServer([](Request&) { return Response::text(200, "first"); });
  const std::string ep = first->endpoints().front();
  Client client(baseUrl(ep));
  auto a = client.send("GET", "/");
  ASSERT_TRUE(a) << a.error().toString();
  EXPECT_EQ(a->body, "first");

  first->stop(0ms);  // closes the client's kept-alive connection
  auto second = startServer([](Request&) { return Response::text(200, "second"); }, {ep});
  auto b = client.send("GET", "/");
  ASSERT_TRUE(b) << b.error().toString();
  EXPECT_EQ(b->body, "second");
}

TEST(ClientTest, ResolvesHostNames) {
  auto server = startServer(target, {"127.0.0.1:0"});
  const std::string ep = server->endpoints().front();
  const std::string port = ep.substr(ep.rfind(':') + 1);
  auto resp = request(get("http://localhost:" + port + "/named"));
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->body, "/named");
}

TEST(ClientTest, UnixUrlCarriesTargetAndQuery) {
  plfm::testing::TempDir dir("plfm-http");
  auto server = startServer(target, {"unix:" + dir.file("c.sock")});
  auto resp = request(get("unix:" + dir.file("c.sock") + ":/v1/orgs?limit=5"));
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->body, "/v1/orgs?limit=5");
}

TEST(ClientTest, BaseUrlPathIsAPrefix) {
  auto server = startServer(target);
  Client client("http://" + server->endpoints().front() + "/api/");
  auto resp = client.send("GET", "/v1/x?y=1");
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->body, "/api/v1/x?y=1");
}

TEST(ClientTest, StatusHeadersAndBodyPassThrough) {
  auto server = startServer([](Request& req) {
    Response r = Response::json(418, R"({"teapot":true})");
    r.headers.add("X-Echo", std::string(req.header("X-In").value_or("")));
    return r;
  });
  Headers headers;
  headers.add("X-In", "abc");
  auto resp = request({.method = "PUT",
                       .url = urlFor(server->endpoints().front(), "/"),
                       .headers = headers,
                       .body = "{}"});
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->status, 418);
  EXPECT_EQ(resp->body, R"({"teapot":true})");
  EXPECT_EQ(resp->headers.get("content-type"), "application/json");
  EXPECT_EQ(resp->headers.get("x-echo"), "abc");
}

TEST(ClientTest, InvalidUrlsAreInvalidArgument) {
  for (const char* url : {"ftp://x/", "https://:443/", "http://:80/", "http://[::1/x",
                          "http://h:99999/", "unix:relative:/x", "nonsense"}) {
    auto resp = request(get(url));
    ASSERT_FALSE(resp) << url;
    EXPECT_TRUE(resp.error().is(errc::kInvalidArgument)) << url << ": " << resp.error().toString();
  }
  auto bad = Client("gopher://x").send("GET", "/");
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(errc::kInvalidArgument));
  auto relative = Client("http://[::1]:1").send("GET", "no-slash");
  ASSERT_FALSE(relative);
  EXPECT_TRUE(relative.error().is(errc::kInvalidArgument));
}

// A TCP server on [::1] that answers the first connection with `head` and
// then endless 64 KiB chunks, never ending the body (an agent gone rogue).
class EndlessBodyServer {
 public:
  explicit EndlessBodyServer(std::string head) : head_(std::move(head)) {
    fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(::listen(fd_, 4), 0);
    EXPECT_EQ(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin6_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~EndlessBodyServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  EndlessBodyServer(const EndlessBodyServer&) = delete;
  EndlessBodyServer& operator=(const EndlessBodyServer&) = delete;

  [[nodiscard]] std::string url() const { return "http://[::1]:" + std::to_string(port_) + "/x"; }
  [[nodiscard]] size_t sent() const { return sent_; }

 private:
  void serve() {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    char buf[4096];
    (void)::recv(c, buf, sizeof buf, 0);
    (void)::send(c, head_.data(), head_.size(), MSG_NOSIGNAL);
    const std::string chunk = "10000\r\n" + std::string(0x10000, 'x') + "\r\n";
    while (!stop_) {
      const ssize_t n = ::send(c, chunk.data(), chunk.size(), MSG_NOSIGNAL);
      if (n <= 0) break;
      sent_ += static_cast<size_t>(n);
    }
    ::close(c);
  }

  std::string head_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> sent_{0};
  std::thread thread_;
};

TEST(ClientTest, ResponseBodyLimitIsEnforcedWhileReading) {
  // Content-Length over the limit: refused from the header.
  auto big = startServer([](Request&) { return Response::text(200, std::string(300'000, 'b')); });
  ClientRequest req = get(urlFor(big->endpoints().front(), "/big"));
  req.max_response_body_bytes = 100'000;
  auto refused = request(req);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(errc::kResourceExhausted)) << refused.error().toString();
  EXPECT_NE(refused.error().message().find("100000"), std::string::npos);
  req.max_response_body_bytes = 300'000;
  auto fits = request(req);
  ASSERT_TRUE(fits) << fits.error().toString();
  EXPECT_EQ(fits->body.size(), 300'000U);

  // A chunked body that never ends: refused once the limit is passed, long
  // before the whole-exchange deadline (the old client read until then).
  EndlessBodyServer endless("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  ClientRequest chunked = get(endless.url(), 10s);
  chunked.max_response_body_bytes = 1 << 20;
  const auto t0 = std::chrono::steady_clock::now();
  auto cut = request(chunked);
  ASSERT_FALSE(cut);
  EXPECT_TRUE(cut.error().is(errc::kResourceExhausted)) << cut.error().toString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST(ClientTest, TheDeadlineBoundsTheWholeExchangeNotEachRead) {
  // Bytes keep arriving, so no single read stalls; the total still ends.
  EndlessBodyServer endless("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  const auto t0 = std::chrono::steady_clock::now();
  auto resp = request(get(endless.url(), 300ms));
  ASSERT_FALSE(resp);
  // Before, the deadline was checked only when a read had to wait: the
  // client read on until the 1 GiB cap (kResourceExhausted, seconds later).
  EXPECT_TRUE(resp.error().is(errc::kDeadlineExceeded)) << resp.error().toString();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

}  // namespace
}  // namespace plfm::http
