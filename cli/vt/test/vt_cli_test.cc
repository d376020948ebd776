// End-to-end tests of the real `vt` binary against a real control plane on
// a real PostgreSQL: one scripted session whose every command's table and
// JSON output is a golden transcript, the idempotent retry through a proxy
// that drops a response, and bad input.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "plfm/core/id.h"
#include "plfm/core/sha256.h"
#include "plfm/core/strings.h"
#include "plfm/testing/pg_cluster.h"
#include "vt_harness.h"

namespace plfm::vt {
namespace {

using plfm::testing::TempDir;
using testing::runVt;
using testing::VtResult;

const std::string kTestData = std::string(PLFM_TEST_DIR) + "/test/testdata";

class VtCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { startServer(state_, cp_, conninfo_); }
  static void TearDownTestSuite() {
    delete cp_;
    delete state_;
  }
  // A control plane on a fresh database.
  static void startServer(TempDir*& state, testing::ControlPlaneProcess*& cp,
                          std::string& conninfo) {
    auto cluster = plfm::testing::PgCluster::shared();
    ASSERT_TRUE(cluster) << cluster.error().toString();
    auto db = (*cluster)->createDatabase();
    ASSERT_TRUE(db) << db.error().toString();
    state = new TempDir("vt-cp");
    conninfo = (*cluster)->conninfo(*db);
    cp = new testing::ControlPlaneProcess(testing::startControlPlane(conninfo, *state));
  }

  static TempDir* state_;
  static testing::ControlPlaneProcess* cp_;
  static inline std::string conninfo_;
};

TempDir* VtCliTest::state_ = nullptr;
testing::ControlPlaneProcess* VtCliTest::cp_ = nullptr;

// The placeholders every transcript uses.
testing::Normalizer normalizer(const std::string& url, const TempDir& config) {
  testing::Normalizer norm;
  norm.literal(url, "<url>");
  norm.literal(config.path(), "<config>");
  norm.literal(kTestData, "<testdata>");
  return norm;
}

// Records commands and their output as a transcript.
class Session {
 public:
  Session(std::string config_dir, testing::Normalizer& norm)
      : config_dir_(std::move(config_dir)), norm_(norm) {}

  VtResult run(const std::vector<std::string>& args, const std::string& stdin_text = "",
               const std::vector<std::string>& env = {}) {
    VtResult r = runVt(args, config_dir_, env, stdin_text);
    std::string cmd = "vt";
    for (const auto& a : args) cmd += " " + a;
    transcript_ += "$ " + norm_.apply(cmd) + "\n";
    if (!r.out.empty()) transcript_ += norm_.apply(r.out);
    if (!r.err.empty()) {
      for (const auto& line : splitErr(norm_.apply(r.err))) transcript_ += "stderr| " + line + "\n";
    }
    transcript_ += "[exit " + std::to_string(r.code) + "]\n\n";
    return r;
  }
  // A watched deploy: the live status blocks on stderr depend on when vt
  // polled, so they are left out; the transcript keeps the other stderr
  // lines and the last status line, which is deterministic.
  VtResult runWatched(const std::vector<std::string>& args) {
    VtResult r = runVt(args, config_dir_);
    std::string cmd = "vt";
    for (const auto& a : args) cmd += " " + a;
    transcript_ += "$ " + norm_.apply(cmd) + "\n";
    std::string out = r.out;
    // The JSON receipt's instance snapshot may or may not still hold the old
    // release's draining copy (the agent stops it within ~100 ms of the drain,
    // vt polls every 500 ms): keep the instances that run.
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (j.is_object() && j.contains("result") && j["result"].contains("instances")) {
      auto& items = j["result"]["instances"]["items"];
      nlohmann::json kept = nlohmann::json::array();
      for (const auto& i : items) {
        if (i.value("desired_state", "") == "run") kept.push_back(i);
      }
      items = kept;
      out = j.dump(2) + "\n";
    }
    if (!out.empty()) transcript_ += norm_.apply(out);
    std::string last_status;
    for (const auto& line : splitErr(r.err)) {
      if (line.rfind("deploy dep_", 0) == 0) {
        last_status = line;
      } else if (line.rfind("  ", 0) != 0) {
        transcript_ += "stderr| " + norm_.apply(line) + "\n";
      }
    }
    transcript_ += "stderr| (last status) " + norm_.apply(last_status) + "\n";
    transcript_ += "[exit " + std::to_string(r.code) + "]\n\n";
    return r;
  }
  void note(const std::string& text) { transcript_ += "# " + norm_.apply(text) + "\n\n"; }
  [[nodiscard]] const std::string& transcript() const { return transcript_; }

