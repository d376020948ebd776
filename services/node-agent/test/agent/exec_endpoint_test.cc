// The agent's exec endpoint without a VM (docs/specs/runtime/exec-sessions.md,
// "Agent endpoint"): a real server and WebSocket client, the real relay
// signature check, and a fake guest behind the instance's ExecMux.
#include "agent/exec_endpoint.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "exec_fake_guest.h"
#include "plfm/core/sha256.h"
#include "plfm/guest_proto/guest_proto.h"
#include "plfm/http/http.h"
#include "plfm/relay_auth/relay_auth.h"

namespace plfm::agent {
namespace {

namespace gp = guest_proto;
using std::chrono::milliseconds;

using testing::execOpen;
using testing::FakeGuest;
using namespace std::chrono_literals;

constexpr std::string_view kId = "inst_exec0000000000000000001";

std::string frameOf(const gp::Result<std::string>& f) {
  EXPECT_TRUE(f);
  return f.value_or("");
}

gp::Frame decodeOne(const std::string& bytes) {
  gp::Decoder d;
  d.feed(bytes);
  auto f = d.next();
  EXPECT_TRUE(f && *f);
  return f && *f ? **f : gp::Frame{};
}

class ExecEndpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = relay::SigningKey::fromSeed(std::string(32, 'c'));
    ASSERT_TRUE(k);
    cp_ = std::make_unique<relay::SigningKey>(std::move(*k));
    ep_.verifier = std::make_shared<RelayVerifier>("node_self", cp_->publicKey());
    ep_.metrics = &metrics_;
    ep_.lookup = [this](const std::string& id) -> std::optional<ExecTarget> {
      std::lock_guard lock(mu_);
      if (id != kId) return std::nullopt;
      return target_;
    };
    mux_->attach(guest_.sendFn());
    target_ = ExecTarget{Phase::kRunning, gp::kExecRevision, mux_};
    http::ServerOptions opts;
    opts.listen = {"[::1]:0"};
    server_ = std::make_unique<http::Server>(opts, [this](http::Request& req) {
      if (ExecEndpoint::matches(req)) return ep_.serve(req);
      return http::Response::text(404, "no");
    });
    ASSERT_TRUE(server_->start());
    base_ = "ws://" + server_->endpoints()[0];
  }
  void TearDown() override {
    mux_->detach("test over");
    server_->stop(100ms);
  }

