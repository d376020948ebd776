// The mesh for real (root): two "hosts", each a network namespace, joined by
// a veth pair standing in for the underlay; each runs a Mesh (wireguard-go,
// since this kernel has no WireGuard module) on an interface name of its
// own. A ping crosses the mesh within 2 s of the apply, a removed peer is
// gone from `wg show` and the routes within 2 s, a route deleted by hand is
// put back by a reconcile. Then 200 made-up peers are applied on one host and
// the time printed (bench/mesh_bench will track it; no assertion here). And
// a key rotation (agent/mesh_member.h) under a 10 packets/s ping each way,
// driven by a fake control plane: at most 1 packet lost.
// Namespaces, interfaces and wireguard-go processes go even when a check
// fails (the fixture's destructor).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <sodium.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "agent/mesh_member.h"
#include "netdev/mesh.h"
#include "netdev/mesh_rotation.h"
#include "netdev/mesh_status.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/core/unique_fd.h"
#include "plfm/testing/temp_dir.h"
#include "support/mesh_netns.h"
#include "support/mesh_rotation_cp.h"
#include "support/mesh_sections.h"

namespace plfm::netdev {
namespace {
using namespace std::chrono_literals;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

using testing::inNs;
using testing::sh;
using testing::wireguardGo;

bool haveTools() { return testing::haveTools({"wg", "wireguard-go", "ping", "ip"}); }

struct Host {
  std::string ns;
  std::string wg;  // the mesh interface, unique on this machine
  std::string underlay;
  uint32_t number = 0;
  plfm::testing::TempDir state;
  WgKey public_key;
};

void randomKeyFile(const std::string& dir, WgKey* public_key) {
  auto key = testing::randomKeyFile(dir);
  ASSERT_TRUE(key) << key.error().toString();
  *public_key = *key;
}

json peerOf(const Host& h) {
  return testing::meshPeer(h.number, h.public_key.base64(), "[" + h.underlay + "]:51820");
}

MeshPlan planFor(const Host& self, const std::vector<json>& peers, int64_t version) {
  auto p = parseMeshPlan(testing::meshSection(version, self.number, peers));
  EXPECT_TRUE(p && p->skipped.empty()) << (p ? "" : p.error().toString());
  return p->plan;
}

class MeshNetnsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    if (!haveTools()) GTEST_SKIP() << "needs wg, wireguard-go, ping and ip";
    ASSERT_GE(sodium_init(), 0);
    testing::nameTwoHosts(a_, b_, "mt", "fd00:5c::");
    for (Host* h : {&a_, &b_}) {
      ASSERT_TRUE(sh({"ip", "netns", "add", h->ns}));
      created_.push_back(h->ns);
      ASSERT_TRUE(sh({"ip", "-n", h->ns, "link", "set", "lo", "up"}));
      randomKeyFile(h->state.path(), &h->public_key);
    }
    ASSERT_TRUE(sh({"ip", "-n", a_.ns, "link", "add", "ul", "type", "veth", "peer", "name", "ul",
                    "netns", b_.ns}));
    for (Host* h : {&a_, &b_}) {
      ASSERT_TRUE(
          sh({"ip", "-n", h->ns, "-6", "addr", "add", h->underlay + "/64", "dev", "ul", "nodad"}));
      ASSERT_TRUE(sh({"ip", "-n", h->ns, "link", "set", "ul", "up"}));
    }
    // A new veth carries after the kernel's link watch runs (about 1 s):
    // waited for here, so the times below are the mesh's.
    ASSERT_TRUE(within(5s, [&] {
      return static_cast<bool>(
          sh({"ip", "netns", "exec", a_.ns, "ping", "-6", "-c", "1", "-W", "0.3", b_.underlay}));
    }));
  }

