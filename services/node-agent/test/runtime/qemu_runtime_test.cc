// The QEMU driver's command line and its QMP client (against a fake QMP
// server speaking the greeting, qmp_capabilities, events and errors).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <thread>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "runtime/cgroup.h"
#include "runtime/detached.h"
#include "runtime/qemu_runtime.h"
#include "runtime/qmp.h"

namespace plfm::runtime {
namespace {

std::string joined(const std::vector<std::string>& argv) {
  std::string s;
  for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
  return s;
}

VmSpec sampleSpec() {
  VmSpec s;
  s.instance_id = "inst_x";
  s.run_dir = "/run/vm";
  s.kernel = "/k/vmlinux";
  s.initramfs = "/k/initrd";
  s.drives = {{"rootfs", "/img/root.ext4", true}, {"scratch", "/run/vm/scratch.ext4", false}};
  s.vcpus = 2;
  s.memory_mb = 384;
  s.tap = "vt-0123456789a";
  s.mac = "02:11:22:33:44:55";
  return s;
}

TEST(QemuCommandLine, AVolumeIsADriveWhoseSerialIsItsId) {
  VmSpec s = sampleSpec();
  s.drives.push_back({"vol-0", "/state/volumes/vol_x.ext4", false});
  const std::string cmd = joined(QemuRuntime(QemuOptions{}).commandLine(s, "tcg"));
  // vt-init finds the disk by this serial, never by probe order.
  EXPECT_NE(cmd.find("-drive id=vol-0,file=/proc/self/fd/11,format=raw,if=none,cache=none,"
                     "aio=threads -device virtio-blk-device,drive=vol-0,serial=vol-0"),
            std::string::npos)
      << cmd;
  EXPECT_EQ(cmd.find("vol_x"), std::string::npos) << "opened by path: " << cmd;
}

TEST(QemuCommandLine, MicrovmWithVirtioMmioDevicesChannelAndQmp) {
  QemuOptions o;
  o.tsc_khz = 2596144;
  QemuRuntime q(o);
  std::string cmd = joined(q.commandLine(sampleSpec(), "tcg"));
  for (const char* want :
       {"qemu-system-x86_64 -name /run/vm/ -M microvm,",
        "rtc=on",  // without it each boot loses seconds to CMOS reads under TCG
        "-accel tcg", "-smp 2", "-m 384", "-nodefaults", "-no-reboot",
        // Every file, socket and the tap arrive as fds, in passedFiles() order.
        "-name /run/vm",
        "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
        "-kernel /proc/self/fd/3", "-initrd /proc/self/fd/4", "tsc_early_khz=2596144",
        "tsc=reliable", "console=ttyS0", "noreplace-smp", "no_timer_check",
        "-chardev file,id=console,path=/proc/self/fd/5 -serial chardev:console",
        "-chardev socket,id=qmp,fd=6,server=on,wait=off -mon chardev=qmp,mode=control",
        "-chardev socket,id=channel,fd=7,server=on,wait=off", "-device virtio-serial-device",
        "-device virtserialport,chardev=channel,name=plfm", "-netdev tap,id=net0,fd=8",
        "-device virtio-net-device,netdev=net0,mac=02:11:22:33:44:55,host_mtu=1420",
        "id=rootfs,file=/proc/self/fd/9,format=raw,if=none,cache=none,aio=threads,readonly=on",
        "-device virtio-blk-device,drive=rootfs,serial=rootfs",
        "-drive id=scratch,file=/proc/self/fd/10,format=raw,if=none,cache=none,aio=threads",
        "-device virtio-blk-device,drive=scratch,serial=scratch"}) {
    EXPECT_NE(cmd.find(want), std::string::npos) << "missing: " << want << "\nin: " << cmd;
  }
  // The root drive comes first: the guest sees it as /dev/vda.
  EXPECT_LT(cmd.find("id=rootfs"), cmd.find("id=scratch"));
  // Nothing is opened by path, and QEMU never forks into the background.
  for (const char* gone : {"/k/vmlinux", "/img/root.ext4", "ifname=", "-daemonize", "-pidfile"}) {
    EXPECT_EQ(cmd.find(gone), std::string::npos) << gone << "\nin: " << cmd;
  }
  const auto files = QemuRuntime::passedFiles(sampleSpec());
  ASSERT_EQ(files.size(), 8U);
  EXPECT_EQ(files[0].path, "/k/vmlinux");
  EXPECT_EQ(files[5].kind, QemuRuntime::PassedFile::kTap);
  EXPECT_EQ(files[6].path, "/img/root.ext4");
  EXPECT_EQ(files[7].kind, QemuRuntime::PassedFile::kReadWrite);
}

TEST(QemuCommandLine, KvmUsesTheHostCpuAndNoTscHint) {
  QemuRuntime q({});
  std::string cmd = joined(q.commandLine(sampleSpec(), "kvm"));
  EXPECT_NE(cmd.find("-accel kvm -cpu host"), std::string::npos);
  EXPECT_EQ(cmd.find("tsc_early_khz"), std::string::npos);
  EXPECT_EQ(cmd.find("tsc=reliable"), std::string::npos);
}

// The minimal kernel (its config beside the vmlinux) boots without ACPI and
// then needs the PIT and PIC, unless told its LAPIC timer's rate; any other
// kernel keeps ACPI and needs neither.
TEST(QemuCommandLine, AKernelWithoutAcpiGetsNoAcpiTablesAndThePit) {
  plfm::testing::TempDir dir("qacpi");
  VmSpec s = sampleSpec();
  s.kernel = dir.file("vmlinux");
  auto machine = [&] {
    const std::string cmd = joined(QemuRuntime({}).commandLine(s, "tcg"));
    const size_t at = cmd.find("-M ") + 3;
    return cmd.substr(at, cmd.find(' ', at) - at);
  };
  EXPECT_EQ(machine(), "microvm,x-option-roms=off,pit=off,pic=off,rtc=on");  // no config
  ASSERT_TRUE(writeFileAtomic(dir.file("config"),
                              "CONFIG_X86_MPPARSE=y\n"
                              "# CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is not set\n"));
  EXPECT_FALSE(kernelBootsWithoutAcpi(s.kernel));
  EXPECT_EQ(machine(), "microvm,x-option-roms=off,pit=off,pic=off,rtc=on");
  ASSERT_TRUE(writeFileAtomic(dir.file("config"),
                              "CONFIG_ACPI=y\nCONFIG_X86_MPPARSE=y\n"
                              "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\n"));
  EXPECT_TRUE(kernelBootsWithoutAcpi(s.kernel));
  EXPECT_EQ(machine(), "microvm,x-option-roms=off,pit=on,pic=on,rtc=on,acpi=off");
  // Told its LAPIC timer's rate (TCG and our patch), it needs neither.
  ASSERT_TRUE(writeFileAtomic(dir.file("config"),
                              "CONFIG_ACPI=y\nCONFIG_X86_MPPARSE=y\n"
                              "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y\n"
                              "CONFIG_X86_LAPIC_TIMER_KHZ_PARAM=y\n"));
  EXPECT_EQ(machine(), "microvm,x-option-roms=off,pit=off,pic=off,rtc=on,acpi=off");
  const std::string kvm = joined(QemuRuntime({}).commandLine(s, "kvm"));
  EXPECT_NE(kvm.find("-M microvm,x-option-roms=off,pit=on,pic=on,rtc=on,acpi=off "),
            std::string::npos)
      << kvm;
}

// Only a kernel with our lapic_timer_khz= patch (the symbol in its config)
// gets the APIC timer's rate, and only under TCG, where QEMU's APIC is the
// one whose rate we know: any other kernel would hand the unknown parameter
// to init.
TEST(QemuCommandLine, OnlyAPatchedKernelUnderTcgGetsTheApicTimerRate) {
  plfm::testing::TempDir dir("qlapic");
  VmSpec s = sampleSpec();
  s.kernel = dir.file("vmlinux");
  auto cmd = [&](const char* accel) { return joined(QemuRuntime({}).commandLine(s, accel)); };
  EXPECT_EQ(cmd("tcg").find("lapic_timer_khz"), std::string::npos);  // no config
  ASSERT_TRUE(writeFileAtomic(dir.file("config"), "CONFIG_X86_MPPARSE=y\n"));
  EXPECT_FALSE(guestKernelTraits(s.kernel).lapic_timer_khz);
  EXPECT_EQ(cmd("tcg").find("lapic_timer_khz"), std::string::npos);
  ASSERT_TRUE(writeFileAtomic(dir.file("config"), "CONFIG_X86_LAPIC_TIMER_KHZ_PARAM=y\n"));
  EXPECT_TRUE(guestKernelTraits(s.kernel).lapic_timer_khz);
  EXPECT_NE(cmd("tcg").find(" lapic_timer_khz=1000000 "), std::string::npos) << cmd("tcg");
  EXPECT_EQ(cmd("kvm").find("lapic_timer_khz"), std::string::npos);
}

// ADR 0019: the density defaults, and each lever off again.
TEST(QemuCommandLine, DensityDefaultsCapTheTcgCacheAndReportFreedPages) {
  const std::string cmd = joined(QemuRuntime({}).commandLine(sampleSpec(), "tcg"));
  EXPECT_NE(cmd.find("-accel tcg,tb-size=8 -cpu max"), std::string::npos) << cmd;
  // After the drives, so the guest's block devices keep their transports.
  EXPECT_GT(cmd.find("-device virtio-balloon-device,free-page-reporting=on"),
            cmd.find("serial=scratch"))
      << cmd;
  // Under KVM there is no translation cache to size.
  const std::string kvm = joined(QemuRuntime({}).commandLine(sampleSpec(), "kvm"));
  EXPECT_NE(kvm.find("-accel kvm -cpu host"), std::string::npos) << kvm;
  EXPECT_EQ(kvm.find("tb-size"), std::string::npos) << kvm;

  QemuOptions o;
  o.tcg_tb_size_mb = 0;
  o.free_page_reporting = false;
  const std::string off = joined(QemuRuntime(o).commandLine(sampleSpec(), "tcg"));
  EXPECT_NE(off.find("-accel tcg -cpu max"), std::string::npos) << off;
  for (const char* gone : {"tb-size", "balloon"}) {
    EXPECT_EQ(off.find(gone), std::string::npos) << gone << "\nin: " << off;
  }
}

TEST(QemuCommandLine, NoTapMeansNoNetworkDevice) {
  QemuRuntime q({});
  VmSpec s = sampleSpec();
  s.tap.clear();
  EXPECT_EQ(joined(q.commandLine(s, "tcg")).find("-netdev"), std::string::npos);
}

TEST(QemuAccel, ExplicitChoicesSkipTheProbeAndBadOnesAreRefused) {
  QemuOptions o;
  o.accel = "tcg";
  QemuRuntime tcg(o);
  EXPECT_EQ(*tcg.accelFor("/nonexistent"), "tcg");
  o.accel = "hvf";
  QemuRuntime bad(o);
  auto r = bad.accelFor("/nonexistent");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("auto, kvm or tcg"), std::string::npos);
}

TEST(HostTsc, IsPlausible) {
  uint64_t khz = hostTscKhz();
  EXPECT_GT(khz, 100'000U);     // > 100 MHz
  EXPECT_LT(khz, 10'000'000U);  // < 10 GHz
}

// A one-connection QMP server: greeting, then scripted answers per command.
class FakeQmp {
 public:
  explicit FakeQmp(std::string path) : path_(std::move(path)) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 1), 0);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeQmp() {
    thread_.join();
    ::close(fd_);
  }
  std::vector<std::string> received;
  int passed_fd = -1;  // the fd that came with a command, if any

