// Boots real microVMs (QEMU microvm under TCG, DESIGN §7) with vt-init as
// PID 1 and speaks the host channel from the host side: HELLO -> CONFIG ->
// READY -> LOG -> EXIT, a graceful SHUTDOWN, and a workload that cannot be
// exec'd. Each boot costs about 2 s; keep the cases few.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "plfm/core/process.h"
#include "plfm/guest_proto/guest_proto.h"
#include "plfm/testing/temp_dir.h"
#include "runtime/initramfs.h"
#include "support/microvm.h"

namespace plfm::microvm::testing {
namespace {

namespace gp = guest_proto;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

constexpr milliseconds kBootTimeout{30'000};

struct Shared {
  plfm::testing::TempDir dir{"vmboot"};
  Kernel kernel;
  std::string initramfs;
  std::string rootfs;
  std::string skip_reason;
};

Shared* g_shared = nullptr;

class GuestBootTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_shared = new Shared();
    // PLFM_KEEP_VM_DIR=1 keeps drives, sockets and console logs for a look.
    if (std::getenv("PLFM_KEEP_VM_DIR") != nullptr) {
      g_shared->dir.keep();
      std::printf("vm dir: %s\n", g_shared->dir.path().c_str());
    }
    auto kernel = fetchKernel();
    if (!kernel) {
      if (kernel.error().is(errc::kUnavailable)) {
        g_shared->skip_reason = kernel.error().toString();
        return;
      }
      g_shared->skip_reason = "FAIL " + kernel.error().toString();
      return;
    }
    g_shared->kernel = *kernel;
    auto initramfs = runtime::buildInitramfs(
        runtime::InitramfsInputs{PLFM_VT_INIT_BIN, kernel->modules_dir, kernel->modules_order},
        g_shared->dir.file("initramfs"));
    if (!initramfs) {
      g_shared->skip_reason = "FAIL initramfs: " + initramfs.error().toString();
      return;
    }
    g_shared->initramfs = *initramfs;
    // The image: a static test binary and a world-writable workdir.
    const std::string tree = g_shared->dir.file("tree");
    for (const char* d : {"", "/bin", "/srv", "/etc"}) ::mkdir((tree + d).c_str(), 0755);
    ::chmod((tree + "/srv").c_str(), 0777);
    auto bin = readFile(PLFM_GUEST_TESTAPP_BIN);
    if (!bin || !writeFileAtomic(tree + "/bin/guest_testapp", *bin, 0755)) {
      g_shared->skip_reason = "FAIL copying guest_testapp";
      return;
    }
    g_shared->rootfs = g_shared->dir.file("rootfs.ext4");
    auto made = makeExt4(g_shared->rootfs, tree, 16);
    if (!made) g_shared->skip_reason = "FAIL rootfs: " + made.error().toString();
  }
  static void TearDownTestSuite() {
    delete g_shared;
    g_shared = nullptr;
  }

  void SetUp() override {
    if (g_shared->skip_reason.rfind("FAIL", 0) == 0) FAIL() << g_shared->skip_reason;
    if (!g_shared->skip_reason.empty()) GTEST_SKIP() << g_shared->skip_reason;
  }

  // Boots one VM with a fresh scratch drive.
  BootedVm boot(const std::string& name, bool with_nic = false) {
    QemuOptions o;
    o.kernel = g_shared->kernel.vmlinux;
    o.initrd = g_shared->initramfs;
    o.rootfs = g_shared->rootfs;
    o.scratch = g_shared->dir.file(name + ".scratch");
    o.channel_socket = g_shared->dir.file(name + ".sock");
    o.console_log = g_shared->dir.file(name + ".console");
    o.with_nic = with_nic;
    console_ = o.console_log;
    auto scratch = makeScratch(o.scratch, 32);
    EXPECT_TRUE(scratch.has_value()) << scratch.error().toString();
    auto vm = bootQemu(o);
    EXPECT_TRUE(vm.has_value()) << vm.error().toString();
    if (!vm) return {};
    return std::move(*vm);
  }