  void TearDown() override {
    // wireguard-go holds its TUN, and so its namespace, alive: deleting the
    // namespace does not end it. It is stopped by its unique interface name.
    for (const auto& ns : created_) (void)sh({"ip", "netns", "del", ns});
    for (const Host* h : {&a_, &b_}) {
      if (h->wg.empty()) continue;
      // Both slots of a key rotation.
      for (const std::string& name : {h->wg, defaultMeshInterface2(h->wg)}) {
        for (pid_t pid : wireguardGo(name)) {
          (void)stopProcess(pid, SIGTERM, 2s);
        }
        ::unlink(("/var/run/wireguard/" + name + ".sock").c_str());
      }
    }
  }

  Mesh meshOf(const Host& h) {
    MeshOptions o;
    o.interface = h.wg;
    o.state_dir = h.state.path();
    return Mesh(o);
  }

  Result<void> apply(const Host& h, const MeshPlan& plan) {
    return inNs(h.ns, [&] {
      Mesh m = meshOf(h);
      return m.apply(plan);
    });
  }

  Result<std::vector<std::string>> reconcile(const Host& h, const MeshPlan& plan) {
    return inNs(h.ns, [&] {
      Mesh m = meshOf(h);
      return m.reconcile(plan);
    });
  }

  // Polls `ok` every 20 ms up to `limit`; the time it took, or nullopt.
  static std::optional<std::chrono::milliseconds> within(std::chrono::milliseconds limit,
                                                         const std::function<bool()>& ok) {
    const auto t0 = Clock::now();
    while (true) {
      if (ok()) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
      }
      if (Clock::now() - t0 > limit) return std::nullopt;
      std::this_thread::sleep_for(20ms);
    }
  }

  bool pings(const Host& from, const Host& to) {
    return static_cast<bool>(sh({"ip", "netns", "exec", from.ns, "ping", "-6", "-c", "1", "-W",
                                 "0.3", "fd7a:5c00:0:" + std::to_string(to.number) + "::1"}));
  }

  Host a_;
  Host b_;
  std::vector<std::string> created_;
};