 private:
  void send(int c, const std::string& s) { (void)::write(c, s.data(), s.size()); }
  void serve() {
    int c = ::accept(fd_, nullptr, nullptr);
    send(c, R"({"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}})"
            "\n");
    std::string buf;
    char tmp[256];
    while (true) {
      // recvmsg: a command may carry an fd (add-fd); it is kept to check.
      iovec iov{tmp, sizeof tmp};
      alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof control;
      ssize_t n = ::recvmsg(c, &msg, 0);
      if (n <= 0) break;
      if (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr && cmsg->cmsg_type == SCM_RIGHTS) {
        std::memcpy(&passed_fd, CMSG_DATA(cmsg), sizeof(int));
      }
      buf.append(tmp, static_cast<size_t>(n));
      size_t nl;
      while ((nl = buf.find('\n')) != std::string::npos) {
        std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        received.push_back(line);
        if (line.find("qmp_capabilities") != std::string::npos) {
          send(c, "{\"return\": {}}\n");
        } else if (line.find("add-fd") != std::string::npos) {
          send(c, R"({"return": {"fdset-id": 1, "fd": 9}})"
                  "\n");
        } else if (line.find("system_powerdown") != std::string::npos) {
          // An event arrives before the answer; the client must skip it.
          send(c, R"({"event": "POWERDOWN", "timestamp": {"seconds": 1, "microseconds": 2}})"
                  "\n");
          send(c, "{\"return\": {}}\n");
        } else {
          send(
              c,
              R"({"error": {"class": "CommandNotFound", "desc": "The command nope has not been found"}})"
              "\n");
        }
      }
    }
    ::close(c);
  }
  std::string path_;
  int fd_ = -1;
  std::thread thread_;
};

