// Tap devices over rtnetlink, inside a private network namespace (unshare in
// a forked child), so the test never touches the host's links.
#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <functional>

#include "netdev/tap.h"
#include "plfm/core/process.h"
#include "support/netns_child.h"

namespace plfm::netdev {
namespace {

using testing::inNetns;

std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[512];
  while (p != nullptr && fgets(buf, sizeof buf, p) != nullptr) out += buf;
  if (p != nullptr) ::pclose(p);
  return out;
}

TEST(Tap, NamesAndMacsAreStableAndValid) {
  EXPECT_EQ(tapNameFor("inst_a"), tapNameFor("inst_a"));
  EXPECT_NE(tapNameFor("inst_a"), tapNameFor("inst_b"));
  EXPECT_EQ(tapNameFor("inst_a").size(), 14U);
  EXPECT_EQ(tapNameFor("inst_a").rfind("vt-", 0), 0U);
  std::string mac = macFor("inst_a");
  EXPECT_EQ(mac.size(), 17U);
  EXPECT_EQ(mac.substr(0, 3), "02:");
}

TEST(Tap, EnsureIsIdempotentAndRemoveCleansUp) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_NET_ADMIN) for unshare and taps";
  int failures = inNetns([] {
    int bad = 0;
    TapConfig c{"vt-test0", 1420, "fd7a:5c00:0:1::2", "10.42.1.2"};
    if (!ensureTap(c)) ++bad;
    if (!ensureTap(c)) ++bad;  // again: no error, same state
    if (!linkExists("vt-test0")) ++bad;
    std::string link = run("ip -d link show vt-test0");
    if (link.find("mtu 1420") == std::string::npos) ++bad;
    if (link.find("tun type tap") == std::string::npos && link.find("tap") == std::string::npos)
      ++bad;
    std::string addr = run("ip -6 addr show dev vt-test0");
    if (addr.find("fe80::1/64") == std::string::npos) ++bad;
    std::string route = run("ip -6 route show dev vt-test0");
    if (route.find("fd7a:5c00:0:1::2") == std::string::npos) ++bad;
    // The guest's IPv4: 169.254.0.1/32 on the tap, a /32 route to the guest.
    if (run("ip -4 addr show dev vt-test0").find("169.254.0.1/32") == std::string::npos) ++bad;
    if (run("ip -4 route show dev vt-test0").find("10.42.1.2") == std::string::npos) ++bad;
    std::string fwd = readFile("/proc/sys/net/ipv6/conf/vt-test0/forwarding").value_or("");
    if (fwd.rfind('1', 0) != 0) ++bad;
    auto links = listLinks("vt-");
    if (!links || *links != std::vector<std::string>{"vt-test0"}) ++bad;
    if (!removeTap("vt-test0")) ++bad;
    if (!removeTap("vt-test0")) ++bad;  // already gone: fine
    if (linkExists("vt-test0")) ++bad;
    return bad;
  });
  EXPECT_EQ(failures, 0);
}

TEST(Tap, BadInputIsRefused) {
  TapConfig long_name{"vt-this-name-is-too-long", 1420, "", ""};
  EXPECT_FALSE(ensureTap(long_name));
  if (::geteuid() != 0) GTEST_SKIP();
  int failures = inNetns([] {
    TapConfig c{"vt-test1", 1420, "not-an-address", ""};
    int bad = ensureTap(c) ? 1 : 0;
    TapConfig v4{"vt-test1", 1420, "", "10.42.1.256"};
    bad += ensureTap(v4) ? 1 : 0;
    (void)removeTap("vt-test1");
    return bad;
  });
  EXPECT_EQ(failures, 0);
}

}  // namespace
}  // namespace plfm::netdev
