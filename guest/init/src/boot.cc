#include "boot.h"

#include <poll.h>
#include <sys/reboot.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <memory>
#include <optional>
#include <vector>

#include "channel.h"
#include "exec.h"
#include "netlink.h"
#include "plan.h"
#include "plfm/guest_proto/guest_proto.h"
#include "plfm/secrets/format.h"
#include "sys.h"
#include "volumes.h"
#include "workload.h"

namespace plfm::init {

namespace gp = guest_proto;

namespace {

std::string uptime() { return std::to_string(bootNs() / 1'000'000) + " ms"; }

constexpr int kHelloIntervalMs = 500;
constexpr int kProbeIntervalMs = 100;
constexpr int kChannelOpenTimeoutMs = 10'000;
constexpr int kFinalDrainMs = 2'000;
// After the workload exits, how long to keep reading output that is still
// in its pipes (grandchildren may hold them open forever).
constexpr int kOutputDrainMs = 200;

// Signals PID 1 takes through a signalfd. SIGINT is ctrl-alt-del (reboot(2)
// with CAD disabled), which Firecracker's SendCtrlAltDel produces: a graceful
// shutdown. The others are forwarded to the workload.
sigset_t handledSignals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGPWR}) {
    sigaddset(&set, s);
  }
  return set;
}

class Init {
 public:
  Init(Channel channel, int signal_fd) : channel_(std::move(channel)), signal_fd_(signal_fd) {}

  // HELLO until CONFIG (host-channel.md §Handshake).
  gp::Config awaitConfig() {
    auto hello_frame = helloFrame();
    uint64_t next_hello = 0;
    while (!config_) {
      const uint64_t now = monotonicMs();
      if (now >= next_hello) {
        // Only when the last one went out: a host that is not connected
        // yet gets one HELLO when it arrives, not a backlog.
        if (channel_.idle() && hello_frame) channel_.send(*hello_frame);
        next_hello = now + kHelloIntervalMs;
      }
      step(static_cast<int>(next_hello - now));
    }
    return std::move(*config_);
  }

  gp::Result<std::string> helloFrame() {
    utsname uts{};
    ::uname(&uts);
    if (hello_boot_ns_ == 0) hello_boot_ns_ = bootNs();
    return gp::encode(gp::Hello{gp::kProtocolVersion, std::string(kInitVersion), uts.release,
                                hello_boot_ns_, gp::kExecRevision, gp::kVolumeRevision});
  }

  // Everything between CONFIG and READY; a failure ends the VM.
  void prepare(const gp::Config& config) {
    auto ok = [&](Result<void> r, const char* what) {
      if (!r) fatal(std::string(what) + ": " + r.error(), 1);
    };
    if (config.host_time_ns != 0) {
      // Not fatal: a wrong clock skews LOG timestamps, nothing else.
      if (auto set = setRealtime(config.host_time_ns); !set) logLine(set.error());
    }
    ok(runMounts(rootMountPlan(config)), "mount rootfs");
    ok(switchRoot(std::string(kNewRoot)), "switch root");
    ok(runMounts(lateMounts()), "mount /dev/pts, /dev/shm");
    ok(configureNetwork(config.network), "network");
    if (!config.hostname.empty()) ok(setHostname(config.hostname), "hostname");
    ok(mkdirs("/etc"), "mkdir /etc");
    ok(writeFileAtomic("/etc/hosts", hostsFile(config), 0644, 0, 0), "/etc/hosts");
    if (!config.hostname.empty()) {
      ok(writeFileAtomic("/etc/hostname", config.hostname + "\n", 0644, 0, 0), "/etc/hostname");
    }
    if (const std::string resolv = resolvConf(config); !resolv.empty()) {
      // Images often ship resolv.conf as a symlink (systemd-resolved); the
      // file replaces it in the overlay.
      ::unlink("/etc/resolv.conf");
      ok(writeFileAtomic("/etc/resolv.conf", resolv, 0644, 0, 0), "/etc/resolv.conf");
    }
    // After the image's files above: a volume may be mounted anywhere
    // outside /proc, /sys, /dev and /run (/etc included).
    ok(mountVolumes(config), "volumes");
    std::optional<secrets::SecretMap> secret_map;
    if (config.secrets_file) {
      auto decoded = secrets::decode(*config.secrets_file);
      if (!decoded) fatal("secrets file: " + decoded.error().toString(), 1);
      secret_map = std::move(*decoded);
      ok(writeSecretsFile(*config.secrets_file, config.uid, config.gid), "secrets file");
    }
    env_ = workloadEnv(config, secret_map ? &*secret_map : nullptr);
    if (secret_map) secrets::wipe(*secret_map);
    // Exec'd commands get the workload's env, user and workdir
    // (exec-sessions.md §Environment); so PID 1 keeps this copy of the env.
    ExecDefaults defaults{env_, config.uid, config.gid, config.groups, config.workdir};
    volume_ops_ = std::make_unique<VolumeOps>(
        config.volumes, realVolumeSys(), [this](const std::string& frame) { channel_.send(frame); },
        [] { return monotonicMs(); });
    exec_ = std::make_unique<ExecSessions>(
        std::move(defaults), [this](const std::string& frame) { channel_.send(frame); },
        [] { return monotonicMs(); });
  }

