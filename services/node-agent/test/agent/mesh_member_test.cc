// The agent's mesh member (agent/mesh_member.h) with a fake `wg` and `ip`
// on an interface that exists ("lo", never touched: every command is
// faked): a new mesh version is applied once, the same version again is
// not, a bad section is refused and counted, drift found by the periodic
// reconcile is repaired and counted, and a node without peers brings up
// nothing.
#include "agent/mesh_member.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/mesh_sections.h"

namespace plfm::agent {
namespace {
using nlohmann::json;
using namespace std::chrono_literals;

const char* kPeerKey = "2IVfXqRw0uQ25k9EEPntx/ooq1jWchwBUXkRyLSWR2g=";

json section(int64_t version, bool with_peer = true) {
  json peers = json::array();
  if (with_peer) peers.push_back(netdev::testing::meshPeer(2, kPeerKey, "[fd00:5c::b]:51820"));
  return netdev::testing::meshSection(version, 1, peers);
}

// `wg` and `ip` as far as the member uses them: in sync with the last
// syncconf unless `drop_route`.
class FakeTools {
 public:
  explicit FakeTools(std::string own_public) : own_public_(std::move(own_public)) {}

  netdev::CommandRunner runner() {
    return [this](const std::vector<std::string>& argv) -> Result<std::string> {
      std::lock_guard lock(mu_);
      commands_.push_back(argv);
      if (argv[0] == "wg" && argv[1] == "syncconf") {
        if (fail_syncconf_ > 0) {
          --fail_syncconf_;
          return Error("x", "Unable to modify interface: Protocol not supported");
        }
        synced_ = true;
      }
      if (argv[0] == "wg" && argv[1] == "show") {
        std::string out = "(private)\t" + own_public_ + "\t51820\toff\n";
        if (synced_) {
          out += std::string(kPeerKey) +
                 "\t(none)\t[fd00:5c::b]:51820\tfd7a:5c00:0:2::/64\t0\t0\t0\toff\n";
        }
        return out;
      }
      if (argv[0] == "ip" && argv[1] == "-o") {
        return std::string("7: lo: <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue\n");
      }
      if (argv[0] == "ip" && argv[2] == "-o") {
        return std::string("7: lo    inet6 fd7a:5c00:0:1::1/128 scope global \\  valid_lft\n");
      }
      if (argv[0] == "ip" && argv[2] == "route" && argv[3] == "replace") route_ = true;
      if (argv[0] == "ip" && argv[2] == "route" && argv[3] == "show") {
        return route_ ? std::string("fd7a:5c00:0:2::/64 metric 1024 mtu 1420 pref medium\n")
                      : std::string();
      }
      return std::string();
    };
  }
  size_t count(const std::string& tool, const std::string& verb) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& c : commands_) n += c[0] == tool && c[1] == verb ? 1 : 0;
    return n;
  }
  size_t total() {
    std::lock_guard lock(mu_);
    return commands_.size();
  }
  void dropRoute() {
    std::lock_guard lock(mu_);
    route_ = false;
  }
  void failSyncconf(int times) {
    std::lock_guard lock(mu_);
    fail_syncconf_ = times;
  }

 private:
  std::mutex mu_;
  std::string own_public_;
  std::vector<std::vector<std::string>> commands_;
  bool synced_ = false;
  bool route_ = false;
  int fail_syncconf_ = 0;
};

bool eventuallyTrue(const std::function<bool()>& ok) {
  for (int i = 0; i < 300 && !ok(); ++i) std::this_thread::sleep_for(10ms);
  return ok();
}

class MeshMemberTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::array<uint8_t, 32> sk{};
    sk.fill(9);
    const auto priv = netdev::WgKey::fromBytes(sk);
    ASSERT_TRUE(writeFileAtomic(dir_.path() + "/wireguard.key", priv.base64() + "\n", 0600));
    tools_ = std::make_unique<FakeTools>(netdev::publicKeyOf(priv).base64());
  }

  MeshMemberOptions options(const std::string& interface) {
    MeshMemberOptions o;
    o.mesh.interface = interface;
    o.mesh.state_dir = dir_.path();
    o.reconcile_every = 1s;
    return o;
  }

  plfm::testing::TempDir dir_;
  std::unique_ptr<FakeTools> tools_;
  metrics::Registry metrics_;
};

