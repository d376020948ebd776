// The guest network filter (netdev/firewall.h) against real microVMs: the
// real agent boots three QEMU guests (TCG here) in two orgs on one node and
// installs its nftables table; the guests then try what a hostile tenant
// would, and what a well-behaved one needs.
//
//   org 1: A (fd7a:5c00:0:1::a), B (::b)      org 2: C (::c)
//   "outside": a second network namespace behind a veth (fd00:99::2), the
//   stand-in for an ingress on another host or the internet.
//
// Everything runs in a private network namespace with IPv6 forwarding on
// (off on a default host, where nothing would be routed between taps at all
// and the isolation would be an accident), so the host is never touched.
// Each guest runs `vt-test-workload netprobe`: the test asks a guest over TCP
// to connect or send somewhere and reads back what happened.
//
// PLFM_NETFILTER_E2E_UNFILTERED=1 deletes the agent's table before the probes:
// then the isolation checks must fail while the controls still pass, which
// shows that the test is not vacuous.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/agent.h"
#include "netdev/firewall.h"
#include "plfm/core/process.h"
#include "plfm/testing/failure_summary.h"
#include "plfm/testing/temp_dir.h"
#include "runtime/qemu_runtime.h"
#include "support/agent_world.h"

namespace plfm::agent {
namespace {

// The CI log keeps only the tail: say again what failed, last.
const void* const kFailureSummary = plfm::testing::installFailureSummary();

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr int kProbePort = 8080;
constexpr int kUdpPort = 9999;
const std::string kA = "fd7a:5c00:0:1::a";
const std::string kB = "fd7a:5c00:0:1::b";
const std::string kC = "fd7a:5c00:0:1::c";
const std::string kHost = "fd00:99::1";     // the node's end of the veth
const std::string kOutside = "fd00:99::2";  // the other namespace
const std::string kOrg1 = "org_1aaaaaaaaaaaaaaaaaaaaaaaaa";
const std::string kOrg2 = "org_2bbbbbbbbbbbbbbbbbbbbbbbbb";

testing::AgentWorld* g_world = nullptr;

std::string sh(const std::string& cmd) { return testing::shellOutput(cmd + " 2>&1"); }

class NetfilterEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    auto netns = testing::enterPrivateNetns();
    ASSERT_TRUE(netns) << netns.error().toString();
    {
      std::ofstream forwarding("/proc/sys/net/ipv6/conf/all/forwarding");
      forwarding << "1\n";
    }
    ASSERT_EQ(readFile("/proc/sys/net/ipv6/conf/all/forwarding").value_or(""), "1\n");
    auto world = testing::makeAgentWorld(PLFM_SOURCE_DIR, PLFM_VT_INIT_BIN, PLFM_TEST_WORKLOAD_BIN);
    ASSERT_TRUE(world) << world.error().toString();
    g_world = world->release();
  }
  void TearDown() override {
    delete g_world;
    g_world = nullptr;
  }
};

const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new NetfilterEnvironment);

json spec(const std::string& id, const std::string& org, const std::string& address) {
  return testing::workloadSpec(*g_world, id, org, {"netprobe", std::to_string(kProbePort)},
                               address);
}

