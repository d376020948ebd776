// `vt exec`'s agent side end to end (docs/specs/runtime/exec-sessions.md,
// "Agent endpoint"): the real agent boots one real microVM (QEMU; KVM or TCG)
// from the e2e image (busybox for sh and coreutils), and a real WebSocket
// client, signed with the relay key the agent has pinned, runs commands in
// it: exit codes, signals, a missing program, stdin EOF, 64 MiB through
// `cat` within the credit windows, 20 sessions at once, and a VMM killed
// under a live session. One VM for all of it: boots cost seconds under TCG.
#include <gtest/gtest.h>

#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "agent/agent.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"
#include "plfm/guest_proto/guest_proto.h"
#include "plfm/http/websocket.h"
#include "plfm/relay_auth/relay_auth.h"
#include "plfm/testing/failure_summary.h"
#include "plfm/testing/temp_dir.h"
#include "runtime/qemu_runtime.h"
#include "support/agent_world.h"

namespace plfm::agent {
namespace {

const void* const kFailureSummary = plfm::testing::installFailureSummary();

namespace gp = guest_proto;
using nlohmann::json;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr const char* kNode = "node_exece2e";
constexpr const char* kId = "inst_0exec000000000000000000001";

testing::AgentWorld* g_world = nullptr;

class E2eEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto netns = testing::enterPrivateNetns();
    ASSERT_TRUE(netns) << netns.error().toString();
    auto world = testing::makeAgentWorld(PLFM_SOURCE_DIR, PLFM_VT_INIT_BIN, PLFM_TEST_WORKLOAD_BIN);
    ASSERT_TRUE(world) << world.error().toString();
    g_world = world->release();
  }
  void TearDown() override {
    delete g_world;
    g_world = nullptr;
  }
};

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new E2eEnvironment);

relay::SigningKey relayKey() {
  auto k = relay::SigningKey::fromSeed(std::string(32, 'r'));
  EXPECT_TRUE(k);
  return std::move(*k);
}

std::string frameOf(const gp::Result<std::string>& f) {
  EXPECT_TRUE(f) << (f ? "" : f.error().toString());
  return f.value_or("");
}

struct ExecResult {
  std::optional<gp::ExecExit> exit;
  std::string out;  // the first MiB
  std::string err;
  std::string out_sha256;
  uint64_t out_bytes = 0;
  std::string close_code;
  std::string close_reason;
};

// The control plane's side of one session, as the relay will speak it: one
// frame per message, stream 0x0100, and both credit windows honoured.
class ExecClient {
 public:
  ExecClient(std::unique_ptr<http::WebSocket> ws, uint32_t window)
      : ws_(std::move(ws)), window_(window) {
    reader_ = std::thread([this] { readLoop(); });
  }
  ~ExecClient() {
    if (reader_.joinable()) {
      (void)ws_->close(http::kCloseNormal);
      reader_.join();
    }
  }

