// The PROXY v2 header the ingress writes per connection, decoded back with
// the library parser (the one haproxy interop was checked against).
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <unistd.h>

#include "plfm/net/proxy_protocol.h"
#include "sockets.h"

namespace plfm::ingress {
namespace {

net::ProxyHeader roundTrip(const net::IpEndpoint& client, const net::IpEndpoint& listener) {
  auto bytes = proxyV2Header(client, listener);
  EXPECT_TRUE(bytes);
  net::ProxyHeaderParser parser;
  const auto* data = reinterpret_cast<const uint8_t*>(bytes->data());
  auto r = parser.feed({data, bytes->size()});
  EXPECT_EQ(r.status, net::ParseStatus::kDone);
  EXPECT_EQ(r.consumed, bytes->size());
  return parser.header();
}

TEST(ProxyHeaderTest, Ipv6ClientAndListener) {
  auto client = *net::IpEndpoint::parse("[2001:db8::7]:51234");
  auto listener = *net::IpEndpoint::parse("[2001:db8::1]:443");
  auto h = roundTrip(client, listener);
  EXPECT_EQ(h.command, net::ProxyCommand::kProxy);
  EXPECT_EQ(h.family, net::ProxyFamily::kInet6);
  EXPECT_EQ(h.bytes, 16u + 36u);
  EXPECT_EQ(h.clientAddress()->toString(), "[2001:db8::7]:51234");
  EXPECT_EQ(h.destination->toString(), "[2001:db8::1]:443");
}

TEST(ProxyHeaderTest, Ipv4ClientAndListener) {
  auto h = roundTrip(*net::IpEndpoint::parse("203.0.113.7:40000"),
                     *net::IpEndpoint::parse("192.0.2.1:443"));
  EXPECT_EQ(h.family, net::ProxyFamily::kInet);
  EXPECT_EQ(h.bytes, 16u + 12u);
  EXPECT_EQ(h.source->toString(), "203.0.113.7:40000");
  EXPECT_EQ(h.destination->toString(), "192.0.2.1:443");
}

TEST(ProxyHeaderTest, EndpointsComeFromSockaddrs) {
  sockaddr_storage ss{};
  auto* sa = reinterpret_cast<sockaddr_in6*>(&ss);
  sa->sin6_family = AF_INET6;
  sa->sin6_port = htons(8443);
  sa->sin6_addr = in6addr_loopback;
  EXPECT_EQ(endpointFromSockaddr(ss)->toString(), "[::1]:8443");
  sockaddr_storage ss4{};
  auto* sa4 = reinterpret_cast<sockaddr_in*>(&ss4);
  sa4->sin_family = AF_INET;
  sa4->sin_port = htons(80);
  sa4->sin_addr.s_addr = htonl(0x7f000001);
  EXPECT_EQ(endpointFromSockaddr(ss4)->toString(), "127.0.0.1:80");
  sockaddr_storage unix_ss{};
  unix_ss.ss_family = AF_UNIX;
  EXPECT_FALSE(endpointFromSockaddr(unix_ss));
}

TEST(ProxyHeaderTest, ListenersAreV6OnlyAndBindPortZero) {
  auto fd6 = listenTcp(*net::IpEndpoint::parse("[::1]:0"), {});
  ASSERT_TRUE(fd6) << fd6.error().toString();
  auto bound = localEndpoint(*fd6);
  ASSERT_TRUE(bound);
  EXPECT_TRUE(bound->v6);
  EXPECT_NE(bound->port, 0);
  int v6only = 0;
  socklen_t len = sizeof v6only;
  ASSERT_EQ(::getsockopt(*fd6, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
  EXPECT_EQ(v6only, 1);
  ::close(*fd6);
}

}  // namespace
}  // namespace plfm::ingress
