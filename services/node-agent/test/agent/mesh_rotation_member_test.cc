// A key rotation driven through MeshMember (mesh.md, "Contract for key
// rotation", "Agent") against a fake `wg` and `ip` that keep the state of
// several interfaces (peers from the file `wg syncconf` reads, routes that
// `ip -6 route replace` moves between interfaces, handshakes the test
// sets): the commands of each step, the order in which routes move
// (handshake first, the rest after the settle time), the commit, the retire
// after one reconcile period, and a restart between every step.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "agent/mesh_member.h"
#include "netdev/mesh_rotation.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/testing/temp_dir.h"
#include "support/mesh_sections.h"

namespace plfm::agent {
namespace {
using nlohmann::json;
using namespace std::chrono_literals;
using netdev::WgKey;

std::string keyText(uint8_t fill) { return netdev::testing::meshTestKey(fill); }

// `wg` and `ip` for any number of interfaces.
class FakeNet {
 public:
  struct Link {
    std::string own_public;
    int port = 0;
    std::map<std::string, std::string> peers;  // key -> "endpoint\tallowed"
  };

  netdev::CommandRunner runner() {
    return [this](const std::vector<std::string>& argv) -> Result<std::string> {
      std::lock_guard lock(mu_);
      commands_.push_back(argv);
      return run(argv);
    };
  }
  std::function<bool(const std::string&)> exists() {
    return [this](const std::string& name) {
      std::lock_guard lock(mu_);
      return links_.count(name) != 0;
    };
  }
  bool has(const std::string& link) {
    std::lock_guard lock(mu_);
    return links_.count(link) != 0;
  }
  Link link(const std::string& name) {
    std::lock_guard lock(mu_);
    return links_.count(name) != 0 ? links_.at(name) : Link{};
  }
  // The interface each prefix is routed via.
  std::map<std::string, std::string> routes() {
    std::lock_guard lock(mu_);
    return routes_;
  }
  void handshake(const std::string& link, const std::string& peer_key) {
    std::lock_guard lock(mu_);
    handshakes_.insert(link + "/" + peer_key);
  }
  // The commands run since the last call that start with `prefix`.
  std::vector<std::vector<std::string>> take(const std::vector<std::string>& prefix = {}) {
    std::lock_guard lock(mu_);
    std::vector<std::vector<std::string>> out;
    for (auto& c : commands_) {
      if (c.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), c.begin())) {
        out.push_back(c);
      }
    }
    commands_.clear();
    return out;
  }

 private:
  Result<std::string> run(const std::vector<std::string>& a) {
    if (a[0] == "wg" && a[1] == "syncconf") return syncconf(a[2], a[3]);
    if (a[0] == "wg" && a[1] == "show") {
      if (links_.count(a[2]) == 0) return Error("x", "No such device");
      const Link& l = links_[a[2]];
      std::string out = "(private)\t" + l.own_public + "\t" + std::to_string(l.port) + "\toff\n";
      for (const auto& [key, rest] : l.peers) {
        const std::string hs = handshakes_.count(a[2] + "/" + key) != 0 ? "1765000000" : "0";
        out.append(key).append("\t(none)\t").append(rest).append("\t").append(hs);
        out += "\t0\t0\toff\n";
      }
      return out;
    }
    if (a[0] != "ip") return std::string();
    if (a[1] == "link" && a[2] == "add") {
      links_[a[3]];
      return std::string();
    }
    if (a[1] == "link" && a[2] == "del") {
      links_.erase(a[3]);
      for (auto it = routes_.begin(); it != routes_.end();) {
        it = it->second == a[3] ? routes_.erase(it) : std::next(it);
      }
      return std::string();
    }
    if (a[1] == "-o" && a[2] == "link") {
      return "7: " + a[5] + ": <POINTOPOINT,NOARP,UP,LOWER_UP> mtu 1420 qdisc noqueue\n";
    }
    if (a[1] == "-6" && a[2] == "-o") {
      return "7: " + a[6] + "    inet6 fd7a:5c00:0:1::1/128 scope global \\  valid_lft\n";
    }
    if (a[1] == "-6" && a[2] == "route") {
      if (a[3] == "replace") routes_[a[4]] = a[6];
      if (a[3] == "del" && routes_[a[4]] == a[6]) routes_.erase(a[4]);
      if (a[3] == "show") {
        std::string out;
        for (const auto& [dst, dev] : routes_) {
          if (dev == a[5]) out += dst + " metric 1024 mtu 1420 pref medium\n";
        }
        return out;
      }
    }
    return std::string();
  }

