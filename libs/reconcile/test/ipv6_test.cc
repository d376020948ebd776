#include "plfm/reconcile/ipv6.h"

#include <gtest/gtest.h>

namespace plfm::reconcile {
namespace {

TEST(Ipv6AllocTest, ParsesAndFormatsCanonically) {
  struct Case {
    const char* in;
    const char* canonical;  // RFC 5952
  };
  const Case cases[] = {
      {"::", "::"},
      {"::1", "::1"},
      {"1::", "1::"},
      {"FD7A:115C:A1E0::0002", "fd7a:115c:a1e0::2"},
      {"2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"},     // first of equal runs
      {"2001:0:0:1:0:0:0:1", "2001:0:0:1::1"},           // longest run
      {"2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"},  // one zero group stays
      {"1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"},
      {"fd00:0:0:1::2", "fd00:0:0:1::2"},
      {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
  };
  for (const Case& c : cases) {
    auto a = parseIpv6(c.in);
    ASSERT_TRUE(a.has_value()) << c.in << ": " << a.error().toString();
    EXPECT_EQ(formatIpv6(*a), c.canonical) << c.in;
    EXPECT_EQ(parseIpv6(formatIpv6(*a)).value(), *a) << c.in;
  }
}

TEST(Ipv6AllocTest, RejectsMalformedText) {
  for (const char* bad :
       {"", ":", ":::", "1:::2", "1::2::3", ":1::", "1:", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9",
        "1:2:3:4:5:6:7:8::", "12345::", "g::", "1.2.3.4", "::ffff:1.2.3.4", "fd00::1%eth0", " ::1",
        "0000000000000000000000000000000000000000"}) {
    EXPECT_FALSE(parseIpv6(bad).has_value()) << "'" << bad << "'";
  }
}

TEST(Ipv6AllocTest, ParsesPrefixesAndRejectsHostBits) {
  auto p = parseIpv6Prefix("fd7a:115c:a1e0:1::/64");
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(p->length, 64);
  EXPECT_EQ(formatIpv6Prefix(*p), "fd7a:115c:a1e0:1::/64");
  EXPECT_TRUE(parseIpv6Prefix("::/0").has_value());
  EXPECT_TRUE(parseIpv6Prefix("fd00::1/128").has_value());
  for (const char* bad : {"fd00::", "fd00::/", "fd00::/129", "fd00::/-1", "fd00::/6x", "fd00::1/64",
                          "fd7a:115c:a1e1::/47", "/64"}) {
    EXPECT_FALSE(parseIpv6Prefix(bad).has_value()) << bad;
  }
}

TEST(Ipv6AllocTest, InstanceAddressesStartAtTwoAndFillGaps) {
  const std::string prefix = "fd00:0:0:7::/64";
  EXPECT_EQ(allocateInstanceAddress(prefix, {}).value(), "fd00:0:0:7::2");
  EXPECT_EQ(allocateInstanceAddress(prefix, {"fd00:0:0:7::2", "fd00:0:0:7::3"}).value(),
            "fd00:0:0:7::4");
  EXPECT_EQ(allocateInstanceAddress(prefix, {"fd00:0:0:7::3"}).value(), "fd00:0:0:7::2");
  // Addresses of other nodes and garbage do not count.
  EXPECT_EQ(allocateInstanceAddress(prefix, {"fd00:0:0:8::2", "nonsense"}).value(),
            "fd00:0:0:7::2");
  EXPECT_FALSE(allocateInstanceAddress("fd00::/48", {}).has_value());
  EXPECT_EQ(lowestFreeIid({5, 2, 3, 2, 0, 1}), 4U);
}

TEST(Ipv6AllocTest, NodePrefixesComeFromTheClusterPrefix) {
  const std::string cluster = "fd7a:115c:a1e0::/48";
  EXPECT_EQ(allocateNodePrefix(cluster, {}).value(), "fd7a:115c:a1e0:1::/64");
  EXPECT_EQ(allocateNodePrefix(cluster, {"fd7a:115c:a1e0:1::/64", "fd7a:115c:a1e0:3::/64"}).value(),
            "fd7a:115c:a1e0:2::/64");
  // Prefixes outside the cluster are ignored.
  EXPECT_EQ(allocateNodePrefix(cluster, {"fd00:0:0:1::/64"}).value(), "fd7a:115c:a1e0:1::/64");

  // A /63 has subnets 0 and 1; subnet 0 is reserved, so one node fits.
  EXPECT_EQ(allocateNodePrefix("fd00::/63", {}).value(), "fd00:0:0:1::/64");
  auto full = allocateNodePrefix("fd00::/63", {"fd00:0:0:1::/64"});
  ASSERT_FALSE(full.has_value());
  EXPECT_EQ(full.error().code(), "resource_exhausted");
  EXPECT_FALSE(allocateNodePrefix("fd00::/64", {}).has_value());
}

}  // namespace
}  // namespace plfm::reconcile
