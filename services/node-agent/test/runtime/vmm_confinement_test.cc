// A real QEMU under the qemu driver's confinement (confine.h): its own uid,
// no_new_privs and QEMU's seccomp filter in /proc/PID/status, a Landlock
// domain that refuses every file but its own (asked through QMP, which makes
// QEMU itself open a path), and memory and pids limits in its cgroups. The
// control (its own rootfs opens) proves the refusals are not vacuous.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "netdev/tap.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"
#include "runtime/confine.h"
#include "runtime/firecracker_contract.h"
#include "runtime/firecracker_runtime.h"
#include "runtime/qemu_runtime.h"
#include "runtime/qmp.h"
#include "support/microvm.h"

namespace plfm::runtime {
namespace {

std::string statusField(pid_t pid, const std::string& field) {
  const std::string text = readFile("/proc/" + std::to_string(pid) + "/status").value_or("");
  for (auto line : splitLines(text)) {
    if (startsWith(line, field + ":")) {
      std::string v(line.substr(field.size() + 1));
      while (!v.empty() && (v.front() == '\t' || v.front() == ' ')) v.erase(0, 1);
      return v;
    }
  }
  return "";
}

std::string fmt4(unsigned long v) {
  const std::string s = std::to_string(v);
  return s + "\t" + s + "\t" + s + "\t" + s;
}

class VmmConfinementTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "confinement needs root";
    if (landlockAbi() == 0) GTEST_SKIP() << "no Landlock in this kernel";
    auto k = microvm::testing::fetchKernel();
    if (!k) GTEST_SKIP() << k.error().toString();
    kernel_ = k->vmlinux;
    ::chmod(dir_.path().c_str(), 0755);
    ASSERT_TRUE(writeFileAtomic(dir_.file("rootfs.img"), std::string(1 << 20, '\0')));
    ASSERT_TRUE(writeFileAtomic(dir_.file("scratch.img"), std::string(1 << 20, '\0')));
    ASSERT_TRUE(writeFileAtomic(dir_.file("other-tenant.img"), "secret", 0644));
  }
  VmSpec spec(const std::string& id) {
    VmSpec s;
    s.instance_id = id;
    s.run_dir = dir_.file("run-" + id);
    s.kernel = kernel_;
    s.kernel_args = {"panic=0"};  // no root fs: the kernel waits instead of rebooting
    s.drives = {{"rootfs", dir_.file("rootfs.img"), true},
                {"scratch", dir_.file("scratch.img"), false}};
    s.memory_mb = 128;
    return s;
  }
  static QemuOptions options() {
    QemuOptions o;
    o.accel = "tcg";
    return o;
  }
  plfm::testing::TempDir dir_{"plfm-jail"};
  std::string kernel_;
};