TEST_F(MeshNetnsTest, PeersPingRemovalAndDriftHeal) {
  const MeshPlan pa = planFor(a_, {peerOf(b_)}, 10);
  const MeshPlan pb = planFor(b_, {peerOf(a_)}, 10);
  const auto t0 = Clock::now();
  auto ra = apply(a_, pa);
  ASSERT_TRUE(ra) << ra.error().toString();
  auto rb = apply(b_, pb);
  ASSERT_TRUE(rb) << rb.error().toString();
  const auto applied =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  auto ping_ms = within(2s, [&] { return pings(a_, b_); });
  ASSERT_TRUE(ping_ms) << "node 1 does not reach node 2's host address over the mesh";
  EXPECT_TRUE(pings(b_, a_));
  // `mesh status` sees the handshake, the bytes and the route.
  auto status = inNs(a_.ns, [&] {
    Mesh m = meshOf(a_);
    auto d = m.dump();
    auto r = m.routes();
    EXPECT_TRUE(d && r);
    return meshStatus(a_.wg, pa, d ? std::optional(*d) : std::nullopt,
                      r.value_or(std::vector<MeshRoute>{}), std::time(nullptr));
  });
  ASSERT_EQ(status.peers.size(), 1U);
  EXPECT_EQ(status.public_key, a_.public_key.base64());
  EXPECT_EQ(status.peers[0].node_number, 2U);
  EXPECT_TRUE(status.peers[0].handshake_age_seconds);
  EXPECT_GT(status.peers[0].rx_bytes, 0U);
  EXPECT_TRUE(status.peers[0].route);
  // The same through the command an operator runs.
  auto cli = sh({"ip", "netns", "exec", a_.ns, PLFM_NODE_AGENT_BIN, "mesh", "status", "--state-dir",
                 a_.state.path(), "--mesh-interface", a_.wg, "--format", "json"});
  ASSERT_TRUE(cli) << cli.error().toString();
  const json shown = json::parse(*cli);
  EXPECT_EQ(shown["public_key"], a_.public_key.base64());
  EXPECT_EQ(shown["plan_version"], 10);
  ASSERT_EQ(shown["peers"].size(), 1U);
  EXPECT_EQ(shown["peers"][0]["node_number"], 2);
  EXPECT_EQ(shown["peers"][0]["route"], true);
  EXPECT_TRUE(shown["peers"][0]["handshake_age_seconds"].is_number());
  std::printf("mesh: two hosts up (bring-up and apply) in %lld ms, first ping after %lld ms\n",
              static_cast<long long>(applied), static_cast<long long>(ping_ms->count()));

  // In sync: nothing to reconcile; a second apply changes nothing.
  auto drift = reconcile(a_, pa);
  ASSERT_TRUE(drift) << drift.error().toString();
  EXPECT_TRUE(drift->empty()) << (*drift)[0];
  // A restart adopts the interface: the same plan applies without a bring-up.
  ASSERT_TRUE(apply(a_, pa));

  // Node 2 leaves: its peer and route are gone from node 1 within 2 s.
  const auto removed_at = Clock::now();
  ASSERT_TRUE(apply(a_, planFor(a_, {}, 11)));
  auto gone = within(2s, [&] {
    auto dump = sh({"ip", "netns", "exec", a_.ns, "wg", "show", a_.wg, "peers"});
    auto routes = sh({"ip", "-n", a_.ns, "-6", "route", "show", "dev", a_.wg});
    return dump && routes && dump->find(b_.public_key.base64()) == std::string::npos &&
           routes->find("fd7a:5c00:0:2::/64") == std::string::npos;
  });
  ASSERT_TRUE(gone) << "node 2's peer or route is still on node 1";
  std::printf("mesh: a removed peer was gone from wg show and the routes %lld ms after the apply\n",
              static_cast<long long>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - removed_at)
                      .count()));
  EXPECT_FALSE(pings(a_, b_));

  // Back, then a route deleted by hand: the reconcile sees it and puts it back.
  ASSERT_TRUE(apply(a_, pa));
  ASSERT_TRUE(sh({"ip", "-n", a_.ns, "-6", "route", "del", "fd7a:5c00:0:2::/64", "dev", a_.wg}));
  drift = reconcile(a_, pa);
  ASSERT_TRUE(drift) << drift.error().toString();
  EXPECT_EQ(*drift, std::vector<std::string>{"no route to fd7a:5c00:0:2::/64"});
  ASSERT_TRUE(within(2s, [&] { return pings(a_, b_); })) << "the healed route does not carry";
  // The link set down by hand, too.
  ASSERT_TRUE(sh({"ip", "-n", a_.ns, "link", "set", a_.wg, "down"}));
  drift = reconcile(a_, pa);
  ASSERT_TRUE(drift);
  EXPECT_NE(std::find(drift->begin(), drift->end(), "the interface is down"), drift->end());
  ASSERT_TRUE(within(2s, [&] { return pings(a_, b_); })) << "the link did not come back";
  // A peer removed by hand (wg set ... remove) is drift too.
  ASSERT_TRUE(sh({"ip", "netns", "exec", a_.ns, "wg", "set", a_.wg, "peer", b_.public_key.base64(),
                  "remove"}));
  drift = reconcile(a_, pa);
  ASSERT_TRUE(drift);
  EXPECT_EQ(drift->size(), 1U);
  drift = reconcile(a_, pa);
  ASSERT_TRUE(drift);
  EXPECT_TRUE(drift->empty());

  // Deleting the interface ends wireguard-go.
  ASSERT_TRUE(inNs(a_.ns, [&] {
    Mesh m = meshOf(a_);
    return m.remove();
  }));
  EXPECT_TRUE(within(2s, [&] { return wireguardGo(a_.wg).empty(); }));
}

