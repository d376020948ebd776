// The guest filter across hosts with real packets (mesh.md, "Isolation across
// hosts"): two "hosts" in network namespaces joined by a veth pair named like
// the mesh interface, each routing the other's /64 over it as WireGuard would;
// "guests" in namespaces of their own behind veths named like taps (vt-*); an
// "outside" namespace on host A's underlay side; and the agent's ruleset
// (NftFirewall with a mesh) applied in each host. No WireGuard is needed: the
// filter sees only the interface's name and the inner packets, and the hosts'
// own stacks stand in for a node that sends without any filter (a spoofing or
// compromised node).
//
// Every namespace is held by a forked child that dies with the test process
// (PR_SET_PDEATHSIG), so the namespaces go even when the test crashes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <regex>

#include "netdev/firewall.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/netns_holder.h"

namespace plfm::netdev {
namespace {

using testing::Netns;
using testing::sysctl;

constexpr const char* kMesh = "wg-t";
constexpr const char* kCluster = "fd7a:5c00::/48";
constexpr int kTcpPort = 7000;
constexpr int kUdpPort = 7001;

// Host A: node 1; host B: node 2. Org x has tag 5, org y tag 7.
constexpr const char* kHostA = "fd7a:5c00:0:1::1";
constexpr const char* kHostB = "fd7a:5c00:0:2::1";
constexpr const char* kA1 = "fd7a:5c00:0:1:0:5:0:2";  // org x
constexpr const char* kA2 = "fd7a:5c00:0:1:0:7:0:2";  // org y
constexpr const char* kA0 = "fd7a:5c00:0:1::3";       // org x, the old layout (tag 0)
constexpr const char* kB1 = "fd7a:5c00:0:2:0:5:0:2";  // org x
constexpr const char* kB2 = "fd7a:5c00:0:2:0:7:0:2";  // org y
// Host A's own stack sending as a made-up org x instance of its /64.
constexpr const char* kForgedOnA = "fd7a:5c00:0:1:0:5:0:9";
// An org x source of node B's /64: genuine from B over the mesh, forged
// from the outside.
constexpr const char* kOrgXOfB = "fd7a:5c00:0:2:0:5:0:9";
constexpr const char* kOutside = "fd00:99::1";   // host A's allowed inbound source
constexpr const char* kOtherOfB = "fd00:5c::b";  // host B's address outside the cluster

sockaddr_in6 socketAddress(const std::string& ip, int port) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET6, ip.c_str(), &a.sin6_addr);
  return a;
}

const sockaddr* sa(const sockaddr_in6& a) { return reinterpret_cast<const sockaddr*>(&a); }

// Answers "hi" to every TCP connection on [::]:kTcpPort.
int tcpServer() {
  const int s = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  const sockaddr_in6 any = socketAddress("::", kTcpPort);
  if (::bind(s, sa(any), sizeof any) != 0 || ::listen(s, 16) != 0) return 1;
  for (;;) {
    const int c = ::accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    (void)!::write(c, "hi", 2);
    ::close(c);
  }
}

// Connects from `src` (any when empty) to [dst]:kTcpPort and reads the
// greeting within 1.5 s each: 0 when it did.
int tcpProbe(const std::string& src, const std::string& dst) {
  const int s = ::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (!src.empty()) {
    const sockaddr_in6 b = socketAddress(src, 0);
    if (::bind(s, sa(b), sizeof b) != 0) return 2;
  }
  const sockaddr_in6 d = socketAddress(dst, kTcpPort);
  if (::connect(s, sa(d), sizeof d) != 0 && errno != EINPROGRESS) return 3;
  pollfd p{s, POLLIN, 0};
  if (::poll(&p, 1, 1500) != 1) return 1;
  char buf[2] = {};
  return ::read(s, buf, 2) == 2 && std::memcmp(buf, "hi", 2) == 0 ? 0 : 1;
}

struct Guest {
  const char* ns;
  const char* host;
  const char* tap;
  const char* address;
  const char* org;
};

constexpr Guest kGuests[] = {
    {"a1", "A", "vt-a1", kA1, "org:x"}, {"a2", "A", "vt-a2", kA2, "org:y"},
    {"a0", "A", "vt-a0", kA0, "org:x"}, {"b1", "B", "vt-b1", kB1, "org:x"},
    {"b2", "B", "vt-b2", kB2, "org:y"},
};