  // Sends `data` as stdin, waiting for credit as needed.
  bool writeStdin(std::string_view data) {
    while (!data.empty()) {
      const size_t n = std::min(data.size(), gp::kMaxExecDataBytes);
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [&] { return done_ || stdin_credit_ >= n; });
        if (done_) return false;
        stdin_credit_ -= n;
      }
      gp::ExecData d{gp::ExecFd::kStdin, std::string(data.substr(0, n))};
      if (!ws_->write(frameOf(gp::encode(d, gp::kFirstExecStream)))) return false;
      data.remove_prefix(n);
    }
    return true;
  }
  bool send(const gp::Result<std::string>& frame) { return bool(ws_->write(frameOf(frame))); }
  bool closeStdin() {
    return send(gp::encode(gp::ExecClose{gp::ExecCloseKind::kStdinEof}, gp::kFirstExecStream));
  }
  bool signal(int n) { return send(gp::encode(gp::ExecSignal{n}, gp::kFirstExecStream)); }
  // Waits until the output reached `bytes` (a command is running).
  bool waitOutput(uint64_t bytes, std::chrono::seconds timeout = 30s) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return done_ || result_.out_bytes >= bytes; }) &&
           result_.out_bytes >= bytes;
  }
  ExecResult wait(std::chrono::seconds timeout = 60s) {
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait_for(lock, timeout, [&] { return done_; })) {
        ADD_FAILURE() << "the session did not end within " << timeout.count() << " s";
        lock.unlock();
        (void)ws_->close(http::kCloseNormal);
      }
    }
    reader_.join();
    std::lock_guard lock(mu_);
    result_.out_sha256 = sha_.hexDigest();
    return result_;
  }

 private:
  void readLoop() {
    uint64_t unacked = 0;
    while (true) {
      auto msg = ws_->read();
      if (!msg) {
        std::lock_guard lock(mu_);
        result_.close_code = msg.error().detail("close_code");
        result_.close_reason = msg.error().detail("close_reason");
        done_ = true;
        cv_.notify_all();
        return;
      }
      gp::Decoder d;
      d.feed(*msg);
      auto f = d.next();
      if (!f || !*f || d.buffered() != 0 || (*f)->stream != gp::kFirstExecStream) {
        ADD_FAILURE() << "not one exec frame on stream 0x0100";
        continue;
      }
      std::lock_guard lock(mu_);
      switch ((*f)->type) {
        case gp::FrameType::kExecData: {
          auto data = gp::decodeExecData((*f)->payload);
          ASSERT_TRUE(data);
          if (data->fd == gp::ExecFd::kStderr) {
            result_.err += data->data;
          } else {
            if (result_.out.size() < (1u << 20)) result_.out += data->data;
            sha_.update(data->data);
            result_.out_bytes += data->data.size();
          }
          // The agent must hold to the window it was given.
          out_credit_used_ += data->data.size();
          EXPECT_LE(out_credit_used_, window_) << "output beyond the credit granted";
          unacked += data->data.size();
          if (unacked >= window_ / 2) {
            out_credit_used_ -= unacked;
            (void)ws_->write(frameOf(
                gp::encode(gp::ExecWindow{static_cast<uint32_t>(unacked)}, gp::kFirstExecStream)));
            unacked = 0;
          }
          break;
        }
        case gp::FrameType::kExecWindow:
          stdin_credit_ += gp::decodeExecWindow((*f)->payload).value().increment;
          break;
        case gp::FrameType::kExecExit:
          EXPECT_FALSE(result_.exit) << "a second EXIT";
          result_.exit = gp::decodeExecExit((*f)->payload).value();
          break;
        default:
          ADD_FAILURE() << "unexpected " << gp::frameTypeName((*f)->type);
      }
      cv_.notify_all();
    }
  }

  std::unique_ptr<http::WebSocket> ws_;
  const uint64_t window_;
  std::thread reader_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  uint64_t stdin_credit_ = gp::kExecInitialWindow;
  uint64_t out_credit_used_ = 0;
  ExecResult result_;
  Sha256 sha_;
};

