// `vt exec` through the control plane (docs/specs/runtime/exec-sessions.md,
// "Control plane"): a real control plane on a real PostgreSQL issues
// tickets and relays sessions to an agent. The agent is a fake in this test
// process (a libs/http server speaking the agent endpoint's contract: signed
// upgrade, EXEC_OPEN first, one frame per message), over TLS pinned to the
// certificate its node reported, so each hop's rules are checked here and
// the real agent endpoint is tested on its own side.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "api_test_support.h"
#include "exec_relay.h"
#include "plfm/core/sha256.h"
#include "plfm/guest_proto/exec.h"
#include "plfm/guest_proto/frame.h"
#include "plfm/http/pki.h"
#include "plfm/http/websocket.h"
#include "plfm/relay_auth/relay_auth.h"

namespace plfm::cp {
namespace {
namespace gp = guest_proto;

gp::ExecOpen openOf(std::vector<std::string> argv) {
  gp::ExecOpen o;
  o.argv = std::move(argv);
  return o;
}

using testsupport::ApiTest;
using testsupport::Reply;

constexpr uint16_t kStream = gp::kFirstExecStream;

std::string encoded(const gp::Result<std::string>& f) {
  EXPECT_TRUE(f.has_value());
  return f.value_or("");
}

std::optional<gp::Frame> decodeOne(const std::string& msg) {
  gp::Decoder d;
  d.feed(msg);
  auto f = d.next();
  if (!f || !*f) return std::nullopt;
  return **f;
}

// The agent's side of the contract, scripted per test.
class FakeAgent {
 public:
  enum class Mode {
    kEcho,    // echoes stdin as stdout (granting stdin credit back); stdin EOF: EXIT exited(3)
    kHold,    // reads and records, grants nothing; abort: EXIT signaled(9)
    kDrop,    // closes with 4000 right after the OPEN
    kRefuse,  // 409 before the upgrade
    kFlood,   // sends stdout past the output credit, then a frame it may not send
  };

  FakeAgent(std::string node, relay::PublicKey key, const Clock& clock)
      : node_(std::move(node)), key_(key), clock_(clock) {}

  http::Response serve(http::Request& req) {
    constexpr std::string_view kPrefix = "/v1/instances/";
    if (!req.path.starts_with(kPrefix) || !req.path.ends_with("/exec")) {
      return http::Response::text(404, "no");
    }
    const std::string inst = req.path.substr(kPrefix.size(), req.path.size() - kPrefix.size() - 5);
    const std::string expires(req.header(relay::kExpiresHeader).value_or("0"));
    const std::string sig(req.header(relay::kSignatureHeader).value_or(""));
    const int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
    if (!relay::verify(key_, {"GET", req.target, node_, inst, std::stoll(expires)}, sig, now)) {
      return http::Response::json(401, R"({"error":{"code":"unauthenticated","message":"no"}})");
    }
    if (mode == Mode::kRefuse) {
      return http::Response::json(
          409, R"({"error":{"code":"failed_precondition","message":"the instance is booting"}})");
    }
    const std::string open_hash(req.queryParam("open").value_or(""));
    return http::acceptWebSocket(
        req, {}, [this, open_hash](http::WebSocket& ws) { session(ws, open_hash); });
  }