TEST_F(VmmConfinementTest, TheVmmRunsAsItsOwnUidUnderSeccompLandlockAndCgroupLimits) {
  QemuRuntime rt(options());
  const std::string id = "inst_jail" + std::to_string(::getpid());
  auto vm = rt.start(spec(id));
  ASSERT_TRUE(vm) << vm.error().toString();
  struct Cleanup {
    QemuRuntime& rt;
    VmHandle h;
    ~Cleanup() {
      (void)rt.MicroVmRuntime::kill(h);
      removeVmmGroup(h.instance_id);
    }
  } cleanup{rt, *vm};

  // /proc/PID/status: the dropped uid (all four), no_new_privs, a seccomp filter.
  const std::string uid = statusField(vm->pid, "Uid");
  const auto first = std::stoul(uid);
  EXPECT_GE(first, ConfineOptions{}.uid_base) << uid;
  EXPECT_EQ(uid, fmt4(first)) << uid;
  EXPECT_EQ(statusField(vm->pid, "Gid"), fmt4(first));
  EXPECT_EQ(statusField(vm->pid, "Groups"), "");
  EXPECT_EQ(statusField(vm->pid, "NoNewPrivs"), "1");
  EXPECT_EQ(statusField(vm->pid, "Seccomp"), "2");

  // QEMU opens what QMP names: outside its own files, Landlock refuses, even
  // world-readable files (so it is not the uid that refuses them).
  auto qmp = Qmp::connect(vm->control_socket, std::chrono::seconds(5));
  ASSERT_TRUE(qmp) << qmp.error().toString();
  int n = 0;
  auto open = [&](const std::string& path) {
    return qmp->execute("blockdev-add", {{"driver", "file"},
                                         {"node-name", "probe" + std::to_string(n++)},
                                         {"filename", path},
                                         {"read-only", true}});
  };
  for (const std::string& outside : {dir_.file("other-tenant.img"), std::string("/etc/hostname"),
                                     std::string("/etc/passwd"), spec(id).run_dir + "/vmm.log"}) {
    auto r = open(outside);
    ASSERT_FALSE(r) << outside << " opened";
    EXPECT_NE(r.error().message().find("Permission denied"), std::string::npos)
        << r.error().message();
  }
  // The control: its own rootfs, by path, opens.
  auto own = open(dir_.file("rootfs.img"));
  EXPECT_TRUE(own) << own.error().toString();

  // Memory is hard (guest RAM + overhead), pids bounded; v1 or v2.
  const uint64_t want_mem = (128 + ConfineOptions{}.memory_overhead_mb) << 20;
  const std::string v1 = "/sys/fs/cgroup/memory/plfm-vms/" + id + "/memory.limit_in_bytes";
  const std::string v2 = "/sys/fs/cgroup/plfm-vms/" + id + "/memory.max";
  const std::string mem = readFile(v1).value_or(readFile(v2).value_or(""));
  EXPECT_EQ(mem, std::to_string(want_mem) + "\n");
  const std::string pids =
      readFile("/sys/fs/cgroup/pids/plfm-vms/" + id + "/pids.max")
          .value_or(readFile("/sys/fs/cgroup/plfm-vms/" + id + "/pids.max").value_or(""));
  EXPECT_EQ(pids, std::to_string(ConfineOptions{}.pids_max) + "\n");
  const std::string cg = readFile("/proc/" + std::to_string(vm->pid) + "/cgroup").value_or("");
  EXPECT_NE(cg.find("/plfm-vms/" + id), std::string::npos) << cg;

  // Killed and removed at once, its cgroups go with it: QEMU takes a moment
  // to exit after SIGKILL and keeps them busy until then; they must not be
  // left behind.
  ASSERT_TRUE(rt.MicroVmRuntime::kill(*vm));
  removeVmmGroup(id);
  for (const char* h : {"memory/", "pids/", "cpu/", ""}) {
    const std::string group = std::string("/sys/fs/cgroup/") + h + "plfm-vms/" + id;
    EXPECT_FALSE(std::filesystem::exists(group)) << group;
  }
}