  // Reads the configuration file as wg would.
  Result<std::string> syncconf(const std::string& name, const std::string& path) {
    if (links_.count(name) == 0) return Error("x", "No such device");
    auto text = readFile(path);
    if (!text) return text.error();
    Link l;
    std::string key;
    std::string endpoint;
    for (std::string_view line : splitLines(*text)) {
      const auto value = [&](std::string_view k) -> std::optional<std::string> {
        if (line.substr(0, k.size() + 3) != std::string(k) + " = ") return std::nullopt;
        return std::string(line.substr(k.size() + 3));
      };
      if (auto v = value("PrivateKey"))
        l.own_public = netdev::publicKeyOf(*WgKey::parse(*v)).base64();
      if (auto v = value("ListenPort")) l.port = std::stoi(*v);
      if (auto v = value("PublicKey")) key = *v;
      if (auto v = value("Endpoint")) endpoint = *v;
      if (auto v = value("AllowedIPs")) l.peers[key] = endpoint + "\t" + *v;
    }
    links_[name] = std::move(l);
    return std::string();
  }

  std::mutex mu_;
  std::map<std::string, Link> links_;
  std::map<std::string, std::string> routes_;
  std::set<std::string> handshakes_;
  std::vector<std::vector<std::string>> commands_;
};

bool eventually(const std::function<bool()>& ok, std::chrono::milliseconds limit = 3s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!ok() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(5ms);
  return ok();
}

class MeshRotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::array<uint8_t, 32> sk{};
    sk.fill(9);
    const WgKey priv = WgKey::fromBytes(sk);
    old_public_ = netdev::publicKeyOf(priv).base64();
    ASSERT_TRUE(writeFileAtomic(dir_.path() + "/wireguard.key", priv.base64() + "\n", 0600));
  }

  // The control plane's plan for node 1 at `version`.
  json plan(int64_t version, bool rotate, const std::string& current, uint16_t port,
            const std::string& next = {}) {
    json s = netdev::testing::meshSection(
        version, 1,
        json::array({netdev::testing::meshPeer(2, keyText(2), "[fd00:5c::b]:51820"),
                     netdev::testing::meshPeer(3, keyText(3), "[fd00:5c::c]:51820")}),
        port);
    s["self"]["public_key"] = current;
    s["self"]["rotate"] = rotate;
    s["self"]["next_public_key"] = next.empty() ? json(nullptr) : json(next);
    s["self"]["next_listen_port"] = next.empty() ? json(nullptr) : json(51821);
    return s;
  }

  std::unique_ptr<MeshMember> member() {
    MeshMemberOptions o;
    o.mesh.interface = "wg-t0";
    o.mesh.state_dir = dir_.path();
    o.mesh.link_exists = net_.exists();
    o.reconcile_every = 1s;
    o.rotation_settle = 400ms;
    o.handshake_poll = 10ms;
    o.resolve = [](const netdev::WgEndpoint& e) -> Result<netdev::WgEndpoint> { return e; };
    o.now_unix = [this] { return now_.load(); };
    o.report.staged = [this](const WgKey& k, uint16_t port) -> Result<void> {
      std::lock_guard lock(mu_);
      staged_.emplace_back(k.base64(), port);
      return ok();
    };
    o.report.current = [this](const WgKey& k) -> Result<void> {
      std::lock_guard lock(mu_);
      current_.push_back(k.base64());
      current_at_ = std::chrono::steady_clock::now();
      return ok();
    };
    auto m = std::make_unique<MeshMember>(o, metrics_, net_.runner());
    m->start();
    return m;
  }

  std::string stagedKey() {
    std::lock_guard lock(mu_);
    return staged_.empty() ? std::string() : staged_.back().first;
  }
  size_t stagedCount() {
    std::lock_guard lock(mu_);
    return staged_.size();
  }
  size_t currents() {
    std::lock_guard lock(mu_);
    return current_.size();
  }

  plfm::testing::TempDir dir_;
  FakeNet net_;
  metrics::Registry metrics_;
  std::string old_public_;
  std::atomic<int64_t> now_{1765000000};
  std::mutex mu_;
  std::vector<std::pair<std::string, uint16_t>> staged_;
  std::vector<std::string> current_;
  std::chrono::steady_clock::time_point current_at_;
};