class ExecE2e : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    state_ = new plfm::testing::TempDir("exe");
    // Plan-file mode with an identity: the node id and the relay key the
    // listener accepts (as a control plane would have pinned it).
    json cred = {{"control_plane", "http://[::1]:1"},
                 {"node_id", kNode},
                 {"token", "unused"},
                 {"relay_public_key", relayKey().publicKey().text()}};
    ASSERT_TRUE(writeFileAtomic(state_->file("node.json"), cred.dump(), 0600));
    json spec = testing::workloadSpec(*g_world, kId, "org_0exec000000000000000000001", {"sleep"},
                                      "fd7a:5c00:0:2::4", 256);
    writePlan(json::array({spec}));
    startAgent();
  }
  static void TearDownTestSuite() {
    if (agent_) {
      // The agent leaves VMs running when it stops (to be adopted): remove
      // the instance first.
      writePlan(json::array());
      const auto deadline = Steady::now() + 30s;
      while (!agent_->instances().empty() && Steady::now() < deadline) {
        std::this_thread::sleep_for(100ms);
      }
      EXPECT_TRUE(agent_->instances().empty()) << "the instance was not removed";
      agent_->stop();
    }
    delete agent_;
    agent_ = nullptr;
    delete state_;
    state_ = nullptr;
  }
  static void writePlan(const json& instances) {
    json plan = {{"node_id", kNode}, {"version", ++version_}, {"instances", instances}};
    ASSERT_TRUE(writeFileAtomic(state_->file("plan.json"), plan.dump()));
  }
  // Starts an agent (adopting a running VM when there is one) and waits
  // until the instance takes exec sessions.
  static void startAgent() {
    AgentOptions opts;
    opts.state_dir = state_->path();
    opts.plan_file = state_->file("plan.json");
    opts.kernel = g_world->kernel;
    opts.initramfs = g_world->initramfs;
    opts.image_cache_dir = g_world->dir->file("images");
    opts.scratch_mb = 64;
    opts.shutdown_grace_ms = 2000;
    opts.stop_instances_on_exit = false;
    opts.listen = "[::1]:0";
    runtime::QemuOptions q;
    // PLFM_E2E_ACCEL=tcg measures the test where there is no KVM.
    const char* accel = std::getenv("PLFM_E2E_ACCEL");
    q.accel = accel != nullptr ? accel : "auto";
    q.probe_dir = g_world->dir->path();
    agent_ = new Agent(opts, std::make_unique<runtime::QemuRuntime>(q));
    ASSERT_TRUE(agent_->start());
    const auto deadline = Steady::now() + 90s;
    while (Steady::now() < deadline) {
      auto t = agent_->execTarget(kId);
      if (t && t->phase == Phase::kRunning && t->mux && t->mux->attached()) return;
      ASSERT_FALSE(t && isTerminal(t->phase)) << "the instance ended before it ran";
      std::this_thread::sleep_for(100ms);
    }
    std::string why;
    for (const auto& s : agent_->instances()) {
      why += std::string(phaseName(s.phase)) + " " + s.reason;
    }
    FAIL() << "the instance never became ready for exec: " << (why.empty() ? "refused" : why);
  }

  static std::unique_ptr<ExecClient> exec(const gp::ExecOpen& open, const std::string& id = kId) {
    const std::string frame = frameOf(gp::encode(open, gp::kFirstExecStream));
    const std::string payload = frame.substr(gp::kHeaderBytes);
    const std::string target = "/v1/instances/" + id + "/exec?open=" + Sha256::hex(payload);
    const int64_t expires = std::chrono::duration_cast<std::chrono::seconds>(
                                std::chrono::system_clock::now().time_since_epoch())
                                .count() +
                            30;
    http::Headers h;
    h.set(std::string(relay::kExpiresHeader), std::to_string(expires));
    h.set(std::string(relay::kSignatureHeader),
          relayKey().sign({"GET", target, kNode, id, expires}));
    auto ws =
        http::connectWebSocket({.url = "ws://" + agent_->endpoints().at(0) + target, .headers = h});
    EXPECT_TRUE(ws) << ws.error().toString();
    if (!ws) return nullptr;
    EXPECT_TRUE((*ws)->write(frame));
    return std::make_unique<ExecClient>(std::move(*ws), open.window);
  }
  static gp::ExecOpen cmd(std::vector<std::string> argv) {
    gp::ExecOpen open;
    open.argv = std::move(argv);
    return open;
  }
  static ExecResult run(std::vector<std::string> argv) {
    auto c = exec(cmd(std::move(argv)));
    if (!c) return {};
    return c->wait();
  }

  static plfm::testing::TempDir* state_;
  static Agent* agent_;
  static int64_t version_;
};

plfm::testing::TempDir* ExecE2e::state_ = nullptr;
Agent* ExecE2e::agent_ = nullptr;
int64_t ExecE2e::version_ = 0;

TEST_F(ExecE2e, ExitCodesArriveExactlyAndTheSessionClosesNormally) {
  const std::vector<std::pair<std::vector<std::string>, int>> cases = {
      {{"true"}, 0},
      {{"false"}, 1},
      {{"sh", "-c", "exit 42"}, 42},
      {{"sh", "-c", "exit 254"}, 254},
  };
  for (const auto& [argv, code] : cases) {
    auto r = run(argv);
    ASSERT_TRUE(r.exit) << argv.back() << ": closed " << r.close_code << " " << r.close_reason;
    EXPECT_EQ(r.exit->kind, gp::ExecExitKind::kExited) << argv.back();
    EXPECT_EQ(r.exit->status(), code) << argv.back();
    EXPECT_EQ(r.close_code, "1000");
  }
  auto out = run({"sh", "-c", "echo out; echo err >&2; id -u; pwd"});
  ASSERT_TRUE(out.exit);
  EXPECT_EQ(out.out, "out\n1000\n/\n");  // the workload's user and workdir
  EXPECT_EQ(out.err, "err\n");
}

