// The agent's log endpoint (docs/specs/runtime/logs.md): reading the bounded
// files with cursors, and the HTTP endpoint with its signed-request check
// over TLS.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "agent/instance_log.h"
#include "agent/log_endpoint.h"
#include "agent/log_reader.h"
#include "plfm/core/clock.h"
#include "plfm/http/http.h"
#include "plfm/http/pki.h"
#include "plfm/relay_auth/relay_auth.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::agent {
namespace {

using nlohmann::json;
constexpr uint64_t kSec = 1'000'000'000;
constexpr uint64_t kT0 = uint64_t{1'796'000'000} * kSec;

std::vector<std::string> texts(const LogPage& p) {
  std::vector<std::string> out;
  for (const auto& j : p.lines) out.push_back(j["line"].get<std::string>());
  return out;
}

TEST(LogReader, ReadsTheRotatedGenerationFirstAndResumesAtACursor) {
  plfm::testing::TempDir dir;
  const std::string path = dir.path() + "/inst_x.log";
  // Small files: every few lines rotate into .log.1.
  InstanceLog log(path, "inst_x", 300);
  log.append("stdout", kT0, "a\nb\n");  // one chunk: a and b share a ts
  log.append("stderr", kT0 + kSec, "c\n");
  log.append("stdout", kT0 + 2 * kSec, "d\ne\n");
  ASSERT_TRUE(std::filesystem::exists(path + ".1"));

  auto all = readInstanceLog(path, {}, {});
  ASSERT_TRUE(all);
  // .log.1 keeps one older generation only; what is there is in order.
  auto got = texts(*all);
  ASSERT_GE(got.size(), 2U);
  EXPECT_EQ(got.back(), "e");

  // A cursor in the middle of a run of equal timestamps.
  auto first = readInstanceLog(path, {}, {.limit = 1});
  ASSERT_TRUE(first);
  ASSERT_EQ(first->lines.size(), 1U);
  EXPECT_TRUE(first->more);
  auto rest = readInstanceLog(path, first->next, {});
  ASSERT_TRUE(rest);
  std::vector<std::string> joined = texts(*first);
  for (auto& t : texts(*rest)) joined.push_back(t);
  EXPECT_EQ(joined, got);
  EXPECT_FALSE(rest->more);

  auto again = readInstanceLog(path, rest->next, {});
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->lines.empty());
  EXPECT_EQ(again->next.ts, rest->next.ts);
  EXPECT_EQ(again->next.skip, rest->next.skip);

  auto tail = readInstanceLog(path, {}, {.limit = 2, .tail = true});
  ASSERT_TRUE(tail);
  EXPECT_EQ(texts(*tail), (std::vector<std::string>{"d", "e"}));
  EXPECT_EQ(tail->next.ts, rest->next.ts);
  EXPECT_EQ(tail->next.skip, 2);
}

TEST(LogReader, APartialLastLineWaitsAndAMissingFileIsEmpty) {
  plfm::testing::TempDir dir;
  const std::string path = dir.path() + "/inst_y.log";
  auto none = readInstanceLog(path, {}, {});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->lines.empty());
  {
    std::ofstream out(path);
    out << R"({"ts":"2026-12-03T06:30:00.000001Z","instance_id":"inst_y","stream":"stdout","line":"done"})"
        << "\n"
        << R"({"ts":"2026-12-03T06:30:00.000002Z","instance_id":"inst_y","stream":"stdout","li)";
  }
  auto page = readInstanceLog(path, {}, {});
  ASSERT_TRUE(page);
  EXPECT_EQ(texts(*page), (std::vector<std::string>{"done"}));
}

// The control plane's side of a relay request: signed for `node`, for the
// instance `instance`, `target` as sent.
http::Headers signedFor(const relay::SigningKey& key, const std::string& target,
                        const std::string& node, const std::string& instance, int64_t expires) {
  http::Headers h;
  h.set(std::string(relay::kExpiresHeader), std::to_string(expires));
  h.set(std::string(relay::kSignatureHeader), key.sign({"GET", target, node, instance, expires}));
  return h;
}

class LogEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::filesystem::create_directories(dir_.path() + "/logs");
    log_ = std::make_unique<InstanceLog>(dir_.path() + "/logs/inst_z.log", "inst_z", 1 << 20);
    log_->append("stdout", kT0, "hello\n");
    auto other = InstanceLog(dir_.path() + "/logs/inst_y.log", "inst_y", 1 << 20);
    other.append("stdout", kT0, "another instance\n");
    verifier_ = std::make_shared<RelayVerifier>("node_self", cp_.publicKey(), clock_);
    ep_ = LogEndpoint{dir_.path() + "/logs", verifier_, &stopping_};
    auto pki = http::writeLocalPki(dir_.path(), {"localhost"});
    ASSERT_TRUE(pki) << pki.error().toString();
    auto fp = http::certificateSha256(pki->server_cert);
    ASSERT_TRUE(fp);
    fingerprint_ = *fp;
    http::ServerOptions opts;
    opts.listen = {"[::1]:0"};
    opts.tls = http::ServerTlsOptions{pki->server_cert, pki->server_key};
    server_ = std::make_unique<http::Server>(opts, [this](http::Request& req) {
      if (LogEndpoint::matches(req)) return ep_.serve(req);
      return http::Response::text(404, "no");
    });
    ASSERT_TRUE(server_->start());
    client_ = std::make_unique<http::Client>("https://" + server_->endpoints()[0],
                                             http::ClientTlsOptions{.pinned_cert_sha256 = *fp});
  }
  void TearDown() override {
    stopping_ = true;
    if (server_) server_->stop(std::chrono::milliseconds(100));
  }

  int64_t now() const {
    return std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch())
        .count();
  }
  int statusOf(const std::string& target, const http::Headers& h) {
    auto r = client_->send("GET", target, h);
    EXPECT_TRUE(r) << r.error().toString();
    return r ? r->status : 0;
  }

  static relay::SigningKey key(char fill) {
    auto k = relay::SigningKey::fromSeed(std::string(32, fill));
    EXPECT_TRUE(k);
    return std::move(*k);
  }

  plfm::testing::TempDir dir_;
  FakeClock clock_{FakeClock::WallTime(std::chrono::seconds(1'796'000'000))};
  relay::SigningKey cp_ = key('c');
  std::shared_ptr<RelayVerifier> verifier_;
  std::atomic<bool> stopping_{false};
  LogEndpoint ep_;
  std::unique_ptr<InstanceLog> log_;
  std::string fingerprint_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<http::Client> client_;
};

TEST_F(LogEndpointTest, ServesSignedRequestsOverTlsAndLongPolls) {
  const std::string t0 = "/v1/instances/inst_z/logs";
  auto r = client_->send("GET", t0, signedFor(cp_, t0, "node_self", "inst_z", now() + 30));
  ASSERT_TRUE(r) << r.error().toString();
  ASSERT_EQ(r->status, 200) << r->body;
  auto j = json::parse(r->body);
  ASSERT_EQ(j["lines"].size(), 1U);
  EXPECT_EQ(j["lines"][0]["line"], "hello");
  const std::string target =
      "/v1/instances/inst_z/logs?after=" + j["next"]["after"].get<std::string>() +
      "&skip=" + std::to_string(j["next"]["skip"].get<int64_t>()) + "&wait=10";

  // Follow: a held request answers as soon as a line is written.
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    log_->append("stderr", kT0 + kSec, "later\n");
  });
  auto held =
      client_->send("GET", target, signedFor(cp_, target, "node_self", "inst_z", now() + 30));
  writer.join();
  ASSERT_TRUE(held);
  auto h = json::parse(held->body);
  ASSERT_EQ(h["lines"].size(), 1U) << held->body;
  EXPECT_EQ(h["lines"][0]["line"], "later");
  EXPECT_EQ(h["lines"][0]["stream"], "stderr");

  // The skew the agent allows: a signature that just expired still works.
  EXPECT_EQ(statusOf(t0, signedFor(cp_, t0, "node_self", "inst_z", now() - relay::kSkewSeconds)),
            200);
}