  void session(http::WebSocket& ws, const std::string& open_hash) {
    auto first = ws.read();
    if (!first) return;
    auto f = decodeOne(*first);
    {
      std::lock_guard lock(mu_);
      if (f && f->type == gp::FrameType::kExecOpen && Sha256::hex(f->payload) == open_hash) {
        open = gp::decodeExecOpen(f->payload).value_or(gp::ExecOpen{});
        open_matched = true;
      }
    }
    if (!open_matched) {
      (void)ws.close(http::kClosePolicyViolation, "the first message is not the signed OPEN");
      return;
    }
    if (mode == Mode::kDrop) {
      (void)ws.close(4000, "the instance's VM exited");
      return;
    }
    if (mode == Mode::kFlood) {
      const std::string chunk(gp::kMaxExecDataBytes, 'o');
      for (uint32_t sent = 0; sent <= open.window; sent += gp::kMaxExecDataBytes) {
        if (!ws.write(encoded(gp::encode(gp::ExecData{gp::ExecFd::kStdout, chunk}, kStream)))) {
          break;
        }
      }
      (void)ws.write(encoded(gp::encode(gp::ExecResize{10, 10}, kStream)));
      while (ws.read()) {
      }
      std::lock_guard lock(mu_);
      ended = true;
      cv_.notify_all();
      return;
    }
    for (;;) {
      auto msg = ws.read();
      if (!msg) break;
      auto fr = decodeOne(*msg);
      if (!fr) break;
      std::unique_lock lock(mu_);
      types.push_back(fr->type);
      if (fr->type == gp::FrameType::kExecData) {
        auto d = gp::decodeExecData(fr->payload);
        stdin_seen += d->data;
        if (mode == Mode::kEcho) {
          lock.unlock();
          (void)ws.write(encoded(gp::encode(gp::ExecData{gp::ExecFd::kStdout, d->data}, kStream)));
          (void)ws.write(
              encoded(gp::encode(gp::ExecWindow{static_cast<uint32_t>(d->data.size())}, kStream)));
        }
      } else if (fr->type == gp::FrameType::kExecClose) {
        auto c = gp::decodeExecClose(fr->payload);
        if (c->kind == gp::ExecCloseKind::kAbort) {
          aborted = true;
          cv_.notify_all();
          lock.unlock();
          (void)ws.write(
              encoded(gp::encode(gp::ExecExit{gp::ExecExitKind::kSignaled, 9, ""}, kStream)));
          break;
        }
        lock.unlock();
        (void)ws.write(
            encoded(gp::encode(gp::ExecExit{gp::ExecExitKind::kExited, 3, ""}, kStream)));
        (void)ws.close();
        break;
      }
    }
    std::lock_guard lock(mu_);
    ended = true;
    cv_.notify_all();
  }

  bool waitAborted() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return aborted; });
  }

  std::atomic<Mode> mode{Mode::kEcho};
  std::mutex mu_;
  std::condition_variable cv_;
  gp::ExecOpen open;
  bool open_matched = false;
  bool aborted = false;
  bool ended = false;
  std::vector<gp::FrameType> types;
  std::string stdin_seen;

 private:
  std::string node_;
  relay::PublicKey key_;
  const Clock& clock_;
};

// What a client saw of a session.
struct Seen {
  std::string stdout_bytes;
  std::optional<gp::ExecExit> exit;
  uint16_t close_code = 0;
  std::string close_reason;
};

// Reads until the session ends; a session that has not ended within
// `limit` is closed by the test (1000), which fails its expectations.
Seen drain(http::WebSocket& ws, std::chrono::seconds limit = std::chrono::seconds(15)) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, limit, [&] { return done; })) {
      lock.unlock();
      ADD_FAILURE() << "the session did not end within " << limit.count() << " s";
      (void)ws.close(http::kCloseNormal, "test timeout");
    }
  });
  Seen s;
  for (;;) {
    auto msg = ws.read();
    if (!msg) break;
    auto f = decodeOne(*msg);
    if (!f) break;
    if (f->type == gp::FrameType::kExecData) s.stdout_bytes += gp::decodeExecData(f->payload)->data;
    if (f->type == gp::FrameType::kExecExit) s.exit = *gp::decodeExecExit(f->payload);
  }
  if (auto cs = ws.closeStatus()) {
    s.close_code = cs->code;
    s.close_reason = cs->reason;
  }
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  watchdog.join();
  return s;
}

class ExecApiTest : public ApiTest {
 protected:
  const Clock* serverClock() override { return &fake_; }
  void configure(Config& cfg) override { cfg.max_exec_sessions_per_org = 2; }