// Exec health checks (exec-sessions.md §Exec health checks): the command
// runs in the guest; a failing one makes the instance unhealthy with its last
// line of output in the reason, a passing one healthy again, and one that
// hangs is killed in the guest at its timeout.
TEST_F(ExecE2e, ExecHealthChecksRunInTheGuestWithTheirVerdictAndReason) {
  constexpr const char* kCheckId = "inst_0exec000000000000000000002";
  const json check = {
      {"type", "exec"},
      {"command",
       {"sh", "-c",
        "test -e /tmp/hang && sleep 100; test -e /tmp/ok || { echo not ready yet; exit 3; }"}},
      {"interval_ms", 1000},
      {"timeout_ms", 1000},
      {"failure_threshold", 1}};
  json main_spec = testing::workloadSpec(*g_world, kId, "org_0exec000000000000000000001", {"sleep"},
                                         "fd7a:5c00:0:2::4", 256);
  json check_spec = testing::workloadSpec(*g_world, kCheckId, "org_0exec000000000000000000001",
                                          {"sleep"}, "fd7a:5c00:0:2::5", 128, json::array({check}));
  writePlan(json::array({main_spec, check_spec}));
  auto statusOf = [&]() -> std::optional<InstanceStatus> {
    for (const auto& s : agent_->instances()) {
      if (s.instance_id == kCheckId) return s;
    }
    return std::nullopt;
  };
  auto waitFor = [&](const std::string& phase, const std::string& reason_part) {
    const auto deadline = Steady::now() + 90s;
    std::optional<InstanceStatus> s;
    while (Steady::now() < deadline) {
      s = statusOf();
      if (s && s->last_reported == phase &&
          s->last_reported_reason.find(reason_part) != std::string::npos) {
        return true;
      }
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "no " << phase << " with '" << reason_part
                  << "'; last: " << (s ? s->last_reported + " " + s->reason : "none");
    return false;
  };
  // Failing: unhealthy, and the reason says how and what it printed.
  ASSERT_TRUE(waitFor("unhealthy", "exited with code 3; last output: not ready yet"));
  // Passing once the file exists (made through an exec session).
  {
    auto c = exec(cmd({"sh", "-c", ": > /tmp/ok"}), kCheckId);
    ASSERT_TRUE(c);
    auto r = c->wait();
    ASSERT_TRUE(r.exit) << r.close_code << " " << r.close_reason;
    ASSERT_EQ(r.exit->status(), 0) << r.err;
  }
  ASSERT_TRUE(waitFor("healthy", ""));
  // Hanging: the guest kills it at its 1 s timeout, and the agent says so.
  {
    auto c = exec(cmd({"sh", "-c", ": > /tmp/hang"}), kCheckId);
    ASSERT_TRUE(c);
    auto r = c->wait();
    ASSERT_TRUE(r.exit && r.exit->status() == 0);
  }
  ASSERT_TRUE(waitFor("unhealthy", "timed out after 1000 ms"));
  writePlan(json::array({main_spec}));
  const auto deadline = Steady::now() + 30s;
  while (statusOf() && Steady::now() < deadline) std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(statusOf()) << "the check instance was not removed";
}

TEST_F(ExecE2e, SignalsEndTheCommandAsSignaled) {
  for (const auto& [sig, status] :
       std::vector<std::pair<int, int>>{{15, 143}, {9, 137}, {2, 130}}) {
    auto c = exec(cmd({"sh", "-c", "echo up; exec sleep 600"}));
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->waitOutput(3)) << "the command never started";
    ASSERT_TRUE(c->signal(sig));
    auto r = c->wait(20s);
    ASSERT_TRUE(r.exit) << "signal " << sig << ": closed " << r.close_code;
    EXPECT_EQ(r.exit->kind, gp::ExecExitKind::kSignaled);
    EXPECT_EQ(r.exit->status(), status);
  }
}

TEST_F(ExecE2e, AMissingProgramIsNotStarted127) {
  auto r = run({"no-such-program"});
  ASSERT_TRUE(r.exit);
  EXPECT_EQ(r.exit->kind, gp::ExecExitKind::kNotStarted);
  EXPECT_EQ(r.exit->status(), 127);
  EXPECT_FALSE(r.exit->message.empty());
}

TEST_F(ExecE2e, StdinEofEndsCat) {
  auto c = exec(cmd({"cat"}));
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->writeStdin("hello\nworld\n"));
  ASSERT_TRUE(c->closeStdin());
  auto r = c->wait();
  ASSERT_TRUE(r.exit);
  EXPECT_EQ(r.exit->status(), 0);
  EXPECT_EQ(r.out, "hello\nworld\n");
}