class FirewallMesh : public testing::NetnsSuite<FirewallMesh> {
 public:
  static constexpr const char* kDirName = "fwmesh";

 protected:
  friend class testing::NetnsSuite<FirewallMesh>;

  static Result<void> build() {
    PLFM_TRY(startAll({"A", "B", "out", "a1", "a2", "a0", "b1", "b2"},
                      [](std::string_view n) { return n == "A" || n == "B"; }));
    Netns& a = ns("A");
    Netns& b = ns("B");
    // The mesh link: one name on both ends, each host's ::1 on it, the peer's
    // /64 routed over it.
    PLFM_TRY(a.run({"ip", "link", "add", kMesh, "type", "veth", "peer", "name", kMesh, "netns",
                    std::to_string(b.pid())}));
    for (auto [self, me, peer] : {std::tuple{&a, kHostA, kHostB}, std::tuple{&b, kHostB, kHostA}}) {
      const std::string peer_prefix = std::string(peer).substr(0, std::strlen(peer) - 1) + "/64";
      PLFM_TRY(
          self->run({"ip", "-6", "addr", "add", std::string(me) + "/128", "dev", kMesh, "nodad"}));
      PLFM_TRY(self->run({"ip", "link", "set", kMesh, "up"}));
      PLFM_TRY(self->run({"ip", "-6", "route", "add", std::string(peer) + "/128", "dev", kMesh}));
      PLFM_TRY(self->run({"ip", "-6", "route", "add", peer_prefix, "via", peer, "dev", kMesh}));
    }
    PLFM_TRY(a.run({"ip", "-6", "route", "add", "fd00:5c::/64", "via", kHostB, "dev", kMesh}));
    for (const char* addr : {kForgedOnA}) {
      PLFM_TRY(a.run({"ip", "-6", "addr", "add", std::string(addr) + "/128", "dev", "lo"}));
    }
    for (const char* addr : {kOutside, kOtherOfB, kOrgXOfB}) {
      PLFM_TRY(b.run({"ip", "-6", "addr", "add", std::string(addr) + "/128", "dev", "lo"}));
    }
    // The outside, on host A's underlay side.
    Netns& out = ns("out");
    PLFM_TRY(a.run({"ip", "link", "add", "ul0", "type", "veth", "peer", "name", "eth0", "netns",
                    std::to_string(out.pid())}));
    PLFM_TRY(a.run({"ip", "-6", "addr", "add", "fd00:99::a/64", "dev", "ul0", "nodad"}));
    PLFM_TRY(a.run({"ip", "link", "set", "ul0", "up"}));
    PLFM_TRY(out.run(
        {"ip", "-6", "addr", "add", std::string(kOutside) + "/64", "dev", "eth0", "nodad"}));
    PLFM_TRY(out.run({"ip", "-6", "addr", "add", std::string(kOrgXOfB) + "/128", "dev", "lo"}));
    PLFM_TRY(out.run({"ip", "link", "set", "eth0", "up"}));
    PLFM_TRY(out.run({"ip", "-6", "route", "add", "default", "via", "fd00:99::a", "dev", "eth0"}));
    // The guests: a veth named like a tap, fe80::1 on the host's end, the
    // guest's /128 routed to it (as the agent does for a tap).
    for (const Guest& g : kGuests) {
      Netns& host = ns(g.host);
      Netns& guest = ns(g.ns);
      PLFM_TRY(host.run({"ip", "link", "add", g.tap, "type", "veth", "peer", "name", "eth0",
                         "netns", std::to_string(guest.pid())}));
      PLFM_TRY(host.run({"ip", "-6", "addr", "add", "fe80::1/64", "dev", g.tap, "nodad"}));
      PLFM_TRY(host.run({"ip", "link", "set", g.tap, "up"}));
      PLFM_TRY(
          host.run({"ip", "-6", "route", "add", std::string(g.address) + "/128", "dev", g.tap}));
      PLFM_TRY(guest.run(
          {"ip", "-6", "addr", "add", std::string(g.address) + "/128", "dev", "eth0", "nodad"}));
      PLFM_TRY(guest.run({"ip", "link", "set", "eth0", "up"}));
      PLFM_TRY(guest.run({"ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"}));
      guest.background(tcpServer);
    }
    // A hop narrower than the mesh: a guest's packets to b1 above 1280 bytes
    // make host B send Packet Too Big back across the mesh.
    PLFM_TRY(b.run({"ip", "link", "set", "vt-b1", "mtu", "1280"}));
    b.background(tcpServer);
    // The agent's ruleset in each host. PLFM_FIREWALL_MESH_UNFILTERED=1 leaves
    // it out: the isolation checks must then fail and the controls pass.
    if (std::getenv("PLFM_FIREWALL_MESH_UNFILTERED") != nullptr) return plfm::ok();
    for (const char* host : {"A", "B"}) {
      FirewallPolicy policy;
      if (std::string_view(host) == "A") {
        policy.inbound_allowed = {*parseIpv6Prefix("fd00:99::/64")};
      }
      policy.egress_denied = {*parseIpv6Prefix("fc00::/7")};
      std::vector<GuestFilter> guests;
      for (const Guest& g : kGuests) {
        if (std::string_view(g.host) == host) {
          PLFM_ASSIGN_OR_RETURN(GuestFilter f, parseGuestFilter(g.tap, g.address, g.org));
          guests.push_back(std::move(f));
        }
      }
      // Both slots of a key rotation are named (the second one absent here).
      PLFM_ASSIGN_OR_RETURN(MeshFilter mesh, parseMeshFilter(kCluster, kMesh, "wg-t1"));
      const std::string work = dir_->file(host);
      if (ns(host).inside([&] {
            NftFirewall fw(work, "nft", policy);
            (void)fw.setMesh(mesh);
            return fw.apply(guests) ? 0 : 1;
          }) != 0) {
        return Error(errc::kIo, std::string("nft refused the mesh ruleset in host ") + host + ": " +
                                    tailFile(work + "/nft.log", 10));
      }
    }
    return plfm::ok();
  }