  void SetUp() override {
    ApiTest::SetUp();
    if (HasFatalFailure()) return;
    agent_dir_ = std::make_unique<plfm::testing::TempDir>("plfm-exec");
    auto pki = http::writeLocalPki(agent_dir_->path(), {"localhost"});
    ASSERT_TRUE(pki) << pki.error().toString();
    auto fp = http::certificateSha256(pki->server_cert);
    ASSERT_TRUE(fp);
    cert_sha256_ = *fp;
    http::ServerOptions opts;
    opts.listen = {"[::1]:0"};
    opts.tls = http::ServerTlsOptions{pki->server_cert, pki->server_key};
    agent_http_ = std::make_unique<http::Server>(opts, [this](http::Request& req) {
      if (!agent_) return http::Response::text(503, "not yet");
      return agent_->serve(req);
    });
    ASSERT_TRUE(agent_http_->start());
    ASSERT_NO_FATAL_FAILURE(placeRunning());
  }
  void TearDown() override {
    if (agent_http_) agent_http_->stop(std::chrono::milliseconds(500));
    ApiTest::TearDown();
  }

  // An org (the admin owns it) with one `web` instance running on a node
  // whose agent is the fake above.
  void placeRunning() {
    auto [node, token] = enrollNode("exec.example", 4, 4096, "::1");
    node_ = node;
    node_token_ = token;
    auto hello = callJson("POST", "/v1/nodes/" + node + "/heartbeat", json::Json::object(), token);
    auto pinned = relay::PublicKey::parse(hello.body["relay_public_key"].get<std::string>());
    ASSERT_TRUE(pinned) << hello.raw;
    agent_ = std::make_unique<FakeAgent>(node, *pinned, fake_);
    org_ = makeOrg("exec");
    const std::string app = makeApp(org_, "web");
    const std::string env = makeEnv(app, "prod");
    const std::string release = makeReleaseWith(app, webManifest(1, 256));
    ASSERT_EQ(callJson("POST", "/v1/envs/" + env + "/deploys", {{"release_id", release}}).status,
              201);
    ASSERT_EQ(callJson("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 1}}}}).status,
              200);
    auto plan = call("GET", "/v1/nodes/" + node + "/plan?after=0&wait=0", "", token);
    ASSERT_EQ(plan.body["instances"].size(), 1U) << plan.raw;
    inst_ = plan.body["instances"][0]["instance_id"];
  }

  void reportRunning() {
    auto beat = callJson("POST", "/v1/nodes/" + node_ + "/heartbeat",
                         {{"agent_version", "0.1.0"},
                          {"agent_url", "https://" + agent_http_->endpoints()[0]},
                          {"agent_cert_sha256", cert_sha256_}},
                         node_token_);
    ASSERT_EQ(beat.status, 200) << beat.raw;
    auto st = callJson("POST", "/v1/nodes/" + node_ + "/instances/" + inst_ + "/status",
                       {{"generation", 1},
                        {"seq", ++status_seq_},
                        {"phase", "running"},
                        {"timings", json::Json::object()}},
                       node_token_);
    ASSERT_EQ(st.status, 200) << st.raw;
  }

  Reply ticket(const json::Json& body, const std::optional<std::string>& token = std::nullopt) {
    return call("POST", "/v1/instances/" + inst_ + "/exec", json::dump(body), token);
  }

  Result<std::unique_ptr<http::WebSocket>> open(const std::string& ticket) {
    http::WebSocketConnectOptions o;
    o.url = base_ + "/v1/exec";
    if (!ticket.empty()) o.headers.set("X-Plfm-Exec-Ticket", ticket);
    return http::connectWebSocket(o);
  }

  std::unique_ptr<http::WebSocket> openOk(const std::string& ticket) {
    auto ws = open(ticket);
    EXPECT_TRUE(ws) << ws.error().toString();
    return ws ? std::move(*ws) : nullptr;
  }

  // The exec events' payloads once `n` exec.ended events exist (appended by
  // the session thread after the client saw the end).
  std::vector<json::Json> execEvents(int n_ended) {
    for (int i = 0; i < 200 && countEvents("exec.ended") < n_ended; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    EXPECT_EQ(countEvents("exec.ended"), n_ended);
    auto conn = connect();
    auto rs = conn.exec(
        "SELECT json_build_object('type', event_type, 'actor', actor, 'org_id', org_id, "
        "'aggregate_type', aggregate_type, 'payload', payload)::text FROM events WHERE "
        "event_type LIKE 'exec.%' ORDER BY seq");
    EXPECT_TRUE(rs);
    std::vector<json::Json> out;
    for (int i = 0; rs && i < rs->rows(); ++i) out.push_back(*json::parse(rs->text(i, 0)));
    return out;
  }

  FakeClock fake_{RealClock().now()};
  std::unique_ptr<plfm::testing::TempDir> agent_dir_;
  std::string cert_sha256_;
  std::unique_ptr<http::Server> agent_http_;
  std::unique_ptr<FakeAgent> agent_;
  std::string node_, node_token_, org_, inst_;
  int status_seq_ = 0;
};

TEST_F(ExecApiTest, RelaysASessionAndAuditsItsExitCode) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  auto t = ticket({{"argv", {"sh", "-c", "cat"}}, {"tty", false}});
  ASSERT_EQ(t.status, 201) << t.raw;
  const std::string tk = t.body["ticket"];
  EXPECT_TRUE(tk.starts_with("vxt_")) << tk;
  EXPECT_EQ(t.body["url"], "/v1/exec");
  EXPECT_EQ(t.body["instance_id"], inst_);
  EXPECT_EQ(t.body["ticket_redacted"], false);
  const std::string session = t.body["session_id"];

  auto ws = openOk(tk);
  ASSERT_TRUE(ws);
  const std::string input(40'000, 'x');  // three data frames
  for (size_t off = 0; off < input.size(); off += gp::kMaxExecDataBytes) {
    const std::string part = input.substr(off, gp::kMaxExecDataBytes);
    ASSERT_TRUE(ws->write(encoded(gp::encode(gp::ExecData{gp::ExecFd::kStdin, part}, kStream))));
  }
  ASSERT_TRUE(ws->write(encoded(gp::encode(gp::ExecWindow{65536}, kStream))));
  ASSERT_TRUE(ws->write(encoded(gp::encode(gp::ExecResize{30, 90}, kStream))));
  ASSERT_TRUE(ws->write(encoded(gp::encode(gp::ExecSignal{10}, kStream))));
  ASSERT_TRUE(ws->write(encoded(gp::encode(gp::ExecClose{gp::ExecCloseKind::kStdinEof}, kStream))));
  Seen seen = drain(*ws);
  EXPECT_EQ(seen.stdout_bytes, input);
  ASSERT_TRUE(seen.exit);
  EXPECT_EQ(seen.exit->status(), 3);
  EXPECT_EQ(seen.close_code, http::kCloseNormal);

  {
    std::lock_guard lock(agent_->mu_);
    EXPECT_TRUE(agent_->open_matched);
    EXPECT_EQ(agent_->open.argv, (std::vector<std::string>{"sh", "-c", "cat"}));
    EXPECT_EQ(agent_->open.window, gp::kExecInitialWindow);
    EXPECT_EQ(agent_->stdin_seen, input);
    // Every client frame reached the agent, in order.
    const std::vector<gp::FrameType> want = {gp::FrameType::kExecData,   gp::FrameType::kExecData,
                                             gp::FrameType::kExecData,   gp::FrameType::kExecWindow,
                                             gp::FrameType::kExecResize, gp::FrameType::kExecSignal,
                                             gp::FrameType::kExecClose};
    EXPECT_EQ(agent_->types, want);
  }

  auto events = execEvents(1);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0]["type"], "exec.started");
  EXPECT_EQ(events[0]["aggregate_type"], "exec");
  EXPECT_EQ(events[0]["org_id"], org_);
  EXPECT_EQ(events[0]["payload"]["session_id"], session);
  EXPECT_EQ(events[0]["payload"]["argv0"], "sh");
  EXPECT_EQ(events[0]["payload"]["tty"], false);
  EXPECT_EQ(events[0]["payload"]["actor"], events[0]["actor"]);
  EXPECT_EQ(events[1]["type"], "exec.ended");
  EXPECT_EQ(events[1]["payload"]["outcome"], "exited");
  EXPECT_EQ(events[1]["payload"]["exit_code"], 3);
  EXPECT_EQ(events[1]["payload"]["instance_id"], inst_);