  void start(const gp::Config& config) {
    grace_ms_ = config.shutdown_grace_ms;
    auto spawned = spawnWorkload(config, env_);
    for (std::string& e : env_) std::fill(e.begin(), e.end(), '\0');
    env_.clear();
    if (!spawned) fatal(spawned.error().message, spawned.error().exit_code);
    workload_ = *spawned;
    logLine("workload started, pid " + std::to_string(workload_.pid) + ", at " + uptime());
    ready_boot_ns_ = bootNs();
    channel_.send(readyFrame());
  }

  // The boot stages timed so far; READY carries them (host-channel.md §READY).
  gp::BootStages& stages() { return stages_; }

  // Until the workload is gone; then EXIT and power off.
  [[noreturn]] void supervise() {
    while (!exit_) {
      int timeout = -1;
      if (kill_at_ != 0) {
        const uint64_t now = monotonicMs();
        if (now >= kill_at_) {
          logLine("shutdown grace over; killing the workload");
          ::kill(-1, SIGKILL);
          kill_at_ = 0;
        } else {
          timeout = static_cast<int>(kill_at_ - now);
        }
      }
      step(timeout);
    }
    // Output still buffered in the pipes belongs before EXIT.
    const uint64_t until = monotonicMs() + kOutputDrainMs;
    while ((workload_.stdout_fd >= 0 || workload_.stderr_fd >= 0) && monotonicMs() < until) {
      step(static_cast<int>(until - monotonicMs()));
    }
    logLine("workload exited: " +
            std::string(exit_->kind == gp::ExitKind::kExited ? "code " : "signal ") +
            std::to_string(exit_->code));
    channel_.send(gp::encode(*exit_));
    finish();
  }

  // ERROR + EXIT + power off.
  [[noreturn]] void fatal(const std::string& message, int code) {
    logLine("fatal: " + message);
    auto frame = gp::encode(gp::BootError{message});
    if (frame) channel_.send(*frame);
    channel_.send(gp::encode(gp::Exit{gp::ExitKind::kExited, code}));
    finish();
  }

 private:
  [[noreturn]] void finish() {
    channel_.drain(kFinalDrainMs);
    if (channel_.droppedBytes() > 0) {
      logLine("dropped " + std::to_string(channel_.droppedBytes()) + " log bytes");
    }
    powerOff();
  }

  // One poll round over the channel, the workload's pipes, the exec
  // sessions and signals.
  void step(int timeout_ms) {
    std::vector<pollfd> fds;
    fds.push_back(pollfd{signal_fd_, POLLIN, 0});
    const int chan = channel_.pollFd();
    int chan_index = -1;
    if (chan >= 0) {
      chan_index = static_cast<int>(fds.size());
      fds.push_back(pollfd{chan, channel_.pollEvents(), 0});
    } else if (timeout_ms < 0 || timeout_ms > kProbeIntervalMs) {
      timeout_ms = kProbeIntervalMs;  // virtio-serial without a host: probe
    }
    int out_index = -1;
    int err_index = -1;
    if (workload_.stdout_fd >= 0) {
      out_index = static_cast<int>(fds.size());
      fds.push_back(pollfd{workload_.stdout_fd, POLLIN, 0});
    }
    if (workload_.stderr_fd >= 0) {
      err_index = static_cast<int>(fds.size());
      fds.push_back(pollfd{workload_.stderr_fd, POLLIN, 0});
    }
    if (exec_) {
      exec_->addPollFds(fds);
      const int exec_timeout = exec_->nextTimeoutMs();
      if (exec_timeout >= 0 && (timeout_ms < 0 || exec_timeout < timeout_ms)) {
        timeout_ms = exec_timeout;
      }
    }
    if (volume_ops_) {
      const int volume_timeout = volume_ops_->nextTimeoutMs();
      if (volume_timeout >= 0 && (timeout_ms < 0 || volume_timeout < timeout_ms)) {
        timeout_ms = volume_timeout;
      }
    }
    const int rc = ::poll(fds.data(), fds.size(), timeout_ms);
    if (rc < 0 && errno != EINTR) logLine(errnoText("poll", errno));
    if (chan < 0) channel_.probe();
    if (rc > 0) {
      if (fds[0].revents != 0) onSignals();
      if (out_index >= 0 && fds[out_index].revents != 0) {
        forward(workload_.stdout_fd, gp::LogSource::kStdout);
      }
      if (err_index >= 0 && fds[err_index].revents != 0) {
        forward(workload_.stderr_fd, gp::LogSource::kStderr);
      }
      if (chan_index >= 0 && fds[chan_index].revents != 0) {
        std::vector<gp::Frame> frames;
        auto r = channel_.onEvents(fds[chan_index].revents, frames);
        for (const gp::Frame& f : frames) onFrame(f);
        if (!r) {
          // Framing is lost and cannot come back: stop the workload as if
          // told to (the host sees the VM go away).
          logLine(r.error());
          beginShutdown(0);
        }
      }
      if (exec_) exec_->onPoll(fds);
    }
    if (exec_) {
      // The host that owned the sessions is gone (exec-sessions.md §Liveness).
      if (!channel_.connected() && exec_->size() > 0) {
        logLine("host channel lost: ending " + std::to_string(exec_->size()) + " exec sessions");
        exec_->abortAll();
      }
      exec_->onTick();
    }
    // A freeze ends at its limit whatever the host does (host-channel.md
    // §Volume operations).
    if (volume_ops_) volume_ops_->onTick();
  }