class NetfilterE2e : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = std::make_unique<plfm::testing::TempDir>("nf");
    opts_.state_dir = state_->path();
    opts_.plan_file = state_->file("plan.json");
    opts_.kernel = g_world->kernel;
    opts_.initramfs = g_world->initramfs;
    opts_.image_cache_dir = g_world->dir->file("images");
    opts_.scratch_mb = 64;
    opts_.shutdown_grace_ms = 2000;
    opts_.listen = "[::]:0";  // the agent's port, bound to every address
    startOutside();
  }

  void TearDown() override {
    std::vector<pid_t> vmms;
    if (agent_) {
      for (const auto& s : agent_->instances()) vmms.push_back(s.vmm_pid);
      agent_->stop();
      agent_.reset();
    }
    for (pid_t pid : vmms) {  // only when the test ended before the last agent
      if (pid > 0 && processAlive(pid)) ::kill(pid, SIGKILL);
    }
    EXPECT_EQ(sh("ip -o link show | grep -c ' vt-' || true"), "0\n");
    EXPECT_EQ(sh("nft list tables"), "") << "the table outlived its guests";
    outside_ = Process();
    (void)sh("ip link del pf-out");
  }

  // The outside namespace: a UDP listener that logs every datagram's source.
  void startOutside() {
    SpawnOptions so;
    so.stdout_path = state_->file("outside.log");
    auto p = spawn(
        {"unshare", "--net", "--", PLFM_TEST_WORKLOAD_BIN, "udp-listen", std::to_string(kUdpPort)},
        so);
    ASSERT_TRUE(p) << p.error().toString();
    outside_ = std::move(*p);
    const std::string pid = std::to_string(outside_.pid());
    for (int i = 0; i < 100 && readFile(so.stdout_path).value_or("").empty(); ++i) {
      std::this_thread::sleep_for(20ms);
    }
    const std::string in = "nsenter -t " + pid + " -n ";
    ASSERT_EQ(
        sh("ip link add pf-out type veth peer name pf-in && ip link set pf-in netns " + pid +
           " && ip addr add " + kHost + "/64 dev pf-out nodad && ip link set pf-out up && " + in +
           "ip link set lo up && " + in + "ip addr add " + kOutside + "/64 dev pf-in nodad && " +
           in + "ip link set pf-in up && " + in + "ip -6 route add default via " + kHost),
        "");
  }

  void writePlan(const json& instances) {
    json plan = {{"node_id", "node_nf"}, {"version", ++version_}, {"instances", instances}};
    ASSERT_TRUE(writeFileAtomic(opts_.plan_file, plan.dump()));
  }

  void startAgent() {
    runtime::QemuOptions q;
    q.accel = "auto";
    q.probe_dir = g_world->dir->path();
    agent_ = std::make_unique<Agent>(opts_, std::make_unique<runtime::QemuRuntime>(q));
    auto started = agent_->start();
    ASSERT_TRUE(started) << started.error().toString();
  }

  // The instance's status once it runs or has ended.
  InstanceStatus waitSettled(const std::string& id) {
    auto deadline = std::chrono::steady_clock::now() + 120s;
    InstanceStatus last;
    while (std::chrono::steady_clock::now() < deadline) {
      for (const auto& s : agent_->instances()) {
        if (s.instance_id == id) last = s;
      }
      if (last.phase == Phase::kRunning || isTerminal(last.phase)) break;
      std::this_thread::sleep_for(100ms);
    }
    return last;
  }
  Phase waitRunning(const std::string& id) {
    InstanceStatus s = waitSettled(id);
    EXPECT_EQ(s.phase, Phase::kRunning) << id << ": " << s.reason;
    return s.phase;
  }

  // Sends `line` to the netprobe at [address]:8080 from this (the node's)
  // namespace and returns its answer.
  static std::string ask(const std::string& address, const std::string& line) {
    return sh(std::string(PLFM_TEST_WORKLOAD_BIN) + " ask " + address + " " +
              std::to_string(kProbePort) + " '" + line + "'");
  }
  // The same from the outside namespace.
  std::string askFromOutside(const std::string& address, int port, const std::string& line) {
    return sh("nsenter -t " + std::to_string(outside_.pid()) + " -n " + PLFM_TEST_WORKLOAD_BIN +
              " ask " + address + " " + std::to_string(port) + " '" + line + "'");
  }
  // READY means the workload was started, not that it listens yet.
  static void waitAnswers(const std::string& address, const std::string& id) {
    std::string out;
    for (int i = 0; i < 100; ++i) {
      out = ask(address, "hello");
      if (out == "hello from " + id + "\n") return;
      std::this_thread::sleep_for(200ms);
    }
    ADD_FAILURE() << address << " never answered: " << out;
  }
  // The datagrams the outside received carrying `text`, as "udp from SRC: TEXT".
  std::string receivedOutside(const std::string& text) {
    std::this_thread::sleep_for(1s);
    std::string log = readFile(state_->file("outside.log")).value_or("");
    std::string out;
    size_t pos = 0;
    while ((pos = log.find(": " + text + "\n", pos)) != std::string::npos) {
      size_t start = log.rfind('\n', pos);
      start = start == std::string::npos ? 0 : start + 1;
      out += log.substr(start, pos + text.size() + 3 - start);
      pos += text.size();
    }
    return out;
  }

  std::unique_ptr<plfm::testing::TempDir> state_;
  AgentOptions opts_;
  std::unique_ptr<Agent> agent_;
  Process outside_;
  int64_t version_ = 0;
};

bool ok(const std::string& answer) { return answer == "tcp ok\n"; }
bool blocked(const std::string& answer) { return answer.rfind("tcp failed: ", 0) == 0; }