// The real agent: `run --plan-file` with --edge (no kernel, no instances)
// and --no-network on each host; the mesh comes up from the plan file's
// section, survives an agent restart (adopted), and goes with
// --stop-instances-on-exit.
TEST_F(MeshNetnsTest, TheAgentBinaryJoinsAdoptsAndRemoves) {
  for (const auto& [self, peer] : {std::pair{&a_, &b_}, std::pair{&b_, &a_}}) {
    json plan = {{"version", 3}, {"instances", json::array()}};
    plan["mesh"] = testing::meshSection(3, self->number, json::array({peerOf(*peer)}));
    ASSERT_TRUE(writeFileAtomic(self->state.path() + "/plan.json", plan.dump()));
  }
  const auto run = [](const Host& h, bool stop_on_exit) {
    std::vector<std::string> argv = {"ip",
                                     "netns",
                                     "exec",
                                     h.ns,
                                     PLFM_NODE_AGENT_BIN,
                                     "run",
                                     "--plan-file",
                                     h.state.path() + "/plan.json",
                                     "--state-dir",
                                     h.state.path(),
                                     "--edge",
                                     "--no-network",
                                     "--mesh-interface",
                                     h.wg,
                                     "--mesh-reconcile-seconds",
                                     "1"};
    if (stop_on_exit) argv.emplace_back("--stop-instances-on-exit");
    SpawnOptions so;
    so.stdout_path = h.state.path() + "/agent.log";
    auto p = spawn(argv, so);
    EXPECT_TRUE(p) << p.error().toString();
    return std::move(*p);
  };
  const auto stop = [](Process& p) {
    p.signal(SIGTERM);
    EXPECT_TRUE(p.waitOrKill(10s, true));
  };
  Process agent_a = run(a_, false);
  Process agent_b = run(b_, false);
  ASSERT_TRUE(within(10s, [&] { return pings(a_, b_); }))
      << tailFile(a_.state.path() + "/agent.log", 20);
  stop(agent_a);
  EXPECT_TRUE(pings(a_, b_));  // the interface outlives the agent
  agent_a = run(a_, true);
  // The restarted agent adopts it: still one wireguard-go, traffic flows.
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(wireguardGo(a_.wg).size(), 1U);
  EXPECT_TRUE(pings(a_, b_));
  stop(agent_a);
  EXPECT_FALSE(sh({"ip", "-n", a_.ns, "link", "show", a_.wg})) << "the interface is still there";
  EXPECT_TRUE(within(2s, [&] { return wireguardGo(a_.wg).empty(); }));
  stop(agent_b);
}

TEST_F(MeshNetnsTest, TwoHundredPeersApplyTime) {
  std::vector<json> peers;
  for (uint32_t n = 10; n < 210; ++n) {
    Host fake;
    fake.number = n;
    std::array<uint8_t, 32> pk{};
    randombytes_buf(pk.data(), pk.size());
    fake.public_key = WgKey::fromBytes(pk);
    char underlay[64];
    std::snprintf(underlay, sizeof underlay, "fd00:5c::1:%x", n);
    fake.underlay = underlay;
    peers.push_back(peerOf(fake));
  }
  const MeshPlan plan = planFor(a_, peers, 1);
  auto t0 = Clock::now();
  auto r = apply(a_, plan);
  ASSERT_TRUE(r) << r.error().toString();
  const auto first = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  t0 = Clock::now();
  auto drift = reconcile(a_, plan);
  const auto check = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  ASSERT_TRUE(drift) << drift.error().toString();
  EXPECT_TRUE(drift->empty());
  // One peer fewer: the incremental case a leave is.
  MeshPlan less = plan;
  less.peers.pop_back();
  t0 = Clock::now();
  ASSERT_TRUE(apply(a_, less));
  const auto one = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  std::printf(
      "mesh: 200 peers: first apply (bring-up included) %lld ms, reconcile in sync %lld ms, "
      "apply of one peer fewer %lld ms\n",
      static_cast<long long>(first.count()), static_cast<long long>(check.count()),
      static_cast<long long>(one.count()));
}