  // TCP from namespace `from` (source `src`, or the default) to `dst`.
  static bool connects(const std::string& from, const std::string& dst,
                       const std::string& src = {}) {
    return ns(from).inside([&] { return tcpProbe(src, dst); }) == 0;
  }

  static bool pings(const std::string& from, const std::string& dst) {
    return ns(from).run({"ping", "-6", "-c", "1", "-W", "2", dst}).has_value();
  }

  // Whether a UDP datagram from `src` in namespace `from` reaches guest
  // `to` at `dst` (with that source).
  static bool udpArrives(const std::string& from, const std::string& src, const std::string& to,
                         const std::string& dst) {
    int ready[2];
    if (::pipe(ready) != 0) return false;
    const pid_t receiver = ns(to).fork([&] {
      ::close(ready[0]);
      const int s = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      const sockaddr_in6 any = socketAddress("::", kUdpPort);
      if (::bind(s, sa(any), sizeof any) != 0) return 2;
      timeval tv{1, 500000};
      ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      (void)!::write(ready[1], "r", 1);
      const sockaddr_in6 want = socketAddress(src, 0);
      for (;;) {
        char buf[8];
        sockaddr_in6 peer{};
        socklen_t len = sizeof peer;
        if (::recvfrom(s, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&peer), &len) < 0) {
          return 1;
        }
        if (std::memcmp(&peer.sin6_addr, &want.sin6_addr, sizeof want.sin6_addr) == 0) return 0;
      }
    });
    ::close(ready[1]);
    char c = 0;
    const bool started = ::read(ready[0], &c, 1) == 1;
    ::close(ready[0]);
    if (started) {
      (void)ns(from).inside([&] {
        const int s = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        const sockaddr_in6 b = socketAddress(src, 0);
        if (::bind(s, sa(b), sizeof b) != 0) return 2;
        const sockaddr_in6 d = socketAddress(dst, kUdpPort);
        for (int i = 0; i < 3; ++i) (void)::sendto(s, "x", 1, 0, sa(d), sizeof d);
        return 0;
      });
    }
    int status = 0;
    ::waitpid(receiver, &status, 0);
    return started && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  // The packets counted in one chain of a host's table.
  static long drops(const std::string& host, const std::string& chain) {
    const std::string out = dir_->file("count.out");
    (void)std::remove(out.c_str());
    (void)ns(host).run({"nft", "list", "chain", "inet", "plfm_agent", chain}, out);
    const std::string text = readFile(out).value_or("");
    long sum = 0;
    const std::regex packets("packets ([0-9]+)");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), packets);
         it != std::sregex_iterator(); ++it) {
      sum += std::stol((*it)[1]);
    }
    return sum;
  }
};

