// `hello probe`: the DNS bytes without sockets, then each subcommand against
// real sockets on loopback (port 0, a fake DNS server, hello's own echo).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "config.h"
#include "probe.h"
#include "probe_dns.h"

namespace plfm::hello {
namespace {

std::vector<uint8_t> answerTo(const std::vector<uint8_t>& query, int rcode,
                              const std::vector<std::array<uint8_t, 16>>& addresses) {
  std::vector<uint8_t> a = query;
  a[2] = 0x81;  // QR, RD
  a[3] = static_cast<uint8_t>(0x80 | rcode);
  a[7] = static_cast<uint8_t>(addresses.size());
  for (const auto& addr : addresses) {
    a.insert(a.end(), {0xC0, 0x0C, 0, 28, 0, 1, 0, 0, 0, 5, 0, 16});  // pointer to the question
    a.insert(a.end(), addr.begin(), addr.end());
  }
  return a;
}

std::array<uint8_t, 16> v6(const char* text) {
  std::array<uint8_t, 16> a{};
  EXPECT_EQ(::inet_pton(AF_INET6, text, a.data()), 1);
  return a;
}

TEST(ProbeDns, BuildsAnAaaaQuery) {
  auto q = buildAaaaQuery(0x1234, "web.hello.internal.");
  ASSERT_TRUE(q);
  const std::vector<uint8_t> want = {0x12, 0x34, 0x01, 0x00, 0,   1,   0,   0,   0,   0,   0, 0,
                                     3,    'w',  'e',  'b',  5,   'h', 'e', 'l', 'l', 'o', 8, 'i',
                                     'n',  't',  'e',  'r',  'n', 'a', 'l', 0,   0,   28,  0, 1};
  EXPECT_EQ(*q, want);
  EXPECT_FALSE(buildAaaaQuery(1, ""));
  EXPECT_FALSE(buildAaaaQuery(1, "a..b"));
  EXPECT_FALSE(buildAaaaQuery(1, std::string(64, 'a') + ".internal"));
}

TEST(ProbeDns, ReadsAddressesThroughCompressionPointers) {
  auto q = buildAaaaQuery(7, "web.hello.internal");
  ASSERT_TRUE(q);
  auto a = parseAaaaAnswer(7, answerTo(*q, 0, {v6("fd7a::1"), v6("fd7a::2")}));
  ASSERT_TRUE(a) << a.error().toString();
  EXPECT_EQ(a->rcode, 0);
  ASSERT_EQ(a->addresses.size(), 2U);
  EXPECT_EQ(a->addresses[1], v6("fd7a::2"));
  auto nx = parseAaaaAnswer(7, answerTo(*q, 3, {}));
  ASSERT_TRUE(nx);
  EXPECT_EQ(nx->rcode, 3);
  EXPECT_TRUE(nx->addresses.empty());
}

TEST(ProbeDns, RefusesMalformedAnswers) {
  auto q = buildAaaaQuery(7, "a.internal");
  ASSERT_TRUE(q);
  const auto good = answerTo(*q, 0, {v6("fd7a::1")});
  EXPECT_FALSE(parseAaaaAnswer(8, good));     // another id
  EXPECT_FALSE(parseAaaaAnswer(7, *q));       // a query, not an answer
  for (size_t n = 0; n < good.size(); ++n) {  // every truncation
    EXPECT_FALSE(parseAaaaAnswer(7, std::vector<uint8_t>(good.begin(), good.begin() + n))) << n;
  }
  auto bad_len = good;
  bad_len[bad_len.size() - 17] = 4;  // rdlength 4 for an AAAA
  EXPECT_FALSE(parseAaaaAnswer(7, bad_len));
}

TEST(ProbeDns, TheFirstNameserver) {
  EXPECT_EQ(firstNameserver("# x\nsearch a\nnameserver fd7a::1 # the node\nnameserver 1.1.1.1\n"),
            "fd7a::1");
  EXPECT_EQ(firstNameserver("nameserver\tfd00::53"), "fd00::53");
  EXPECT_EQ(firstNameserver("nameservers x\n"), "");
  EXPECT_EQ(firstNameserver(""), "");
}

TEST(Probe, ArgumentsAreCheckedWithExitTwo) {
  EXPECT_EQ(runProbe({}).code, kProbeUsage);
  EXPECT_EQ(runProbe({"dig"}).code, kProbeUsage);
  EXPECT_EQ(runProbe({"connect", "::1"}).code, kProbeUsage);
  EXPECT_EQ(runProbe({"connect", "not-an-address", "80"}).code, kProbeUsage);
  EXPECT_EQ(runProbe({"connect", "::1", "70000"}).code, kProbeUsage);
  EXPECT_EQ(runProbe({"ping", "::1", "--count", "0"}).code, kProbeUsage);
  EXPECT_EQ(runProbe({"ping", "::1", "--bogus", "1"}).code, kProbeUsage);
  const auto u = runProbe({"ping", "::1", "--count"});
  EXPECT_EQ(u.code, kProbeUsage);
  EXPECT_NE(u.line.find("--count needs a value"), std::string::npos) << u.line;
}

// A socket on [::1] with a free port.
int boundSocket(int type, uint16_t& port) {
  int fd = ::socket(AF_INET6, type | SOCK_CLOEXEC, 0);
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_addr = in6addr_loopback;
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  port = ntohs(a.sin6_port);
  return fd;
}

TEST(Probe, ConnectSaysOkOrRefused) {
  uint16_t port = 0;
  int listener = boundSocket(SOCK_STREAM, port);
  ASSERT_EQ(::listen(listener, 4), 0);
  const auto ok = runProbe({"connect", "::1", std::to_string(port)});
  EXPECT_EQ(ok.code, kProbeOk) << ok.line;
  EXPECT_EQ(ok.line.rfind("connect address=::1 port=" + std::to_string(port) + " result=ok ms=", 0),
            0U)
      << ok.line;
  ::close(listener);
  const auto refused = runProbe({"connect", "::1", std::to_string(port)});
  EXPECT_EQ(refused.code, kProbeFailed);
  EXPECT_NE(refused.line.find("result=refused"), std::string::npos) << refused.line;
}

TEST(Probe, ResolveAsksTheResolvConfNameserver) {
  uint16_t port = 0;
  int server = boundSocket(SOCK_DGRAM, port);
  std::thread dns([server] {
    for (int i = 0; i < 2; ++i) {
      std::array<uint8_t, 512> buf{};
      sockaddr_in6 peer{};
      socklen_t len = sizeof peer;
      const ssize_t n =
          ::recvfrom(server, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&peer), &len);
      if (n <= 0) return;
      std::vector<uint8_t> q(buf.begin(), buf.begin() + n);
      const bool known = std::string(q.begin(), q.end()).find("\x03web") != std::string::npos;
      auto a = known ? answerTo(q, 0, {v6("fd7a:1:0:7::2")}) : answerTo(q, 3, {});
      (void)::sendto(server, a.data(), a.size(), 0, reinterpret_cast<sockaddr*>(&peer), len);
    }
  });
  char dir[] = "/tmp/probe_test.XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string resolv = std::string(dir) + "/resolv.conf";
  std::ofstream(resolv) << "nameserver ::1\n";
  ProbeEnv env{resolv, port};
  const auto found = runProbe({"resolve", "web.hello.internal"}, env);
  EXPECT_EQ(found.code, kProbeOk) << found.line;
  EXPECT_EQ(found.line,
            "resolve name=web.hello.internal server=::1 rcode=0 addresses=fd7a:1:0:7::2");
  const auto missing = runProbe({"resolve", "db.hello.internal"}, env);
  EXPECT_EQ(missing.code, kProbeFailed);
  EXPECT_EQ(missing.line, "resolve name=db.hello.internal server=::1 rcode=3 addresses=-");
  dns.join();
  const auto timeout = runProbe({"resolve", "web.hello.internal", "--timeout-ms", "50"}, env);
  EXPECT_EQ(timeout.code, kProbeFailed);
  EXPECT_NE(timeout.line.find("error=\"timeout\""), std::string::npos) << timeout.line;
  ::close(server);
  std::remove(resolv.c_str());
  ::rmdir(dir);
}

TEST(Probe, PingCountsEchoesAndLosses) {
  uint16_t port = 0;
  int echo = boundSocket(SOCK_DGRAM, port);
  std::atomic<int> seen{0};
  std::atomic<bool> stop{false};
  // Echoes every datagram but the third.
  std::thread server([&] {
    while (!stop) {
      pollfd p{echo, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      std::array<char, 256> buf{};
      sockaddr_in6 peer{};
      socklen_t len = sizeof peer;
      const ssize_t n =
          ::recvfrom(echo, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&peer), &len);
      if (n > 0 && ++seen != 3) {
        (void)::sendto(echo, buf.data(), static_cast<size_t>(n), 0,
                       reinterpret_cast<sockaddr*>(&peer), len);
      }
    }
  });
  const auto r = runProbe({"ping", "::1", "--port", std::to_string(port), "--interval-ms", "5",
                           "--count", "10", "--timeout-ms", "200"});
  stop = true;
  server.join();
  ::close(echo);
  EXPECT_EQ(r.code, kProbeFailed);
  EXPECT_EQ(r.line, "ping address=::1 port=" + std::to_string(port) + " sent=10 received=9 lost=1");
}

}  // namespace
}  // namespace plfm::hello