 private:
  static std::vector<std::string> splitErr(const std::string& s) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < s.size()) {
      size_t end = s.find('\n', start);
      if (end == std::string::npos) end = s.size();
      lines.push_back(s.substr(start, end - start));
      start = end + 1;
    }
    return lines;
  }

  std::string config_dir_;
  testing::Normalizer& norm_;
  std::string transcript_;
};

TEST_F(VtCliTest, ScriptedSessionMatchesGoldenTranscript) {
  TempDir config("vt-config");
  testing::Normalizer norm = normalizer(cp_->url, config);
  Session s(config.path(), norm);
  const std::string manifest = kTestData + "/hello/vt.toml";

  EXPECT_EQ(s.run({"login", "--url", cp_->url}, cp_->admin_token + "\n").code, 0);
  EXPECT_EQ(s.run({"whoami", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"whoami", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "create", "acme", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "create", "beta", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "list", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "get", "acme", "--format", "table"}).code, 0);
  // Two orgs and no default: commands that need one say so.
  EXPECT_EQ(s.run({"apps", "list", "--format", "table"}).code, 1);
  EXPECT_EQ(s.run({"context", "use", "--org", "acme", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"context", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"context", "list", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"context", "show", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"context", "show", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"apps", "create", "zeta", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"apps", "create", "alpha", "--description", "first", "--format", "json"}).code,
            0);
  EXPECT_EQ(s.run({"apps", "create", "alpha", "--format", "table"}).code, 4);
  EXPECT_EQ(s.run({"apps", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"apps", "list", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"apps", "get", "alpha", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"envs", "create", "staging", "--app", "alpha", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"envs", "list", "--app", "alpha", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"envs", "get", "staging", "--app", "alpha", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"manifest", "validate", manifest, "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"manifest", "validate", manifest, "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"deploy", "--manifest", manifest, "--detach", "--format", "table"}).code, 0);
  VtResult second = s.run({"deploy", "--manifest", manifest, "--detach", "--format", "json"});
  EXPECT_EQ(second.code, 0);
  const std::string dep = nlohmann::json::parse(second.out)["result"]["deploy"]["id"];
  EXPECT_EQ(s.run({"releases", "list", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"releases", "list", "--app", "hello", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"deploys", "get", dep, "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"deploys", "get", dep, "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"deploys", "list", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"deploys", "list", "--app", "hello", "--format", "json"}).code, 0);
  EXPECT_EQ(
      s.run({"scale", "set", "web=3", "worker=1", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"scale", "show", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"scale", "show", "--app", "hello", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"instances", "list", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"instances", "list", "--app", "hello", "--format", "json"}).code, 0);
  // Neither deploy has succeeded yet (no scheduler in this test).
  EXPECT_EQ(s.run({"rollback", "--app", "hello", "--format", "table"}).code, 4);
  EXPECT_EQ(s.run({"nodes", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"nodes", "list", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"events", "tail", "-n", "5", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"events", "tail", "-n", "2", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"envs", "delete", "staging", "--app", "alpha", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"apps", "delete", "zeta", "--format", "json", "-q"}).code, 0);
  EXPECT_EQ(s.run({"apps", "list", "-q"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "delete", "acme", "--format", "table"}).code, 4);  // has apps
  EXPECT_EQ(s.run({"orgs", "delete", "beta", "--format", "table"}).code, 0);
  PLFM_EXPECT_GOLDEN("golden/session.txt", s.transcript());
}