  // The ticket was single use; the table holds nothing of the command.
  auto again = open(tk);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), plfm::errc::kUnauthenticated) << again.error().toString();
  auto conn = connect();
  EXPECT_EQ(conn.exec("SELECT count(*) FROM exec_tickets")->text(0, 0), "0");
}

TEST_F(ExecApiTest, TicketsExpireAfter60SecondsAndMustBeGiven) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  auto missing = open("");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), plfm::errc::kUnauthenticated);
  auto forged = open("vxt_" + std::string(52, 'a'));
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().code(), plfm::errc::kUnauthenticated);

  auto t = ticket({{"argv", {"true"}}});
  ASSERT_EQ(t.status, 201) << t.raw;
  fake_.advance(std::chrono::seconds(61));
  auto late = open(t.body["ticket"].get<std::string>());
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code(), plfm::errc::kUnauthenticated) << late.error().toString();
  // A plain GET (no upgrade) is refused without consuming a ticket.
  auto t2 = ticket({{"argv", {"true"}}});
  ASSERT_EQ(t2.status, 201) << t2.raw;
  http::ClientRequest plain;
  plain.url = base_ + "/v1/exec";
  plain.headers.set("X-Plfm-Exec-Ticket", t2.body["ticket"].get<std::string>());
  auto r = http::request(plain);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 426);
  auto ws = openOk(t2.body["ticket"].get<std::string>());
  ASSERT_TRUE(ws);
  (void)ws->close();
  // Expired tickets are swept by the next POST.
  auto conn = connect();
  EXPECT_EQ(conn.exec("SELECT count(*) FROM exec_tickets")->text(0, 0), "0");
}

