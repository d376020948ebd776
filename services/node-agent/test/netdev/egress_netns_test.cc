// Egress with real packets (mesh.md "Egress"): a node namespace with the
// agent's guest filter (with guest IPv4) and egress NAT applied, an
// "internet" namespace behind an underlay bridge with a server on
// 2001:db8:ffff::80 and 203.0.113.80 (and, standing in for the underlay's
// private services, on 10.9.9.9 and 192.168.9.9), and two guests on vt-*
// veths with the addresses the agent gives (a cluster IPv6, a 10.42.1.x/32
// behind the on-link gateway 169.254.0.1). The internet has no route back to
// the cluster prefix or the guest subnet: a guest's flow comes back only
// through the node's NAT. The server answers each connection with the peer
// address it sees.
//
// Every namespace is held by a child that dies with the test (netns_holder.h).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>

#include "netdev/egress.h"
#include "netdev/firewall.h"
#include "plfm/testing/temp_dir.h"
#include "support/netns_holder.h"

namespace plfm::netdev {
namespace {

using testing::Netns;
using testing::sysctl;

constexpr int kPort = 8080;
constexpr const char* kEgress = "ul0";  // the node's underlay (egress) interface
constexpr const char* kNode4 = "192.0.2.1";
constexpr const char* kNode6 = "2001:db8:1::1";
constexpr const char* kWeb4 = "203.0.113.80";
constexpr const char* kWeb6 = "2001:db8:ffff::80";
constexpr const char* kPrivate4 = "10.9.9.9";  // in the default egress_denied4
constexpr const char* kHome4 = "192.168.9.9";  // too
constexpr const char* kCluster = "fd7a:5c00::/48";
constexpr const char* kSubnet = "10.42.1.0/24";

struct Guest {
  const char* ns;
  const char* tap;
  const char* address6;
  const char* address4;
};
constexpr Guest kGuests[] = {
    {"g1", "vt-g1", "fd7a:5c00:0:1:0:5:0:2", "10.42.1.2"},
    {"g2", "vt-g2", "fd7a:5c00:0:1:0:7:0:2", "10.42.1.3"},
};

// One address of either family and a port, as a sockaddr.
struct Endpoint {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family = 0;
};
Endpoint endpoint(const std::string& ip, int port) {
  Endpoint e;
  if (ip.find(':') != std::string::npos) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&e.ss);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET6, ip.c_str(), &a->sin6_addr);
    e.len = sizeof(sockaddr_in6);
    e.family = AF_INET6;
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&e.ss);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, ip.c_str(), &a->sin_addr);
    e.len = sizeof(sockaddr_in);
    e.family = AF_INET;
  }
  return e;
}

// Dual-stack [::]:kPort; writes the peer's address ("::ffff:192.0.2.1" for
// IPv4) to every connection.
int whoamiServer() {
  const int s = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  const int zero = 0;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
  const Endpoint any = endpoint("::", kPort);
  if (::bind(s, reinterpret_cast<const sockaddr*>(&any.ss), any.len) != 0 || ::listen(s, 16) != 0) {
    return 1;
  }
  for (;;) {
    sockaddr_in6 peer{};
    socklen_t len = sizeof peer;
    const int c = ::accept4(s, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC);
    if (c < 0) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET6, &peer.sin6_addr, buf, sizeof buf);
    (void)!::write(c, buf, std::strlen(buf));
    ::close(c);
  }
}

