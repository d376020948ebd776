#include "support/fake_runtime.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "plfm/guest_proto/guest_proto.h"

namespace plfm::agent::testing {
namespace gp = guest_proto;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

constexpr pid_t kFirstPid = 0x7fff0000;

namespace {

bool sendAll(FakeVm& vm, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size() && !vm.stop) {
    ssize_t n = ::send(vm.conn_fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return !vm.stop;
}

}  // namespace

FakeRuntime::~FakeRuntime() {
  std::vector<std::shared_ptr<FakeVm>> vms;
  {
    std::lock_guard lock(mu_);
    vms = vms_;
  }
  for (auto& vm : vms) {
    powerOff(*vm);
    if (vm->guest.joinable()) vm->guest.join();
    for (std::atomic<int>* fd : {&vm->conn_fd, &vm->listen_fd}) {
      if (int f = fd->exchange(-1); f >= 0) ::close(f);
    }
  }
}

Result<runtime::VmHandle> FakeRuntime::start(const runtime::VmSpec& spec) {
  ++starts_;
  if (!start_error_.empty()) return Error("runtime.vmm_start_failed", start_error_);
  auto vm = std::make_shared<FakeVm>();
  vm->options = next_guest_;
  vm->instance_id = spec.instance_id;
  vm->drives = spec.drives;
  vm->channel_socket = spec.run_dir + "/ch.sock";
  runtime::VmHandle h;
  h.driver = "fake";
  h.instance_id = spec.instance_id;
  h.channel_socket = vm->channel_socket;
  h.console_log = spec.run_dir + "/console.log";
  std::ofstream(h.console_log) << "fake console\n";
  vm->listen_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", h.channel_socket.c_str());
  ::unlink(h.channel_socket.c_str());
  if (::bind(vm->listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(vm->listen_fd, 4) != 0) {
    int err = errno;
    ::close(vm->listen_fd);
    return errnoError("listen " + h.channel_socket, err);
  }
  // Above PID_MAX_LIMIT (4194304): no process has it, so whatever acts on
  // the pid (cgroup placement, a stray kill) fails harmlessly.
  h.pid = kFirstPid + starts_.load();
  h.pid_start = 1;
  vm->pid = h.pid;
  {
    std::lock_guard lock(mu_);
    vms_.push_back(vm);
  }
  vm->guest = std::thread([vm] { runGuest(*vm); });
  return h;
}

std::shared_ptr<FakeVm> FakeRuntime::find(const runtime::VmHandle& h) const {
  std::lock_guard lock(mu_);
  for (const auto& vm : vms_) {
    if (vm->pid == h.pid) return vm;
  }
  return nullptr;
}

std::shared_ptr<FakeVm> FakeRuntime::vm(int n) const {
  std::lock_guard lock(mu_);
  return n >= 0 && static_cast<size_t>(n) < vms_.size() ? vms_[static_cast<size_t>(n)] : nullptr;
}

bool FakeRuntime::alive(const runtime::VmHandle& h) const {
  auto vm = find(h);
  return vm && vm->running;
}

Result<void> FakeRuntime::requestStop(const runtime::VmHandle& h) {
  ++request_stops_;
  auto vm = find(h);
  if (vm && !vm->options.ignore_power_button) powerOff(*vm);
  return ok();
}

Result<void> FakeRuntime::kill(const runtime::VmHandle& h) {
  ++kills_;
  if (auto vm = find(h)) powerOff(*vm);
  return ok();
}

Result<void> FakeRuntime::resizeDrive(const runtime::VmHandle& /*vm*/,
                                      const runtime::VmDrive& drive, uint64_t size_bytes) {
  std::lock_guard lock(mu_);
  drive_resizes_.push_back(drive.id + " " + std::to_string(size_bytes));
  return ok();
}

std::vector<std::string> FakeRuntime::driveResizes() const {
  std::lock_guard lock(mu_);
  return drive_resizes_;
}

void FakeRuntime::powerOff(FakeVm& vm) {
  vm.stop = true;
  // Unblocks the guest thread (accept, a blocked send); the fds are closed
  // when it is joined.
  if (vm.conn_fd >= 0) ::shutdown(vm.conn_fd, SHUT_RDWR);
  if (vm.listen_fd >= 0) ::shutdown(vm.listen_fd, SHUT_RDWR);
  vm.running = false;
}

void FakeRuntime::runGuest(FakeVm& vm) {
  // The guest powers itself off from its own thread: only flags and
  // shutdown(), never a join.
  auto selfPowerOff = [&vm] {
    vm.running = false;
    vm.stop = true;
    if (vm.conn_fd >= 0) ::shutdown(vm.conn_fd, SHUT_RDWR);
  };
  int fd = ::accept4(vm.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return;
  vm.conn_fd = fd;
  if (vm.stop) return;
  gp::Hello hello;
  hello.init_version = "fake-guest";
  hello.exec_revision = vm.options.exec_revision;
  hello.volume_revision = vm.options.volume_revision;
  if (!sendAll(vm, *gp::encode(hello))) return;
  gp::Decoder decoder;
  std::optional<Steady::time_point> ready_at;
  while (!vm.stop) {
    if (ready_at && vm.options.stall_after_ready) {
      // Never read again: every PONG stays in our receive buffer.
      for (uint64_t nonce = 1; sendAll(vm, gp::encodePing(gp::Ping{nonce})); ++nonce) {
      }
      return;
    }
    if (ready_at && vm.options.exit_after && Steady::now() - *ready_at >= *vm.options.exit_after) {
      (void)sendAll(vm, gp::encode(gp::Exit{gp::ExitKind::kExited, vm.options.exit_code}));
      selfPowerOff();
      return;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 10) <= 0) continue;
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;  // the host closed; it may connect again, but tests do not need it
    decoder.feed(buf, static_cast<size_t>(n));
    while (true) {
      auto frame = decoder.next();
      if (!frame || !*frame) break;
      switch ((*frame)->type) {
        case gp::FrameType::kConfig:
          if (auto c = gp::decodeConfig((*frame)->payload); c && !c->volumes.empty()) {
            vm.first_volume = c->volumes[0].mount + " " + c->volumes[0].serial;
            vm.config_volumes = c->volumes.size();
          }
          ++vm.configs;
          if (!vm.options.boot_error.empty()) {
            // As vt-init does (host-channel.md §Handshake): ERROR, then EXIT.
            (void)sendAll(vm, *gp::encode(gp::BootError{vm.options.boot_error}));
            (void)sendAll(vm, gp::encode(gp::Exit{gp::ExitKind::kExited, 1}));
            selfPowerOff();
            return;
          }
          if (!vm.options.never_ready) {
            (void)sendAll(vm, gp::encode(gp::Ready{42, 1, std::nullopt}));
            vm.ready_sent = true;
            ready_at = Steady::now();
          }
          break;
        case gp::FrameType::kStatus:
          if (ready_at) (void)sendAll(vm, gp::encode(gp::Ready{42, 1, std::nullopt}));
          break;
        case gp::FrameType::kShutdown:
          ++vm.shutdowns;
          if (!vm.options.ignore_shutdown) {
            (void)sendAll(vm, gp::encode(gp::Exit{gp::ExitKind::kSignaled, 15}));
            selfPowerOff();
            return;
          }
          break;
        case gp::FrameType::kPing:
          if (auto ping = gp::decodePing((*frame)->payload)) {
            (void)sendAll(vm, gp::encodePong(*ping));
          }
          break;
        case gp::FrameType::kPong:
          ++vm.pongs;
          break;
        case gp::FrameType::kExecOpen: {
          ++vm.execs;
          const uint16_t stream = (*frame)->stream;
          if (!vm.options.exec_output.empty()) {
            (void)sendAll(
                vm, *gp::encode(gp::ExecData{gp::ExecFd::kStdout, vm.options.exec_output}, stream));
          }
          (void)sendAll(vm, *gp::encode(gp::ExecExit{gp::ExecExitKind::kExited,
                                                     vm.options.exec_exit_code, ""},
                                        stream));
          break;
        }
        case gp::FrameType::kFreeze:
          if (auto f = gp::decodeFreeze((*frame)->payload)) {
            ++vm.freezes;
            (void)sendAll(vm, gp::encodeFrozen(gp::VolumeOpId{f->id}));
          }
          break;
        case gp::FrameType::kThaw:
          if (auto t = gp::decodeVolumeOpId((*frame)->payload)) {
            (void)sendAll(vm, gp::encode(gp::Thawed{t->id, gp::ThawKind::kOnThaw}));
          }
          break;
        case gp::FrameType::kResizeVolume:
          if (auto r = gp::decodeResizeVolume((*frame)->payload)) {
            vm.resizes.push_back(r->serial + " " + std::to_string(r->size_bytes));
            if (!vm.options.resize_error.empty()) {
              (void)sendAll(vm, *gp::encode(gp::VolumeFailed{r->id, vm.options.resize_error}));
            } else {
              (void)sendAll(vm, gp::encode(gp::VolumeResized{r->id, r->size_bytes}));
            }
          }
          break;
        default:
          break;
      }
    }
  }
}

}  // namespace plfm::agent::testing