TEST_F(ExecApiTest, AnIdempotentReplayRedactsTheTicket) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  http::Headers h;
  h.set("Idempotency-Key", "exec-once");
  auto first =
      call("POST", "/v1/instances/" + inst_ + "/exec", R"({"argv":["true"]})", std::nullopt, h);
  ASSERT_EQ(first.status, 201) << first.raw;
  auto replay =
      call("POST", "/v1/instances/" + inst_ + "/exec", R"({"argv":["true"]})", std::nullopt, h);
  ASSERT_EQ(replay.status, 201) << replay.raw;
  EXPECT_EQ(replay.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(replay.body["ticket"], nullptr);
  EXPECT_EQ(replay.body["ticket_redacted"], true);
  EXPECT_EQ(replay.body["session_id"], first.body["session_id"]);
}

TEST_F(ExecApiTest, MembersMayExecAndOtherOrgsGet404) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  auto [stranger, stranger_token] = makeUser("stranger");
  auto r = ticket({{"argv", {"true"}}}, stranger_token);
  EXPECT_EQ(r.status, 404) << r.raw;
  EXPECT_EQ(r.body["error"]["code"], "not_found");
  // The same 404 as for an instance that does not exist.
  auto none = call("POST", "/v1/instances/inst_01jdq3v7k2m9x4c8r6t0w5y1zb/exec",
                   R"({"argv":["true"]})", stranger_token);
  EXPECT_EQ(none.status, 404) << none.raw;

  auto [member, member_token] = makeUser("member");
  auto add =
      callJson("POST", "/v1/orgs/" + org_ + "/members", {{"user_id", member}, {"role", "member"}});
  ASSERT_EQ(add.status, 201) << add.raw;
  auto ok = ticket({{"argv", {"true"}}}, member_token);
  EXPECT_EQ(ok.status, 201) << ok.raw;
  // Removed from the org before using it: the ticket opens nothing.
  ASSERT_EQ(call("DELETE", "/v1/orgs/" + org_ + "/members/" + member).status, 200);
  auto ws = openOk(ok.body["ticket"]);
  ASSERT_TRUE(ws);
  Seen seen = drain(*ws);
  EXPECT_EQ(seen.close_code, kCloseRefused);
  EXPECT_NE(seen.close_reason.find("no longer a member"), std::string::npos) << seen.close_reason;
  {
    std::lock_guard lock(agent_->mu_);
    EXPECT_FALSE(agent_->open_matched);  // the agent was never asked
  }
  // Node and edge credentials are not users.
  EXPECT_EQ(ticket({{"argv", {"true"}}}, node_token_).status, 403);
}