TEST_F(MeshRotationTest, TheThreeStepsMoveRoutesByHandshakeThenSettleAndRetireTheOldInterface) {
  auto m = member();
  m->observe(plan(1, false, old_public_, 51820));
  ASSERT_TRUE(eventually([&] { return m->appliedVersion() == 1; }));
  EXPECT_EQ(net_.routes(), (std::map<std::string, std::string>{{"fd7a:5c00:0:2::/64", "wg-t0"},
                                                               {"fd7a:5c00:0:3::/64", "wg-t0"}}));
  net_.take();

  // Step 1: a key staged on wg-t1 (port 51821), every peer, no route; reported.
  m->observe(plan(2, true, old_public_, 51820));
  ASSERT_TRUE(eventually([&] { return !stagedKey().empty(); }));
  const std::string next = stagedKey();
  EXPECT_NE(next, old_public_);
  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(staged_[0].second, 51821);
  }
  const auto staged = net_.link("wg-t1");
  EXPECT_EQ(staged.own_public, next);
  EXPECT_EQ(staged.port, 51821);
  EXPECT_EQ(staged.peers.size(), 2U);
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:2::/64"), "wg-t0");
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:3::/64"), "wg-t0");
  const auto step1 = net_.take({"ip"});
  EXPECT_NE(std::find(step1.begin(), step1.end(),
                      std::vector<std::string>{"ip", "link", "add", "wg-t1", "type", "wireguard"}),
            step1.end());
  const std::string next_key = netdev::meshNextKeyPath(dir_.path());
  namespace fs = std::filesystem;
  EXPECT_EQ(fs::status(next_key).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(netdev::publicKeyOf(*WgKey::parse(trim(*readFile(next_key)))).base64(), next);
  auto record = netdev::loadMeshRotation(dir_.path());
  ASSERT_TRUE(record && *record);
  EXPECT_EQ((*record)->phase, "staged");
  EXPECT_EQ((*record)->interface, "wg-t1");
  // No private key in the record or the plan file.
  const std::string priv(trim(*readFile(next_key)));
  EXPECT_EQ(readFile(netdev::meshRotationPath(dir_.path()))->find(priv), std::string::npos);
  EXPECT_EQ(readFile(dir_.path() + "/mesh/plan.json")->find(priv), std::string::npos);

  // Step 2: published. Node 2 has switched (a handshake on wg-t1): its
  // route moves at once; node 3 stays silent: its route after the settle time.
  net_.handshake("wg-t1", keyText(2));
  const auto published_at = std::chrono::steady_clock::now();
  m->observe(plan(3, true, old_public_, 51820, next));
  ASSERT_TRUE(eventually([&] { return net_.routes().at("fd7a:5c00:0:2::/64") == "wg-t1"; }));
  const auto first_move = std::chrono::steady_clock::now() - published_at;
  EXPECT_LT(first_move, 300ms);
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:3::/64"), "wg-t0");
  ASSERT_TRUE(eventually([&] { return currents() == 1; }));
  EXPECT_GE(current_at_ - published_at, 400ms);  // node 3 waited for the settle time
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:3::/64"), "wg-t1");
  EXPECT_EQ((*netdev::loadMeshRotation(dir_.path()))->phase, "published");
  const auto moves = net_.take({"ip", "-6", "route", "replace"});
  const std::vector<std::vector<std::string>> want_moves = {
      {"ip", "-6", "route", "replace", "fd7a:5c00:0:2::/64", "dev", "wg-t1", "mtu", "1420"},
      {"ip", "-6", "route", "replace", "fd7a:5c00:0:3::/64", "dev", "wg-t1", "mtu", "1420"}};
  EXPECT_EQ(moves, want_moves);

  // Step 3: the key is current. wg-t1 is the active slot (its port), the
  // key file is the new key, wg-t0 stays (no routes) for one period.
  m->observe(plan(4, false, next, 51821));
  ASSERT_TRUE(eventually([&] { return m->appliedVersion() == 4; }));
  ASSERT_TRUE(eventually([&] { return m->rotation() && m->rotation()->retire_after != 0; }));
  EXPECT_EQ(m->activeInterface(), "wg-t1");
  EXPECT_FALSE(fs::exists(next_key));
  EXPECT_EQ(
      netdev::publicKeyOf(*WgKey::parse(trim(*readFile(dir_.path() + "/wireguard.key")))).base64(),
      next);
  EXPECT_TRUE(net_.has("wg-t0"));
  EXPECT_EQ(m->rotation()->retire_interface, "wg-t0");
  EXPECT_EQ(m->rotation()->retire_after, now_.load() + 1);
  auto& rotations = metrics_.counter("plfm_agent_mesh_rotations_total", "");
  EXPECT_EQ(rotations.value({{"result", "ok"}}), 0);
  // One period later: wg-t0 is deleted and the record is gone.
  now_ += 2;
  ASSERT_TRUE(eventually([&] { return !net_.has("wg-t0"); }));
  ASSERT_TRUE(eventually([&] { return !m->rotation(); }));
  EXPECT_FALSE(fs::exists(netdev::meshRotationPath(dir_.path())));
  EXPECT_EQ(rotations.value({{"result", "ok"}}), 1);
  EXPECT_EQ(net_.routes(), (std::map<std::string, std::string>{{"fd7a:5c00:0:2::/64", "wg-t1"},
                                                               {"fd7a:5c00:0:3::/64", "wg-t1"}}));
  EXPECT_EQ(net_.link("wg-t1").own_public, next);
  m->stop(false);

  // The next rotation goes back to wg-t0 on port 51820.
  auto again = member();
  again->observe(plan(5, true, next, 51821));
  ASSERT_TRUE(eventually([&] { return stagedCount() == 2; }));
  {
    std::lock_guard lock(mu_);
    EXPECT_EQ(staged_[1].second, 51820);
  }
  EXPECT_EQ(again->rotation()->interface, "wg-t0");
  EXPECT_EQ(net_.link("wg-t0").port, 51820);
}