  void forward(int& fd, gp::LogSource source) {
    std::string buf(gp::kMaxLogDataBytes, '\0');
    for (int reads = 0; reads < 16; ++reads) {
      const ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (n <= 0) {
        ::close(fd);
        fd = -1;
        return;
      }
      auto frame = gp::encode(gp::Log{source, realtimeNs(), buf.substr(0, static_cast<size_t>(n))});
      if (frame) channel_.send(*frame, /*droppable=*/true);
    }
  }

  void onSignals() {
    signalfd_siginfo info{};
    while (::read(signal_fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      const int sig = static_cast<int>(info.ssi_signo);
      if (sig == SIGCHLD) {
        reap();
      } else if (sig == SIGINT || sig == SIGPWR) {
        logLine("ctrl-alt-del or power signal: shutting down");
        beginShutdown(0);
      } else if (workload_.pid > 0 && !exit_) {
        ::kill(workload_.pid, sig);
      }
    }
  }

  void reap() {
    while (true) {
      int status = 0;
      const pid_t pid = ::waitpid(-1, &status, WNOHANG);
      if (pid <= 0) return;
      if (pid == workload_.pid) {
        exit_ = exitFromWaitStatus(status);
      } else if (exec_) {
        exec_->onChildExit(pid, status);
      }
    }
  }

  void onFrame(const gp::Frame& f) {
    switch (f.type) {
      case gp::FrameType::kConfig: {
        if (config_ || workload_.pid > 0) {
          logLine("ignoring a second CONFIG");
          return;
        }
        auto config = gp::decodeConfig(f.payload);
        if (!config) fatal("CONFIG: " + config.error().toString(), 1);
        config_ = std::move(*config);
        return;
      }
      case gp::FrameType::kShutdown: {
        auto s = gp::decodeShutdown(f.payload);
        beginShutdown(s ? s->grace_ms : 0);
        return;
      }
      case gp::FrameType::kStatus:
        // An agent that restarted and reattached asks where we are
        // (host-channel.md §Reattaching). A virtio-serial reconnect is not
        // visible to the guest when it is quick, so the host must ask. Its
        // predecessor's exec sessions died with it.
        if (exec_) exec_->abortAll();
        if (exit_) {
          channel_.send(gp::encode(*exit_));
        } else if (workload_.pid > 0) {
          channel_.send(readyFrame());
        } else if (auto hello = helloFrame(); hello) {
          channel_.send(*hello);
        }
        return;
      case gp::FrameType::kPing: {
        auto p = gp::decodePing(f.payload);
        if (p) channel_.send(gp::encodePong(*p));
        return;
      }
      case gp::FrameType::kExecOpen:
      case gp::FrameType::kExecData:
      case gp::FrameType::kExecResize:
      case gp::FrameType::kExecSignal:
      case gp::FrameType::kExecExit:
      case gp::FrameType::kExecClose:
      case gp::FrameType::kExecWindow:
        if (exec_) {
          exec_->onFrame(f);
        } else if (f.type == gp::FrameType::kExecOpen) {
          channel_.send(*gp::encode(
              gp::ExecExit{gp::ExecExitKind::kNotStarted, 1, "the workload is not started yet"},
              f.stream));
        }
        return;
      case gp::FrameType::kResizeVolume:
      case gp::FrameType::kFreeze:
      case gp::FrameType::kThaw:
        if (volume_ops_) {
          volume_ops_->onFrame(f);
        } else {
          logLine("ignoring a " + gp::frameTypeName(f.type) + " frame before CONFIG");
        }
        return;
      default:
        logLine("ignoring a " + gp::frameTypeName(f.type) + " frame");
    }
  }

  void beginShutdown(uint32_t grace_ms) {
    if (workload_.pid <= 0) {
      // Before the workload exists there is nothing to be graceful to.
      logLine("shutdown before the workload started");
      channel_.send(gp::encode(gp::Exit{gp::ExitKind::kSignaled, SIGTERM}));
      finish();
    }
    if (shutting_down_ || exit_) return;
    shutting_down_ = true;
    // The workload's last writes must not block on a frozen volume.
    if (volume_ops_) volume_ops_->thawAll();
    const uint32_t grace = grace_ms != 0 ? grace_ms : grace_ms_;
    logLine("shutdown: SIGTERM, grace " + std::to_string(grace) + " ms");
    ::kill(workload_.pid, SIGTERM);
    kill_at_ = monotonicMs() + grace;
  }

  Channel channel_;
  int signal_fd_;
  std::optional<gp::Config> config_;
  std::vector<std::string> env_;
  Workload workload_;
  std::unique_ptr<ExecSessions> exec_;
  std::unique_ptr<VolumeOps> volume_ops_;
  std::optional<gp::Exit> exit_;
  bool shutting_down_ = false;
  uint32_t grace_ms_ = gp::kDefaultShutdownGraceMs;
  uint64_t kill_at_ = 0;
  uint64_t ready_boot_ns_ = 0;
  uint64_t hello_boot_ns_ = 0;
  gp::BootStages stages_;

  [[nodiscard]] std::string readyFrame() const {
    return gp::encode(gp::Ready{static_cast<uint32_t>(workload_.pid), ready_boot_ns_, stages_});
  }
};

// Before the channel exists, a failure can only go to the console.
[[noreturn]] void earlyFatal(const std::string& message) {
  logLine("fatal: " + message);
  powerOff();
}

}  // namespace

