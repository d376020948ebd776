#include <gtest/gtest.h>

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

}  // namespace
}  // namespace plfm::http