// Every step resumes from STATE after the agent stops between steps.
TEST_F(MeshRotationTest, ARestartBetweenEveryStepResumes) {
  auto m = member();
  m->observe(plan(1, true, old_public_, 51820));
  ASSERT_TRUE(eventually([&] { return !stagedKey().empty(); }));
  const std::string next = stagedKey();
  m->stop(false);
  m.reset();

  // Staged: the restarted agent reports the key again (the control plane
  // answers a repeat with no event) and keeps wg-t1 in step.
  m = member();
  ASSERT_TRUE(eventually([&] { return stagedCount() == 2; }));
  EXPECT_EQ(stagedKey(), next);
  EXPECT_EQ(m->rotation()->phase, "staged");
  m->observe(plan(2, true, old_public_, 51820, next));
  ASSERT_TRUE(eventually([&] { return currents() == 1; }));
  m->stop(false);
  m.reset();

  // Published, routes moved: the restart reports the commit again.
  m = member();
  EXPECT_TRUE(eventually([&] { return currents() == 2; }));
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:2::/64"), "wg-t1");
  m->observe(plan(3, false, next, 51821));
  ASSERT_TRUE(eventually([&] { return m->rotation() && m->rotation()->retire_after != 0; }));
  m->stop(false);
  m.reset();

  // Retiring: the restart deletes wg-t0 once the period is over.
  now_ += 5;
  m = member();
  ASSERT_TRUE(eventually([&] { return !net_.has("wg-t0"); }));
  EXPECT_TRUE(eventually([&] { return !m->rotation(); }));
  EXPECT_EQ(m->activeInterface(), "wg-t1");
}

// A published rotation whose peers never shake hands still moves every
// route, after the settle time and not before.
TEST_F(MeshRotationTest, SilentPeersMoveAfterTheSettleTime) {
  auto m = member();
  m->observe(plan(1, true, old_public_, 51820));
  ASSERT_TRUE(eventually([&] { return !stagedKey().empty(); }));
  const auto t0 = std::chrono::steady_clock::now();
  m->observe(plan(2, true, old_public_, 51820, stagedKey()));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:2::/64"), "wg-t0");
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:3::/64"), "wg-t0");
  ASSERT_TRUE(eventually([&] { return currents() == 1; }));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 400ms);
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:2::/64"), "wg-t1");
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:3::/64"), "wg-t1");
}

