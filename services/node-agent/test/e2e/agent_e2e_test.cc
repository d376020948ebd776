// End-to-end tests of the node agent with real microVMs: QEMU microvm (TCG
// here), Debian's cloud kernel from scripts/fetch-kernel, the real vt-init in
// the real initramfs, a real registry, and a static workload in an OCI image.
// Each boot costs about 2 s under TCG, so the tests are few and each checks a
// lot.
//
// The binary runs in a private network namespace (unshared before any thread
// starts), so taps, routes and the connections to guests never touch the
// host's network and nothing can leak past the test.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "agent/agent.h"
#include "image/image_ref.h"
#include "netdev/tap.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/testing/failure_summary.h"
#include "plfm/testing/leak_scan.h"
#include "plfm/testing/pg_cluster.h"
#include "plfm/testing/temp_dir.h"
#include "runtime/qemu_runtime.h"
#include "support/agent_options.h"
#include "support/agent_world.h"
#include "support/test_image.h"

namespace plfm::agent {
namespace {

// The CI log keeps only the tail: say again what failed, last.
const void* const kFailureSummary = plfm::testing::installFailureSummary();

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

std::string runOut(const std::string& cmd) { return testing::shellOutput(cmd); }

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

int g_next = 0;

// A WorkloadSpec as the control plane would send it.
json workloadSpec(const std::string& id, const std::vector<std::string>& args,
                  const std::string& address, int memory_mb = 128, json checks = json::array()) {
  json spec = testing::workloadSpec(*g_world, id, "org_0e2e0000000000000000000000", args, address,
                                    memory_mb, std::move(checks));
  spec["env"] = {{"MODE", "e2e"}};
  return spec;
}

std::string newId() {
  char buf[40];
  std::snprintf(buf, sizeof buf, "inst_0e2e%022d", ++g_next);
  return buf;
}

class AgentE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = std::make_unique<plfm::testing::TempDir>("ag");
    opts_ = testing::planFileAgentOptions(*g_world, state_->path());
    writePlan(json::array());
  }
  void TearDown() override {
    if (agent_) agent_->stop();
    agent_.reset();
    // Nothing may survive: no VMM mentioning our state dir, no tap.
    EXPECT_EQ(runOut("pgrep -f -- '[q]emu-system.*" + state_->path() + "' | wc -l"), "0\n");
    EXPECT_EQ(runOut("ip -o link show | grep -c ' vt-' || true"), "0\n");
  }
  void writePlan(const json& instances) {
    json plan = {{"node_id", "node_e2e"}, {"version", ++version_}, {"instances", instances}};
    ASSERT_TRUE(writeFileAtomic(opts_.plan_file, plan.dump()));
  }
  void startAgent() {
    runtime::QemuOptions q;
    q.accel = "auto";
    q.probe_dir = g_world->dir->path();  // one KVM probe for the whole binary
    agent_ = std::make_unique<Agent>(opts_, std::make_unique<runtime::QemuRuntime>(q));
    ASSERT_TRUE(agent_->start());
  }
  std::optional<InstanceStatus> statusOf(const std::string& id) {
    for (const auto& s : agent_->instances()) {
      if (s.instance_id == id) return s;
    }
    return std::nullopt;
  }
  // Waits until the instance reaches `phase` (or a terminal phase).
  InstanceStatus waitPhase(const std::string& id, Phase phase, std::chrono::seconds timeout = 60s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::optional<InstanceStatus> s;
    while (std::chrono::steady_clock::now() < deadline) {
      s = statusOf(id);
      if (s && (s->phase == phase || isTerminal(s->phase))) return *s;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << id << " did not reach " << phaseName(phase) << "; now "
                  << (s ? phaseName(s->phase) : "absent") << " " << (s ? s->reason : "");
    return s.value_or(InstanceStatus{});
  }
  // Waits until the last status report is `reported`.
  InstanceStatus waitReported(const std::string& id, const std::string& reported,
                              std::chrono::seconds timeout = 60s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::optional<InstanceStatus> s;
    while (std::chrono::steady_clock::now() < deadline) {
      s = statusOf(id);
      if (s && s->last_reported == reported) return *s;
      std::this_thread::sleep_for(50ms);
    }
    ADD_FAILURE() << id << " never reported " << reported << "; last "
                  << (s ? s->last_reported : "absent") << " " << (s ? s->reason : "");
    return s.value_or(InstanceStatus{});
  }
  std::string logOf(const std::string& id) {
    return readFile(state_->path() + "/logs/" + id + ".log").value_or("");
  }
  // The agent binary's command line on this test's plan file and state dir.
  std::vector<std::string> agentArgv() const {
    return {
        PLFM_NODE_AGENT_BIN, "run", "--plan-file", opts_.plan_file, "--state-dir", state_->path(),
        // The agent builds the initramfs itself here.
        "--kernel-dir", std::filesystem::path(opts_.kernel).parent_path().string(), "--vt-init",
        PLFM_VT_INIT_BIN, "--image-cache", opts_.image_cache_dir, "--scratch-mb", "64", "--accel",
        "tcg", "--shutdown-grace-ms", "3000", "--log-file", state_->file("agent.log"),
        // The test registry is on loopback, which the daemon refuses by default.
        "--registry-allow-cidr", "127.0.0.0/8"};
  }
  // The instance's record as the agent last saved it ({} when absent).
  json recordOf(const std::string& id) const {
    auto text = readFile(state_->path() + "/instances/" + id + ".json");
    json j = text ? json::parse(*text, nullptr, false) : json();
    return j.is_object() ? j : json::object();
  }

  std::unique_ptr<plfm::testing::TempDir> state_;
  AgentOptions opts_;
  std::unique_ptr<Agent> agent_;
  int64_t version_ = 0;
};

TEST_F(AgentE2e, BootsRunsTheWorkloadForwardsItsOutputAndReportsItsExitCode) {
  startAgent();
  std::string id = newId();
  writePlan(
      json::array({workloadSpec(id, {"exit", "3", "hello-from-the-guest"}, "fd7a:5c00:0:1::2")}));
  auto s = waitPhase(id, Phase::kStopped, 90s);
  EXPECT_EQ(s.phase, Phase::kStopped) << s.reason;
  EXPECT_EQ(s.exit_code, 3);
  EXPECT_GT(s.timings.boot_ms, 0);
  EXPECT_GE(s.timings.hello_ms, 0);
  std::string log = logOf(id);
  EXPECT_NE(log.find(R"("stream":"stdout","line":"hello-from-the-guest")"), std::string::npos)
      << log;
  EXPECT_NE(log.find(R"("line":"MODE=e2e")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("stream":"stderr","line":"to stderr")"), std::string::npos) << log;
  std::printf("boot: hello %lld ms, ready %lld ms, plan->VMM %lld ms\n",
              static_cast<long long>(s.timings.hello_ms), static_cast<long long>(s.timings.boot_ms),
              static_cast<long long>(s.timings.start_ms));
}

// Reads what a TCP server at [address]:port sends before closing, retrying
// while it is not listening yet (READY means spawned, not yet listening).
std::string fetchTcp(const std::string& address, int port) {
  std::string out;
  for (int i = 0; i < 100; ++i) {
    out = runOut("timeout 5 bash -c 'exec 3<>/dev/tcp/" + address + "/" + std::to_string(port) +
                 " && cat <&3' 2>&1");
    if (out.find("refused") == std::string::npos) break;
    std::this_thread::sleep_for(100ms);
  }
  return out;
}

json tcpCheck(int port) {
  return json::array({{{"type", "tcp"},
                       {"port", port},
                       {"path", ""},
                       {"command", json::array()},
                       {"interval_ms", 1000},
                       {"timeout_ms", 1000},
                       {"grace_ms", 0}}});
}

TEST_F(AgentE2e, ServesOverIpv6PassesItsCheckAndStopsGracefully) {
  // A 1-byte image budget: the agent's GC evicts every image nobody runs.
  opts_.image_budget = "1";
  startAgent();
  std::string id = newId();
  const std::string addr = "fd7a:5c00:0:1::3";
  json spec = workloadSpec(id, {"serve", "8080"}, addr, 128, tcpCheck(8080));
  writePlan(json::array({spec}));
  auto s = waitReported(id, "healthy", 90s);
  ASSERT_EQ(s.phase, Phase::kRunning) << s.reason;
  // From the host, over the instance's /128 routed to its tap.
  EXPECT_EQ(fetchTcp(addr, 8080), "hello from " + id + "\n");
  EXPECT_EQ(runOut("ip -o link show | grep -c ' vt-'"), "1\n");

  // Image GC while the instance runs: a second image nobody uses goes, the
  // running instance's image stays, and the instance keeps serving.
  const std::string layer = state_->file("extra.tar");
  ASSERT_TRUE(image::testing::writeLayer(layer, {image::testing::file("extra", "x", 0644)},
                                         image::testing::Compression::kNone));
  image::testing::ImageSpec extra_spec;
  extra_spec.layer_files = {layer};
  extra_spec.compressions = {image::testing::Compression::kNone};
  ASSERT_TRUE(image::testing::writeOciImage(state_->file("extra"), "v1", extra_spec));
  auto cache = image::ImageCache::open(opts_.image_cache_dir);
  ASSERT_TRUE(cache);
  auto extra = cache->pull(*image::parseImageRef("oci:" + state_->file("extra") + ":v1"));
  ASSERT_TRUE(extra) << extra.error().toString();
  auto gc = agent_->collectImages();
  ASSERT_TRUE(gc) << gc.error().toString();
  EXPECT_FALSE(std::filesystem::exists(extra->rootfs));
  EXPECT_EQ(gc->images_in_use, 1);
  EXPECT_TRUE(gc->over_budget);  // what is left is in use
  EXPECT_TRUE(cache->rootfs(*image::Digest::parse(g_world->image_digest)));
  EXPECT_GE(agent_->metricsRegistry()
                .counter("plfm_agent_image_gc_evicted_total", "Images the image GC evicted")
                .value(),
            1);
  EXPECT_EQ(fetchTcp(addr, 8080), "hello from " + id + "\n");
  // desired: stop -> SHUTDOWN -> SIGTERM in the guest -> the VM powers off.
  spec["desired"] = "stop";
  writePlan(json::array({spec}));
  s = waitReported(id, "stopped", 60s);
  EXPECT_EQ(s.phase, Phase::kStopped);
  std::this_thread::sleep_for(300ms);
  std::string log = logOf(id);
  EXPECT_NE(log.find(R"("line":"served a connection")"), std::string::npos) << log;
  EXPECT_NE(log.find(R"("line":"got SIGTERM, exiting")"), std::string::npos) << log;
}

TEST_F(AgentE2e, AVmmThatDiesIsFailedWithAReasonAndBadSpecsFailAlone) {
  startAgent();
  std::string good = newId();
  std::string crash = newId();
  std::string bad_image = newId();
  std::string too_big = newId();
  json bad = workloadSpec(bad_image, {"sleep"}, "fd7a:5c00:0:1::6");
  bad["image"]["digest"] = "sha256:" + std::string(64, '0');
  writePlan(json::array({workloadSpec(good, {"sleep"}, "fd7a:5c00:0:1::4"),
                         workloadSpec(crash, {"sleep"}, "fd7a:5c00:0:1::5"), bad,
                         workloadSpec(too_big, {"sleep"}, "fd7a:5c00:0:1::7", 100'000'000)}));
  auto b = waitPhase(bad_image, Phase::kFailed);
  EXPECT_EQ(b.phase, Phase::kFailed);
  EXPECT_NE(b.reason.find("image"), std::string::npos) << b.reason;
  auto t = waitPhase(too_big, Phase::kFailed);
  EXPECT_EQ(t.phase, Phase::kFailed);
  EXPECT_NE(t.reason.find("100000000 MiB"), std::string::npos) << t.reason;
  auto c = waitPhase(crash, Phase::kRunning, 90s);
  ASSERT_EQ(c.phase, Phase::kRunning) << c.reason;
  ASSERT_GT(c.vmm_pid, 0);
  ::kill(c.vmm_pid, SIGKILL);
  c = waitReported(crash, "failed");
  EXPECT_EQ(c.phase, Phase::kFailed);
  EXPECT_NE(c.reason.find("VMM exited unexpectedly"), std::string::npos) << c.reason;
  // The others' troubles never touched the good one.
  auto g = waitPhase(good, Phase::kRunning, 90s);
  EXPECT_EQ(g.phase, Phase::kRunning) << g.reason;
}

TEST_F(AgentE2e, AMissingKernelFailsTheInstanceWithTheReason) {
  opts_.kernel = state_->file("no-such-vmlinux");
  startAgent();
  std::string id = newId();
  writePlan(json::array({workloadSpec(id, {"sleep"}, "fd7a:5c00:0:1::8")}));
  auto s = waitPhase(id, Phase::kFailed);
  EXPECT_EQ(s.phase, Phase::kFailed);
  EXPECT_NE(s.reason.find("guest kernel not found"), std::string::npos) << s.reason;
}

// The agent binary, killed with SIGKILL at random points of a boot and
// restarted each time: in the end exactly one VM runs the instance, with one
// tap, and a restart while it runs adopts that same VM.
TEST_F(AgentE2e, KillNineAtRandomPointsLeavesExactlyOneVmAndRestartsAdoptIt) {
  std::string id = newId();
  writePlan(json::array({workloadSpec(id, {"serve", "8080"}, "fd7a:5c00:0:1::9")}));
  std::vector<std::string> argv = agentArgv();
  auto record = [&] { return recordOf(id); };
  std::srand(static_cast<unsigned>(::getpid()));
  for (int round = 0; round < 3; ++round) {
    auto agent = spawn(argv, {});
    ASSERT_TRUE(agent);
    if (round == 0) {
      // At least one kill lands mid-boot, VMM started and guest not ready:
      // the restart must roll that back. The others fall where they fall.
      auto until = std::chrono::steady_clock::now() + 60s;
      while (record().value("phase", "") != "booting" && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(5ms);
      }
    } else if (round == 1) {
      // One lands while QEMU starts up: its process exists, but neither the
      // record nor (maybe) a pid file names it yet.
      auto until = std::chrono::steady_clock::now() + 60s;
      while (std::chrono::steady_clock::now() < until &&
             !(runOut("pgrep -f -- '[q]emu-system.*" + state_->path() + "' | wc -l") != "0\n" &&
               record().value("vm", json()).is_null())) {
        std::this_thread::sleep_for(1ms);
      }
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50 + std::rand() % 6000));
    }
    agent->signal(SIGKILL);
    agent->wait();
    std::printf("round %d: killed the agent in phase %s\n", round,
                record().value("phase", "?").c_str());
  }
  argv.emplace_back("--stop-instances-on-exit");
  auto agent = spawn(argv, {});
  ASSERT_TRUE(agent);
  auto deadline = std::chrono::steady_clock::now() + 90s;
  while (record().value("phase", "") != "running" && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(record().value("phase", ""), "running") << tailFile(state_->file("agent.log"), 20);
  std::string count_vmms = "pgrep -f -- '[q]emu-system.*" + state_->path() + "' | wc -l";
  EXPECT_EQ(runOut(count_vmms), "1\n");
  EXPECT_EQ(runOut("ip -o link show | grep -c ' vt-'"), "1\n");
  EXPECT_EQ(fetchTcp("fd7a:5c00:0:1::9", 8080), "hello from " + id + "\n");
  const int pid = record()["vm"].value("pid", -1);
  // A kill while running: the restarted agent adopts the same VM.
  agent->signal(SIGKILL);
  agent->wait();
  agent = spawn(argv, {});
  ASSERT_TRUE(agent);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(record().value("phase", ""), "running");
  EXPECT_EQ(record()["vm"].value("pid", -2), pid);
  EXPECT_EQ(runOut(count_vmms), "1\n");
  EXPECT_EQ(fetchTcp("fd7a:5c00:0:1::9", 8080), "hello from " + id + "\n");
  // SIGTERM with --stop-instances-on-exit: graceful stop of the VM.
  agent->signal(SIGTERM);
  EXPECT_TRUE(agent->waitFor(30s));
  EXPECT_EQ(runOut(count_vmms), "0\n");
  std::string log = readFile(state_->file("agent.log")).value_or("");
  EXPECT_NE(log.find("adopted a running VM"), std::string::npos);
  EXPECT_NE(log.find("rolled back a half-done start"), std::string::npos);
}