TEST_F(LogEndpointTest, AnythingButTheControlPlanesSignatureForThisRequestIs401) {
  const std::string t = "/v1/instances/inst_z/logs?limit=5";
  const int64_t exp = now() + relay::kTtlSeconds;
  // Unsigned, or the old bearer relay key.
  EXPECT_EQ(statusOf(t, {}), 401);
  http::Headers bearer;
  bearer.set("Authorization", "Bearer " + std::string(64, 'f'));
  EXPECT_EQ(statusOf(t, bearer), 401);
  // Expired (past the skew), or expiring too far ahead.
  EXPECT_EQ(statusOf(t, signedFor(cp_, t, "node_self", "inst_z", now() - relay::kSkewSeconds - 1)),
            401);
  EXPECT_EQ(statusOf(t, signedFor(cp_, t, "node_self", "inst_z", now() + 3600)), 401);
  // Signed for another node.
  EXPECT_EQ(statusOf(t, signedFor(cp_, t, "node_other", "inst_z", exp)), 401);
  // Signed for another instance, then sent to this one's path.
  const std::string ty = "/v1/instances/inst_y/logs?limit=5";
  EXPECT_EQ(statusOf(ty, signedFor(cp_, ty, "node_self", "inst_z", exp)), 401);
  // A tampered target: the query or the path changed after signing.
  EXPECT_EQ(statusOf("/v1/instances/inst_z/logs?limit=5000",
                     signedFor(cp_, t, "node_self", "inst_z", exp)),
            401);
  EXPECT_EQ(statusOf(ty, signedFor(cp_, t, "node_self", "inst_y", exp)), 401);
  // Another key (a control plane the node did not enroll with).
  EXPECT_EQ(statusOf(t, signedFor(key('x'), t, "node_self", "inst_z", exp)), 401);
  // Junk in the headers.
  http::Headers junk = signedFor(cp_, t, "node_self", "inst_z", exp);
  junk.set(std::string(relay::kExpiresHeader), "-1");
  EXPECT_EQ(statusOf(t, junk), 401);
  // The control: exactly this request.
  EXPECT_EQ(statusOf(t, signedFor(cp_, t, "node_self", "inst_z", exp)), 200);
  // Time passes on the agent's clock: the same signature expires.
  clock_.advance(std::chrono::seconds(relay::kTtlSeconds + relay::kSkewSeconds + 1));
  EXPECT_EQ(statusOf(t, signedFor(cp_, t, "node_self", "inst_z", exp)), 401);
}

TEST_F(LogEndpointTest, TheKeyIsPinnedOnceAndAnUnpinnedAgentRefusesEverything) {
  RelayVerifier fresh("node_self", std::nullopt, clock_);
  http::Request req;
  req.method = "GET";
  req.target = "/v1/instances/inst_z/logs";
  req.headers = signedFor(cp_, req.target, "node_self", "inst_z", now() + 30);
  EXPECT_FALSE(fresh.check(req, "inst_z"));
  EXPECT_TRUE(fresh.pin(cp_.publicKey()));
  EXPECT_TRUE(fresh.check(req, "inst_z"));
  // A heartbeat that reports another key does not replace the pinned one.
  EXPECT_FALSE(fresh.pin(key('x').publicKey()));
  EXPECT_EQ(fresh.pinned(), cp_.publicKey());
  EXPECT_TRUE(fresh.check(req, "inst_z"));
}

TEST_F(LogEndpointTest, PlainHttpAndTheWrongPinAreRefusedByTheClient) {
  http::Client plain("http://" + server_->endpoints()[0]);
  auto r = plain.send("GET", "/v1/instances/inst_z/logs");
  EXPECT_TRUE(!r || r->status != 200);
  http::Client wrong("https://" + server_->endpoints()[0],
                     http::ClientTlsOptions{.pinned_cert_sha256 = std::string(64, '0')});
  auto w = wrong.send("GET", "/v1/instances/inst_z/logs");
  ASSERT_FALSE(w);
  EXPECT_NE(w.error().message().find("pinned"), std::string::npos);
}

}  // namespace
}  // namespace plfm::agent