TEST_F(ExecApiTest, BadRequestsName400FieldsAndStoppedInstancesAre409) {
  // Allocated, not running yet.
  auto early = ticket({{"argv", {"true"}}});
  EXPECT_EQ(early.status, 409) << early.raw;
  EXPECT_NE(early.body["error"]["message"].get<std::string>().find("not running"),
            std::string::npos)
      << early.raw;
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  auto no_argv = ticket({{"tty", true}});
  EXPECT_EQ(no_argv.status, 400);
  EXPECT_EQ(no_argv.body["error"]["details"]["field"], "argv");
  auto rows = ticket({{"argv", {"sh"}}, {"rows", 10}});
  EXPECT_EQ(rows.status, 400);
  EXPECT_EQ(rows.body["error"]["details"]["field"], "rows");
  auto extra = ticket({{"argv", {"sh"}}, {"env", {"A=1"}}});
  EXPECT_EQ(extra.status, 400);
  EXPECT_EQ(call("POST", "/v1/instances/nope/exec", R"({"argv":["true"]})").status, 400);
}

TEST_F(ExecApiTest, AnAgentRefusalClosesTheClientWith4001) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  agent_->mode = FakeAgent::Mode::kRefuse;
  auto t = ticket({{"argv", {"true"}}});
  ASSERT_EQ(t.status, 201);
  auto ws = openOk(t.body["ticket"]);
  ASSERT_TRUE(ws);
  Seen seen = drain(*ws);
  EXPECT_EQ(seen.close_code, kCloseRefused);
  EXPECT_EQ(seen.close_reason, "the instance is booting");
  auto events = execEvents(1);
  ASSERT_EQ(events.size(), 1U);  // never started
  EXPECT_EQ(events[0]["payload"]["outcome"], "refused");
  EXPECT_EQ(events[0]["payload"]["exit_code"], nullptr);

  // An agent behind another certificate than its node reported: refused too.
  auto beat = callJson("POST", "/v1/nodes/" + node_ + "/heartbeat",
                       {{"agent_url", "https://" + agent_http_->endpoints()[0]},
                        {"agent_cert_sha256", std::string(64, 'f')}},
                       node_token_);
  ASSERT_EQ(beat.status, 200);
  agent_->mode = FakeAgent::Mode::kEcho;
  auto t2 = ticket({{"argv", {"true"}}});
  ASSERT_EQ(t2.status, 201);
  auto ws2 = openOk(t2.body["ticket"]);
  ASSERT_TRUE(ws2);
  Seen pinned = drain(*ws2);
  EXPECT_EQ(pinned.close_code, kCloseRefused);
  EXPECT_NE(pinned.close_reason.find("unreachable"), std::string::npos) << pinned.close_reason;
}

TEST_F(ExecApiTest, AnAgentThatLosesTheSessionClosesTheClientWith4000) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  agent_->mode = FakeAgent::Mode::kDrop;
  auto t = ticket({{"argv", {"sleep", "100"}}});
  ASSERT_EQ(t.status, 201);
  auto ws = openOk(t.body["ticket"]);
  ASSERT_TRUE(ws);
  Seen seen = drain(*ws);
  EXPECT_FALSE(seen.exit);
  EXPECT_EQ(seen.close_code, kCloseSessionLost);
  EXPECT_EQ(seen.close_reason, "the instance's VM exited");
  auto events = execEvents(1);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[1]["payload"]["outcome"], "lost");
  EXPECT_EQ(events[1]["payload"]["exit_code"], nullptr);
}