// Connects from `src` (any when empty) to dst:kPort and reads the answer
// within 1.5 s into `seen`: 0 when it did.
int probe(const std::string& src, const std::string& dst, std::string* seen) {
  const Endpoint d = endpoint(dst, kPort);
  const int s = ::socket(d.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (!src.empty()) {
    const Endpoint b = endpoint(src, 0);
    if (::bind(s, reinterpret_cast<const sockaddr*>(&b.ss), b.len) != 0) return 2;
  }
  if (::connect(s, reinterpret_cast<const sockaddr*>(&d.ss), d.len) != 0 && errno != EINPROGRESS) {
    return 3;
  }
  pollfd p{s, POLLIN, 0};
  if (::poll(&p, 1, 1500) != 1) return 1;
  char buf[INET6_ADDRSTRLEN] = {};
  const ssize_t n = ::read(s, buf, sizeof buf - 1);
  if (n <= 0) return 1;
  if (seen != nullptr) *seen = std::string(buf, static_cast<size_t>(n));
  return 0;
}

// Sends three UDP datagrams from `src` to dst:kPort; 0 when sent.
int udpSend(const std::string& src, const std::string& dst) {
  const Endpoint d = endpoint(dst, kPort);
  const int s = ::socket(d.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  const Endpoint b = endpoint(src, 0);
  if (::bind(s, reinterpret_cast<const sockaddr*>(&b.ss), b.len) != 0) return 2;
  int bad = 0;
  for (int i = 0; i < 3; ++i) {
    if (::sendto(s, "x", 1, 0, reinterpret_cast<const sockaddr*>(&d.ss), d.len) != 1) bad = 1;
  }
  ::usleep(200'000);
  return bad;
}

class EgressNetns : public testing::NetnsSuite<EgressNetns> {
 public:
  static constexpr const char* kDirName = "egress";

 protected:
  friend class testing::NetnsSuite<EgressNetns>;

  static Result<void> build() {
    PLFM_TRY(startAll({"node", "bridge", "inet", "g1", "g2"},
                      [](std::string_view n) { return n == "node"; }));
    Netns& node = ns("node");
    Netns& bridge = ns("bridge");
    Netns& inet = ns("inet");
    // The underlay: a bridge joining the node and the internet's router.
    PLFM_TRY(bridge.run({"ip", "link", "add", "br0", "type", "bridge"}));
    PLFM_TRY(bridge.run({"ip", "link", "set", "br0", "up"}));
    for (auto [end, far, name] :
         {std::tuple{&node, "p-node", kEgress}, std::tuple{&inet, "p-inet", "eth0"}}) {
      PLFM_TRY(bridge.run({"ip", "link", "add", far, "type", "veth", "peer", "name", name, "netns",
                           std::to_string(end->pid())}));
      PLFM_TRY(bridge.run({"ip", "link", "set", far, "master", "br0", "up"}));
      PLFM_TRY(end->run({"ip", "link", "set", name, "up"}));
    }
    PLFM_TRY(node.run({"ip", "addr", "add", std::string(kNode4) + "/24", "dev", kEgress}));
    PLFM_TRY(node.run(
        {"ip", "-6", "addr", "add", std::string(kNode6) + "/64", "dev", kEgress, "nodad"}));
    PLFM_TRY(node.run({"ip", "route", "add", "default", "via", "192.0.2.254"}));
    PLFM_TRY(node.run({"ip", "-6", "route", "add", "default", "via", "2001:db8:1::fe"}));
    PLFM_TRY(inet.run({"ip", "addr", "add", "192.0.2.254/24", "dev", "eth0"}));
    PLFM_TRY(inet.run({"ip", "-6", "addr", "add", "2001:db8:1::fe/64", "dev", "eth0", "nodad"}));
    for (const char* a : {kWeb4, kPrivate4, kHome4}) {
      PLFM_TRY(inet.run({"ip", "addr", "add", std::string(a) + "/32", "dev", "lo"}));
    }
    PLFM_TRY(inet.run({"ip", "-6", "addr", "add", std::string(kWeb6) + "/128", "dev", "lo"}));
    inet.background(whoamiServer);
    // Counts the UDP that reaches the internet on kPort, whatever its source.
    const std::string count =
        "add table inet count; add chain inet count in { type filter hook input priority 0; }; "
        "add rule inet count in udp dport " +
        std::to_string(kPort) + " counter";
    PLFM_TRY(inet.run({"nft", count}));
    node.background(whoamiServer);  // the host's own service
    // The guests, as the agent sets up a tap (netdev/tap.h).
    for (const Guest& g : kGuests) {
      Netns& guest = ns(g.ns);
      PLFM_TRY(node.run({"ip", "link", "add", g.tap, "type", "veth", "peer", "name", "eth0",
                         "netns", std::to_string(guest.pid())}));
      PLFM_TRY(node.run({"ip", "-6", "addr", "add", "fe80::1/64", "dev", g.tap, "nodad"}));
      PLFM_TRY(node.run({"ip", "addr", "add", "169.254.0.1/32", "dev", g.tap}));
      PLFM_TRY(node.run({"ip", "link", "set", g.tap, "up"}));
      PLFM_TRY(
          node.run({"ip", "-6", "route", "add", std::string(g.address6) + "/128", "dev", g.tap}));
      PLFM_TRY(node.run({"ip", "route", "add", std::string(g.address4) + "/32", "dev", g.tap}));
      PLFM_TRY(guest.run(
          {"ip", "-6", "addr", "add", std::string(g.address6) + "/128", "dev", "eth0", "nodad"}));
      PLFM_TRY(guest.run({"ip", "addr", "add", std::string(g.address4) + "/32", "dev", "eth0"}));
      // A second address only to try spoofing with.
      PLFM_TRY(guest.run({"ip", "addr", "add", "10.42.1.99/32", "dev", "lo"}));
      PLFM_TRY(guest.run({"ip", "link", "set", "eth0", "up"}));
      PLFM_TRY(guest.run({"ip", "-6", "route", "add", "default", "via", "fe80::1", "dev", "eth0"}));
      PLFM_TRY(guest.run(
          {"ip", "route", "add", "default", "via", "169.254.0.1", "dev", "eth0", "onlink"}));
      guest.background(whoamiServer);
    }
    // The agent's rules: the guest filter with guest IPv4, and the NAT.
    FirewallPolicy policy;
    policy.egress_denied = {*parseIpv6Prefix("fc00::/7")};
    for (const char* p :
         {"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"}) {
      policy.egress_denied4.push_back(*parseIpv4Prefix(p));
    }
    policy.guest_subnet4 = *parseIpv4Prefix(kSubnet);
    PLFM_ASSIGN_OR_RETURN(policy.mesh, parseMeshFilter(kCluster, "wg-e"));
    std::vector<GuestFilter> guests;
    for (const Guest& g : kGuests) {
      PLFM_ASSIGN_OR_RETURN(GuestFilter f,
                            parseGuestFilter(g.tap, g.address6, "org:x", g.address4));
      guests.push_back(std::move(f));
    }
    // PLFM_EGRESS_UNFILTERED=1 leaves the guest filter out: the isolation
    // checks must then fail and the controls pass.
    if (std::getenv("PLFM_EGRESS_UNFILTERED") != nullptr) return applyEgress(Egress6Mode::kNat66);
    const std::string work = dir_->file("filter");
    if (node.inside([&] { return NftFirewall(work, "nft", policy).apply(guests) ? 0 : 1; }) != 0) {
      return Error(errc::kIo, "nft refused the guest filter: " + tailFile(work + "/nft.log", 10));
    }
    return applyEgress(Egress6Mode::kNat66);
  }

  static Result<void> applyEgress(Egress6Mode mode) {
    EgressPolicy e;
    e.egress6 = mode;
    e.interface4 = kEgress;
    e.interface6 = kEgress;
    e.cluster_prefix = *parseIpv6Prefix(kCluster);
    e.guest_subnet4 = *parseIpv4Prefix(kSubnet);
    const std::string work = dir_->file("egress");
    if (ns("node").inside([&] { return NftEgress(work).apply(e) ? 0 : 1; }) != 0) {
      return Error(errc::kIo, "nft refused the egress NAT: " + tailFile(work + "/nft.log", 10));
    }
    return plfm::ok();
  }

  // The UDP packets that reached the internet so far.
  static long udpArrived() {
    const std::string out = dir_->file("count.out");
    ::unlink(out.c_str());
    (void)ns("inet").run({"nft", "list", "chain", "inet", "count", "in"}, out);
    const std::string text = readFile(out).value_or("");
    const size_t at = text.find("packets ");
    return at == std::string::npos ? -1 : std::atol(text.c_str() + at + 8);
  }

  // The peer address the server at `dst` saw, or "" when no answer came.
  static std::string seen(const std::string& from, const std::string& dst,
                          const std::string& src = {}) {
    const std::string out = dir_->file("seen-" + from);
    ::unlink(out.c_str());
    const int rc = ns(from).inside([&] {
      std::string s;
      if (probe(src, dst, &s) != 0) return 1;
      return writeFileAtomic(out, s, 0600) ? 0 : 1;
    });
    return rc == 0 ? readFile(out).value_or("") : "";
  }
};

TEST_F(EgressNetns, AGuestReachesTheInternetOverIpv4WithTheNodesAddress) {
  EXPECT_EQ(seen("g1", kWeb4), std::string("::ffff:") + kNode4);
  EXPECT_EQ(seen("g2", kWeb4), std::string("::ffff:") + kNode4);
}

TEST_F(EgressNetns, AGuestReachesTheInternetOverIpv6ThroughNat66) {
  EXPECT_EQ(seen("g1", kWeb6), kNode6);
}

TEST_F(EgressNetns, DeniedRangesTheHostAndOtherGuestsAreUnreachableOverIpv4) {
  ASSERT_NE(seen("inet", kPrivate4), "");  // the servers are up
  ASSERT_NE(seen("node", kNode4), "");
  EXPECT_EQ(seen("g1", kPrivate4), "");
  EXPECT_EQ(seen("g1", kHome4), "");
  EXPECT_EQ(seen("g1", "169.254.0.1"), "");  // the host, by the gateway
  EXPECT_EQ(seen("g1", kNode4), "");         // the host, by its underlay address
  EXPECT_EQ(seen("g1", "10.42.1.3"), "");    // another guest
  // The node itself reaches the guest (its own traffic is not forwarded).
  EXPECT_NE(seen("node", "10.42.1.3"), "");
}

TEST_F(EgressNetns, AGuestCannotSpoofAnotherIpv4Source) {
  // A made-up address of its subnet (the NAT would hide it): nothing leaves.
  const long before = udpArrived();
  ASSERT_GE(before, 0);
  EXPECT_EQ(ns("g1").inside([] { return udpSend("10.42.1.99", kWeb4); }), 0);
  EXPECT_EQ(udpArrived(), before);
  // Its own address, for contrast.
  EXPECT_EQ(ns("g1").inside([] { return udpSend(kGuests[0].address4, kWeb4); }), 0);
  EXPECT_EQ(udpArrived(), before + 3);
}

TEST_F(EgressNetns, Egress6OffDropsIpv6AndRouteForwardsTheGuestsOwnAddress) {
  ASSERT_TRUE(applyEgress(Egress6Mode::kOff));
  EXPECT_EQ(seen("g1", kWeb6), "");
  EXPECT_EQ(seen("g1", kWeb4), std::string("::ffff:") + kNode4);  // IPv4 is not affected
  // route: the operator routes the cluster prefix to the node.
  ASSERT_TRUE(ns("inet").run({"ip", "-6", "route", "add", kCluster, "via", kNode6}));
  ASSERT_TRUE(applyEgress(Egress6Mode::kRoute));
  EXPECT_EQ(seen("g1", kWeb6), kGuests[0].address6);
  ASSERT_TRUE(ns("inet").run({"ip", "-6", "route", "del", kCluster, "via", kNode6}));
  ASSERT_TRUE(applyEgress(Egress6Mode::kNat66));
  EXPECT_EQ(seen("g1", kWeb6), kNode6);
}

}  // namespace
}  // namespace plfm::netdev
