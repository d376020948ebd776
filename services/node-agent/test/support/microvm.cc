#include "support/microvm.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <thread>
#include <utility>

#include "runtime/qemu_runtime.h"

namespace plfm::microvm::testing {

namespace gp = guest_proto;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

Result<Kernel> fetchKernel() {
  const std::string script = std::string(PLFM_SOURCE_DIR) + "/scripts/fetch-kernel";
  const std::string out_path = "/tmp/plfm-fetch-kernel." + std::to_string(::getpid()) + ".out";
  SpawnOptions options;
  options.stdout_path = out_path;
  options.stderr_path = out_path + ".err";
  PLFM_ASSIGN_OR_RETURN(Process p, spawn({script, "--print-dir"}, options));
  const int status = p.wait();
  auto out = readFile(out_path);
  const std::string err = tailFile(out_path + ".err", 5);
  ::unlink(out_path.c_str());
  ::unlink((out_path + ".err").c_str());
  if (exitCodeOf(status) == 3) {
    return Error(errc::kUnavailable, "scripts/fetch-kernel: apt unreachable: " + err);
  }
  if (exitCodeOf(status) != 0 || !out) {
    return Error(errc::kInternal,
                 "scripts/fetch-kernel " + describeWaitStatus(status) + ": " + err);
  }
  std::string dir = *out;
  while (!dir.empty() && dir.back() == '\n') dir.pop_back();
  dir = dir.substr(dir.rfind('\n') == std::string::npos ? 0 : dir.rfind('\n') + 1);
  std::string release = readFile(dir + "/release").value_or(dir.substr(dir.rfind('/') + 1));
  while (!release.empty() && release.back() == '\n') release.pop_back();
  return Kernel{dir, dir + "/vmlinux", dir + "/modules", dir + "/modules.order", release};
}

uint64_t hostTscKhz() {
  auto cpuinfo = readFile("/proc/cpuinfo");
  if (!cpuinfo) return 0;
  const size_t at = cpuinfo->find("cpu MHz");
  if (at == std::string::npos) return 0;
  const size_t colon = cpuinfo->find(':', at);
  if (colon == std::string::npos) return 0;
  const double mhz = std::strtod(cpuinfo->c_str() + colon + 1, nullptr);
  return static_cast<uint64_t>(std::llround(mhz * 1000.0));
}

Result<void> makeExt4(const std::string& image, const std::string& dir, uint32_t size_mb) {
  SpawnOptions options;
  options.stdout_path = image + ".mkfs.log";
  return runChecked({"mkfs.ext4", "-q", "-F", "-E", "root_owner=0:0", "-d", dir, image,
                     std::to_string(size_mb) + "M"},
                    options);
}

Result<void> makeScratch(const std::string& image, uint32_t size_mb) {
  SpawnOptions options;
  options.stdout_path = image + ".mkfs.log";
  return runChecked({"mkfs.ext4", "-q", "-F", image, std::to_string(size_mb) + "M"}, options);
}

std::vector<std::string> qemuArgv(const QemuOptions& o) {
  const runtime::GuestKernelTraits kernel = runtime::guestKernelTraits(o.kernel);
  std::string cmdline;
  for (const std::string& arg : runtime::guestKernelArgs(kernel, "tcg", hostTscKhz())) {
    cmdline += (cmdline.empty() ? "" : " ") + arg;
  }
  if (!o.extra_cmdline.empty()) cmdline += " " + o.extra_cmdline;
  std::vector<std::string> argv = {
      "qemu-system-x86_64", "-M", kernel.boots_without_acpi ? "microvm,acpi=off" : "microvm",
      "-accel", "tcg", "-m", std::to_string(o.memory_mb), "-smp", "1", "-no-reboot", "-nographic",
      "-nodefaults", "-serial",
      o.console_log.empty() ? std::string("null") : "file:" + o.console_log, "-kernel", o.kernel,
      "-initrd", o.initrd, "-append", cmdline,
      // virtio-mmio devices: the guest numbers disks in this order (vda, vdb).
      "-drive", "id=rootfs,file=" + o.rootfs + ",format=raw,if=none,readonly=on", "-device",
      "virtio-blk-device,drive=rootfs", "-drive",
      "id=scratch,file=" + o.scratch + ",format=raw,if=none", "-device",
      "virtio-blk-device,drive=scratch", "-chardev",
      "socket,id=chan,path=" + o.channel_socket + ",server=on,wait=off", "-device",
      "virtio-serial-device", "-device", "virtserialport,chardev=chan,name=plfm"};
  if (o.with_nic) {
    for (const char* a :
         {"-netdev", "user,id=net0,ipv6=on", "-device", "virtio-net-device,netdev=net0"}) {
      argv.emplace_back(a);
    }
  }
  return argv;
}

ChannelClient::ChannelClient(ChannelClient&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), decoder_(std::move(o.decoder_)) {}

ChannelClient& ChannelClient::operator=(ChannelClient&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    decoder_ = std::move(o.decoder_);
  }
  return *this;
}

ChannelClient::~ChannelClient() {
  if (fd_ >= 0) ::close(fd_);
}

Result<ChannelClient> ChannelClient::connect(const std::string& path, milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    return Error(errc::kInvalidArgument, "socket path too long: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const auto deadline = steady_clock::now() + timeout;
  while (true) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errnoError("socket", errno);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
      return ChannelClient(fd);
    }
    const int err = errno;
    ::close(fd);
    if (steady_clock::now() >= deadline) return errnoError("connect " + path, err);
    std::this_thread::sleep_for(milliseconds(5));
  }
}

Result<void> ChannelClient::send(const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("channel send", errno);
    done += static_cast<size_t>(n);
  }
  return ok();
}

Result<gp::Frame> ChannelClient::next(milliseconds timeout) {
  const auto deadline = steady_clock::now() + timeout;
  while (true) {
    auto frame = decoder_.next();
    if (!frame) return Error(std::string(gp::codeName(frame.error().code)), frame.error().message);
    if (*frame) return std::move(**frame);
    const auto left =
        std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()).count();
    if (left <= 0) return Error(errc::kDeadlineExceeded, "no frame from the guest in time");
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("channel recv", errno);
    if (n == 0) return Error(errc::kUnavailable, "channel closed (the VM is gone)");
    decoder_.feed(buf, static_cast<size_t>(n));
  }
}

Result<BootedVm> bootQemu(const QemuOptions& options) {
  BootedVm vm;
  SpawnOptions spawn_options;
  spawn_options.stdout_path = options.console_log.empty() ? "" : options.console_log + ".qemu";
  vm.spawned_at = steady_clock::now();
  PLFM_ASSIGN_OR_RETURN(vm.qemu, spawn(qemuArgv(options), spawn_options));
  auto channel = ChannelClient::connect(options.channel_socket, milliseconds(5000));
  if (!channel) {
    const std::string log =
        options.console_log.empty() ? "" : tailFile(options.console_log + ".qemu", 10);
    return std::move(channel).error().context("qemu: " + log);
  }
  vm.channel = std::move(*channel);
  return vm;
}

}  // namespace plfm::microvm::testing
