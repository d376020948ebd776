#include "plan.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include <set>

namespace plfm::init {
namespace {

namespace gp = guest_proto;

gp::Config baseConfig() {
  gp::Config c;
  c.argv = {"app"};
  return c;
}

TEST(ModuleOrderTest, ParsesNamesInOrder) {
  auto names = parseModuleOrder("# load order\nvirtio_ring.ko\n\n  virtio.ko \nvirtio_mmio.ko");
  ASSERT_TRUE(names.has_value()) << names.error();
  EXPECT_EQ(*names, (std::vector<std::string>{"virtio_ring.ko", "virtio.ko", "virtio_mmio.ko"}));
}

TEST(ModuleOrderTest, RefusesPathsAndNonModules) {
  EXPECT_FALSE(parseModuleOrder("../etc/passwd.ko\n").has_value());
  EXPECT_FALSE(parseModuleOrder("kernel/virtio.ko\n").has_value());
  EXPECT_FALSE(parseModuleOrder("virtio.ko.xz\n").has_value());
  EXPECT_EQ(parseModuleOrder("a.ko\nb.txt\n").error(), "modules.order line 2: not a .ko file name");
  EXPECT_TRUE(parseModuleOrder("").value().empty());
}

TEST(ModuleOrderTest, VsockModulesWaitForTheTransport) {
  const auto sets = splitModules({"virtio_ring.ko", "vsock.ko", "virtio.ko",
                                  "vmw_vsock_virtio_transport_common.ko", "overlay.ko"});
  EXPECT_EQ(sets.boot, (std::vector<std::string>{"virtio_ring.ko", "virtio.ko", "overlay.ko"}));
  EXPECT_EQ(sets.vsock,
            (std::vector<std::string>{"vsock.ko", "vmw_vsock_virtio_transport_common.ko"}));
}

TEST(MountPlanTest, EarlyMounts) {
  const auto early = earlyMounts();
  std::vector<std::string> targets;
  targets.reserve(early.size());
  for (const auto& m : early) targets.push_back(m.target);
  EXPECT_EQ(targets, (std::vector<std::string>{"/proc", "/sys", "/dev", "/run", "/tmp"}));
  EXPECT_EQ(early[3].fstype, "tmpfs");  // /run: the secrets file never hits a disk
}

TEST(MountPlanTest, RootfsReadOnlyUnderOverlayOnScratch) {
  gp::Config c = baseConfig();
  c.rootfs_device = "/dev/vdc";
  const auto plan = rootMountPlan(c);
  ASSERT_EQ(plan.size(), 8u);
  EXPECT_EQ(plan[0].source, "/dev/vdc");
  EXPECT_EQ(plan[0].target, "/mnt/rootfs");
  EXPECT_EQ(plan[0].fstype, "ext4");
  EXPECT_EQ(plan[0].flags & MS_RDONLY, static_cast<unsigned long>(MS_RDONLY));  // NOLINT
  EXPECT_EQ(plan[1].source, "/dev/vdb");
  EXPECT_EQ(plan[1].flags & MS_RDONLY, 0u);
  EXPECT_EQ(plan[1].mkdirs, (std::vector<std::string>{"/mnt/scratch/upper", "/mnt/scratch/work"}));
  EXPECT_EQ(plan[2].fstype, "overlay");
  EXPECT_EQ(plan[2].target, "/newroot");
  EXPECT_EQ(plan[2].data,
            "lowerdir=/mnt/rootfs,upperdir=/mnt/scratch/upper,workdir=/mnt/scratch/work");
  for (size_t i = 3; i < plan.size(); ++i) {
    EXPECT_EQ(plan[i].kind, MountStep::Kind::kMove);
    EXPECT_EQ(plan[i].target, "/newroot" + plan[i].source);
  }
}

TEST(WorkloadEnvTest, DefaultsPathAndHostname) {
  gp::Config c = baseConfig();
  c.hostname = "web-1";
  c.env = {"A=1"};
  EXPECT_EQ(
      workloadEnv(c, nullptr),
      (std::vector<std::string>{"A=1", "PATH=" + std::string(kDefaultPath), "HOSTNAME=web-1"}));
  c.env = {"PATH=/x", "HOSTNAME=other"};
  EXPECT_EQ(workloadEnv(c, nullptr), (std::vector<std::string>{"PATH=/x", "HOSTNAME=other"}));
}

TEST(WorkloadEnvTest, SecretsReplaceConfigEntriesOnlyWhenExported) {
  gp::Config c = baseConfig();
  c.env = {"TOKEN=public", "PATH=/bin", "X=a=b"};
  const secrets::SecretMap s = {{"TOKEN", "secret"}, {"NEW", "v"}, {"BIN", std::string("a\0b", 3)}};
  EXPECT_EQ(workloadEnv(c, &s), (std::vector<std::string>{"TOKEN=public", "PATH=/bin", "X=a=b"}));
  c.secrets_as_env = true;
  EXPECT_EQ(workloadEnv(c, &s),
            (std::vector<std::string>{"TOKEN=secret", "PATH=/bin", "X=a=b", "NEW=v"}));
}

TEST(ResolveProgramTest, SearchesTheWorkloadPath) {
  const std::set<std::string> present = {"/usr/bin/app", "/bin/app", "/opt/tool"};
  auto exists = [&](const std::string& p) { return present.count(p) > 0; };
  EXPECT_EQ(resolveProgram("app", "/usr/local/bin:/usr/bin:/bin", exists).value(), "/usr/bin/app");
  EXPECT_EQ(resolveProgram("/opt/tool", "", exists).value(), "/opt/tool");
  EXPECT_EQ(resolveProgram("./rel", "/bin", exists).value(), "./rel");
  EXPECT_EQ(resolveProgram("tool", "/x::/opt", exists).value(), "/opt/tool");
  EXPECT_EQ(resolveProgram("nope", "/bin", exists).error(), "nope: not found in PATH");
  EXPECT_FALSE(resolveProgram("", "/bin", exists).has_value());
}

TEST(HostsFileTest, NamesTheInstanceAddresses) {
  gp::Config c = baseConfig();
  EXPECT_EQ(hostsFile(c), "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  c.hostname = "web-1";
  EXPECT_NE(hostsFile(c).find("127.0.1.1\tweb-1\n"), std::string::npos);
  gp::NetworkConfig n;
  n.ipv6_address = *gp::parseIpv6("2001:db8::5");
  n.ipv4 = gp::Ipv4Config{*gp::parseIpv4("10.0.0.5"), 24, std::nullopt};
  c.network = n;
  const std::string hosts = hostsFile(c);
  EXPECT_NE(hosts.find("2001:db8::5\tweb-1\n"), std::string::npos);
  EXPECT_NE(hosts.find("10.0.0.5\tweb-1\n"), std::string::npos);
}

TEST(ResolvConfTest, OneLinePerNameserver) {
  gp::Config c = baseConfig();
  EXPECT_EQ(resolvConf(c), "");
  c.nameservers = {"2001:db8::53", "10.0.0.53"};
  EXPECT_EQ(resolvConf(c), "nameserver 2001:db8::53\nnameserver 10.0.0.53\n");
}

TEST(ExitTest, FromWaitStatus) {
  EXPECT_EQ(exitFromWaitStatus(3 << 8), (gp::Exit{gp::ExitKind::kExited, 3}));
  EXPECT_EQ(exitFromWaitStatus(9), (gp::Exit{gp::ExitKind::kSignaled, 9}));
  EXPECT_EQ(execFailureCode(ENOENT), 127);
  EXPECT_EQ(execFailureCode(EACCES), 126);
}

}  // namespace
}  // namespace plfm::init