// A volume (volume-mounts.md §Node side) with the agent binary: each start
// of the workload appends a line to /data/log and prints the whole file and
// the filesystem's size. The lines survive a restart (new generation), an
// agent killed with SIGKILL and restarted (it adopts the VM), a grow of the
// volume (the guest sees the bigger filesystem) and a redeploy (a new
// instance id on the same volume); the file goes only when the plan says the
// volume is deleting and no instance names it.
TEST_F(AgentE2e, AVolumeKeepsItsDataAcrossRestartsAgentKillsRedeploysAndAGrow) {
  const std::string vol = "vol_0e2e0000000000000000000001";
  const std::string file = state_->path() + "/volumes/" + vol + ".ext4";
  const uint64_t mib = uint64_t{1} << 20;
  auto spec = [&](const std::string& id, int generation, const std::string& mark, uint64_t size) {
    json s = workloadSpec(id, {}, "", 128);
    s["generation"] = generation;
    // The image's own busybox; its user "app" writes to the fresh volume.
    s["command"] = {"/bin/sh", "-c",
                    "echo run-$MARK >> /data/log && echo volume: $(cat /data/log) && "
                    "echo mounted: $(/bin/busybox grep ' /data ' /proc/mounts) && "
                    "echo size-kb: $(/bin/busybox df -k /data | tail -1) && "
                    "while :; do sleep 1; echo df-kb: $(/bin/busybox df -k /data | tail -1); "
                    "done"};
    s["env"] = {{"MARK", mark}};
    s["volumes"] = {
        {{"volume_id", vol}, {"name", "data-0"}, {"mount", "/data"}, {"size_bytes", size}}};
    return s;
  };
  auto plan = [&](const json& instances, const std::string& state, uint64_t size) {
    json p = {{"node_id", "node_e2e"},
              {"version", ++version_},
              {"instances", instances},
              {"volumes", {{{"volume_id", vol}, {"size_bytes", size}, {"state", state}}}}};
    ASSERT_TRUE(writeFileAtomic(opts_.plan_file, p.dump()));
  };
  // The size in KiB `df` printed on the run whose volume lines are `lines`.
  auto waitRun = [&](const std::string& id, const std::string& lines) -> uint64_t {
    const std::string want = R"("line":"volume: )" + lines + R"(")";
    auto deadline = std::chrono::steady_clock::now() + 90s;
    std::string log;
    while (std::chrono::steady_clock::now() < deadline) {
      log = logOf(id);
      const size_t at = log.find(want);
      const size_t size_at = log.find(R"("line":"size-kb: )", at == std::string::npos ? 0 : at);
      if (at != std::string::npos && size_at != std::string::npos) {
        // "size-kb: /dev/vdc 60400 ..."
        std::istringstream fields(log.substr(size_at + 18));
        std::string device;
        uint64_t kb = 0;
        fields >> device >> kb;
        return kb;
      }
      std::this_thread::sleep_for(100ms);
    }
    ADD_FAILURE() << "no run printed " << want << "\n"
                  << log << tailFile(state_->file("agent.log"), 20);
    return 0;
  };

  const std::string a = newId();
  plan(json::array({spec(a, 1, "1", 32 * mib)}), "ready", 32 * mib);
  std::vector<std::string> argv = agentArgv();
  argv.emplace_back("--stop-instances-on-exit");
  auto agent = spawn(argv, {});
  ASSERT_TRUE(agent);
  const uint64_t first_kb = waitRun(a, "run-1");
  EXPECT_GT(first_kb, 20'000u);
  EXPECT_LT(first_kb, 33'000u);
  // nodev,nosuid: no device node or setuid binary on a volume counts.
  const std::string log_a = logOf(a);
  EXPECT_NE(log_a.find(R"("line":"mounted: /dev/vd)"), std::string::npos) << log_a;
  EXPECT_NE(log_a.find("nosuid,nodev"), std::string::npos) << log_a;
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  // A restart: a new generation, a new VM, the same data.
  plan(json::array({spec(a, 2, "2", 32 * mib)}), "ready", 32 * mib);
  waitRun(a, "run-1 run-2");

  // The agent killed outright and started again adopts the running VM.
  const int pid = recordOf(a)["vm"].value("pid", -1);
  agent->signal(SIGKILL);
  agent->wait();
  agent = spawn(argv, {});
  ASSERT_TRUE(agent);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(recordOf(a).value("phase", ""), "running");
  EXPECT_EQ(recordOf(a)["vm"].value("pid", -2), pid);

  // Grown to 64 MiB while it runs (volume-mounts.md §Node side "Extend"):
  // the same generation, the same VM; the agent grows the file, QEMU's
  // block_resize shows the guest the new capacity, and vt-init grows the
  // mounted filesystem on RESIZE_VOLUME. The workload's own df sees it.
  plan(json::array({spec(a, 2, "2", 64 * mib)}), "ready", 64 * mib);
  uint64_t online_kb = 0;
  auto online_deadline = std::chrono::steady_clock::now() + 60s;
  while (online_kb <= 50'000u && std::chrono::steady_clock::now() < online_deadline) {
    const std::string log = logOf(a);
    const size_t at = log.rfind(R"("line":"df-kb: )");
    if (at != std::string::npos) {
      std::istringstream fields(log.substr(at + 15));
      std::string device;
      fields >> device >> online_kb;
    }
    if (online_kb <= 50'000u) std::this_thread::sleep_for(200ms);
  }
  EXPECT_GT(online_kb, 50'000u) << logOf(a) << tailFile(state_->file("agent.log"), 20);
  EXPECT_EQ(recordOf(a)["vm"].value("pid", -2), pid) << "grown without a restart";
  EXPECT_NE(logOf(a).find("volume data-0 grew to " + std::to_string(64 * mib) + " bytes"),
            std::string::npos);
  std::printf("volume: %llu KiB, grown online to %llu KiB\n",
              static_cast<unsigned long long>(first_kb),
              static_cast<unsigned long long>(online_kb));
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 64 * mib);

  // A restart after the grow: the data and the size are kept.
  plan(json::array({spec(a, 3, "3", 64 * mib)}), "ready", 64 * mib);
  const uint64_t grown_kb = waitRun(a, "run-1 run-2 run-3");
  EXPECT_GT(grown_kb, 50'000u);

  // A redeploy: a new instance id on the same volume, started once the old
  // one is gone.
  const std::string b = newId();
  plan(json::array({spec(b, 1, "4", 64 * mib)}), "ready", 64 * mib);
  waitRun(b, "run-1 run-2 run-3 run-4");

  // Deleting: the file goes once no instance names the volume.
  plan(json::array(), "deleting", 64 * mib);
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (fs::exists(file) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_FALSE(fs::exists(file));
  agent->signal(SIGTERM);
  EXPECT_TRUE(agent->waitFor(30s));
  const std::string log = readFile(state_->file("agent.log")).value_or("");
  EXPECT_NE(log.find("adopted a running VM"), std::string::npos);
  EXPECT_NE(log.find("waiting for a volume"), std::string::npos) << "the redeploy had one writer";
}

// volume-mounts.md §Snapshots: while the workload appends numbered lines
// to its volume as fast as it can, the agent freezes the volume in the
// guest, copies the file, and thaws it. Each snapshot is a clean ext4
// (e2fsck -fn on the host, which never mounts it) holding a prefix of the
// lines: 1..n in order, none torn.
TEST_F(AgentE2e, ASnapshotOfAVolumeBeingWrittenIsCleanAndHoldsAPrefixOfTheWrites) {
  const std::string vol = "vol_0e2e0000000000000000000003";
  const std::string pad(80, 'x');
  json spec = workloadSpec(newId(), {}, "", 128);
  const std::string id = spec["instance_id"];
  spec["command"] = {
      "/bin/sh", "-c",
      "i=0; while :; do i=$((i+1)); echo \"line $i " + pad + "\" >> /data/lines; done"};
  spec["volumes"] = {
      {{"volume_id", vol}, {"name", "data-0"}, {"mount", "/data"}, {"size_bytes", 32 << 20}}};
  json plan = {{"node_id", "node_e2e"},
               {"version", ++version_},
               {"instances", json::array({spec})},
               {"volumes", {{{"volume_id", vol}, {"size_bytes", 32 << 20}, {"state", "ready"}}}}};
  ASSERT_TRUE(writeFileAtomic(opts_.plan_file, plan.dump()));
  startAgent();
  ASSERT_EQ(waitPhase(id, Phase::kRunning, 90s).phase, Phase::kRunning);
  EXPECT_FALSE(agent_->snapshotVolume(vol, "../x")) << "a snapshot id is a file name";

  size_t last_count = 0;
  for (int n = 1; n <= 3; ++n) {
    std::this_thread::sleep_for(1500ms);
    const std::string snap_id = "snap_" + std::to_string(n);
    auto snap = agent_->snapshotVolume(vol, snap_id);
    ASSERT_TRUE(snap) << snap.error().toString() << tailFile(state_->file("agent.log"), 20);
    EXPECT_TRUE(snap->consistent);
    // QEMU: a reflink where the volumes directory has them, else a backup
    // job whose point in time is its start (never a copy inside the freeze).
    EXPECT_TRUE(snap->method == "reflink" || snap->method == "blockdev-backup") << snap->method;
    std::printf("snapshot %d: %s, freeze window %lld ms (copy %lld ms)\n", n, snap->method.c_str(),
                static_cast<long long>(snap->freeze_ms), static_cast<long long>(snap->copy_ms));
    EXPECT_EQ(runOut("e2fsck -fn " + snap->path + " >/dev/null 2>&1; echo $?"), "0\n")
        << runOut("e2fsck -fn " + snap->path + " 2>&1 | tail -5");
    const std::string lines = runOut("debugfs -R 'cat /lines' " + snap->path + " 2>/dev/null");
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines.back(), '\n') << "a torn last line";
    std::istringstream in(lines);
    std::string line;
    size_t count = 0;
    while (std::getline(in, line)) {
      ++count;
      ASSERT_EQ(line, "line " + std::to_string(count) + " " + pad) << "line " << count;
    }
    EXPECT_GT(count, last_count) << "the workload kept writing between snapshots";
    last_count = count;
  }
  EXPECT_FALSE(agent_->snapshotVolume(vol, "snap_1")) << "an existing snapshot is kept";
  EXPECT_EQ(statusOf(id)->phase, Phase::kRunning);

  // Once no instance holds the volume, a snapshot is a plain copy (under
  // the volume's one-writer claim): no freeze, the same clean filesystem.
  plan["version"] = ++version_;
  plan["instances"] = json::array();
  ASSERT_TRUE(writeFileAtomic(opts_.plan_file, plan.dump()));
  auto gone = std::chrono::steady_clock::now() + 60s;
  while (statusOf(id) && std::chrono::steady_clock::now() < gone) std::this_thread::sleep_for(50ms);
  ASSERT_FALSE(statusOf(id));
  auto detached = agent_->snapshotVolume(vol, "snap_detached");
  ASSERT_TRUE(detached) << detached.error().toString();
  EXPECT_EQ(detached->freeze_ms, -1);
  EXPECT_TRUE(detached->consistent);
  EXPECT_EQ(runOut("e2fsck -fn " + detached->path + " >/dev/null 2>&1; echo $?"), "0\n");
}

// The image's /bin/sh is a symlink to busybox: a volume mounted below it
// would land wherever the image points, so vt-init refuses it and the boot
// fails naming the mount.
TEST_F(AgentE2e, AVolumeMountThroughASymlinkOfTheImageIsABootError) {
  startAgent();
  const std::string id = newId();
  json spec = workloadSpec(id, {"exit", "0"}, "");
  spec["volumes"] = {{{"volume_id", "vol_0e2e0000000000000000000002"},
                      {"name", "data-0"},
                      {"mount", "/bin/sh/data"},
                      {"size_bytes", 16 << 20}}};
  writePlan(json::array({spec}));
  auto s = waitPhase(id, Phase::kFailed, 90s);
  EXPECT_EQ(s.phase, Phase::kFailed);
  EXPECT_EQ(s.reason, "volumes: volume /bin/sh/data: /bin/sh is a symlink");
}

// The whole loop with a real control plane (PostgreSQL, scheduler, NodePlan
// feed): the agent enrolls, the scheduler places a deployed release on it,
// the long-poll wakes the agent, the VM boots, the agent's check passes and
// its reports reach the control plane's instances view; a scale to 0 stops it.
class AgentWithControlPlane : public AgentE2e {
 protected:
  struct Cp {
    Process proc;
    std::string url;
    std::string admin;
  };

  void startControlPlane(const std::vector<std::string>& env = {}) {
    auto pg = plfm::testing::PgCluster::shared();
    ASSERT_TRUE(pg) << pg.error().toString();
    auto db = (*pg)->createDatabase();
    ASSERT_TRUE(db) << db.error().toString();
    cp_dir_ = std::make_unique<plfm::testing::TempDir>("cp");
    SpawnOptions o;
    o.stdout_path = cp_dir_->file("cp.out");
    o.stderr_path = cp_dir_->file("cp.log");
    o.env = env;
    conninfo_ = (*pg)->conninfo(*db);
    auto p = spawn({PLFM_CONTROL_PLANE_BIN, "serve", "--listen", "[::1]:0", "--database",
                    (*pg)->conninfo(*db), "--state-dir", cp_dir_->path()},
                   o);
    ASSERT_TRUE(p) << p.error().toString();
    cp_.proc = std::move(*p);
    for (int i = 0; i < 500 && cp_.url.empty(); ++i) {
      std::string out = readFile(cp_dir_->file("cp.out")).value_or("");
      if (auto at = out.find("listening "); at != std::string::npos) {
        std::string line = out.substr(at + 10);
        cp_.url = "http://" + line.substr(0, line.find_first_of(",\n"));
      }
      ASSERT_FALSE(cp_.proc.poll()) << tailFile(cp_dir_->file("cp.log"), 20);
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(cp_.url.empty());
    cp_.admin = std::string(trim(readFile(cp_dir_->file("admin-token")).value_or("")));
  }

  json api(const std::string& method, const std::string& path, const json& body = nullptr,
           int want = 0) {
    http::Headers h;
    h.set("Authorization", "Bearer " + cp_.admin);
    if (method != "GET") {
      h.set("Idempotency-Key", "e2e-" + std::to_string(++keys_));
      h.set("Content-Type", "application/json");
    }
    http::Client c(cp_.url);
    auto r = c.send(method, path, h, body.is_null() ? "" : body.dump());
    EXPECT_TRUE(r) << method << " " << path;
    if (!r) return json();
    if (want != 0) {
      EXPECT_EQ(r->status, want) << method << " " << path << ": " << r->body;
    }
    return json::parse(r->body, nullptr, false);
  }

  void TearDown() override {
    AgentE2e::TearDown();
    if (cp_.proc.valid()) {
      cp_.proc.signal(SIGTERM);
      cp_.proc.waitFor(10s);
    }
  }

  // Enrolls an in-process agent, then creates org/app/env and returns the env id.
  std::string enrollAndMakeEnv() {
    auto enrollment = api("POST", "/v1/nodes/enrollments", {{"ttl_seconds", 900}}, 201);
    opts_.plan_file.clear();
    opts_.control_planes = {cp_.url};
    opts_.enroll_token = enrollment.value("token", "");
    opts_.facts.hostname = "e2e-node";
    opts_.facts.underlay_address = "::1";
    opts_.facts.cores = 2;
    opts_.facts.memory_mb = 2048;
    startAgent();
    EXPECT_FALSE(agent_->nodeId().empty());
    org_ = api("POST", "/v1/orgs", {{"name", "e2e"}}, 201).value("id", "");
    app_ = api("POST", "/v1/orgs/" + org_ + "/apps", {{"name", "web"}}, 201).value("id", "");
    return api("POST", "/v1/apps/" + app_ + "/envs", {{"name", "prod"}}, 201).value("id", "");
  }

  // A release of the test workload serving on 8443, scaled to one, deployed.
  std::string deployWorkload(const std::string& env,
                             const json& command = {"/bin/vt-test-workload", "serve", "8443"}) {
    json manifest = {
        {"schema_version", 1},
        {"app", "web"},
        {"image", g_world->image_ref},
        {"processes",
         {{{"name", "web"},
           {"command", command},
           {"args", json::array()},
           {"resources", {{"vcpus", 1}, {"memory_mb", 128}}}}}},
        {"services", json::array()},
        {"volumes", json::array()},
        {"checks",
         {{{"process", "web"},
           {"type", "tcp"},
           {"port", 8443},
           {"path", ""},
           {"command", json::array()},
           {"interval_ms", 1000},
           {"timeout_ms", 1000},
           {"grace_ms", 0}}}},
        {"env", {{"MODE", "cp"}}},
        {"secrets", {{"names", json::array()}, {"export_env", false}}},
        {"deploy", {{"strategy", "rolling"}, {"max_surge", 1}, {"max_unavailable", 0}}}};
    std::string release = api("POST", "/v1/apps/" + app_ + "/releases",
                              {{"image_ref", g_world->image_ref},
                               {"image_digest", g_world->image_digest},
                               {"manifest", manifest}},
                              201)
                              .value("id", "");
    api("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 1}}}}, 200);
    return api("POST", "/v1/envs/" + env + "/deploys", {{"release_id", release}}, 201)
        .value("id", "");
  }

  // Waits until the env's first instance is healthy in the control plane's view.
  json waitHealthy(const std::string& env) {
    json inst;
    auto deadline = std::chrono::steady_clock::now() + 120s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto list = api("GET", "/v1/envs/" + env + "/instances");
      if (list.contains("items") && !list["items"].empty()) {
        inst = list["items"][0];
        if (inst.value("current_state", "") == "healthy") break;
      }
      std::this_thread::sleep_for(200ms);
    }
    return inst;
  }

  std::unique_ptr<plfm::testing::TempDir> cp_dir_;
  Cp cp_;
  std::string conninfo_;
  std::string org_, app_;
  int keys_ = 0;
};

TEST_F(AgentWithControlPlane, EnrollsRunsWhatTheSchedulerPlacesAndReportsBack) {
  startControlPlane();
  std::string env = enrollAndMakeEnv();
  EXPECT_TRUE(fs::exists(state_->path() + "/node.json"));
  EXPECT_EQ(fs::status(state_->path() + "/node.json").permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  std::string deploy = deployWorkload(env);
  // The control plane's view of the instance goes healthy, from our reports.
  json inst = waitHealthy(env);
  ASSERT_EQ(inst.value("current_state", ""), "healthy") << inst.dump();
  EXPECT_EQ(inst.value("node_id", ""), agent_->nodeId());
  EXPECT_GT(inst["timings"].value("boot_ms", 0), 0) << inst.dump();
  std::string addr = inst.value("address", "");
  ASSERT_FALSE(addr.empty());
  EXPECT_EQ(fetchTcp(addr, 8443), "hello from " + inst.value("id", "") + "\n");
  auto dep = api("GET", "/v1/deploys/" + deploy);
  for (int i = 0; i < 100 && dep.value("status", "") != "succeeded"; ++i) {
    std::this_thread::sleep_for(100ms);
    dep = api("GET", "/v1/deploys/" + deploy);
  }
  EXPECT_EQ(dep.value("status", ""), "succeeded") << dep.dump();

  // Scale to 0: the plan asks for a stop, the VM goes, the view says stopped.
  api("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 0}}}}, 200);
  auto deadline = std::chrono::steady_clock::now() + 60s;
  bool gone = false;
  while (!gone && std::chrono::steady_clock::now() < deadline) {
    gone = runOut("pgrep -f -- '[q]emu-system.*" + state_->path() + "' | wc -l") == "0\n";
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_TRUE(gone);
}

// Issue 16: an app that hangs (it stops answering its tcp check but never
// exits) is restarted in place, and the instance's reason and events say why.
TEST_F(AgentWithControlPlane, AHungAppIsRestartedInPlaceAndTheEventsSayWhy) {
  startControlPlane();
  std::string env = enrollAndMakeEnv();
  deployWorkload(env, {"/bin/vt-test-workload", "serve", "8443", "4"});
  json inst = waitHealthy(env);
  ASSERT_EQ(inst.value("current_state", ""), "healthy") << inst.dump();
  const std::string id = inst.value("id", "");
  // Three failed checks (1 s apart) after it stops listening: unhealthy,
  // then generation 2 after a 1 s backoff, healthy again for 4 s.
  json now;
  for (auto deadline = std::chrono::steady_clock::now() + 90s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(500ms)) {
    now = api("GET", "/v1/instances/" + id + "?log_lines=0");
    if (now.contains("instance") && now["instance"].value("generation", 0) >= 2) break;
  }
  ASSERT_TRUE(now.contains("instance")) << now.dump();
  EXPECT_GE(now["instance"].value("generation", 0), 2) << now.dump();
  bool unhealthy = false;
  bool restart = false;
  auto text = [](const json& e, const char* key) {
    return e.contains(key) && e[key].is_string() ? e[key].get<std::string>() : std::string();
  };
  for (const auto& e : now.value("events", json::array())) {
    const std::string reason = text(e, "reason");
    unhealthy = unhealthy || (text(e, "phase") == "unhealthy" &&
                              reason.find("tcp check on port 8443") != std::string::npos);
    restart =
        restart || (text(e, "event_type") == "instance.restart_scheduled" &&
                    reason.rfind("health checks failing; restart 1 after 1 s backoff", 0) == 0);
  }
  EXPECT_TRUE(unhealthy) << now.dump();
  EXPECT_TRUE(restart) << now.dump();
}

// Issue 9's proof with a real boot: a canary secret set through the API
// reaches the guest as /run/secrets/platform.env (0400, the workload's user),
// the workload prints it, the agent's stored log has it masked, and no log,
// state dir, table or response anywhere holds the value.
TEST_F(AgentWithControlPlane, SecretsReachTheGuestAsAFileAndLeakNowhere) {
  plfm::testing::TempDir keys("key");
  const std::string key = keys.file("master.key");
  {
    SpawnOptions o;
    o.stdout_path = keys.file("gen.log");
    ASSERT_TRUE(runChecked({PLFM_CONTROL_PLANE_BIN, "secrets", "generate-key", key}, o));
  }
  startControlPlane({"PLFM_CP_SECRETS_MASTER_KEY_FILE=" + key});
  log::Options lo;
  lo.component = "node-agent";
  lo.file = state_->file("agent-process.log");
  log::init(lo);
  plfm::testing::LeakScanner scan;
  const std::string canary = "cnryAgent" + std::to_string(::getpid()) + "x7Q2pLm9Vb4Kd8Rt";
  scan.addCanaryValue("CANARY", canary);
  std::string env = enrollAndMakeEnv();
  std::vector<std::string> bodies;
  auto set =
      api("POST", "/v1/envs/" + env + "/secrets/set", {{"values", {{"CANARY", canary}}}}, 201);
  bodies.push_back(set.dump());
  bodies.push_back(api("GET", "/v1/envs/" + env + "/secrets").dump());
  std::string deploy = deployWorkload(env);
  json inst = waitHealthy(env);
  ASSERT_EQ(inst.value("current_state", ""), "healthy") << inst.dump();
  bodies.push_back(inst.dump());
  const std::string id = inst.value("id", "");
  // The workload saw the file, as its user, and printed it: the log masks it.
  std::string log;
  for (int i = 0; i < 100 && log.find("secrets file:") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
    log = logOf(id);
  }
  EXPECT_NE(log.find("secrets: present mode=400 uid=1000 gid=1000"), std::string::npos) << log;
  EXPECT_NE(log.find(R"(CANARY=\"[redacted]\")"), std::string::npos) << log;
  // Scale to 0 so the agent releases everything, then look everywhere.
  api("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 0}}}}, 200);
  agent_->stop();
  log::init({});
  for (const auto& b : bodies) scan.scanText("API response", b);
  scan.scanDir(state_->path());
  scan.scanDir(cp_dir_->path());
  auto conn = pg::Connection::connect(conninfo_);
  ASSERT_TRUE(conn) << conn.error().toString();
  auto tables = scan.scanDatabase(*conn, {"secret_versions"});
  EXPECT_NE(std::find(tables.begin(), tables.end(), "events"), tables.end());
  EXPECT_GT(scan.scanned(), 10);
  scan.expectClean();
}

}  // namespace
}  // namespace plfm::agent
