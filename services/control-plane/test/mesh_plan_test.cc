// The peer endpoints of the NodePlan mesh section (mesh_plan.h): rendered
// only from an IPv6 or IPv4 unicast literal or a host name, with the port.
#include "mesh_plan.h"

#include <gtest/gtest.h>

namespace plfm::cp {
namespace {

TEST(MeshEndpoint, AddressesAndHostNamesGetThePort) {
  EXPECT_EQ(meshEndpoint("2001:db8::1", 51820), "[2001:db8::1]:51820");
  EXPECT_EQ(meshEndpoint("2001:DB8:0:0::1", 1), "[2001:db8::1]:1");  // canonical form
  EXPECT_EQ(meshEndpoint("192.0.2.1", 65535), "192.0.2.1:65535");
  EXPECT_EQ(meshEndpoint("node-b.example", 51821), "node-b.example:51821");
  EXPECT_EQ(meshEndpoint("localhost", 51820), "localhost:51820");
}

TEST(MeshEndpoint, EverythingElseIsRefused) {
  for (const char* host :
       {"", "[2001:db8::1]", "2001:db8::1%eth0", "a=b", "host name", "-x.example", "x-.example",
        "a..b", "x.example.", "1.2.3.4:5", "a\nb", "::ffff:1.2.3.4", "192.0.2.01", "192.0.2.256",
        "::", "ff02::1", "0.0.0.0", "224.0.0.1", "255.255.255.255"}) {
    EXPECT_FALSE(meshEndpoint(host, 51820).has_value()) << host;
  }
  EXPECT_FALSE(meshEndpoint(std::string(254, 'a'), 51820).has_value());
  EXPECT_FALSE(meshEndpoint("a" + std::string(63, 'b') + ".example", 51820).has_value());
  EXPECT_FALSE(meshEndpoint("2001:db8::1", 0).has_value());
  EXPECT_FALSE(meshEndpoint("2001:db8::1", 65536).has_value());
}

}  // namespace
// Canonical standard base64 of 32 bytes only (mesh.md, "Contract for key
// rotation"): "...a=" decodes to the same bytes as "...Y=", so two strings
// would name one key.
TEST(MeshPublicKey, OnlyCanonicalBase64OfThirtyTwoBytes) {
  EXPECT_TRUE(meshPublicKey(std::string(43, 'k') + "="));
  EXPECT_TRUE(meshPublicKey("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="));
  EXPECT_TRUE(meshPublicKey(std::string(42, '/') + "8="));
  for (const std::string& bad : {
           std::string(43, 'a') + "=",    // low bits of the last character set
           std::string(42, 'k') + "B=",   // likewise
           std::string(44, 'k'),          // no padding
           std::string(42, 'k') + "==",   // 31 bytes
           std::string(43, 'k'),          // short
           std::string(43, 'k') + "==",   // long
           std::string(41, 'k') + "-A=",  // URL-safe alphabet
           std::string(41, 'k') + "_A=",  //
           std::string(41, 'k') + " A=",  // a space
           std::string(),
       }) {
    EXPECT_FALSE(meshPublicKey(bad)) << bad;
  }
}

}  // namespace plfm::cp
