// `vt dev` end to end, the core loop of issue 10 through the real vt binary:
// `vt dev up` brings up the whole local platform (PostgreSQL, control plane,
// registry, node agent with real QEMU microVMs, ingress) in a temp state dir
// on free ports; examples/hello is built, pushed and deployed; curl reaches
// it through the ingress over IPv6 and IPv4 (and a PROXY v2 route hands it
// the client's address); a secret, scale to 2, a rolling deploy under a
// client loop, a rollback, a killed VMM, a down/up restart; no secret value
// in any log; and `vt dev down` leaves nothing behind. The binary runs in a
// private network namespace (unshared before any thread starts), so taps and
// listeners never touch the host's network.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>
#include <vector>

#include "dev_process.h"
#include "netns_environment.h"
#include "plfm/core/process.h"
#include "plfm/http/http.h"
#include "plfm/testing/failure_summary.h"
#include "plfm/testing/leak_scan.h"
#include "plfm/testing/temp_dir.h"
#include "vt_dev_driver.h"

namespace plfm {
namespace {

// The CI log keeps only the tail: say again what failed, last.
const void* const kFailureSummary = plfm::testing::installFailureSummary();

// The node agent's guest network filter (docs/specs/networking/node-firewall.md).
bool agentFilterInstalled() {
  return std::system("nft list table inet plfm_agent >/dev/null 2>&1") == 0;
}

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const auto* const kEnv = e2e::addPrivateNetworkEnvironment("vt dev e2e");

using e2e::VtRun;

class VtDev : public ::testing::Test, public e2e::VtDevDriver {
 protected:
  void TearDown() override {
    // Whatever happened, stop the platform (a no-op after a clean down).
    (void)vt({"dev", "down", "--state-dir", state_->path()}, 120s);
  }

  // A control-plane call with the admin token; it must succeed.
  json api(const std::string& method, const std::string& path, const json& body = nullptr) {
    const ApiAnswer a = VtDevDriver::api(method, path, body);
    EXPECT_GT(a.status, 0) << method << " " << path;
    EXPECT_LT(a.status, 300) << method << " " << path << ": " << a.body.dump();
    return a.body;
  }
};

// The value of "key: value" in hello's answer, or "".
std::string line(const std::string& answer, const std::string& key) {
  const auto at = answer.find(key + ": ");
  if (at == std::string::npos) return "";
  const auto start = at + key.size() + 2;
  return answer.substr(start, answer.find('\n', start) - start);
}

int64_t lastSeq(const std::string& tail_json_lines) {
  int64_t seq = 0;
  size_t start = 0;
  while (start < tail_json_lines.size()) {
    size_t end = tail_json_lines.find('\n', start);
    if (end == std::string::npos) end = tail_json_lines.size();
    json e = json::parse(tail_json_lines.substr(start, end - start), nullptr, false);
    if (e.is_object()) seq = std::max<int64_t>(seq, e.value("seq", int64_t{0}));
    start = end + 1;
  }
  return seq;
}

// Clients that keep using hello through the ingress while deploys roll:
// short requests over IPv6 and over IPv4 (one every 50 ms each), and 10 s
// downloads (GET /stream/10) over each, back to back. Every request must be
// answered in full.
class ClientLoad {
 public:
  struct Counts {
    int ok = 0, failed = 0, ok6 = 0, failed6 = 0, ok4 = 0, failed4 = 0;
    int streams_ok = 0, streams_broken = 0;
    std::vector<std::string> errors;  // the first few, for the log
  };

  explicit ClientLoad(int port) : port_(std::to_string(port)) {}
  ~ClientLoad() { (void)stop(); }

  void start() {
    for (const std::string ip : {"[::1]", "127.0.0.1"}) {
      threads_.emplace_back([this, ip] { loop(ip, "/", 5); });
      threads_.emplace_back([this, ip] { loop(ip, "/stream/10", 30); });
    }
  }

  Counts stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
    std::lock_guard lock(mu_);
    return counts_;
  }