TEST_F(MeshMemberTest, AppliesNewVersionsOnceRefusesBadOnesAndHealsDrift) {
  MeshMember m(options("lo"), metrics_, tools_->runner());
  m.start();
  m.observe(json());  // an older control plane: nothing
  m.observe(section(5));
  ASSERT_TRUE(eventuallyTrue([&] { return m.appliedVersion() == 5; }));
  EXPECT_EQ(tools_->count("wg", "syncconf"), 1U);
  auto& applies = metrics_.counter("plfm_agent_mesh_applies_total", "");
  EXPECT_EQ(applies.value({{"result", "ok"}}), 1);
  EXPECT_EQ(metrics_.gauge("plfm_agent_mesh_peers", "").value(), 1);

  m.observe(section(5));  // the same version: not applied again
  json bad = section(6);
  bad["self"]["address"] = "fd7a:5c00:0:9::1";
  m.observe(bad);
  EXPECT_EQ(applies.value({{"result", "refused"}}), 1);
  EXPECT_EQ(m.appliedVersion(), 5);
  EXPECT_EQ(tools_->count("wg", "syncconf"), 1U);

  // A route deleted behind the agent's back: the next reconcile puts it back.
  tools_->dropRoute();
  auto& drift = metrics_.counter("plfm_agent_mesh_drift_total", "");
  ASSERT_TRUE(eventuallyTrue([&] { return drift.value() >= 1; }));
  EXPECT_TRUE(eventuallyTrue([&] { return tools_->count("wg", "syncconf") == 2U; }));
  m.stop(false);
  EXPECT_EQ(tools_->count("ip", "link"), 2U);  // the two applies' `link set`, no `link del`

  // A restart: the last plan (STATE/mesh/plan.json) is reconciled at once.
  MeshMember again(options("lo"), metrics_, tools_->runner());
  again.start();
  EXPECT_TRUE(eventuallyTrue([&] { return again.appliedVersion() == 5; }));
}

TEST_F(MeshMemberTest, AFailedApplyIsCountedAndRetried) {
  tools_->failSyncconf(1);
  MeshMember m(options("lo"), metrics_, tools_->runner());
  m.start();
  m.observe(section(8));
  auto& applies = metrics_.counter("plfm_agent_mesh_applies_total", "");
  ASSERT_TRUE(eventuallyTrue([&] { return applies.value({{"result", "failed"}}) == 1; }));
  EXPECT_EQ(m.appliedVersion(), -1);
  // The next round (here after the 1 s period) finds the drift and applies.
  ASSERT_TRUE(eventuallyTrue([&] { return m.appliedVersion() == 8; }));
  EXPECT_EQ(applies.value({{"result", "ok"}}), 1);
}

TEST_F(MeshMemberTest, NoPeersNoInterface) {
  MeshMember m(options("plfm-nope7"), metrics_, tools_->runner());
  m.start();
  m.observe(section(3, false));
  ASSERT_TRUE(eventuallyTrue([&] { return m.appliedVersion() == 3; }));
  EXPECT_EQ(tools_->total(), 0U);
  m.stop(true);  // and nothing to delete
  EXPECT_EQ(tools_->total(), 0U);
  EXPECT_FALSE(m.totals());  // no interface: the heartbeat carries no `mesh`
}

// The heartbeat's figures (mesh.md, "Operator view and the bench"): a peer
// is up when its handshake is at most 180 s old; bytes are summed.
TEST(MeshTotals, CountsPeersUpWithin180SecondsAndSumsBytes) {
  const std::string k2 = "2IVfXqRw0uQ25k9EEPntx/ooq1jWchwBUXkRyLSWR2g=";
  const std::string k3 = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=";
  const std::string k4 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
  const std::string text = "(private)\t" + k2 + "\t51820\toff\n" + k2 +
                           "\t(none)\t[fd00::2]:51820\tfd7a:5c00:0:2::/64\t1000\t10\t20\toff\n" +
                           k3 + "\t(none)\t[fd00::3]:51820\tfd7a:5c00:0:3::/64\t820\t1\t2\toff\n" +
                           k4 + "\t(none)\t(none)\tfd7a:5c00:0:4::/64\t0\t0\t0\toff\n";
  auto dump = netdev::parseWgDump(text);
  ASSERT_TRUE(dump) << dump.error().toString();
  const auto t = netdev::meshTotals(*dump, 1000 + 180);
  EXPECT_EQ(t.peers, 3);
  EXPECT_EQ(t.peers_up, 1);  // 820 is 360 s old; 0 never shook hands
  EXPECT_EQ(t.latest_handshake, 1000);
  EXPECT_EQ(netdev::toHeartbeatJson(t),
            json({{"peers", 3},
                  {"peers_up", 1},
                  {"latest_handshake_at", "1970-01-01T00:16:40.000000Z"},
                  {"rx_bytes", 11},
                  {"tx_bytes", 22}}));
  EXPECT_EQ(netdev::meshTotals(*dump, 1000 + 181).peers_up, 0);
  EXPECT_TRUE(
      netdev::toHeartbeatJson(netdev::meshTotals(netdev::WgDump{}, 5))["latest_handshake_at"]
          .is_null());
}

TEST_F(MeshMemberTest, TotalsComeFromWgShowDump) {
  MeshMember m(options("lo"), metrics_, tools_->runner());
  m.start();
  m.observe(section(5));
  ASSERT_TRUE(eventuallyTrue([&] { return m.appliedVersion() == 5; }));
  auto t = m.totals();
  ASSERT_TRUE(t);
  EXPECT_EQ(t->peers, 1);
  EXPECT_EQ(t->peers_up, 0);  // never shook hands
}

}  // namespace
}  // namespace plfm::agent