// Plays a node agent: every instance its plan wants running is reported
// healthy, and every one it wants drained or stopped is reported stopped,
// once per generation, until the agent is destroyed.
class HealthyAgent {
 public:
  HealthyAgent(std::string url, std::string node, std::string token)
      : url_(std::move(url)), node_(std::move(node)), token_(std::move(token)) {
    thread_ = std::thread([this] { loop(); });
  }
  ~HealthyAgent() {
    stop_ = true;
    thread_.join();
  }
  HealthyAgent(const HealthyAgent&) = delete;
  HealthyAgent& operator=(const HealthyAgent&) = delete;
  [[nodiscard]] int reported() const { return reported_; }
  // Waits (bounded) until the node's plan holds only instances that run:
  // every drain and stop has been reported stopped.
  bool settle() const {
    for (int i = 0; i < 200; ++i) {
      auto plan = testing::nodePlan(url_, node_, token_);
      bool settled = plan.contains("instances");
      for (const auto& spec : plan.value("instances", nlohmann::json::array())) {
        settled = settled && spec.value("desired", "") == "run";
      }
      if (settled) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

 private:
  void loop() {
    std::set<std::string> done;
    for (int round = 0; !stop_; ++round) {
      // Every second: the control plane's heartbeat timeout is 30 s.
      if (round % 10 == 0) testing::nodeHeartbeat(url_, node_, token_);
      nlohmann::json plan = testing::nodePlan(url_, node_, token_);
      for (const auto& spec : plan.value("instances", nlohmann::json::array())) {
        const std::string id = spec.value("instance_id", "");
        const int generation = spec.value("generation", 1);
        const bool run = spec.value("desired", "") == "run";
        const std::string key =
            id + "/" + std::to_string(generation) + (run ? "/healthy" : "/stopped");
        if (done.contains(key)) continue;
        nlohmann::json report = {{"generation", generation},
                                 {"seq", run ? 1 : 2},
                                 {"phase", run ? "healthy" : "stopped"}};
        if (testing::reportInstance(url_, node_, token_, id, report) == 200) {
          done.insert(key);
          ++reported_;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  std::string url_, node_, token_;
  std::atomic<bool> stop_{false};
  std::atomic<int> reported_{0};
  std::thread thread_;
};

// The core loop against a real scheduler: a node enrolls, a watched deploy
// reaches succeeded while the "agent" reports its instances healthy, a
// second deploy pins an --image override, and a rollback brings the first
// release back. Also the second format of the commands the first session
// shows in only one.
// Its own control plane: instances of the other tests' apps would land on
// its node and change the addresses in its transcript.
class VtSchedulerTest : public VtCliTest {
 protected:
  static void SetUpTestSuite() { startServer(state_, cp_, conninfo_); }
  static void TearDownTestSuite() {
    delete cp_;
    delete state_;
  }
  static inline TempDir* state_ = nullptr;
  static inline testing::ControlPlaneProcess* cp_ = nullptr;
  static inline std::string conninfo_;
};

TEST_F(VtSchedulerTest, WatchedDeployRollbackAndSecondFormatsMatchGoldenTranscript) {
  TempDir config("vt-config");
  testing::Normalizer norm = normalizer(cp_->url, config);
  Session s(config.path(), norm);
  const std::string manifest = kTestData + "/hello/vt.toml";

  EXPECT_EQ(s.run({"login", "--url", cp_->url, "--format", "table"}, cp_->admin_token + "\n").code,
            0);
  EXPECT_EQ(s.run({"orgs", "create", "delta", "-q"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "get", "delta", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"context", "use", "--org", "delta", "--format", "json"}).code, 0);

  // A node, enrolled by an "agent" with the token vt printed.
  VtResult enroll = runVt({"nodes", "enroll", "-q"}, config.path());
  ASSERT_EQ(enroll.code, 0) << enroll.err;
  auto node = testing::enrollAgent(cp_->url, std::string(trim(enroll.out)), "w1.example");
  ASSERT_TRUE(node.contains("node_id")) << node.dump();
  s.note("agent enrolled " + node["node_id"].get<std::string>());
  HealthyAgent agent(cp_->url, node["node_id"], node["token"]);

  EXPECT_EQ(s.runWatched({"deploy", "--manifest", manifest, "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"instances", "list", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"instances", "list", "--app", "hello", "--format", "json"}).code, 0);
  const std::string other =
      "127.0.0.1:5000/"
      "hello@sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
  EXPECT_EQ(
      s.runWatched({"deploy", "--manifest", manifest, "--image", other, "--format", "json"}).code,
      0);
  EXPECT_EQ(
      s.runWatched({"rollback", "--app", "hello", "--timeout", "30s", "--format", "table"}).code,
      0);
  EXPECT_EQ(s.run({"deploys", "list", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_TRUE(agent.settle());
  EXPECT_EQ(s.run({"instances", "list", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"scale", "set", "web=2", "--app", "hello", "--format", "json"}).code, 0);
  EXPECT_GE(agent.reported(), 3);

  // The second format of the resource commands.
  EXPECT_EQ(s.run({"apps", "create", "side", "-q"}).code, 0);
  EXPECT_EQ(s.run({"apps", "get", "side", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"envs", "create", "staging", "--app", "side", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"envs", "list", "--app", "side", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"envs", "get", "staging", "--app", "side", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"envs", "delete", "staging", "--app", "side", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"apps", "delete", "side", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "create", "epsilon", "-q"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "delete", "epsilon", "--format", "json"}).code, 0);
  PLFM_EXPECT_GOLDEN("golden/deploy_watch.txt", s.transcript());
}

// `vt events tail --follow` streams: the tail first, then each new event as
// it is appended, until it is stopped.
TEST_F(VtCliTest, EventsTailFollowStreamsNewEvents) {
  TempDir config("vt-config");
  ASSERT_EQ(runVt({"login", "--url", cp_->url}, config.path(), {}, cp_->admin_token + "\n").code,
            0);
  ASSERT_EQ(runVt({"orgs", "create", "follow"}, config.path()).code, 0);
  ASSERT_EQ(runVt({"context", "use", "--org", "follow"}, config.path()).code, 0);
  ASSERT_EQ(runVt({"apps", "create", "first"}, config.path()).code, 0);
  TempDir io("vt-follow");
  auto proc = testing::startVt({"events", "tail", "--follow", "-n", "2", "--format", "json"},
                               config.path(), io.file("out"), io.file("err"));
  ASSERT_TRUE(proc) << proc.error().toString();
  auto lines = [&] {
    std::vector<nlohmann::json> out;
    std::string text = readFile(io.file("out")).value_or("");
    for (size_t start = 0, end; (end = text.find('\n', start)) != std::string::npos;
         start = end + 1) {
      out.push_back(nlohmann::json::parse(text.substr(start, end - start), nullptr, false));
    }
    return out;
  };
  auto waitForLines = [&](size_t n) {
    for (int i = 0; i < 200 && lines().size() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return lines();
  };
  auto first = waitForLines(2);
  ASSERT_EQ(first.size(), 2U) << readFile(io.file("err")).value_or("");
  EXPECT_EQ(first[1]["event_type"], "app.created");
  EXPECT_FALSE(proc->poll().has_value()) << "--follow must keep running";
  // New events arrive while it waits on the long-poll.
  ASSERT_EQ(runVt({"apps", "create", "second"}, config.path()).code, 0);
  ASSERT_EQ(runVt({"apps", "delete", "second"}, config.path()).code, 0);
  auto all = waitForLines(4);
  ASSERT_EQ(all.size(), 4U) << readFile(io.file("err")).value_or("");
  EXPECT_EQ(all[2]["event_type"], "app.created");
  EXPECT_EQ(all[3]["event_type"], "app.deleted");
  EXPECT_GT(all[3]["seq"].get<int64_t>(), all[2]["seq"].get<int64_t>());
  EXPECT_GT(all[2]["seq"].get<int64_t>(), all[1]["seq"].get<int64_t>());
  EXPECT_FALSE(proc->poll().has_value());
  proc->signal(SIGTERM);
  EXPECT_TRUE(proc->waitFor(std::chrono::seconds(10)).has_value());
  EXPECT_EQ(readFile(io.file("err")).value_or(""), "");
}

// An expired token is refused like any bad credential, with one line that
// says to log in again. The API has no way to mint a short-lived user
// token, so the test writes one straight into api_tokens.
TEST_F(VtCliTest, ExpiredTokenGetsOneLineAndExitFive) {
  auto conn = pg::Connection::connect(conninfo_);
  ASSERT_TRUE(conn) << conn.error().toString();
  const std::string token = "vt_" + std::string(52, 'e');
  auto ins = conn->exec(
      "INSERT INTO api_tokens (token_id, token_hash, kind, subject_id, description, created_at, "
      "expires_at) SELECT $1, $2, 'user', user_id, 'test token', now(), now() + interval '1 hour' "
      "FROM users WHERE name = 'admin'",
      {TokenId::generate().str(), Sha256::hex(token)});
  ASSERT_TRUE(ins) << ins.error().toString();
  TempDir config("vt-config");
  const std::vector<std::string> env = {"VT_URL=" + cp_->url, "VT_TOKEN=" + token};
  VtResult live = runVt({"whoami", "--format", "json"}, config.path(), env);
  EXPECT_EQ(live.code, 0) << live.err;
  ASSERT_TRUE(
      conn->exec("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE "
                 "token_hash = $1",
                 {Sha256::hex(token)}));
  VtResult expired = runVt({"whoami", "--format", "json"}, config.path(), env);
  EXPECT_EQ(expired.code, 5);
  EXPECT_EQ(expired.out, "");
  EXPECT_EQ(expired.err,
            "error: missing or invalid bearer token; log in again (vt login)\n"
            "hint: run `vt login --url URL` (a token comes from your platform admin)\n");
  EXPECT_EQ(expired.err.find("terminate"), std::string::npos);
}

TEST_F(VtCliTest, BadInputGetsOneClearLineAndTheRightExitCode) {
  TempDir config("vt-config");
  testing::Normalizer norm = normalizer(cp_->url, config);
  Session s(config.path(), norm);
  EXPECT_EQ(s.run({"aps", "list"}).code, 2);
  EXPECT_EQ(s.run({"apps", "lst"}).code, 2);
  EXPECT_EQ(s.run({"apps", "list", "--fromat", "json"}).code, 2);
  EXPECT_EQ(s.run({"apps", "create"}).code, 2);
  EXPECT_EQ(s.run({"apps", "list", "--format", "yaml"}).code, 2);
  EXPECT_EQ(s.run({"apps"}).code, 2);
  EXPECT_EQ(s.run({"apps", "list"}).code, 5);  // no context
  EXPECT_EQ(s.run({"apps", "list", "--context", "nope"}).code, 1);
  EXPECT_EQ(s.run({"login", "--url", cp_->url},
                  "vt_wrongwrongwrongwrongwrongwrongwrongwrongwrongwrongwrong\n")
                .code,
            5);
  EXPECT_EQ(s.run({"whoami"}, "", {"VT_URL=" + cp_->url, "VT_TOKEN=vt_expired"}).code, 5);
  EXPECT_EQ(s.run({"whoami"}, "", {"VT_URL=http://[::1]:1", "VT_TOKEN=vt_x"}).code, 3);
  EXPECT_EQ(s.run({"manifest", "validate", kTestData + "/bad.toml"}).code, 1);
  EXPECT_EQ(s.run({"manifest", "validate", kTestData + "/missing.toml"}).code, 1);
  EXPECT_EQ(s.run({"scale", "set", "web"}, "", {"VT_URL=" + cp_->url, "VT_TOKEN=vt_x"}).code, 2);
  EXPECT_EQ(s.run({"completion", "fish"}).code, 2);
  PLFM_EXPECT_GOLDEN("golden/bad_input.txt", s.transcript());
  EXPECT_EQ(s.transcript().find("terminate called"), std::string::npos);
}

// A TCP proxy in front of the control plane that forwards everything but
// swallows the response to the first POST whose path contains `match`,
// closing the client connection instead: the request took effect, the
// client never heard.
class DroppingProxy {
 public:
  DroppingProxy(int upstream_port, std::string match) : match_(std::move(match)) {
    listen_fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      std::abort();
    }
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin6_port);
    upstream_port_ = upstream_port;
    thread_ = std::thread([this] { loop(); });
  }
  ~DroppingProxy() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
  }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int matched() const { return matched_; }

 private:
  void loop() {
    while (!stop_) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      handle(c);
      ::close(c);
    }
  }
  // One request per connection (vt opens a connection per request).
  void handle(int c) {
    std::string req;
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
      auto head_end = req.find("\r\n\r\n");
      if (head_end == std::string::npos) continue;
      size_t body_len = 0;
      auto cl = req.find("Content-Length: ");
      if (cl == std::string::npos) cl = req.find("content-length: ");
      if (cl != std::string::npos && cl < head_end) body_len = std::stoul(req.substr(cl + 16));
      if (req.size() >= head_end + 4 + body_len) break;
    }
    int u = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    a.sin6_port = htons(static_cast<uint16_t>(upstream_port_));
    if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(u);
      return;
    }
    // Ask the upstream to close after its response, so we can read to EOF.
    std::string forward = req;
    auto line_end = forward.find("\r\n");
    forward.insert(line_end + 2, "Connection: close\r\n");
    ::send(u, forward.data(), forward.size(), MSG_NOSIGNAL);
    std::string resp;
    for (;;) {
      ssize_t n = ::recv(u, buf, sizeof buf, 0);
      if (n <= 0) break;
      resp.append(buf, static_cast<size_t>(n));
    }
    ::close(u);
    bool drop =
        req.rfind("POST ", 0) == 0 && req.find(match_) < req.find("\r\n") && matched_++ == 0;
    if (!drop) ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
  }

  std::string match_;
  int listen_fd_ = -1;
  int port_ = 0;
  int upstream_port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> matched_{0};
  std::thread thread_;
};

TEST_F(VtCliTest, RetriedDeployAfterALostResponseCreatesOneDeploy) {
  TempDir config("vt-config");
  auto port = std::stoi(cp_->url.substr(cp_->url.rfind(':') + 1));
  DroppingProxy proxy(port, "/deploys");
  std::string proxied = "http://[::1]:" + std::to_string(proxy.port());
  ASSERT_EQ(runVt({"login", "--url", cp_->url}, config.path(), {}, cp_->admin_token + "\n").code,
            0);
  ASSERT_EQ(runVt({"orgs", "create", "retry"}, config.path()).code, 0);
  ASSERT_EQ(runVt({"context", "use", "--org", "retry"}, config.path()).code, 0);
  VtResult r =
      runVt({"deploy", "--manifest", kTestData + "/hello/vt.toml", "--detach", "--format", "json"},
            config.path(), {"VT_URL=" + proxied});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("retrying POST"), std::string::npos) << r.err;
  EXPECT_EQ(proxy.matched(), 2);  // the lost attempt and the retry
  VtResult list = runVt({"deploys", "list", "--app", "hello", "--format", "json"}, config.path());
  ASSERT_EQ(list.code, 0) << list.err;
  auto j = nlohmann::json::parse(list.out);
  ASSERT_EQ(j["items"].size(), 1U) << list.out;
  auto receipt = nlohmann::json::parse(r.out);
  EXPECT_EQ(receipt["result"]["deploy"]["id"], j["items"][0]["id"]);
}

TEST_F(VtCliTest, HelpIsFast) {
  TempDir config("vt-config");
  VtResult r = runVt({"--help"}, config.path());
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("Start here"), std::string::npos);
}

}  // namespace
}  // namespace plfm::vt