TEST_F(FirewallMesh, TheSameOrgConnectsAcrossHosts) {
  EXPECT_TRUE(connects("a1", kB1));
  EXPECT_TRUE(connects("b1", kA1));
  EXPECT_TRUE(pings("a1", kB1));
  EXPECT_TRUE(connects("a2", kB2));
}

TEST_F(FirewallMesh, AnotherOrgAcrossHostsIsDroppedAtTheSender) {
  const long a_before = drops("A", "tag_5_send");
  const long b_before = drops("B", "tag_7_send");
  EXPECT_FALSE(connects("a1", kB2));
  EXPECT_FALSE(pings("a1", kB2));
  EXPECT_FALSE(connects("b2", kA1));
  EXPECT_GT(drops("A", "tag_5_send"), a_before) << "host A's sending rule dropped it";
  EXPECT_GT(drops("B", "tag_7_send"), b_before) << "host B's sending rule dropped it";
}

TEST_F(FirewallMesh, AnotherOrgIsDroppedAtTheReceiverWhenTheSenderDoesNotFilter) {
  // Host A's own stack is a sender without rules: an org x source to org y's
  // b2 is dropped by host B; to org x's b1 it connects.
  const long before = drops("B", "to_instance");
  EXPECT_FALSE(connects("A", kB2, kForgedOnA));
  EXPECT_GT(drops("B", "to_instance"), before);
  EXPECT_TRUE(connects("A", kB1, kForgedOnA));
}

TEST_F(FirewallMesh, ANodeHostAddressReachesGuestsOfEveryOrg) {
  EXPECT_TRUE(connects("A", kB1, kHostA));
  EXPECT_TRUE(connects("A", kB2, kHostA));
  EXPECT_TRUE(connects("B", kA0, kHostB));  // an old-layout guest too
}

TEST_F(FirewallMesh, AGuestCannotReachAnotherHost) {
  ASSERT_TRUE(connects("B", kHostB));  // host B's service is up
  ASSERT_TRUE(connects("B", kOtherOfB));
  EXPECT_FALSE(connects("a1", kHostB));
  EXPECT_FALSE(connects("a0", kHostB));
  EXPECT_FALSE(connects("a1", kOtherOfB));
  // Without host A's rules (its own stack): host B takes only ICMPv6 and
  // replies from the mesh.
  EXPECT_FALSE(connects("A", kHostB, kForgedOnA));
  EXPECT_FALSE(connects("A", kHostB, kHostA));
  EXPECT_FALSE(connects("A", kOtherOfB, kHostA));
  EXPECT_TRUE(pings("A", kHostB));
}

TEST_F(FirewallMesh, TheMeshCarriesOnlyClusterSourcesAndClusterSourcesOnlyComeFromIt) {
  // fd00:99::1 is an allowed inbound source of host A: from the outside it
  // reaches a1; from the mesh it is dropped.
  EXPECT_TRUE(udpArrives("out", kOutside, "a1", kA1));
  const long before = drops("A", "mesh_source");
  EXPECT_FALSE(udpArrives("B", kOutside, "a1", kA1));
  EXPECT_GT(drops("A", "mesh_source"), before);
  // An org x source of node B's /64: from the mesh it reaches a1; forged
  // from the outside it is dropped.
  EXPECT_TRUE(udpArrives("B", kOrgXOfB, "a1", kA1));
  EXPECT_FALSE(udpArrives("out", kOrgXOfB, "a1", kA1));
}

TEST_F(FirewallMesh, OldLayoutGuestsKeepTheirOrgHereAndReachNoOtherHost) {
  EXPECT_TRUE(connects("a0", kA1));
  EXPECT_TRUE(connects("a1", kA0));
  EXPECT_FALSE(connects("a2", kA0));
  EXPECT_FALSE(connects("a0", kA2));
  EXPECT_FALSE(connects("a0", kB1));
}

TEST_F(FirewallMesh, PacketTooBigCrossesTheMesh) {
  const std::string out = dir_->file("ping.out");
  (void)ns("a1").run(
      {"ping", "-6", "-c", "2", "-i", "0.3", "-W", "2", "-M", "do", "-s", "1300", kB1}, out);
  EXPECT_NE(readFile(out).value_or("").find("mtu=1280"), std::string::npos)
      << readFile(out).value_or("");
  EXPECT_TRUE(pings("a1", kB1));
}

}  // namespace
}  // namespace plfm::netdev