TEST_F(ExecApiTest, AClientThatGoesAwayAbortsTheSession) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  agent_->mode = FakeAgent::Mode::kHold;
  auto t = ticket({{"argv", {"sleep", "100"}}});
  ASSERT_EQ(t.status, 201);
  auto ws = openOk(t.body["ticket"]);
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->write(encoded(gp::encode(gp::ExecData{gp::ExecFd::kStdin, "hi"}, kStream))));
  ASSERT_TRUE(ws->close());
  EXPECT_TRUE(agent_->waitAborted());
  auto events = execEvents(1);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[1]["payload"]["outcome"], "aborted");
}

TEST_F(ExecApiTest, AClientBeyondItsStdinCreditOrSendingOpenIsClosed) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  agent_->mode = FakeAgent::Mode::kHold;  // grants no stdin credit back
  auto t = ticket({{"argv", {"cat"}}});
  ASSERT_EQ(t.status, 201);
  auto ws = openOk(t.body["ticket"]);
  ASSERT_TRUE(ws);
  const std::string chunk(gp::kMaxExecDataBytes, 'y');
  const std::string frame = encoded(gp::encode(gp::ExecData{gp::ExecFd::kStdin, chunk}, kStream));
  for (uint32_t sent = 0; sent <= gp::kExecInitialWindow; sent += gp::kMaxExecDataBytes) {
    if (!ws->write(frame)) break;
  }
  Seen seen = drain(*ws);
  EXPECT_EQ(seen.close_code, http::kClosePolicyViolation);
  EXPECT_TRUE(agent_->waitAborted());
  {
    std::lock_guard lock(agent_->mu_);
    EXPECT_EQ(agent_->stdin_seen.size(), gp::kExecInitialWindow);  // never more than the credit
  }

  auto t2 = ticket({{"argv", {"cat"}}});
  ASSERT_EQ(t2.status, 201);
  auto ws2 = openOk(t2.body["ticket"]);
  ASSERT_TRUE(ws2);
  ASSERT_TRUE(ws2->write(encoded(gp::encode(openOf({"rm", "-rf", "/"}), kStream))));
  Seen open_seen = drain(*ws2);
  EXPECT_EQ(open_seen.close_code, http::kCloseProtocolError);
  auto events = execEvents(2);
  EXPECT_EQ(events.back()["payload"]["outcome"], "aborted");
}

TEST_F(ExecApiTest, AnAgentBeyondItsOutputCreditIsCutAndTheClientGets4000) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  agent_->mode = FakeAgent::Mode::kFlood;
  auto t = ticket({{"argv", {"yes"}}});
  ASSERT_EQ(t.status, 201);
  auto ws = openOk(t.body["ticket"]);
  ASSERT_TRUE(ws);
  Seen seen = drain(*ws);                                       // grants no output credit
  EXPECT_EQ(seen.stdout_bytes.size(), gp::kExecInitialWindow);  // never more than the credit
  EXPECT_FALSE(seen.exit);
  EXPECT_EQ(seen.close_code, kCloseSessionLost);
  EXPECT_NE(seen.close_reason.find("credit"), std::string::npos) << seen.close_reason;
  auto events = execEvents(1);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[1]["payload"]["outcome"], "lost");
}

TEST_F(ExecApiTest, ATicketOpensOneSessionEvenWhenUsedConcurrently) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  auto t = ticket({{"argv", {"cat"}}});
  ASSERT_EQ(t.status, 201);
  const std::string tk = t.body["ticket"];
  constexpr int kClients = 8;
  std::vector<std::unique_ptr<http::WebSocket>> opened(kClients);
  std::vector<std::thread> clients;
  clients.reserve(kClients);
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      auto ws = open(tk);
      if (ws) opened[static_cast<size_t>(i)] = std::move(*ws);
    });
  }
  for (auto& c : clients) c.join();
  int sessions = 0;
  for (auto& ws : opened) {
    if (!ws) continue;
    ++sessions;
    ASSERT_TRUE(
        ws->write(encoded(gp::encode(gp::ExecClose{gp::ExecCloseKind::kStdinEof}, kStream))));
    Seen seen = drain(*ws);
    ASSERT_TRUE(seen.exit);
    EXPECT_EQ(seen.exit->status(), 3);
  }
  EXPECT_EQ(sessions, 1);
}

