// The DNS responder over real sockets in a private network namespace: the
// host address and two guests' addresses (orgs 7 and 9) on lo, the test DNS
// server as the upstream. Needs root (skips otherwise).
#include "agent/dns_responder.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "plfm/testing/dns_server.h"
#include "support/dns_query.h"
#include "support/netns_child.h"

namespace plfm::agent {
namespace {

namespace dns = netdev::dns;
using Bytes = std::vector<std::uint8_t>;

constexpr const char* kHost = "fd7a:0:0:1::1";
constexpr const char* kGuest7 = "fd7a:0:0:1:0:7:0:2";
constexpr const char* kGuest9 = "fd7a:0:0:1:0:9:0:2";

in6_addr addr(const char* text) {
  in6_addr a{};
  ::inet_pton(AF_INET6, text, &a);
  return a;
}

Bytes query(const std::string& name, std::uint16_t type, std::uint16_t id) {
  return netdev::testing::dnsQuery(name, type, 0, id);
}

sockaddr_in6 v6(const char* text, std::uint16_t port) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = addr(text);
  sa.sin6_port = htons(port);
  return sa;
}

// Sends `q` from `source` to the responder over UDP; the reply or empty.
// Retransmits like a stub resolver (a fresh namespace may drop the first
// datagram while its addresses settle).
Bytes ask(const char* source, std::uint16_t port, const Bytes& q) {
  const int fd = ::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 from = v6(source, 0);
  sockaddr_in6 to = v6(kHost, port);
  Bytes out(4096);
  ssize_t n = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0) {
    for (int attempt = 0; attempt < 3 && n < 0; ++attempt) {
      pollfd p{fd, POLLIN, 0};
      if (::sendto(fd, q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to) < 0) {
        continue;
      }
      if (::poll(&p, 1, 1000) > 0) n = ::recv(fd, out.data(), out.size(), 0);
    }
  }
  ::close(fd);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

// The same over TCP.
Bytes askTcp(const char* source, std::uint16_t port, const Bytes& q) {
  const int fd = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 from = v6(source, 0);
  sockaddr_in6 to = v6(kHost, port);
  Bytes msg{static_cast<std::uint8_t>(q.size() >> 8), static_cast<std::uint8_t>(q.size())};
  msg.insert(msg.end(), q.begin(), q.end());
  Bytes out(4096);
  std::size_t got = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) == 0 &&
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0 &&
      ::write(fd, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size())) {
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 3000) <= 0) break;
      const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
      if (n <= 0) break;
      got += static_cast<std::size_t>(n);
      if (got >= 2 && got >= 2U + ((out[0] << 8) | out[1])) break;
    }
  }
  ::close(fd);
  if (got < 2) return {};
  return Bytes(out.begin() + 2, out.begin() + static_cast<std::ptrdiff_t>(got));
}

std::uint8_t rcode(const Bytes& r) { return r.size() > 3 ? r[3] & 0x0f : 0xff; }
std::uint16_t answers(const Bytes& r) {
  return r.size() > 7 ? static_cast<std::uint16_t>((r[6] << 8) | r[7]) : 0xffff;
}
std::uint16_t id(const Bytes& r) {
  return r.size() > 1 ? static_cast<std::uint16_t>((r[0] << 8) | r[1]) : 0;
}

int check(int line, bool ok) {
  if (!ok) std::fprintf(stderr, "check at line %d failed\n", line);
  return ok ? 0 : 1;
}

int setUpLo() {
  int failed = std::system("ip link set lo up") != 0 ? 1 : 0;
  for (const char* a : {kHost, kGuest7, kGuest9}) {
    const std::string cmd = std::string("ip -6 addr add ") + a + "/128 dev lo nodad";
    failed += std::system(cmd.c_str()) != 0 ? 1 : 0;
  }
  return failed;
}

std::unique_ptr<DnsResponder> startResponder(std::vector<DnsUpstream> upstreams) {
  DnsResponderConfig config;
  config.listen = addr(kHost);
  config.port = 0;
  config.upstreams = std::move(upstreams);
  config.upstream_timeout = std::chrono::milliseconds(300);
  config.org_tag_of = [](const in6_addr& a) {
    return (std::uint32_t{a.s6_addr[8]} << 24) | (std::uint32_t{a.s6_addr[9]} << 16) |
           (std::uint32_t{a.s6_addr[10]} << 8) | std::uint32_t{a.s6_addr[11]};
  };
  auto r = DnsResponder::start(std::move(config));
  if (!r) return nullptr;
  (*r)->setTable(dns::ServiceTable({{7, "hello", "prod", "web", {addr("fd7a:0:0:1:0:7:0:5")}}}));
  return std::move(*r);
}