  static std::string openPayload(const std::vector<std::string>& argv = {"cat"}) {
    auto f = gp::encode(execOpen(argv), gp::kFirstExecStream);
    EXPECT_TRUE(f);
    return f->substr(gp::kHeaderBytes);
  }
  static std::string openFrame(const std::string& payload) {
    return frameOf(gp::encodeFrame(gp::FrameType::kExecOpen, gp::kFirstExecStream, payload));
  }
  http::Headers sign(const std::string& target, const std::string& instance) {
    const int64_t expires = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count() +
                            30;
    http::Headers h;
    h.set(std::string(relay::kExpiresHeader), std::to_string(expires));
    h.set(std::string(relay::kSignatureHeader),
          cp_->sign({"GET", target, "node_self", instance, expires}));
    return h;
  }
  static std::string targetFor(std::string_view id, const std::string& payload) {
    return "/v1/instances/" + std::string(id) + "/exec?open=" + Sha256::hex(payload);
  }
  Result<std::unique_ptr<http::WebSocket>> connect(const std::string& target,
                                                   const http::Headers& headers) {
    return http::connectWebSocket({.url = base_ + target, .headers = headers});
  }
  // Signed, upgraded, and the OPEN sent; the guest has seen it.
  std::unique_ptr<http::WebSocket> session(const std::string& payload = openPayload()) {
    const std::string t = targetFor(kId, payload);
    auto ws = connect(t, sign(t, std::string(kId)));
    EXPECT_TRUE(ws) << ws.error().toString();
    if (!ws) return nullptr;
    EXPECT_TRUE((*ws)->write(openFrame(payload)));
    auto open = guest_.next();
    EXPECT_TRUE(open && open->type == gp::FrameType::kExecOpen);
    if (open) stream_ = open->stream;
    return std::move(*ws);
  }
  // The close code the server ended with, after any messages before it.
  static std::string closeCode(http::WebSocket& ws) {
    while (true) {
      auto m = ws.read();
      if (!m) return std::string(m.error().detail("close_code"));
    }
  }
  void guestSends(const gp::Result<std::string>& bytes) { mux_->onGuestFrame(decodeOne(*bytes)); }
  // Sessions count their outcome once they have returned (after the close).
  bool counted(const std::string& outcome, int n) {
    const std::string line =
        "plfm_agent_exec_sessions_total{outcome=\"" + outcome + "\"} " + std::to_string(n);
    for (int i = 0; i < 200; ++i) {
      if (metrics_.render().find(line) != std::string::npos) return true;
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "no " << line << " in\n" << metrics_.render();
    return false;
  }

  std::unique_ptr<relay::SigningKey> cp_;
  metrics::Registry metrics_;
  FakeGuest guest_;
  std::shared_ptr<ExecMux> mux_ = std::make_shared<ExecMux>(std::string(kId));
  std::mutex mu_;
  ExecTarget target_;  // guarded by mu_
  ExecEndpoint ep_;
  std::unique_ptr<http::Server> server_;
  std::string base_;
  uint16_t stream_ = 0;
};

TEST_F(ExecEndpointTest, RefusesBeforeTheUpgrade) {
  const std::string payload = openPayload();
  const std::string t = targetFor(kId, payload);
  auto status = [&](const std::string& target, const http::Headers& h) {
    auto ws = connect(target, h);
    EXPECT_FALSE(ws);
    return ws ? std::string("101") : std::string(ws.error().detail("status"));
  };
  EXPECT_EQ(status(t, {}), "401");                     // unsigned
  EXPECT_EQ(status(t, sign(t, "inst_other")), "401");  // signed for another instance
  // The open hash swapped under a signature for another command.
  const std::string other = targetFor(kId, openPayload({"sh"}));
  EXPECT_EQ(status(other, sign(t, std::string(kId))), "401");
  const std::string missing = targetFor("inst_missing", payload);
  EXPECT_EQ(status(missing, sign(missing, "inst_missing")), "404");
  const std::string no_open = "/v1/instances/" + std::string(kId) + "/exec";
  EXPECT_EQ(status(no_open, sign(no_open, std::string(kId))), "400");
  {
    std::lock_guard lock(mu_);
    target_.phase = Phase::kBooting;
  }
  EXPECT_EQ(status(t, sign(t, std::string(kId))), "409");
  {
    std::lock_guard lock(mu_);
    target_.phase = Phase::kRunning;
    target_.exec_revision = 0;
  }
  EXPECT_EQ(status(t, sign(t, std::string(kId))), "409");
  EXPECT_EQ(mux_->sessions(), 0u);
}

TEST_F(ExecEndpointTest, AFirstMessageOtherThanTheSignedOpenCloses1008) {
  const std::string signed_payload = openPayload({"true"});
  const std::string t = targetFor(kId, signed_payload);
  for (const std::string& first :
       {openFrame(openPayload({"sh", "-c", "evil"})), std::string("junk"),
        frameOf(gp::encode(gp::ExecData{gp::ExecFd::kStdin, "x"}, gp::kFirstExecStream)),
        openFrame(signed_payload) + openFrame(signed_payload)}) {
    auto ws = connect(t, sign(t, std::string(kId)));
    ASSERT_TRUE(ws) << ws.error().toString();
    ASSERT_TRUE((*ws)->write(first));
    EXPECT_EQ(closeCode(**ws), "1008");
  }
  EXPECT_FALSE(guest_.next(100ms)) << "nothing may reach the guest";
  EXPECT_TRUE(counted("open_mismatch", 4));
}

TEST_F(ExecEndpointTest, RelaysBothWaysRewritingTheStreamThenExitCloses1000) {
  auto other = mux_->open(openPayload());  // so the session gets another stream than 0x100
  ASSERT_TRUE(other);
  (void)guest_.next();
  auto ws = session();
  ASSERT_TRUE(ws);
  ASSERT_EQ(stream_, gp::kFirstExecStream + 1);
  ASSERT_TRUE(ws->write(frameOf(gp::encode(gp::ExecData{gp::ExecFd::kStdin, "in"}, 0x100))));
  auto in = guest_.next();
  ASSERT_TRUE(in);
  EXPECT_EQ(in->stream, stream_);
  EXPECT_EQ(gp::decodeExecData(in->payload)->data, "in");

  guestSends(gp::encode(gp::ExecData{gp::ExecFd::kStdout, "out"}, stream_));
  auto out = ws->read();
  ASSERT_TRUE(out) << out.error().toString();
  auto f = decodeOne(*out);
  EXPECT_EQ(f.stream, gp::kFirstExecStream);
  EXPECT_EQ(gp::decodeExecData(f.payload)->data, "out");
  guestSends(gp::encode(gp::ExecWindow{4096}, stream_));
  auto w = ws->read();
  ASSERT_TRUE(w);
  EXPECT_EQ(decodeOne(*w).type, gp::FrameType::kExecWindow);
  guestSends(gp::encode(gp::ExecExit{gp::ExecExitKind::kExited, 42, ""}, stream_));
  auto e = ws->read();
  ASSERT_TRUE(e);
  EXPECT_EQ(gp::decodeExecExit(decodeOne(*e).payload)->code, 42);
  EXPECT_EQ(closeCode(*ws), "1000");
  EXPECT_EQ(mux_->sessions(), 1u);  // only `other`
  EXPECT_FALSE(guest_.next(100ms)) << "no abort after EXIT";
  EXPECT_TRUE(counted("exited", 1));
}

TEST_F(ExecEndpointTest, AClientThatLeavesBeforeExitAbortsTheCommand) {
  auto ws = session();
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->close(http::kCloseNormal));
  auto abort = guest_.next();
  ASSERT_TRUE(abort);
  EXPECT_EQ(abort->type, gp::FrameType::kExecClose);
  EXPECT_EQ(abort->stream, stream_);
  EXPECT_EQ(gp::decodeExecClose(abort->payload)->kind, gp::ExecCloseKind::kAbort);
  EXPECT_TRUE(counted("client_gone", 1));
}