// A peer whose long-poll woke first switches before this node's plan says
// the key is published: its handshake on the new interface moves its route
// at once (the old key no longer reaches it), the silent peer's stays until
// publication and the settle time.
TEST_F(MeshRotationTest, APeerThatSwitchesBeforePublicationIsMovedAtOnce) {
  auto m = member();
  m->observe(plan(1, true, old_public_, 51820));
  ASSERT_TRUE(eventually([&] { return !stagedKey().empty(); }));
  const auto t0 = std::chrono::steady_clock::now();
  net_.handshake("wg-t1", keyText(2));
  ASSERT_TRUE(eventually([&] { return net_.routes().at("fd7a:5c00:0:2::/64") == "wg-t1"; }));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 300ms);
  // Not published: no settle time runs, node 3 keeps the old key.
  std::this_thread::sleep_for(600ms);
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:3::/64"), "wg-t0");
  EXPECT_EQ(currents(), 0U);
  EXPECT_EQ(m->rotation()->phase, "staged");
  // A full round keeps the early move.
  m->observe(plan(2, true, old_public_, 51820));
  ASSERT_TRUE(eventually([&] { return m->appliedVersion() == 2; }));
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:2::/64"), "wg-t1");
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:3::/64"), "wg-t0");
  // Published: node 3 after the settle time, then the commit.
  m->observe(plan(3, true, old_public_, 51820, stagedKey()));
  ASSERT_TRUE(eventually([&] { return currents() == 1; }));
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:3::/64"), "wg-t1");
  // Node 2's route was replaced once, not at every watch tick.
  size_t node2_moves = 0;
  for (const auto& c : net_.take({"ip", "-6", "route", "replace"})) {
    node2_moves += c[4] == "fd7a:5c00:0:2::/64" && c[6] == "wg-t1" ? 1 : 0;
  }
  EXPECT_EQ(node2_moves, 1U);
}

// A peer's own rotation (its `next`): configured with its next key at its
// next endpoint on this node's interface, the old key removed.
TEST_F(MeshRotationTest, APeersNextKeyReplacesItsOldOne) {
  auto m = member();
  json p = plan(1, false, old_public_, 51820);
  p["peers"][0]["next"] = {{"public_key", keyText(12)}, {"endpoint", "[fd00:5c::b]:51821"}};
  m->observe(p);
  ASSERT_TRUE(eventually([&] { return m->appliedVersion() == 1; }));
  const auto link = net_.link("wg-t0");
  ASSERT_EQ(link.peers.count(keyText(12)), 1U);
  EXPECT_EQ(link.peers.at(keyText(12)), "[fd00:5c::b]:51821\tfd7a:5c00:0:2::/64");
  EXPECT_EQ(link.peers.count(keyText(2)), 0U);
  EXPECT_FALSE(net_.has("wg-t1"));
}

// A 15-byte interface name not ending in 0 has no derived second name: the
// rotation is refused (counted once), the mesh keeps working.
TEST_F(MeshRotationTest, NoSecondNameNoRotation) {
  MeshMemberOptions o;
  o.mesh.interface = "a23456789012345";
  o.mesh.state_dir = dir_.path();
  o.mesh.link_exists = net_.exists();
  o.reconcile_every = 1s;
  o.resolve = [](const netdev::WgEndpoint& e) -> Result<netdev::WgEndpoint> { return e; };
  MeshMember m(o, metrics_, net_.runner());
  m.start();
  m.observe(plan(1, true, old_public_, 51820));
  ASSERT_TRUE(eventually([&] { return m.appliedVersion() == 1; }));
  auto& rotations = metrics_.counter("plfm_agent_mesh_rotations_total", "");
  EXPECT_TRUE(eventually([&] { return rotations.value({{"result", "refused"}}) == 1; }));
  EXPECT_FALSE(m.rotation());
  EXPECT_EQ(net_.routes().at("fd7a:5c00:0:2::/64"), "a23456789012345");
}

}  // namespace
}  // namespace plfm::agent