 private:
  void loop(const std::string& ip, const std::string& path, int max_time) {
    const bool stream = path != "/";
    const std::string name = (ip == "[::1]" ? "v6" : "v4") + std::string(stream ? "-stream" : "");
    const std::string out = dir_.file(name + ".out");
    const std::string err = dir_.file(name + ".err");
    while (!stop_) {
      SpawnOptions so;
      so.stdout_path = out;
      so.stderr_path = err;
      std::error_code ec;
      std::filesystem::remove(out, ec);
      auto r = runChecked(
          {"curl", "-sS", "-k", "--max-time", std::to_string(max_time), "--resolve",
           "hello.localhost:" + port_ + ":" + ip, "https://hello.localhost:" + port_ + path},
          so);
      const std::string body = readFile(out).value_or("");
      const bool good = r && (stream ? body.size() == 1000 && body.ends_with("tick 0099\n")
                                     : body.find("instance: inst_") != std::string::npos);
      std::lock_guard lock(mu_);
      if (stream) {
        good ? ++counts_.streams_ok : ++counts_.streams_broken;
      } else {
        good ? ++counts_.ok : ++counts_.failed;
        if (ip == "[::1]") {
          good ? ++counts_.ok6 : ++counts_.failed6;
        } else {
          good ? ++counts_.ok4 : ++counts_.failed4;
        }
      }
      if (!good && counts_.errors.size() < 10) {
        counts_.errors.push_back(name + ": " + std::to_string(body.size()) + " bytes; " +
                                 readFile(err).value_or("").substr(0, 200));
      }
      if (!stream) std::this_thread::sleep_for(50ms);
    }
  }