TEST(Qmp, NegotiatesSkipsEventsAndMapsErrors) {
  plfm::testing::TempDir dir("qmp");
  std::string sock = dir.file("qmp.sock");
  {
    FakeQmp fake(sock);
    auto qmp = Qmp::connect(sock, std::chrono::seconds(2));
    ASSERT_TRUE(qmp) << qmp.error().toString();
    auto r = qmp->execute("system_powerdown");
    ASSERT_TRUE(r) << r.error().toString();
    EXPECT_TRUE(r->is_object());
    auto bad = qmp->execute("nope");
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), "qmp.CommandNotFound");
    EXPECT_NE(bad.error().message().find("has not been found"), std::string::npos);
    // add-fd: the file travels with the command (SCM_RIGHTS), as the
    // snapshot target does to the confined VMM.
    const int file = ::open(dir.file("qmp.sock").c_str(), O_PATH | O_CLOEXEC);
    ASSERT_GE(file, 0);
    auto added = qmp->executeWithFd("add-fd", nlohmann::json::object(), file);
    ASSERT_TRUE(added) << added.error().toString();
    EXPECT_EQ(added->value("fdset-id", -1), 1);
    EXPECT_GE(fake.passed_fd, 0) << "no fd came with add-fd";
    if (fake.passed_fd >= 0) ::close(fake.passed_fd);
    ::close(file);
  }
}

