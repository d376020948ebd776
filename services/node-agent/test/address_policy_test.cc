#include "image/address_policy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

namespace plfm::image {
namespace {

IpAddress addr(const std::string& text) {
  sockaddr_storage ss{};
  if (text.find(':') != std::string::npos) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
    in6->sin6_family = AF_INET6;
    EXPECT_EQ(::inet_pton(AF_INET6, text.c_str(), &in6->sin6_addr), 1) << text;
  } else {
    auto* in = reinterpret_cast<sockaddr_in*>(&ss);
    in->sin_family = AF_INET;
    EXPECT_EQ(::inet_pton(AF_INET, text.c_str(), &in->sin_addr), 1) << text;
  }
  IpAddress a;
  EXPECT_TRUE(fromSockaddr(reinterpret_cast<const sockaddr*>(&ss), a));
  return a;
}

TEST(AddressPolicyTest, OnlyPublicUnicastIsPublic) {
  for (const char* not_public : {"0.0.0.0",
                                 "10.1.2.3",
                                 "100.64.0.1",
                                 "127.0.0.1",
                                 "127.9.9.9",
                                 "169.254.169.254",
                                 "172.16.0.1",
                                 "172.31.255.255",
                                 "192.168.1.1",
                                 "192.0.2.1",
                                 "198.18.0.1",
                                 "224.0.0.1",
                                 "255.255.255.255",
                                 "::",
                                 "::1",
                                 "fd7a:5c00::1",
                                 "fc00::1",
                                 "fe80::1",
                                 "ff02::1",
                                 "2001:db8::1",
                                 "::ffff:127.0.0.1",
                                 "::ffff:10.0.0.1",
                                 "64:ff9b::a00:1",
                                 "2002:7f00:1::1",
                                 "64:ff9b:1::1"}) {
    EXPECT_FALSE(isPublicUnicast(addr(not_public))) << not_public;
  }
  for (const char* pub : {"1.1.1.1", "8.8.8.8", "172.32.0.1", "192.169.0.1", "2a00:1450::1",
                          "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"}) {
    EXPECT_TRUE(isPublicUnicast(addr(pub))) << pub;
  }
  // A v4-mapped address is judged as the IPv4 address it carries.
  EXPECT_TRUE(addr("::ffff:127.0.0.1").v4);
}

TEST(AddressPolicyTest, TheOperatorsPrefixesAllowPrivateAddresses) {
  auto lo = parseIpPrefix("127.0.0.1/32");
  ASSERT_TRUE(lo);
  auto ula = parseIpPrefix("fd00::/8");
  ASSERT_TRUE(ula);
  const std::vector<IpPrefix> allow = {*lo, *ula};
  EXPECT_TRUE(registryAddressAllowed(addr("127.0.0.1"), allow));
  EXPECT_TRUE(registryAddressAllowed(addr("::ffff:127.0.0.1"), allow));
  EXPECT_FALSE(registryAddressAllowed(addr("127.0.0.2"), allow));
  EXPECT_TRUE(registryAddressAllowed(addr("fd7a::1"), allow));
  EXPECT_FALSE(registryAddressAllowed(addr("fc00::1"), allow));
  EXPECT_FALSE(registryAddressAllowed(addr("169.254.169.254"), allow));
  EXPECT_TRUE(registryAddressAllowed(addr("8.8.8.8"), {}));
  EXPECT_EQ(lo->str(), "127.0.0.1/32");
  EXPECT_EQ(parseIpPrefix("::1")->str(), "::1/128");
  for (const char* bad :
       {"", "127.0.0.1/33", "::/129", "localhost", "1.2.3.4/", "1.2.3.4/x", "10.0.0.0/8/8"}) {
    EXPECT_FALSE(parseIpPrefix(bad)) << bad;
  }
}

}  // namespace
}  // namespace plfm::image