TEST_F(NetfilterE2e, GuestsReachOnlyTheirOrgAndNeverTheHostOrWithAnotherSource) {
  const std::string a = "inst_0nfa000000000000000000000a";
  const std::string b = "inst_0nfb000000000000000000000b";
  const std::string c = "inst_0nfc000000000000000000000c";
  // The outside stands in for an ingress on another host: allowed in.
  opts_.firewall_policy.inbound_allowed = {*netdev::parseIpv6Prefix(kOutside + "/128")};
  opts_.firewall_policy.egress_denied = {};
  startAgent();
  const std::string endpoint = agent_->endpoints().at(0);
  const std::string agent_port = endpoint.substr(endpoint.rfind(':') + 1);
  writePlan(json::array({spec(a, kOrg1, kA), spec(b, kOrg1, kB), spec(c, kOrg2, kC)}));
  for (const auto& id : {a, b, c}) ASSERT_EQ(waitRunning(id), Phase::kRunning);
  // Ingress to guests: the host opens connections to each (replies come back
  // through the filter as established traffic).
  waitAnswers(kA, a);
  waitAnswers(kB, b);
  waitAnswers(kC, c);
  const std::string table = sh("nft list table inet plfm_agent");
  EXPECT_NE(table.find(kA + " : jump org_1"), std::string::npos) << table;
  EXPECT_NE(table.find(kC + " : jump org_2"), std::string::npos) << table;

  if (std::getenv("PLFM_NETFILTER_E2E_UNFILTERED") != nullptr) {
    std::printf("UNFILTERED RUN: deleting the agent's table; isolation checks should fail\n");
    ASSERT_EQ(sh("nft delete table inet plfm_agent"), "");
  }

  // Controls: the same org, the outside to a guest, a guest to the outside
  // with its own address, the agent's port from a non-guest.
  EXPECT_PRED1(ok, ask(kA, "tcp " + kB + " 8080")) << "same org A -> B";
  EXPECT_EQ(askFromOutside(kC, kProbePort, "hello"), "hello from " + c + "\n");
  EXPECT_EQ(ask(kA, "udp " + kOutside + " " + std::to_string(kUdpPort) + " " + kA + " genuine"),
            "udp sent\n");
  EXPECT_EQ(receivedOutside("genuine"), "udp from " + kA + ": genuine\n");
  EXPECT_EQ(askFromOutside(kHost, std::stoi(agent_port), "GET").rfind("failed", 0),
            std::string::npos)
      << "the agent's port is not reachable even from outside";

  // Attacks: another org, the host's services, a forged source address.
  EXPECT_PRED1(blocked, ask(kA, "tcp " + kC + " 8080")) << "org 1 -> org 2";
  EXPECT_PRED1(blocked, ask(kC, "tcp " + kA + " 8080")) << "org 2 -> org 1";
  EXPECT_PRED1(blocked, ask(kA, "tcp fe80::1%eth0 " + agent_port)) << "guest -> agent (gateway)";
  EXPECT_PRED1(blocked, ask(kA, "tcp " + kHost + " " + agent_port)) << "guest -> agent (global)";
  EXPECT_EQ(
      ask(kA, "udp " + kOutside + " " + std::to_string(kUdpPort) + " fd7a:5c00:0:1::99 forged"),
      "udp sent\n");
  EXPECT_EQ(ask(kA, "udp " + kOutside + " " + std::to_string(kUdpPort) + " " + kB + " borrowed"),
            "udp sent\n");
  EXPECT_EQ(receivedOutside("forged"), "") << "a made-up source address got out";
  EXPECT_EQ(receivedOutside("borrowed"), "") << "another instance's address got out";

  // A restart (the VMs keep running) rebuilds a lost table from the records.
  agent_->stop();
  agent_.reset();
  (void)sh("nft delete table inet plfm_agent");
  opts_.stop_instances_on_exit = true;
  // Now the outside is neither an allowed source nor a reachable
  // destination: it stands for the underlay's private services.
  opts_.firewall_policy.inbound_allowed = {};
  opts_.firewall_policy.egress_denied = {*netdev::parseIpv6Prefix("fd00:99::/64")};
  startAgent();
  for (const auto& id : {a, b, c}) ASSERT_EQ(waitRunning(id), Phase::kRunning);
  EXPECT_EQ(askFromOutside(kC, kProbePort, "hello").rfind("failed", 0), 0U)
      << "the outside reached a guest without being an allowed source";
  EXPECT_EQ(ask(kA, "udp " + kOutside + " " + std::to_string(kUdpPort) + " " + kA + " denied"),
            "udp sent\n");
  EXPECT_EQ(receivedOutside("denied"), "") << "a guest reached a denied destination";
  waitAnswers(kC, c);  // the host (this node's ingress, health checks) still does
  const std::string rebuilt = sh("nft list table inet plfm_agent");
  for (const auto& entry : {kA + " : jump org_1", kB + " : jump org_1", kC + " : jump org_2"}) {
    EXPECT_NE(rebuilt.find(entry), std::string::npos) << entry << " missing from\n" << rebuilt;
  }
  EXPECT_PRED1(blocked, ask(kA, "tcp " + kC + " 8080")) << "org 1 -> org 2 after a restart";
  EXPECT_PRED1(ok, ask(kA, "tcp " + kB + " 8080")) << "same org after a restart";
}

// Fail closed: without nft the instance fails with the reason, before any
// tap exists (no VM boots here).
TEST_F(NetfilterE2e, WithoutNftAnInstanceFailsAndGetsNoTap) {
  opts_.nft_binary = state_->file("no-such-nft");
  startAgent();
  const std::string id = "inst_0nfd000000000000000000000d";
  writePlan(json::array({spec(id, kOrg1, "fd7a:5c00:0:1::d")}));
  InstanceStatus s = waitSettled(id);
  EXPECT_EQ(s.phase, Phase::kFailed);
  EXPECT_NE(s.reason.find("guest network isolation"), std::string::npos) << s.reason;
  EXPECT_NE(s.reason.find("install nftables"), std::string::npos) << s.reason;
  EXPECT_EQ(sh("ip -o link show | grep -c ' vt-' || true"), "0\n");
}

}  // namespace
}  // namespace plfm::agent