bool root() { return ::geteuid() == 0; }

TEST(DnsResponder, AnswersInternalNamesByTheSourcesOrg) {
  if (!root()) GTEST_SKIP() << "needs root (a network namespace)";
  const int failed = netdev::testing::inNetns([] {
    int f = setUpLo();
    auto r = startResponder({});
    if (!r) return f + 1;
    const Bytes mine = ask(kGuest7, r->port(), query("web.hello.internal", dns::kTypeAaaa, 7));
    f += (rcode(mine) == dns::kRcodeNoError && answers(mine) == 1 && id(mine) == 7) ? 0 : 1;
    const Bytes other = ask(kGuest9, r->port(), query("web.hello.internal", dns::kTypeAaaa, 9));
    f += rcode(other) == dns::kRcodeNxDomain ? 0 : 1;
    const Bytes host = ask(kHost, r->port(), query("web.hello.internal", dns::kTypeAaaa, 1));
    f += rcode(host) == dns::kRcodeNxDomain ? 0 : 1;  // tag 0
    const Bytes tcp = askTcp(kGuest7, r->port(), query("WEB.hello.internal", dns::kTypeAaaa, 3));
    f += (rcode(tcp) == dns::kRcodeNoError && answers(tcp) == 1 && id(tcp) == 3) ? 0 : 1;
    const Bytes bad = ask(kGuest7, r->port(), Bytes{0, 5, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0});
    f += (rcode(bad) == dns::kRcodeFormErr && id(bad) == 5) ? 0 : 1;
    // Still serving after the malformed query.
    f += answers(ask(kGuest7, r->port(), query("web.hello.internal", dns::kTypeAaaa, 8))) == 1 ? 0
                                                                                               : 1;
    // No upstream: SERVFAIL for other names.
    f += rcode(ask(kGuest7, r->port(), query("example.com", 16, 2))) == dns::kRcodeServFail ? 0 : 1;
    return f;
  });
  EXPECT_EQ(failed, 0);
}

// A node without peers has no mesh interface: the host address is put on
// lo, so guests' queries to it are delivered; the mesh may later put the same
// address on its own interface.
TEST(DnsResponder, MakesTheHostAddressLocalWithoutAMeshInterface) {
  if (!root()) GTEST_SKIP() << "needs root (a network namespace)";
  const int failed = netdev::testing::inNetns([] {
    const auto run = netdev::realCommandRunner();
    int f = run({"ip", "link", "set", "lo", "up"}) ? 0 : 1;
    f += run({"ip", "-6", "addr", "add", std::string(kGuest7) + "/128", "dev", "lo", "nodad"}) ? 0
                                                                                               : 1;
    f += makeHostAddressLocal(run, "ip", addr(kHost)) ? 0 : 1;
    f += makeHostAddressLocal(run, "ip", addr(kHost)) ? 0 : 1;  // again: no error
    auto shown = run({"ip", "-6", "-o", "addr", "show", "dev", "lo"});
    f += (shown && shown->find(std::string(kHost) + "/128") != std::string::npos) ? 0 : 1;
    auto routes = run({"ip", "-6", "route", "show", "table", "local"});
    f += (routes && routes->find(std::string("local ") + kHost) != std::string::npos) ? 0 : 1;
    // The same address on a second link (as the mesh does) still works.
    f += run({"ip", "link", "add", "dnsm0", "type", "veth", "peer", "name", "dnsm1"}) ? 0 : 1;
    f += run({"ip", "-6", "addr", "replace", std::string(kHost) + "/128", "dev", "dnsm0"}) ? 0 : 1;
    auto r = startResponder({});
    if (!r) return f + 1;
    f += answers(ask(kGuest7, r->port(), query("web.hello.internal", dns::kTypeAaaa, 4))) == 1 ? 0
                                                                                               : 1;
    // Released (--stop-instances-on-exit): gone from lo, twice is fine.
    releaseHostAddress(run, "ip", addr(kHost));
    releaseHostAddress(run, "ip", addr(kHost));
    shown = run({"ip", "-6", "-o", "addr", "show", "dev", "lo"});
    f += (shown && shown->find(std::string(kHost) + "/128") == std::string::npos) ? 0 : 1;
    return f;
  });
  EXPECT_EQ(failed, 0);
}