  gp::Frame expectFrame(BootedVm& vm, gp::FrameType type) {
    auto frame = vm.channel.next(kBootTimeout);
    if (!frame) {
      ADD_FAILURE() << "waiting for " << gp::frameTypeName(type) << ": " << frame.error().toString()
                    << "\nconsole:\n"
                    << tailFile(console_, 30);
      return {};
    }
    EXPECT_EQ(frame->type, type) << gp::frameTypeName(frame->type) << "\nconsole:\n"
                                 << tailFile(console_, 30);
    return *frame;
  }

  // HELLO (any repeats of it) then CONFIG; returns ms from spawn to HELLO.
  double handshake(BootedVm& vm, const gp::Config& config) {
    const gp::Frame hello = expectFrame(vm, gp::FrameType::kHello);
    const double hello_ms = msSince(vm.spawned_at);
    auto decoded = gp::decodeHello(hello.payload);
    EXPECT_TRUE(decoded.has_value());
    if (decoded) {
      guest_hello_ms_ = static_cast<double>(decoded->boot_ns) / 1e6;
      EXPECT_EQ(decoded->protocol_version, gp::kProtocolVersion);
      EXPECT_EQ(decoded->exec_revision, gp::kExecRevision);
      EXPECT_EQ(decoded->kernel_release, g_shared->kernel.release);
    }
    gp::Config stamped = config;
    stamped.host_time_ns = static_cast<uint64_t>(msSinceEpoch() * 1e6);
    auto bytes = gp::encode(stamped);
    EXPECT_TRUE(bytes.has_value());
    EXPECT_TRUE(vm.channel.send(*bytes).has_value());
    return hello_ms;
  }

  // Frames until EXIT (HELLO repeats skipped), the LOG output by source.
  struct Run {
    std::string out;
    std::string err;
    std::vector<std::string> errors;
    std::optional<gp::Exit> exit;
  };
  Run untilExit(BootedVm& vm, bool* saw_ready = nullptr, const std::string& stop_at = "") {
    Run run;
    while (true) {
      auto frame = vm.channel.next(kBootTimeout);
      if (!frame) {
        ADD_FAILURE() << frame.error().toString() << "\nconsole:\n" << tailFile(console_, 30);
        return run;
      }
      switch (frame->type) {
        case gp::FrameType::kReady:
          if (saw_ready != nullptr) *saw_ready = true;
          ready_ms_ = msSince(vm.spawned_at);
          ready_pid_ = gp::decodeReady(frame->payload)->pid;
          break;
        case gp::FrameType::kLog: {
          auto log = gp::decodeLog(frame->payload);
          EXPECT_TRUE(log.has_value());
          EXPECT_GT(log->timestamp_ns, 0u);
          max_log_skew_ms_ =
              std::max(max_log_skew_ms_,
                       std::abs(msSinceEpoch() - static_cast<double>(log->timestamp_ns) / 1e6));
          (log->source == gp::LogSource::kStdout ? run.out : run.err) += log->data;
          if (!stop_at.empty() && run.out.find(stop_at) != std::string::npos) return run;
          break;
        }
        case gp::FrameType::kError:
          run.errors.push_back(gp::decodeBootError(frame->payload)->message);
          break;
        case gp::FrameType::kExit:
          run.exit = *gp::decodeExit(frame->payload);
          return run;
        case gp::FrameType::kHello:
          break;
        default:
          run.errors.push_back("unexpected " + gp::frameTypeName(frame->type));
      }
    }
  }