TEST(Detached, TheProcessOutlivesItsParentAndIsNotOurChild) {
  plfm::testing::TempDir dir("det");
  DetachedOptions o;
  o.log_path = dir.file("out.log");
  auto pid = spawnDetached({"/bin/sh", "-c", "echo started; exec sleep 30"}, o);
  ASSERT_TRUE(pid) << pid.error().toString();
  EXPECT_TRUE(processMatches(*pid, 0));
  // Reparented: its parent is not us.
  std::string stat = readFile("/proc/" + std::to_string(*pid) + "/stat").value_or("");
  auto close = stat.rfind(')');
  int ppid = std::atoi(stat.c_str() + close + 4);
  EXPECT_NE(ppid, ::getpid());
  VmHandle h;
  h.pid = *pid;
  h.pid_start = processStartTime(*pid);
  QemuRuntime rt({});
  ASSERT_TRUE(rt.MicroVmRuntime::kill(h));
  EXPECT_FALSE(processMatches(*pid, h.pid_start));
}

// PR_SET_THP_DISABLE is kept across exec: the VMM's memory never gets
// transparent huge pages (QemuOptions::host_huge_pages = false).
TEST(Detached, HugePagesCanBeTurnedOffForTheProcess) {
  for (const bool off : {false, true}) {
    DetachedOptions o;
    o.no_transparent_huge_pages = off;
    auto pid = spawnDetached({"/bin/sleep", "30"}, o);
    ASSERT_TRUE(pid) << pid.error().toString();
    VmHandle h;
    h.pid = *pid;
    h.pid_start = processStartTime(*pid);
    const std::string status = readFile("/proc/" + std::to_string(*pid) + "/status").value_or("");
    QemuRuntime rt({});
    ASSERT_TRUE(rt.MicroVmRuntime::kill(h));
    // A kernel without THP (or before 5.0) shows 0 or nothing for anyone.
    if (!off && status.find("THP_enabled:\t1") == std::string::npos) {
      GTEST_SKIP() << "no transparent huge pages in this kernel";
    }
    EXPECT_NE(status.find(off ? "THP_enabled:\t0" : "THP_enabled:\t1"), std::string::npos)
        << status;
  }
}

TEST(Detached, AMissingProgramFailsSynchronously) {
  auto pid = spawnDetached({"/nonexistent/vmm"});
  ASSERT_FALSE(pid);
  EXPECT_NE(pid.error().message().find("/nonexistent/vmm"), std::string::npos);
}

}  // namespace
}  // namespace plfm::runtime

namespace plfm::runtime {
namespace {

TEST(Cgroup, AVmmGoesIntoItsOwnCpuGroupWhereAvailable) {
  auto proc = spawn({"/bin/sleep", "30"});
  ASSERT_TRUE(proc);
  const std::string id = "inst_cgrouptest" + std::to_string(::getpid());
  auto placed = placeVmm(proc->pid(), id, 2);
  ASSERT_TRUE(placed) << placed.error().toString();
  if (!*placed) GTEST_SKIP() << "no writable cgroup cpu hierarchy here";
  EXPECT_EQ(vmmGroupOf(proc->pid()), "/plfm-vms/" + id);
  std::string v2 = readFile("/sys/fs/cgroup/plfm-vms/" + id + "/cpu.weight").value_or("");
  std::string v1 = readFile("/sys/fs/cgroup/cpu/plfm-vms/" + id + "/cpu.shares").value_or("");
  EXPECT_TRUE(v2 == "200\n" || v1 == "2048\n") << v2 << v1;
  proc->signal(SIGKILL);
  proc->wait();
  removeVmmGroup(id);
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/plfm-vms/" + id));
  EXPECT_FALSE(std::filesystem::exists("/sys/fs/cgroup/cpu/plfm-vms/" + id));
}

}  // namespace
}  // namespace plfm::runtime
