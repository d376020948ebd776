#include "plfm/http/failover.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "test_util.h"

namespace plfm::http {
namespace {

using namespace std::chrono_literals;
using testing::baseUrl;

// ---- the logic alone ----

Result<Response> answer(int status) {
  Response r;
  r.status = status;
  return r;
}

TEST(EndpointListTest, StartsAtTheFirstAndStaysWhileItWorks) {
  EndpointList list({"https://a", "https://b", "https://c"});
  EXPECT_EQ(list.current(), 0U);
  list.succeeded(0);
  list.succeeded(0);
  EXPECT_EQ(list.current(), 0U);
}

TEST(EndpointListTest, MovesToTheNextOnFailureAndSticksToWhatWorks) {
  EndpointList list({"https://a", "https://b", "https://c"});
  EXPECT_FALSE(list.failed(0));
  EXPECT_EQ(list.current(), 1U);
  list.succeeded(1);
  EXPECT_EQ(list.current(), 1U);  // sticky: a's recovery does not move us back
  EXPECT_FALSE(list.failed(1));
  EXPECT_EQ(list.current(), 2U);
  EXPECT_FALSE(list.failed(2));
  EXPECT_EQ(list.current(), 0U);  // wraps
}

TEST(EndpointListTest, AWholeRoundOfFailuresIsReported) {
  EndpointList list({"https://a", "https://b"});
  EXPECT_FALSE(list.failed(0));
  EXPECT_TRUE(list.failed(1));
  EXPECT_TRUE(list.failed(0));  // still failing since the last success
  list.succeeded(1);
  EXPECT_FALSE(list.failed(1));
}

TEST(EndpointListTest, AFailureOfAnotherThanTheCurrentDoesNotMoveIt) {
  EndpointList list({"https://a", "https://b"});
  list.succeeded(1);
  EXPECT_FALSE(list.failed(0));
  EXPECT_EQ(list.current(), 1U);
}

TEST(EndpointListTest, BackoffDoublesToItsMaxAndResetsOnSuccess) {
  EndpointList list({"https://a"}, {.initial = 100ms, .max = 350ms});
  EXPECT_EQ(list.nextBackoff(), 100ms);
  EXPECT_EQ(list.nextBackoff(), 200ms);
  EXPECT_EQ(list.nextBackoff(), 350ms);
  EXPECT_EQ(list.nextBackoff(), 350ms);
  list.succeeded(0);
  EXPECT_EQ(list.nextBackoff(), 100ms);
}

TEST(ParseBaseUrlsTest, TakesRepeatedAndCommaSeparatedValues) {
  auto urls =
      parseBaseUrls("--control-plane", {"https://cp1:8443, https://cp2:8443/", "https://cp3:8443",
                                        "https://cp1:8443", "", "unix:/run/plfm.sock"});
  ASSERT_TRUE(urls) << urls.error().toString();
  EXPECT_EQ(*urls, (std::vector<std::string>{"https://cp1:8443", "https://cp2:8443",
                                             "https://cp3:8443", "unix:/run/plfm.sock"}));
}

TEST(ParseBaseUrlsTest, ABadUrlIsNamedWithTheSetting) {
  auto urls = parseBaseUrls("--control-plane", {"https://cp1:8443,cp2:8443"});
  ASSERT_FALSE(urls);
  EXPECT_TRUE(urls.error().is(errc::kInvalidArgument));
  EXPECT_NE(urls.error().message().find("--control-plane"), std::string::npos)
      << urls.error().message();
  EXPECT_NE(urls.error().message().find("\"cp2:8443\""), std::string::npos)
      << urls.error().message();
  EXPECT_EQ(urls.error().detail("field"), "--control-plane");
  auto port = parseBaseUrls("edge_url", {"https://cp1:99999"});
  ASSERT_FALSE(port);
  EXPECT_NE(port.error().message().find("bad port"), std::string::npos);
}

TEST(ParseBaseUrlsTest, NoUrlAtAllIsAnError) {
  auto urls = parseBaseUrls("--url", {" , "});
  ASSERT_FALSE(urls);
  EXPECT_NE(urls.error().message().find("--url"), std::string::npos);
}

TEST(ShouldTryNextTest, TransportTrustAndGatewayFailuresMoveOn) {
  EXPECT_TRUE(shouldTryNext(Error(errc::kUnavailable, "connection refused")));
  EXPECT_TRUE(shouldTryNext(Error(errc::kDeadlineExceeded, "timed out")));
  EXPECT_TRUE(shouldTryNext(Error(errc::kFailedPrecondition, "certificate verify failed")));
  EXPECT_FALSE(shouldTryNext(Error(errc::kResourceExhausted, "body too large")));
  EXPECT_FALSE(shouldTryNext(Error(errc::kInvalidArgument, "bad target")));
  for (int status : {502, 503, 504}) EXPECT_TRUE(shouldTryNext(answer(status)));
  for (int status : {200, 304, 400, 401, 404, 409, 500}) {
    EXPECT_FALSE(shouldTryNext(answer(status))) << status;
  }
}

// ---- over loopback servers ----

struct Replica {
  std::unique_ptr<Server> server;
  std::string url;
  std::atomic<int> hits{0};
  std::atomic<int> status{200};
  std::mutex mu;
  std::vector<std::string> keys;  // Idempotency-Key of each request seen