  static void expectPowerOff(BootedVm& vm) {
    auto status = vm.qemu.waitFor(milliseconds(15'000));
    ASSERT_TRUE(status.has_value()) << "qemu still running after EXIT";
    EXPECT_EQ(exitCodeOf(*status), 0) << describeWaitStatus(*status);
  }

  static double msSinceEpoch() {
    return std::chrono::duration<double, std::milli>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  static double msSince(steady_clock::time_point t) {
    return std::chrono::duration<double, std::milli>(steady_clock::now() - t).count();
  }

  std::string console_;
  double ready_ms_ = 0;
  double max_log_skew_ms_ = 0;  // |host receive time - LOG timestamp|
  uint32_t ready_pid_ = 0;
  double guest_hello_ms_ = 0;  // the guest's CLOCK_BOOTTIME at HELLO
};

TEST_F(GuestBootTest, HandshakeLogsAndExitCode) {
  BootedVm vm = boot("hello");
  ASSERT_TRUE(vm.qemu.valid());
  gp::Config config;
  config.instance_id = "inst_hello";
  config.argv = {"/bin/guest_testapp", "hello", "3"};
  const double hello_ms = handshake(vm, config);
  bool ready = false;
  const Run run = untilExit(vm, &ready);
  EXPECT_TRUE(ready);
  EXPECT_TRUE(run.errors.empty()) << run.errors.front();
  EXPECT_EQ(run.out, "hello from the guest\n");
  EXPECT_EQ(run.err, "a line on stderr\n");
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(*run.exit, (gp::Exit{gp::ExitKind::kExited, 3}));
  const double exit_ms = msSince(vm.spawned_at);
  expectPowerOff(vm);
  std::printf(
      "boot timings: spawn->HELLO %.0f ms (guest uptime %.0f ms), ->READY %.0f ms, ->EXIT %.0f "
      "ms, ->qemu gone %.0f ms\n",
      hello_ms, guest_hello_ms_, ready_ms_, exit_ms, msSince(vm.spawned_at));
  // With CONFIG's host_time_ns the guest clock is within a TCG boot's drift.
  EXPECT_LT(max_log_skew_ms_, 500) << "LOG timestamps far from the host clock";
  std::printf("max LOG timestamp skew %.1f ms\n", max_log_skew_ms_);
}

TEST_F(GuestBootTest, SetsUpUserWorkdirHostnameNetworkAndSecrets) {
  BootedVm vm = boot("inspect", /*with_nic=*/true);
  ASSERT_TRUE(vm.qemu.valid());
  gp::Config config;
  config.argv = {"guest_testapp", "inspect"};  // found through PATH
  config.env = {"APP_MODE=test", "PATH=/usr/bin:/bin"};
  config.workdir = "/srv";
  config.uid = 1000;
  config.gid = 1000;
  config.groups = {27};
  config.hostname = "web-1";
  gp::NetworkConfig net;
  net.ipv6_address = *gp::parseIpv6("2001:db8::5");
  net.mtu = 1400;
  // QEMU user networking's IPv4 (10.0.2.0/24, gateway 10.0.2.2).
  net.ipv4 = gp::Ipv4Config{*gp::parseIpv4("10.0.2.15"), 24, *gp::parseIpv4("10.0.2.2")};
  config.network = net;
  config.secrets_file = std::string("# plfm-secrets v1\nTOKEN=\"s3cret\"\n");
  config.secrets_as_env = true;
  config.nameservers = {"2001:db8::53"};
  handshake(vm, config);
  const Run run = untilExit(vm);
  EXPECT_TRUE(run.errors.empty()) << run.errors.front();
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(run.exit->code, 0) << run.err;
  for (const char* want :
       {"uid=1000 gid=1000 groups=1:27\n", "cwd=/srv\n", "hostname=web-1\n", "env APP_MODE=test\n",
        "env TOKEN=s3cret\n", "env HOSTNAME=web-1\n", "secrets mode=400 owner=1000\n",
        "secrets content=ok\n", "rootfs writable=yes\n", "2001:db8::5\tweb-1\n",
        "10.0.2.15\tweb-1\n", "overlay root=yes\n", "zombies=0\n", "mtu=1400\n",
        "resolv=nameserver 2001:db8::53\n",
        // the /128, no DAD (flags 0x02 nodad | 0x80 permanent)
        "20010db8000000000000000000000005 02 80 00 82     eth0",
        // a route via fe80::1 (only the default route has a gateway), on eth0
        "00000000000000000000000000000000 00 fe800000000000000000000000000001",
        // IPv4 default route via 10.0.2.2 (little-endian hex)
        "eth0\t00000000\t0202000A"}) {
    EXPECT_NE(run.out.find(want), std::string::npos) << "missing: " << want << "\nin:\n" << run.out;
  }
  expectPowerOff(vm);
}

// Also: an agent that restarts (kill -9) reconnects to the same socket, asks
// STATUS, gets READY with the same pid, then drives the VM as before.
TEST_F(GuestBootTest, ReconnectThenGracefulShutdown) {
  BootedVm vm = boot("shutdown");
  ASSERT_TRUE(vm.qemu.valid());
  gp::Config config;
  config.argv = {"/bin/guest_testapp", "sleep"};
  handshake(vm, config);
  bool ready = false;
  Run started = untilExit(vm, &ready, "sleeping\n");
  ASSERT_TRUE(ready);
  ASSERT_FALSE(started.exit.has_value());
  ASSERT_TRUE(vm.channel.send(gp::encodePing(gp::Ping{77})).has_value());
  const gp::Frame pong = expectFrame(vm, gp::FrameType::kPong);
  EXPECT_EQ(gp::decodePing(pong.payload)->nonce, 77u);

  const uint32_t pid = ready_pid_;
  vm.channel = ChannelClient();  // the agent dies
  auto again = ChannelClient::connect(g_shared->dir.file("shutdown.sock"), milliseconds(5000));
  ASSERT_TRUE(again.has_value()) << again.error().toString();
  vm.channel = std::move(*again);
  ASSERT_TRUE(vm.channel.send(gp::encodeStatus()).has_value());
  const gp::Frame ready_again = expectFrame(vm, gp::FrameType::kReady);
  EXPECT_EQ(gp::decodeReady(ready_again.payload)->pid, pid);

  const auto asked = steady_clock::now();
  ASSERT_TRUE(vm.channel.send(gp::encode(gp::Shutdown{5000})).has_value());
  const Run stopped = untilExit(vm);
  EXPECT_EQ(stopped.out, "got SIGTERM\n");
  ASSERT_TRUE(stopped.exit.has_value());
  EXPECT_EQ(*stopped.exit, (gp::Exit{gp::ExitKind::kExited, 0}));
  EXPECT_LT(msSince(asked), 5000) << "the workload should not have needed the whole grace";
  expectPowerOff(vm);
}

TEST_F(GuestBootTest, ShutdownKillsAfterTheGrace) {
  BootedVm vm = boot("stubborn");
  ASSERT_TRUE(vm.qemu.valid());
  gp::Config config;
  config.argv = {"/bin/guest_testapp", "stubborn"};
  config.shutdown_grace_ms = 60'000;  // SHUTDOWN's own grace wins
  handshake(vm, config);
  Run started = untilExit(vm, nullptr, "sleeping\n");
  ASSERT_FALSE(started.exit.has_value());
  const auto asked = steady_clock::now();
  ASSERT_TRUE(vm.channel.send(gp::encode(gp::Shutdown{1000})).has_value());
  const Run stopped = untilExit(vm);
  EXPECT_EQ(stopped.out, "ignoring SIGTERM\n");
  ASSERT_TRUE(stopped.exit.has_value());
  EXPECT_EQ(*stopped.exit, (gp::Exit{gp::ExitKind::kSignaled, 9}));
  // The grace runs on the guest's clock, which under TCG with an approximate
  // tsc_early_khz runs a few percent off the host's: allow for that.
  EXPECT_GE(msSince(asked), 900);
  expectPowerOff(vm);
}

TEST_F(GuestBootTest, MissingProgramIsReported) {
  BootedVm vm = boot("missing");
  ASSERT_TRUE(vm.qemu.valid());
  gp::Config config;
  config.argv = {"/bin/does-not-exist"};
  handshake(vm, config);
  const Run run = untilExit(vm);
  ASSERT_EQ(run.errors.size(), 1u);
  EXPECT_NE(run.errors[0].find("/bin/does-not-exist"), std::string::npos) << run.errors[0];
  ASSERT_TRUE(run.exit.has_value());
  EXPECT_EQ(*run.exit, (gp::Exit{gp::ExitKind::kExited, 127}));
  expectPowerOff(vm);
}

// Exec sessions into a running guest (docs/specs/runtime/exec-sessions.md),
// over the same channel as the workload: pipes, a PTY, a missing program.
struct ExecRun {
  std::string out;
  std::string err;
  std::optional<gp::ExecExit> exit;
};

ExecRun execUntilExit(ChannelClient& channel, uint16_t stream) {
  ExecRun run;
  while (!run.exit) {
    auto frame = channel.next(kBootTimeout);
    if (!frame) {
      ADD_FAILURE() << frame.error().toString();
      return run;
    }
    if (frame->stream != stream) continue;  // LOG, HELLO repeats
    if (frame->type == gp::FrameType::kExecData) {
      auto d = gp::decodeExecData(frame->payload);
      EXPECT_TRUE(d.has_value());
      if (d) (d->fd == gp::ExecFd::kStderr ? run.err : run.out) += d->data;
    } else if (frame->type == gp::FrameType::kExecExit) {
      auto e = gp::decodeExecExit(frame->payload);
      EXPECT_TRUE(e.has_value());
      run.exit = e ? *e : gp::ExecExit{};
    }
  }
  return run;
}

TEST_F(GuestBootTest, ExecSessionsWithPipesAndAPty) {
  BootedVm vm = boot("exec");
  ASSERT_TRUE(vm.qemu.valid());
  gp::Config config;
  config.argv = {"/bin/guest_testapp", "sleep"};
  handshake(vm, config);
  Run started = untilExit(vm, nullptr, "sleeping\n");
  ASSERT_FALSE(started.exit.has_value());

  gp::ExecOpen pipes;
  pipes.argv = {"/bin/guest_testapp", "hello", "7"};
  ASSERT_TRUE(vm.channel.send(*gp::encode(pipes, 0x0100)).has_value());
  const ExecRun a = execUntilExit(vm.channel, 0x0100);
  EXPECT_EQ(a.out, "hello from the guest\n");
  EXPECT_EQ(a.err, "a line on stderr\n");
  ASSERT_TRUE(a.exit.has_value());
  EXPECT_EQ(a.exit->status(), 7);

  gp::ExecOpen tty = pipes;
  tty.argv = {"/bin/guest_testapp", "hello", "0"};
  tty.tty = true;
  tty.rows = 30;
  tty.cols = 90;
  ASSERT_TRUE(vm.channel.send(*gp::encode(tty, 0x0101)).has_value());
  const ExecRun b = execUntilExit(vm.channel, 0x0101);
  EXPECT_NE(b.out.find("hello from the guest\r\n"), std::string::npos) << b.out;
  EXPECT_TRUE(b.err.empty());
  ASSERT_TRUE(b.exit.has_value());
  EXPECT_EQ(b.exit->status(), 0);

  gp::ExecOpen missing;
  missing.argv = {"/bin/does-not-exist"};
  ASSERT_TRUE(vm.channel.send(*gp::encode(missing, 0x0102)).has_value());
  const ExecRun c = execUntilExit(vm.channel, 0x0102);
  ASSERT_TRUE(c.exit.has_value());
  EXPECT_EQ(c.exit->kind, gp::ExecExitKind::kNotStarted);
  EXPECT_EQ(c.exit->status(), 127);

  ASSERT_TRUE(vm.channel.send(gp::encode(gp::Shutdown{5000})).has_value());
  const Run stopped = untilExit(vm);
  ASSERT_TRUE(stopped.exit.has_value());
  expectPowerOff(vm);
}

}  // namespace
}  // namespace plfm::microvm::testing