TEST_F(ExecE2e, SixtyFourMibOfBinaryRoundTripThroughCat) {
  std::string data(size_t{64} << 20, '\0');
  std::mt19937_64 rng(17);
  for (size_t i = 0; i + 8 <= data.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(data.data() + i, &v, 8);
  }
  const std::string want = Sha256::hex(data);
  auto c = exec(cmd({"cat"}));
  ASSERT_TRUE(c);
  const auto t0 = Steady::now();
  ASSERT_TRUE(c->writeStdin(data));
  ASSERT_TRUE(c->closeStdin());
  auto r = c->wait(120s);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - t0);
  ASSERT_TRUE(r.exit) << r.close_code << " " << r.close_reason;
  EXPECT_EQ(r.exit->status(), 0);
  EXPECT_EQ(r.out_bytes, data.size());
  EXPECT_EQ(r.out_sha256, want);
  std::printf("64 MiB through cat: %lld ms\n", static_cast<long long>(ms.count()));
}

TEST_F(ExecE2e, TwentySessionsAtOnce) {
  constexpr int kSessions = 20;
  std::vector<std::unique_ptr<ExecClient>> clients;
  std::vector<std::string> inputs;
  clients.reserve(kSessions);
  inputs.reserve(kSessions);
  for (int i = 0; i < kSessions; ++i) {
    auto c = exec(cmd({"sh", "-c", "cat; exit " + std::to_string(i)}));
    ASSERT_TRUE(c);
    clients.push_back(std::move(c));
    inputs.emplace_back(100'000 + i, static_cast<char>('a' + i));
  }
  std::vector<std::thread> writers;
  writers.reserve(kSessions);
  for (int i = 0; i < kSessions; ++i) {
    writers.emplace_back([&, i] {
      EXPECT_TRUE(clients[i]->writeStdin(inputs[i]));
      EXPECT_TRUE(clients[i]->closeStdin());
    });
  }
  for (auto& w : writers) w.join();
  for (int i = 0; i < kSessions; ++i) {
    auto r = clients[i]->wait();
    ASSERT_TRUE(r.exit) << i << ": " << r.close_code << " " << r.close_reason;
    EXPECT_EQ(r.exit->status(), i);
    EXPECT_EQ(r.out_sha256, Sha256::hex(inputs[i])) << i;
  }
  auto t = agent_->execTarget(kId);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->mux->sessions(), 0u) << "every stream is free after its EXIT";
}

TEST_F(ExecE2e, AStoppingAgentEndsSessionsWith4000AndItsSuccessorAdoptsTheVmAndServesExec) {
  auto c = exec(cmd({"sh", "-c", "echo up; exec sleep 600"}));
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->waitOutput(3));
  agent_->stop();  // the VM keeps running
  auto r = c->wait(10s);
  EXPECT_FALSE(r.exit);
  EXPECT_EQ(r.close_code, "4000");
  EXPECT_EQ(r.close_reason, "the node agent is stopping");
  delete agent_;
  agent_ = nullptr;
  // The record kept the guest's exec_revision: the adopted VM serves exec.
  startAgent();
  ASSERT_TRUE(agent_);
  auto again = run({"sh", "-c", "exit 7"});
  ASSERT_TRUE(again.exit) << again.close_code << " " << again.close_reason;
  EXPECT_EQ(again.exit->status(), 7);
}

// Last: the VM goes away.
TEST_F(ExecE2e, KillingTheVmmEndsTheSessionWith4000Within3s) {
  auto c = exec(cmd({"sh", "-c", "echo up; exec sleep 600"}));
  ASSERT_TRUE(c);
  ASSERT_TRUE(c->waitOutput(3));
  pid_t vmm = -1;
  for (const auto& s : agent_->instances()) {
    if (s.instance_id == kId) vmm = s.vmm_pid;
  }
  ASSERT_GT(vmm, 0);
  const auto t0 = Steady::now();
  ASSERT_EQ(::kill(vmm, SIGKILL), 0);
  auto r = c->wait(10s);
  const auto took = Steady::now() - t0;
  EXPECT_FALSE(r.exit);
  EXPECT_EQ(r.close_code, "4000");
  // Whichever the worker notices first: the channel's end or the process's.
  EXPECT_TRUE(r.close_reason == "the instance's VM exited" ||
              r.close_reason == "the host channel closed")
      << r.close_reason;
  EXPECT_LT(took, 3s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms";
}

}  // namespace
}  // namespace plfm::agent