TEST_F(MeshNetnsTest, AKeyRotationUnderPingLosesAtMostOnePacket) {
  metrics::Registry metrics;
  testing::FakeRotationControlPlane<Host> cp(a_, b_);
  cp.start(metrics, 2s);
  ASSERT_TRUE(within(5s, [&] { return pings(a_, b_) && pings(b_, a_); }));

  // 10 packets/s each way for 8 s; the rotation starts after 1 s.
  const auto ping = [&](const Host& from, const Host& to, const std::string& out) {
    SpawnOptions so;
    so.stdout_path = out;
    auto p = spawn({"ip", "netns", "exec", from.ns, "ping", "-6", "-i", "0.1", "-c", "80", "-W",
                    "1", "fd7a:5c00:0:" + std::to_string(to.number) + "::1"},
                   so);
    EXPECT_TRUE(p) << p.error().toString();
    return std::move(*p);
  };
  plfm::testing::TempDir out;
  Process to_a = ping(b_, a_, out.file("to_a"));
  Process to_b = ping(a_, b_, out.file("to_b"));
  std::this_thread::sleep_for(1s);
  const WgKey old_key = cp.key();
  const auto t0 = Clock::now();
  cp.requestRotation();
  auto committed = within(10s, [&] { return !(cp.key() == old_key); });
  ASSERT_TRUE(committed) << "the rotation did not commit";
  const std::string second = defaultMeshInterface2(a_.wg);
  // Retired one reconcile period (2 s) after the commit.
  auto retired = within(8s, [&] { return !cp.memberA().rotation(); });
  ASSERT_TRUE(retired) << "the old interface was not retired";
  EXPECT_TRUE(to_a.waitOrKill(15s, true));
  EXPECT_TRUE(to_b.waitOrKill(15s, true));
  const auto [sent_a, got_a] = testing::pingCounts(*readFile(out.file("to_a")));
  const auto [sent_b, got_b] = testing::pingCounts(*readFile(out.file("to_b")));
  std::printf(
      "mesh: key rotation committed %lld ms after the request, old interface retired %lld ms "
      "after that; under a 10 packets/s ping: to the rotating node %d of %d lost, from it %d "
      "of %d lost\n",
      static_cast<long long>(committed->count()), static_cast<long long>(retired->count()),
      sent_a - got_a, sent_a, sent_b - got_b, sent_b);
  (void)t0;
  ASSERT_EQ(sent_a, 80);
  ASSERT_EQ(sent_b, 80);
  EXPECT_LE(sent_a - got_a, 1);
  EXPECT_LE(sent_b - got_b, 1);

  // The old interface is gone, the new one holds the route, the key file is the new key.
  EXPECT_FALSE(sh({"ip", "-n", a_.ns, "link", "show", a_.wg})) << "the old interface is still up";
  EXPECT_TRUE(within(2s, [&] { return wireguardGo(a_.wg).empty(); }));
  auto routes = sh({"ip", "-n", a_.ns, "-6", "route", "show", "dev", second});
  ASSERT_TRUE(routes);
  EXPECT_NE(routes->find("fd7a:5c00:0:2::/64"), std::string::npos) << *routes;
  auto shown = sh({"ip", "netns", "exec", a_.ns, "wg", "show", second, "public-key"});
  ASSERT_TRUE(shown);
  EXPECT_EQ(trim(*shown), cp.key().base64());
  auto key_text = readFile(a_.state.path() + "/wireguard.key");
  ASSERT_TRUE(key_text);
  EXPECT_EQ(publicKeyOf(*WgKey::parse(trim(*key_text))), cp.key());
  EXPECT_FALSE(std::filesystem::exists(meshNextKeyPath(a_.state.path())));
  // `mesh status` reads the active slot (the plan's port is --mesh-port + 1).
  auto cli = sh({"ip", "netns", "exec", a_.ns, PLFM_NODE_AGENT_BIN, "mesh", "status", "--state-dir",
                 a_.state.path(), "--mesh-interface", a_.wg, "--format", "json"});
  ASSERT_TRUE(cli) << cli.error().toString();
  const json status = json::parse(*cli);
  EXPECT_EQ(status["interface"], second);
  EXPECT_EQ(status["public_key"], cp.key().base64());
  EXPECT_TRUE(status["rotation"].is_null());
  EXPECT_EQ(status["peers"][0]["route"], true);
  EXPECT_TRUE(pings(b_, a_));
  cp.stop();
  EXPECT_EQ(metrics.counter("plfm_agent_mesh_rotations_total", "").value({{"result", "ok"}}), 1);
}

}  // namespace
}  // namespace plfm::netdev