  std::string port_;
  plfm::testing::TempDir dir_{"vdload"};
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  Counts counts_;
  std::vector<std::thread> threads_;
};

// A step that fails stops `up` with the step's name and its log, exit 3;
// `down` then stops what did start.
TEST_F(VtDev, FailingStepNamesItselfAndItsLog) {
  VtRun up = vt(upArgs(), 120s, {"PLFM_CONTROL_PLANE_BIN=/bin/false"});
  EXPECT_EQ(up.code, 3);
  EXPECT_NE(up.err.find("step control-plane failed"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find(state_->file("logs/control-plane.log")), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("postgres         started"), std::string::npos) << up.err;
  VtRun down = vt({"dev", "down", "--state-dir", state_->path()}, 60s);
  EXPECT_EQ(down.code, 0) << down.err;
  EXPECT_TRUE(vt::dev::processesMentioning(state_->path()).empty());
  EXPECT_TRUE(vt::dev::socketsUnder(state_->path()).empty());
}

TEST_F(VtDev, CoreLoop) {
  phase("vt dev up");
  VtRun up = vt(upArgs(), 240s);
  ASSERT_EQ(up.code, 0) << up.err;
  for (const char* c : {"postgres", "control-plane", "registry", "node-agent", "ingress"}) {
    EXPECT_NE(up.err.find(c), std::string::npos) << c;
  }
  VtRun st = vt({"dev", "status", "--state-dir", state_->path(), "--format", "json"});
  ASSERT_EQ(st.code, 0) << st.err;
  json s = json::parse(st.out, nullptr, false);
  ASSERT_TRUE(s.is_object()) << st.out;
  ASSERT_EQ(s["components"].size(), 5U);
  for (const auto& c : s["components"]) {
    EXPECT_EQ(c["health"], "healthy") << c.dump();
    EXPECT_TRUE(c["pid"].is_number()) << c.dump();
  }
  // Idempotent: a second up finds everything running.
  VtRun again = vt(upArgs(), 120s);
  ASSERT_EQ(again.code, 0) << again.err;
  size_t already = 0;
  for (size_t p = again.err.find("already running"); p != std::string::npos;
       p = again.err.find("already running", p + 1)) {
    ++already;
  }
  EXPECT_EQ(already, 5U) << again.err;
  // The context works right away: the node is there.
  VtRun nodes = vt({"nodes", "list", "--format", "json"});
  ASSERT_EQ(nodes.code, 0) << nodes.err;
  EXPECT_NE(nodes.out.find("\"active\""), std::string::npos) << nodes.out;

  phase("build, push and deploy examples/hello");
  const std::string ref = pushHello();
  ASSERT_NE(ref.find("@sha256:"), std::string::npos) << ref;
  const std::string manifest = std::string(PLFM_SOURCE_DIR) + "/examples/hello/vt.toml";
  VtRun deploy = vt({"deploy", "--manifest", manifest, "--image", ref, "--timeout", "4m"}, 300s);
  ASSERT_EQ(deploy.code, 0) << deploy.err;
  const std::string port = std::to_string(ingressPort());
  ASSERT_EQ(vt({"routes", "add", "hello.localhost", "--app", "hello", "--port", "8443",
                "--listener-port", port})
                .code,
            0);
  ASSERT_EQ(vt({"routes", "add", "hello-pp.localhost", "--app", "hello", "--port", "8443",
                "--listener-port", port, "--proxy-protocol", "v2"})
                .code,
            0);

  phase("curl through the ingress: IPv6, IPv4, PROXY v2");
  const std::string v6 = waitFor("hello.localhost", "::1", "instance: inst_", 60s);
  EXPECT_NE(v6.find("sni: hello.localhost"), std::string::npos) << "IPv6: " << v6;
  const std::string v4 = waitFor("hello.localhost", "127.0.0.1", "instance: inst_", 30s);
  EXPECT_NE(v4.find("instance: inst_"), std::string::npos) << "IPv4: " << v4;
  const std::string release1 = line(v6, "release");
  EXPECT_EQ(release1.rfind("rel_", 0), 0U) << v6;
  std::printf("IPv6 answer:\n%sIPv4 answer:\n%s", v6.c_str(), v4.c_str());
  const std::string pp4 = waitFor("hello-pp.localhost", "127.0.0.1", "proxy: v2", 30s);
  EXPECT_EQ(line(pp4, "client").rfind("127.0.0.1:", 0), 0U) << "PROXY v2 over IPv4: " << pp4;
  const std::string pp6 = waitFor("hello-pp.localhost", "::1", "proxy: v2", 30s);
  EXPECT_EQ(line(pp6, "client").rfind("[::1]:", 0), 0U) << "PROXY v2 over IPv6: " << pp6;

  phase("a secret (its value is a canary that no log may contain)");
  testing::LeakScanner scan;
  const std::string canary = scan.addCanary("HELLO_TOKEN");
  json env = json::parse(vt({"envs", "get", "prod", "--app", "hello", "--format", "json"}).out,
                         nullptr, false);
  ASSERT_TRUE(env.is_object() && env.contains("id"));
  const std::string env_id = env["id"];
  api("POST", "/v1/envs/" + env_id + "/secrets/set", {{"values", {{"HELLO_TOKEN", canary}}}});
  const std::string with_secret = waitFor("hello.localhost", "::1", "secrets: present", 180s);
  EXPECT_NE(with_secret.find("secrets: present"), std::string::npos) << with_secret;

  phase("scale to 2: both instances answer");
  ASSERT_EQ(vt({"scale", "set", "web=2", "--app", "hello"}).code, 0);
  std::set<std::string> seen;
  for (auto deadline = Clock::now() + 120s; seen.size() < 2 && Clock::now() < deadline;) {
    std::string id = line(curl("hello.localhost", "::1"), "instance");
    if (!id.empty()) seen.insert(id);
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(seen.size(), 2U) << "distinct instances answering after scale to 2";
  json list = json::parse(vt({"instances", "list", "--app", "hello", "--format", "json"}).out,
                          nullptr, false);
  std::set<std::string> listed;
  for (const auto& i : list.value("items", json::array())) listed.insert(i.value("id", ""));
  for (const auto& id : seen) EXPECT_TRUE(listed.contains(id)) << id << " is not listed";

  phase("10 rolling deploys and 2 rollbacks under client load: IPv6 and IPv4, short and 10 s");
  // The bound is zero (issue 16): a drained instance stops only after every
  // ingress stopped sending it connections and its open ones closed.
  std::string text = readFile(manifest).value_or("");
  const std::string greeting = "Hello from plfm-vt";
  ASSERT_NE(text.find(greeting), std::string::npos);
  constexpr int kDeploys = 10;
  ClientLoad load(ingressPort());
  load.start();
  std::string expected_greeting = greeting;
  std::vector<std::string> greetings = {greeting};  // of each release deployed, in order
  for (int k = 2; k <= kDeploys + 1; ++k) {
    std::string t = text;
    const std::string g = "Hello from release " + std::to_string(k);
    t.replace(t.find(greeting), greeting.size(), g);
    // Both instances roll at once (so the drains overlap and the suite stays
    // fast), except every third deploy, which rolls one by one.
    if (k % 3 != 0) t.replace(t.find("max_surge = 1"), 13, "max_surge = 2");
    ASSERT_TRUE(writeFileAtomic(io_->file("vt-next.toml"), t));
    VtRun d = vt({"deploy", "--manifest", io_->file("vt-next.toml"), "--image", ref, "--timeout",
                  "4m", "--app", "hello"},
                 300s);
    ASSERT_EQ(d.code, 0) << d.err;
    greetings.push_back(g);
    if (k == 6 || k == kDeploys + 1) {
      // vt rollback: the release before the current one, under the same drain rules.
      VtRun rb = vt({"rollback", "--app", "hello"}, 300s);
      ASSERT_EQ(rb.code, 0) << rb.err;
      greetings.push_back(greetings[greetings.size() - 2]);
    }
  }
  expected_greeting = greetings.back();
  const ClientLoad::Counts counts = load.stop();
  std::printf(
      "under %d rolling deploys and 2 rollbacks: %d short requests answered, %d failed "
      "(IPv6 %d/%d, IPv4 %d/%d); %d downloads of 10 s complete, %d broken\n",
      kDeploys, counts.ok, counts.failed, counts.ok6, counts.failed6, counts.ok4, counts.failed4,
      counts.streams_ok, counts.streams_broken);
  for (const auto& e : counts.errors) std::printf("  %s\n", e.c_str());
  EXPECT_EQ(counts.failed, 0);
  EXPECT_EQ(counts.streams_broken, 0);
  EXPECT_GT(counts.ok4, 0);
  EXPECT_GT(counts.ok6, 0);
  EXPECT_GT(counts.streams_ok, 0);
  const std::string back =
      waitFor("hello.localhost", "::1", "greeting: " + expected_greeting + "\n", 60s);
  EXPECT_NE(back.find("greeting: " + expected_greeting + "\n"), std::string::npos) << back;

  phase("a release that never becomes healthy: failed at its progress deadline, auto-rolled back");
  {
    // Its check asks a port nothing listens on; the deadline is the
    // shortest the manifest allows, so the suite stays fast.
    std::string t = text;
    t.replace(t.find(greeting), greeting.size(), "Hello from a broken release");
    t.replace(t.find("port = 8080"), 11, "port = 8081");
    t.replace(t.find("max_unavailable = 0"), 19,
              "max_unavailable = 0\nprogress_deadline = \"10s\"");
    ASSERT_TRUE(writeFileAtomic(io_->file("vt-broken.toml"), t));
    ClientLoad during(ingressPort());
    during.start();
    VtRun broken = vt({"deploy", "--manifest", io_->file("vt-broken.toml"), "--image", ref,
                       "--timeout", "4m", "--app", "hello"},
                      300s);
    const ClientLoad::Counts c = during.stop();
    EXPECT_EQ(broken.code, 6) << broken.err;
    EXPECT_NE((broken.out + broken.err).find("no progress for 10 s (progress_deadline)"),
              std::string::npos);
    EXPECT_NE((broken.out + broken.err).find("auto-rollback"), std::string::npos);
    std::printf(
        "during the failed deploy: %d requests answered, %d failed; %d downloads, %d broken\n",
        c.ok, c.failed, c.streams_ok, c.streams_broken);
    for (const auto& e : c.errors) std::printf("  %s\n", e.c_str());
    EXPECT_EQ(c.failed, 0);
    EXPECT_EQ(c.streams_broken, 0);
    const std::string still = curl("hello.localhost", "::1");
    EXPECT_NE(still.find("greeting: " + expected_greeting + "\n"), std::string::npos) << still;
  }

  phase("kill one instance's VMM: reported and replaced");
  const int64_t before = lastSeq(vt({"events", "tail", "-n", "1", "--format", "json"}).out);
  json insts = agentInstances();
  pid_t vmm = -1;
  std::string killed;
  for (const auto& i : insts) {
    if (i.value("phase", "") == "running" && i.value("vmm_pid", -1) > 0) {
      vmm = i["vmm_pid"];
      killed = i.value("instance_id", "");
      break;
    }
  }
  ASSERT_GT(vmm, 0) << insts.dump();
  ASSERT_EQ(::kill(vmm, SIGKILL), 0);
  // The agent notices, reports, and the instance runs again under a new VMM.
  bool recovered = false;
  for (auto deadline = Clock::now() + 120s; !recovered && Clock::now() < deadline;) {
    for (const auto& i : agentInstances()) {
      recovered =
          recovered || (i.value("instance_id", "") == killed && i.value("phase", "") == "running" &&
                        i.value("vmm_pid", -1) > 0 && i.value("vmm_pid", -1) != vmm);
    }
    if (!recovered) std::this_thread::sleep_for(500ms);
  }
  recovered = recovered &&
              !line(waitFor("hello.localhost", "::1", "instance: inst_", 30s), "instance").empty();
  EXPECT_TRUE(recovered) << agentInstances().dump();
  VtRun events = vt({"events", "tail", "-n", "60", "--format", "json"});
  std::vector<std::string> story;
  for (size_t start = 0; start < events.out.size();) {
    size_t end = events.out.find('\n', start);
    if (end == std::string::npos) end = events.out.size();
    json e = json::parse(events.out.substr(start, end - start), nullptr, false);
    if (e.is_object() && e.value("seq", int64_t{0}) > before &&
        e.value("aggregate_id", "") == killed) {
      story.push_back(e.value("event_type", "") + " " + e["payload"].dump());
    }
    start = end + 1;
  }
  std::printf("events of %s after its VMM was killed:\n", killed.c_str());
  for (const auto& l : story) std::printf("  %s\n", l.c_str());
  EXPECT_FALSE(story.empty()) << "vt events tail shows nothing for " << killed;

  phase("restart: vt dev down, vt dev up on the same state dir");
  ASSERT_EQ(vt({"dev", "down", "--state-dir", state_->path()}, 180s).code, 0);
  EXPECT_TRUE(vt::dev::processesMentioning(state_->path() + "/node-agent").empty());
  EXPECT_TRUE(vt::dev::vtTaps().empty());
  EXPECT_FALSE(agentFilterInstalled()) << "vt dev down left the agent's nftables table";
  VtRun up2 = vt(upArgs(), 240s);
  ASSERT_EQ(up2.code, 0) << up2.err;
  const std::string after = waitFor("hello.localhost", "::1", "instance: inst_", 180s);
  EXPECT_NE(after.find("greeting: " + expected_greeting + "\n"), std::string::npos)
      << "after restart: " << after;
  VtRun releases = vt({"releases", "list", "--app", "hello", "--format", "json"});
  EXPECT_NE(releases.out.find(release1), std::string::npos);
  VtRun routes = vt({"routes", "list", "--app", "hello", "--format", "json"});
  EXPECT_NE(routes.out.find("hello-pp.localhost"), std::string::npos);
  VtRun logs = vt({"dev", "logs", "control-plane", "--state-dir", state_->path(), "-n", "5"});
  EXPECT_EQ(logs.code, 0);
  EXPECT_FALSE(logs.out.empty());

  phase("the agent crashes (SIGKILL) with two VMs running; vt dev down still cleans up");
  {
    std::string pidfile = readFile(state_->file("run/node-agent.pid")).value_or("");
    const auto agent = static_cast<pid_t>(std::atoi(pidfile.c_str()));
    ASSERT_GT(agent, 0);
    ASSERT_EQ(::kill(agent, SIGKILL), 0);
    for (int i = 0; i < 100 && vt::dev::isRunning(agent); ++i) std::this_thread::sleep_for(50ms);
    EXPECT_FALSE(vt::dev::processesMentioning(state_->path() + "/node-agent").empty())
        << "the VMMs outlive their agent (to be adopted)";
    EXPECT_TRUE(agentFilterInstalled()) << "the guests stay filtered without their agent";
  }

  phase("vt dev down: nothing left; no secret value in any log");
  VtRun down = vt({"dev", "down", "--state-dir", state_->path()}, 180s);
  ASSERT_EQ(down.code, 0) << down.err;
  EXPECT_TRUE(vt::dev::processesMentioning(state_->path()).empty());
  EXPECT_TRUE(vt::dev::vtTaps().empty());
  EXPECT_TRUE(vt::dev::socketsUnder(state_->path()).empty());
  EXPECT_TRUE(vt::dev::mountsUnder(state_->path()).empty());
  st = vt({"dev", "status", "--state-dir", state_->path(), "--format", "json"});
  EXPECT_NE(st.code, 0);
  scan.scanDir(state_->file("logs"));
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(state_->file("node-agent"), ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_regular_file() && it->path().extension() == ".log") scan.scanFile(it->path());
  }
  EXPECT_GT(scan.scanned(), 5);
  scan.expectClean();
  std::printf("vt dev e2e wall time: %.1fs\n", elapsed());
}

}  // namespace
}  // namespace plfm