  void start() {
    server = std::make_unique<Server>(ServerOptions{}, [this](Request& req) {
      ++hits;
      std::lock_guard lock(mu);
      keys.emplace_back(req.header("Idempotency-Key").value_or(""));
      return Response::text(status.load(), url);
    });
    auto started = server->start();
    ASSERT_TRUE(started) << started.error().toString();
    url = baseUrl(server->endpoints().front());
  }
};

TEST(FailoverClientTest, ADeadFirstUrlFallsThroughAndTheLiveOneSticks) {
  Replica dead;
  dead.start();
  dead.server->stop(0ms);
  Replica live;
  live.start();
  FailoverClient client({dead.url, live.url});
  auto r = client.send("GET", "/x");
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->body, live.url);
  EXPECT_EQ(client.currentUrl(), live.url);
  ASSERT_TRUE(client.send("GET", "/y"));
  EXPECT_EQ(live.hits.load(), 2);
}

TEST(FailoverClientTest, A503MovesOnAndTheIdempotencyKeyTravels) {
  Replica busy;
  busy.start();
  busy.status = 503;
  Replica live;
  live.start();
  FailoverClient client({busy.url, live.url});
  Headers h;
  h.set("Idempotency-Key", "k-1");
  auto r = client.send("POST", "/v1/things", h, "{}");
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(busy.keys, std::vector<std::string>{"k-1"});
  EXPECT_EQ(live.keys, std::vector<std::string>{"k-1"});
}

// A POST without an Idempotency-Key (enrollment with a one-time token) is
// not sent twice: a replica that answered 503 may have acted on it.
TEST(FailoverClientTest, AnUnkeyedPostThatReachedAReplicaIsNotSentToTheNext) {
  Replica busy;
  busy.start();
  busy.status = 503;
  Replica live;
  live.start();
  FailoverClient client({busy.url, live.url});
  auto r = client.send("POST", "/v1/nodes/enroll", Headers{}, "{}");
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(live.hits.load(), 0);
  // One that never reached a replica (nothing listens) goes to the next.
  busy.server->stop(0ms);
  auto moved = client.send("POST", "/v1/nodes/enroll", Headers{}, "{}");
  ASSERT_TRUE(moved) << moved.error().toString();
  EXPECT_EQ(moved->status, 200);
  EXPECT_EQ(live.hits.load(), 1);
}

TEST(ShouldTryNextTest, AnUnkeyedRequestMovesOnOnlyWhenItWasNotSent) {
  EXPECT_TRUE(shouldTryNextUnkeyed(Error(errc::kUnavailable, "connection refused")));
  EXPECT_FALSE(shouldTryNextUnkeyed(
      Error(errc::kUnavailable, "connection reset").with("request_sent", "true")));
  EXPECT_FALSE(shouldTryNextUnkeyed(answer(503)));
}

TEST(FailoverClientTest, AnHttpErrorIsAnAnswerNotAFailure) {
  Replica a;
  a.start();
  a.status = 404;
  Replica b;
  b.start();
  FailoverClient client({a.url, b.url});
  auto r = client.send("GET", "/x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(b.hits.load(), 0);
}

TEST(FailoverClientTest, EveryUrlDeadIsOneErrorThatSaysSo) {
  Replica a;
  a.start();
  a.server->stop(0ms);
  Replica b;
  b.start();
  b.server->stop(0ms);
  FailoverClient client({a.url, b.url}, {.backoff = {.initial = 50ms, .max = 80ms}});
  auto r = client.send("GET", "/x", {}, {}, 2s);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::kUnavailable));
  EXPECT_NE(r.error().message().find("all 2 URLs failed"), std::string::npos)
      << r.error().message();
  EXPECT_EQ(client.backoff(), 50ms);
  EXPECT_EQ(client.backoff(), 80ms);
}

}  // namespace
}  // namespace plfm::http
