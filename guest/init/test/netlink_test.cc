// configureNetwork in a throwaway network namespace: a veth pair stands in
// for the guest's virtio-net eth0, and `ip` (host side only) reads back what
// rtnetlink was told.
#include "netlink.h"

#include <gtest/gtest.h>
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace plfm::init {
namespace {

namespace gp = guest_proto;

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

gp::NetworkConfig testNetwork() {
  gp::NetworkConfig n;
  n.ipv6_address = *gp::parseIpv6("2001:db8::5");
  n.mtu = 1400;
  n.ipv4 = gp::Ipv4Config{*gp::parseIpv4("10.0.0.5"), 24, *gp::parseIpv4("10.0.0.1")};
  return n;
}

// Runs in a child in its own netns: 0 ok, 1 configure failed, 77 no netns.
int child(const std::string& out) {
  if (::unshare(CLONE_NEWNET) != 0) return 77;
  if (std::system("ip link add eth0 type veth peer name peer0 && ip link set peer0 up") != 0) {
    return 77;
  }
  const auto net = testNetwork();
  auto first = configureNetwork(net);
  auto again = configureNetwork(net);  // re-running is harmless (EEXIST)
  const std::string dump =
      "{ ip -o link show eth0; ip -o -6 addr show dev eth0 scope global; "
      "ip -6 route show default; ip -4 -o addr show dev eth0; "
      "ip -4 route show default; ip -o link show lo; } >" +
      out + " 2>&1";
  if (std::system(dump.c_str()) != 0) return 1;
  if (!first) std::fprintf(stderr, "first: %s\n", first.error().c_str());
  if (!again) std::fprintf(stderr, "again: %s\n", again.error().c_str());
  return first && again ? 0 : 1;
}

TEST(NetlinkTest, ConfiguresEth0InANamespace) {
  char dir[] = "/tmp/vt-init-netns-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string out = std::string(dir) + "/ip.txt";
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) ::_exit(child(out));
  int status = 0;
  ::waitpid(pid, &status, 0);
  const std::string dump = slurp(out);
  ::unlink(out.c_str());
  ::rmdir(dir);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    GTEST_SKIP() << "no network namespace or veth here (needs root)";
  }
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << dump;
  for (const char* want :
       {"mtu 1400", "inet6 2001:db8::5/128", "nodad", "default via fe80::1 dev eth0",
        "inet 10.0.0.5/24", "default via 10.0.0.1 dev eth0", "lo: <LOOPBACK,UP"}) {
    EXPECT_NE(dump.find(want), std::string::npos) << "missing " << want << " in:\n" << dump;
  }
}

}  // namespace
}  // namespace plfm::init