TEST(DnsResponder, ForwardsOtherNamesAndChecksTheAnswer) {
  if (!root()) GTEST_SKIP() << "needs root (a network namespace)";
  const int failed = netdev::testing::inNetns([] {
    int f = setUpLo();
    plfm::testing::DnsServer upstream;
    upstream.setTxt("example.com", {"hello"});
    auto up = parseDnsUpstream(upstream.address());
    if (!up) return f + 1;
    auto r = startResponder({*up});
    if (!r) return f + 1;
    const Bytes txt = ask(kGuest7, r->port(), query("Example.com", 16, 0x4242));
    f += check(__LINE__,
               (rcode(txt) == dns::kRcodeNoError && answers(txt) == 1 && id(txt) == 0x4242));
    const Bytes tcp = askTcp(kGuest9, r->port(), query("example.com", 16, 0x4343));
    f += check(__LINE__, (answers(tcp) == 1 && id(tcp) == 0x4343));
    const Bytes missing = ask(kGuest7, r->port(), query("nope.example", 16, 1));
    f += check(__LINE__, rcode(missing) == dns::kRcodeNxDomain);
    // .internal names never leave the node.
    const int before = upstream.queries();
    (void)ask(kGuest7, r->port(), query("web.other.internal", 28, 1));
    f += check(__LINE__, upstream.queries() == before);
    // A silent upstream: SERVFAIL after the timeout, never a hang.
    upstream.setSilent(true);
    f += check(__LINE__,
               rcode(ask(kGuest7, r->port(), query("example.com", 16, 2))) == dns::kRcodeServFail);
    return f;
  });
  EXPECT_EQ(failed, 0);
}

// An upstream (or a spoofer) answering another question, or with another
// id, is ignored: the client gets SERVFAIL, never the wrong answer.
TEST(DnsResponder, DropsAnswersThatDoNotMatchTheQuestion) {
  if (!root()) GTEST_SKIP() << "needs root (a network namespace)";
  const int failed = netdev::testing::inNetns([] {
    int f = setUpLo();
    const int fake = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (::bind(fake, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return f + 1;
    ::getsockname(fake, reinterpret_cast<sockaddr*>(&sa), &len);
    std::thread liar([fake] {
      Bytes buf(512);
      for (int i = 0; i < 2; ++i) {
        sockaddr_in from{};
        socklen_t flen = sizeof from;
        pollfd p{fake, POLLIN, 0};
        if (::poll(&p, 1, 3000) <= 0) return;
        const ssize_t n =
            ::recvfrom(fake, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &flen);
        if (n < 14) return;
        Bytes a(buf.begin(), buf.begin() + n);
        a[2] |= 0x80;
        if (i == 0) a[13] ^= 0x20 ^ 0x01;  // another name
        if (i == 1) a[1] ^= 1;             // another id
        (void)::sendto(fake, a.data(), a.size(), 0, reinterpret_cast<sockaddr*>(&from), flen);
      }
    });
    auto up = parseDnsUpstream("127.0.0.1:" + std::to_string(ntohs(sa.sin_port)));
    auto r = up ? startResponder({*up, *up}) : nullptr;
    if (r) {
      const Bytes got = ask(kGuest7, r->port(), query("example.com", 16, 0x99));
      f += rcode(got) == dns::kRcodeServFail ? 0 : 1;
    } else {
      ++f;
    }
    liar.join();
    ::close(fake);
    return f;
  });
  EXPECT_EQ(failed, 0);
}

TEST(DnsUpstreams, ParsesFlagsAndResolvConf) {
  EXPECT_EQ(parseDnsUpstream("2001:db8::53").value().str(), "[2001:db8::53]:53");
  EXPECT_EQ(parseDnsUpstream("192.0.2.53").value().str(), "192.0.2.53:53");
  EXPECT_EQ(parseDnsUpstream("[2001:db8::53]:5353").value().str(), "[2001:db8::53]:5353");
  EXPECT_EQ(parseDnsUpstream("127.0.0.1:5353").value().str(), "127.0.0.1:5353");
  for (const char* bad :
       {"", "dns.example", "1.2.3.4:0", "1.2.3.4:65536", "[::1]", "[::1]:x", "1.2.3.4:53:1"}) {
    EXPECT_FALSE(parseDnsUpstream(bad).has_value()) << bad;
  }
  const auto list = parseResolvConf(
      "# comment\nsearch example\nnameserver 192.0.2.1\nnameserver\tfe80::1%eth0\n"
      "nameserver bogus\nnameservers 1.1.1.1\noptions edns0\nnameserver 2001:db8::1 # x\n");
  ASSERT_EQ(list.size(), 3U);
  EXPECT_EQ(list[0].str(), "192.0.2.1:53");
  EXPECT_EQ(list[1].str(), "[fe80::1]:53");
  EXPECT_EQ(list[2].str(), "[2001:db8::1]:53");
}

}  // namespace
}  // namespace plfm::agent