void runInit() {
  // Boot stage times (host-channel.md §READY): the kernel's part ends here.
  gp::BootStages stages;
  stages.init_ns = bootNs();
  logLine("started at uptime " + uptime());
  // Ctrl-alt-del becomes SIGINT to PID 1 instead of an immediate reboot.
  ::reboot(RB_DISABLE_CAD);
  const sigset_t handled = handledSignals();
  ::sigprocmask(SIG_BLOCK, &handled, nullptr);
  const int signal_fd = ::signalfd(-1, &handled, SFD_NONBLOCK | SFD_CLOEXEC);
  if (signal_fd < 0) earlyFatal(errnoText("signalfd", errno));

  ModuleSets modules;
  if (auto order = readFile(std::string(kModulesOrderFile)); order) {
    auto files = parseModuleOrder(*order);
    if (!files) earlyFatal(files.error());
    modules = splitModules(*files);
    auto loaded = loadModules(std::string(kModulesDir), modules.boot);
    if (!loaded) earlyFatal(loaded.error());
  }
  // No modules.order (a kernel with everything built in): nothing to load.
  stages.modules_ns = bootNs();
  auto mounted = runMounts(earlyMounts());
  if (!mounted) earlyFatal(mounted.error());
  stages.mounts_ns = bootNs();
  // sysfs is mounted and virtio_balloon (if the VMM has the device) has
  // registered, which reset the order to the kernel's default.
  if (auto reporting =
          writeKernelParameter(std::string(kPageReportingOrderFile), kPageReportingOrder);
      !reporting) {
    logLine(reporting.error());
  }

  logLine("modules loaded at " + std::to_string(stages.modules_ns / 1'000'000) +
          " ms, early mounts done at " + uptime());
  auto channel = Channel::open(kChannelOpenTimeoutMs, [&] {
    auto loaded = loadModules(std::string(kModulesDir), modules.vsock);
    if (!loaded) logLine(loaded.error());
  });
  if (!channel) earlyFatal(channel.error());
  Init init(std::move(*channel), signal_fd);
  gp::Config config = init.awaitConfig();
  stages.config_ns = bootNs();
  init.stages() = stages;
  logLine("CONFIG received at " + uptime() +
          (config.instance_id.empty() ? std::string() : " for " + config.instance_id));
  init.prepare(config);
  init.start(config);
  // The file is on tmpfs now; PID 1 keeps no copy of it for the VM's life.
  if (config.secrets_file) secrets::wipe(*config.secrets_file);
  init.supervise();
}

}  // namespace plfm::init