TEST_F(ExecApiTest, AnOrgHoldsAtMostItsCapOfSessionsAndKeepsItsTicketWhenRefused) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  agent_->mode = FakeAgent::Mode::kHold;
  std::vector<std::unique_ptr<http::WebSocket>> held;
  for (int i = 0; i < 2; ++i) {
    auto t = ticket({{"argv", {"sleep", "100"}}});
    ASSERT_EQ(t.status, 201);
    held.push_back(openOk(t.body["ticket"]));
    ASSERT_TRUE(held.back());
  }
  auto t = ticket({{"argv", {"sleep", "100"}}});
  ASSERT_EQ(t.status, 201);
  const std::string third = t.body["ticket"];
  auto refused = open(third);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().detail("status"), "429") << refused.error().toString();
  EXPECT_NE(std::string(refused.error().detail("body")).find("too_many_exec_sessions"),
            std::string::npos);
  // One session ends: its slot comes back, and the refused ticket still works.
  ASSERT_TRUE(held[0]->close());
  EXPECT_TRUE(agent_->waitAborted());
  std::unique_ptr<http::WebSocket> ws;
  for (int i = 0; i < 100 && !ws; ++i) {
    auto again = open(third);
    if (again) {
      ws = std::move(*again);
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  EXPECT_TRUE(ws);
}

// Nothing but argv[0] of a command, and nothing of its streams, reaches
// the event log; the ticket itself is nowhere in the database.
TEST_F(ExecApiTest, NoArgvBeyondArgv0NorStreamContentReachesTheEvents) {
  ASSERT_NO_FATAL_FAILURE(reportRunning());
  auto t = ticket({{"argv", {"psql", "postgres://u:CANARY-ARG@db/x"}},
                   {"tty", true},
                   {"rows", 40},
                   {"cols", 100},
                   {"user", "CANARY-USER"},
                   {"workdir", "/CANARY-DIR"}});
  ASSERT_EQ(t.status, 201) << t.raw;
  const std::string tk = t.body["ticket"];
  auto ws = openOk(tk);
  ASSERT_TRUE(ws);
  ASSERT_TRUE(
      ws->write(encoded(gp::encode(gp::ExecData{gp::ExecFd::kStdin, "CANARY-STDIN\n"}, kStream))));
  ASSERT_TRUE(ws->write(encoded(gp::encode(gp::ExecClose{gp::ExecCloseKind::kStdinEof}, kStream))));
  Seen seen = drain(*ws);
  EXPECT_EQ(seen.stdout_bytes, "CANARY-STDIN\n");
  {
    std::lock_guard lock(agent_->mu_);
    EXPECT_EQ(agent_->open.user, "CANARY-USER");
    EXPECT_TRUE(agent_->open.tty);
    EXPECT_EQ(agent_->open.rows, 40);
  }
  auto events = execEvents(1);
  ASSERT_EQ(events.size(), 2U);
  EXPECT_EQ(events[0]["payload"]["argv0"], "psql");
  EXPECT_EQ(events[0]["payload"]["tty"], true);
  auto conn = connect();
  auto rs = conn.exec(
      "SELECT count(*) FROM events WHERE payload::text LIKE '%CANARY%' OR "
      "correlation::text LIKE '%CANARY%'");
  EXPECT_EQ(rs->text(0, 0), "0");
  const std::string tk_body = tk.substr(4);
  auto anywhere = conn.exec(
      "SELECT (SELECT count(*) FROM events WHERE payload::text LIKE $1) + (SELECT count(*) FROM "
      "idempotency_keys WHERE response_body LIKE $1) + (SELECT count(*) FROM exec_tickets)",
      {"%" + tk_body + "%"});
  EXPECT_EQ(anywhere->text(0, 0), "0");
  // The control plane's own log has neither the ticket nor the arguments.
  auto log = readFile(state_->file("control-plane.log"));
  ASSERT_TRUE(log);
  EXPECT_EQ(log->find("CANARY"), std::string::npos);
  EXPECT_EQ(log->find(tk_body), std::string::npos);
}

}  // namespace
}  // namespace plfm::cp