// The Firecracker driver, with a stand-in binary that opens what the API
// calls name as Firecracker does (fake_firecracker.cc): it starts only if
// its files arrive as fds, its tap is its uid's and its socket dir is
// writable, and from inside it nothing else opens.
TEST_F(VmmConfinementTest, TheFirecrackerDriverConfinesItsVmmTheSameWay) {
  const std::string id = "inst_fcjail" + std::to_string(::getpid());
  const std::string tap = "vt-fcj" + std::to_string(::getpid() % 100000);
  netdev::TapConfig tap_config;
  tap_config.name = tap;
  ASSERT_TRUE(netdev::ensureTap(tap_config));
  ASSERT_TRUE(writeFileAtomic(dir_.file("initrd.img"), "initrd"));
  FirecrackerOptions o;
  o.binary = PLFM_FAKE_FIRECRACKER_BIN;
  FirecrackerRuntime rt(o);
  VmSpec s = spec(id);
  s.initramfs = dir_.file("initrd.img");
  s.tap = tap;
  s.mac = "02:00:00:00:00:01";
  auto vm = rt.start(s);
  struct Cleanup {
    FirecrackerRuntime& rt;
    std::optional<VmHandle> h;
    std::string id, tap;
    ~Cleanup() {
      if (h) (void)rt.kill(*h);
      removeVmmGroup(id);
      (void)netdev::removeTap(tap);
    }
  } cleanup{rt, vm ? std::optional<VmHandle>(*vm) : std::nullopt, id, tap};
  // Every API call succeeded: kernel, initramfs and drives opened through
  // /proc/self/fd, the tap attached by name, the vsock socket bound.
  ASSERT_TRUE(vm) << vm.error().toString();

  const std::string uid = statusField(vm->pid, "Uid");
  const auto first = std::stoul(uid);
  EXPECT_GE(first, ConfineOptions{}.uid_base) << uid;
  EXPECT_EQ(uid, fmt4(first)) << uid;
  EXPECT_EQ(statusField(vm->pid, "Gid"), fmt4(first));
  EXPECT_EQ(statusField(vm->pid, "NoNewPrivs"), "1");
  const std::string cg = readFile("/proc/" + std::to_string(vm->pid) + "/cgroup").value_or("");
  EXPECT_NE(cg.find("/plfm-vms/" + id), std::string::npos) << cg;

  http::Client api("unix:" + vm->control_socket);
  auto probe = [&](const std::string& route, const std::string& path) {
    auto r = api.send("GET", route + "?path=" + path, {}, "", std::chrono::seconds(5));
    if (!r || r->status != 200) return -1;
    const auto j = nlohmann::json::parse(r->body, nullptr, false);
    return j.is_object() ? j.value("errno", -1) : -1;
  };
  for (const std::string& outside :
       {dir_.file("other-tenant.img"), std::string("/etc/hostname"), s.run_dir + "/vmm.log"}) {
    EXPECT_EQ(probe("/probe", outside), EACCES) << outside;
  }
  // Nothing but sockets may be made, even in its own socket dir.
  EXPECT_EQ(probe("/probe-create", FirecrackerRuntime::socketDir(s) + "/planted"), EACCES);
  EXPECT_EQ(probe("/probe-create", dir_.file("planted")), EACCES);
  // The controls: its own kernel, by the path it was given, opens, and so
  // does /dev/kvm (its own node; the host's is root's 0600 here).
  EXPECT_EQ(probe("/probe", "/proc/self/fd/3"), 0);
  if (std::filesystem::exists("/dev/kvm")) {
    EXPECT_EQ(probe("/probe", "/dev/kvm"), 0);
  }
  // Every call the driver made here is one Firecracker's published API takes.
  auto sent = api.send("GET", "/requests", {}, "", std::chrono::seconds(5));
  ASSERT_TRUE(sent && sent->status == 200);
  const auto requests = nlohmann::json::parse(sent->body, nullptr, false);
  ASSERT_TRUE(requests.is_array() && !requests.empty()) << sent->body;
  for (const auto& r : requests) {
    EXPECT_EQ(runtime::testing::checkFirecrackerRequest(r.value("method", ""), r.value("path", ""),
                                                        r.value("body", "")),
              std::nullopt)
        << r.dump();
  }
}

TEST_F(VmmConfinementTest, ConfinementFailsClosedWithTheReasonAndTheUnsafeFlagTurnsItOff) {
  QemuOptions o = options();
  o.confine.cgroups.root = dir_.file("no-cgroups-here");
  QemuRuntime rt(o);
  auto vm = rt.start(spec("inst_closed"));
  ASSERT_FALSE(vm);
  EXPECT_NE(vm.error().message().find("cgroup"), std::string::npos) << vm.error().message();
  EXPECT_NE(vm.error().message().find("--unsafe-unconfined-vms"), std::string::npos);

  o.confine.enabled = false;
  QemuRuntime unconfined(o);
  auto open = unconfined.start(spec("inst_open"));
  ASSERT_TRUE(open) << open.error().toString();
  EXPECT_EQ(statusField(open->pid, "Uid").substr(0, 2), "0\t");
  (void)unconfined.MicroVmRuntime::kill(*open);
}

}  // namespace
}  // namespace plfm::runtime