TEST_F(ExecEndpointTest, StdinBeyondTheCreditCloses1008AndAMalformedFrame1002) {
  {
    auto ws = session();
    ASSERT_TRUE(ws);
    const std::string chunk =
        frameOf(gp::encode(gp::ExecData{gp::ExecFd::kStdin, std::string(16384, 'x')}, 0x100));
    for (uint32_t sent = 0; sent < gp::kExecInitialWindow; sent += 16384) {
      ASSERT_TRUE(ws->write(chunk));
    }
    ASSERT_TRUE(ws->write(frameOf(gp::encode(gp::ExecData{gp::ExecFd::kStdin, "1"}, 0x100))));
    EXPECT_EQ(closeCode(*ws), "1008");
    int data = 0;
    std::optional<gp::Frame> f;
    while ((f = guest_.next(1000ms)) && f->type == gp::FrameType::kExecData) ++data;
    EXPECT_EQ(data, 16);  // the overrun never reached the guest
    ASSERT_TRUE(f);
    EXPECT_EQ(f->type, gp::FrameType::kExecClose);  // abort
  }
  {
    auto ws = session();
    ASSERT_TRUE(ws);
    ASSERT_TRUE(ws->write("not a frame"));
    EXPECT_EQ(closeCode(*ws), "1002");
    auto f = guest_.next();
    ASSERT_TRUE(f);
    EXPECT_EQ(f->type, gp::FrameType::kExecClose);
  }
  EXPECT_TRUE(counted("credit", 1));
  EXPECT_TRUE(counted("protocol", 1));
}

TEST_F(ExecEndpointTest, LosingTheChannelCloses4000AndAFullInstanceRefuses4001) {
  auto ws = session();
  ASSERT_TRUE(ws);
  const auto t0 = std::chrono::steady_clock::now();
  mux_->detach("the instance's VM exited");
  // Stdin racing the loss is dropped; the session still ends as lost.
  (void)ws->write(frameOf(gp::encode(gp::ExecData{gp::ExecFd::kStdin, "late"}, 0x100)));
  auto m = ws->read();
  ASSERT_FALSE(m);
  EXPECT_EQ(m.error().detail("close_code"), "4000");
  EXPECT_EQ(m.error().detail("close_reason"), "the instance's VM exited");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);

  // Refusals after the upgrade: the 65th session, and a channel that closed
  // between the upgrade and the OPEN.
  mux_->attach(guest_.sendFn());
  std::vector<std::shared_ptr<ExecSession>> full;
  for (size_t i = 0; i < kMaxExecSessions; ++i) full.push_back(*mux_->open(openPayload()));
  for (size_t i = 0; i < kMaxExecSessions; ++i) (void)guest_.next();
  const std::string payload = openPayload();
  const std::string t = targetFor(kId, payload);
  auto refused = connect(t, sign(t, std::string(kId)));
  ASSERT_TRUE(refused);
  ASSERT_TRUE((*refused)->write(openFrame(payload)));
  auto r = (*refused)->read();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().detail("close_code"), "4001");
  EXPECT_NE(r.error().detail("close_reason").find("too many"), std::string::npos);

  auto late = connect(t, sign(t, std::string(kId)));
  ASSERT_TRUE(late);
  {
    std::lock_guard lock(mu_);
    target_.phase = Phase::kStopping;
  }
  ASSERT_TRUE((*late)->write(openFrame(payload)));
  EXPECT_EQ(closeCode(**late), "4001");
  EXPECT_TRUE(counted("lost", 1));
  EXPECT_TRUE(counted("refused", 2));
}

}  // namespace
}  // namespace plfm::agent
