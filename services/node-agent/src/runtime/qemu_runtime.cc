#include "runtime/qemu_runtime.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <x86intrin.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "runtime/confine.h"
#include "runtime/detached.h"
#include "runtime/errors.h"
#include "runtime/qmp.h"

#include <nlohmann/json.hpp>

namespace plfm::runtime {
namespace fs = std::filesystem;
namespace {

constexpr const char* kChannelName = "plfm";  // the guest's /dev/virtio-ports/plfm

// Kernel arguments every guest gets: the serial console for failure reasons,
// no reboot loop on panic (-no-reboot turns the reboot into a VMM exit), and
// the boot-time savings measured in DESIGN §7 and docs/benchmarks.md:
// - noreplace-smp: a 1-vCPU kernel otherwise rewrites every lock prefix in
//   its text, one text_poke (a page-table switch and a TLB flush) each: 6,144
//   of them in the minimal kernel, 0.15 s of every boot under TCG;
// - no_timer_check: no test that the PIT's interrupt reaches the IOAPIC
//   (KVM guests skip it on their own): up to 4 ticks, 40 ms at HZ=100.
std::vector<std::string> baseKernelArgs() {
  return {"console=ttyS0",   "panic=-1", "quiet",    "mitigations=off", "nokaslr",
          "8250.nr_uarts=1", "pci=off",  "reboot=t", "noreplace-smp",   "no_timer_check"};
}

// QEMU's -M for a kernel with `traits` under `accel`.
std::string machineFor(const GuestKernelTraits& traits, const std::string& accel) {
  if (!traits.boots_without_acpi) return "microvm,x-option-roms=off,pit=off,pic=off,rtc=on";
  if (accel == "tcg" && traits.lapic_timer_khz) {
    return "microvm,x-option-roms=off,pit=off,pic=off,rtc=on,acpi=off";
  }
  return "microvm,x-option-roms=off,pit=on,pic=on,rtc=on,acpi=off";
}

std::string joinArgs(const std::vector<std::string>& args) {
  std::string out;
  for (const auto& a : args) {
    if (!out.empty()) out += ' ';
    out += a;
  }
  return out;
}

uint64_t cpuinfoTscKhz() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  bool constant = false;
  double mhz = 0;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) == 0) {
      constant = line.find(" constant_tsc") != std::string::npos;
    } else if (line.rfind("cpu MHz", 0) == 0 && mhz == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) mhz = std::atof(line.c_str() + colon + 1);
    }
    if (line.empty() && mhz > 0) break;  // the first CPU is enough
  }
  return constant && mhz > 0 ? static_cast<uint64_t>(mhz * 1000) : 0;
}

uint64_t measuredTscKhz() {
  timespec a{};
  timespec b{};
  clock_gettime(CLOCK_MONOTONIC_RAW, &a);
  uint64_t t0 = __rdtsc();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  clock_gettime(CLOCK_MONOTONIC_RAW, &b);
  uint64_t t1 = __rdtsc();
  double ns =
      static_cast<double>(b.tv_sec - a.tv_sec) * 1e9 + static_cast<double>(b.tv_nsec - a.tv_nsec);
  return ns > 0 ? static_cast<uint64_t>(static_cast<double>(t1 - t0) / ns * 1e6) : 0;
}

}  // namespace

uint64_t hostTscKhz() {
  static const uint64_t khz = [] {
    uint64_t v = cpuinfoTscKhz();
    return v != 0 ? v : measuredTscKhz();
  }();
  return khz;
}

QemuRuntime::QemuRuntime(QemuOptions options) : options_(std::move(options)) {}

std::vector<QemuRuntime::PassedFile> QemuRuntime::passedFiles(const VmSpec& spec) {
  std::vector<PassedFile> files;
  files.push_back({PassedFile::kRead, spec.kernel});
  if (!spec.initramfs.empty()) files.push_back({PassedFile::kRead, spec.initramfs});
  files.push_back({PassedFile::kConsole, spec.run_dir + "/console.log"});
  files.push_back({PassedFile::kListen, spec.run_dir + "/qmp.sock"});
  files.push_back({PassedFile::kListen, spec.run_dir + "/ch.sock"});
  if (!spec.tap.empty()) files.push_back({PassedFile::kTap, spec.tap});
  for (const auto& d : spec.drives) {
    files.push_back({d.read_only ? PassedFile::kRead : PassedFile::kReadWrite, d.path});
  }
  return files;
}

std::vector<std::string> QemuRuntime::commandLine(const VmSpec& spec,
                                                  const std::string& accel) const {
  const GuestKernelTraits kernel = guestKernelTraits(spec.kernel);
  std::vector<std::string> kargs =
      guestKernelArgs(kernel, accel, options_.tsc_khz != 0 ? options_.tsc_khz : hostTscKhz());
  kargs.insert(kargs.end(), spec.kernel_args.begin(), spec.kernel_args.end());

  // Every file, socket and the tap arrive as fds 3, 4, ... in passedFiles()
  // order: the VMM opens nothing by path but /proc/self/fd/N (confine.h).
  int next_fd = 3;
  auto fd = [&] { return std::to_string(next_fd++); };
  auto proc = [&] { return "/proc/self/fd/" + fd(); };
  std::vector<std::string> argv = {
      options_.binary,
      // Names the run dir ("RUN/", as agent.cc's killVmmsIn looks for paths
      // inside it), so that a restarted agent finds a VMM whose handle it
      // never saved.
      "-name",
      spec.run_dir + "/",
      "-M",
      // The RTC stays: without one, the kernel's CMOS clock reads spin on
      // port I/O, which costs seconds per boot under TCG. A kernel that does
      // without ACPI (the minimal kernel) gets no ACPI tables. It then needs
      // the PIT and PIC unless it is told its LAPIC timer's rate: without
      // ACPI's hardware-reduced FADT it calibrates that timer against the
      // PIT (TCG has no TSC-deadline timer) and has no timer at all without
      // one (guest-init-delivery.md).
      machineFor(kernel, accel),
      "-accel",
      accel == "tcg" && options_.tcg_tb_size_mb != 0
          ? "tcg,tb-size=" + std::to_string(options_.tcg_tb_size_mb)
          : accel,
      "-cpu",
      accel == "kvm" ? "host" : "max",
      "-smp",
      std::to_string(spec.vcpus),
      "-m",
      std::to_string(spec.memory_mb),
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-no-reboot",
      // QEMU's seccomp filter: no obsolete syscalls, no setuid/setgid, no
      // fork or exec, no scheduler or affinity changes.
      "-sandbox",
      "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
      "-kernel",
      proc(),
  };
  if (!spec.initramfs.empty()) argv.insert(argv.end(), {"-initrd", proc()});
  argv.insert(argv.end(), {"-append", joinArgs(kargs)});
  argv.insert(argv.end(),
              {"-chardev", "file,id=console,path=" + proc(), "-serial", "chardev:console"});
  argv.insert(argv.end(), {"-chardev", "socket,id=qmp,fd=" + fd() + ",server=on,wait=off", "-mon",
                           "chardev=qmp,mode=control"});
  argv.insert(argv.end(), {"-chardev", "socket,id=channel,fd=" + fd() + ",server=on,wait=off",
                           "-device", "virtio-serial-device", "-device",
                           std::string("virtserialport,chardev=channel,name=") + kChannelName});
  if (!spec.tap.empty()) {
    argv.insert(argv.end(), {"-netdev", "tap,id=net0,fd=" + fd(), "-device",
                             "virtio-net-device,netdev=net0,mac=" + spec.mac +
                                 ",host_mtu=" + std::to_string(spec.mtu)});
  }
  for (const auto& d : spec.drives) {
    std::string drive =
        "id=" + d.id + ",file=" + proc() + ",format=raw,if=none,cache=none,aio=threads";
    if (d.read_only) drive += ",readonly=on";
    argv.insert(argv.end(), {"-drive", drive, "-device",
                             "virtio-blk-device,drive=" + d.id + ",serial=" + d.id});
  }
  // Free-page reporting needs the guest's virtio_balloon (built into the
  // minimal kernel; scripts/fetch-kernel puts the cloud kernel's module in
  // the initramfs); the balloon itself is never inflated.
  if (options_.free_page_reporting) {
    argv.insert(argv.end(), {"-device", "virtio-balloon-device,free-page-reporting=on"});
  }
  return argv;
}

Result<std::string> QemuRuntime::accelFor(const std::string& kernel) {
  if (options_.accel == "kvm" || options_.accel == "tcg") return options_.accel;
  if (options_.accel != "auto") {
    return Error(errc::kInvalidArgument, "qemu accel must be auto, kvm or tcg")
        .with("accel", options_.accel);
  }
  std::lock_guard lock(mu_);
  if (!probed_accel_) {
    std::string dir = options_.probe_dir;
    if (dir.empty()) dir = (fs::temp_directory_path() / "plfm-kvm-probe").string();
    std::error_code ec;
    fs::create_directories(dir, ec);
    // The verdict is remembered on disk per QEMU, kernel and host boot, so
    // only the first agent start after a boot pays for a probe.
    const std::string cache = dir + "/accel-probe.json";
    const std::string key = probeCacheKey(options_.binary, kernel);
    auto cached = nlohmann::json::parse(readFile(cache).value_or(""), nullptr, false);
    if (cached.is_object() && cached.value("key", "") == key) {
      probed_accel_ = cached.value("accel", "tcg");
    } else {
      bool kvm = ::access("/dev/kvm", R_OK | W_OK) == 0 &&
                 probeKvm(options_.binary, kernel, dir, std::chrono::seconds(5));
      probed_accel_ = kvm ? "kvm" : "tcg";
      (void)writeFileAtomic(cache, nlohmann::json{{"key", key}, {"accel", *probed_accel_}}.dump());
      log::info("qemu acceleration chosen",
                {{"accel", *probed_accel_},
                 {"reason", kvm ? "a probe boot under KVM succeeded"
                                : "KVM is missing or cannot boot a guest"}});
    }
  }
  return *probed_accel_;
}

Result<VmHandle> QemuRuntime::start(const VmSpec& spec) {
  PLFM_TRY(checkVmSpec(spec));
  PLFM_ASSIGN_OR_RETURN(std::string accel, accelFor(spec.kernel));
  std::error_code ec;
  fs::create_directories(spec.run_dir, ec);
  if (ec) return Error(errc::kIo, "creating " + spec.run_dir + ": " + ec.message());
  // The run dir stays root's: the VMM writes only through the fds it gets.
  ::chmod(spec.run_dir.c_str(), 0700);
  for (const char* stale : {"/ch.sock", "/qmp.sock", "/qemu.pid"})
    fs::remove(spec.run_dir + stale, ec);

  const std::vector<PassedFile> files = passedFiles(spec);
  std::optional<Confinement> jail;
  if (options_.confine.enabled) {
    ConfineRequest req = confineRequestFor(spec, files);
    // Under KVM, QEMU opens /dev/kvm by path: its own node (confine.h).
    if (accel == "kvm") {
      req.devices = {"/dev/kvm"};
      req.device_dir = spec.run_dir + "/dev";
    }
    // The console file must exist for its Landlock rule.
    const int console = ::open((spec.run_dir + "/console.log").c_str(),
                               O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (console >= 0) ::close(console);
    auto prepared = Confinement::prepare(options_.confine, req);
    if (!prepared) return prepared.error().with("instance_id", spec.instance_id);
    jail = std::move(*prepared);
  }
  PLFM_ASSIGN_OR_RETURN(OpenFiles opened, openPassedFiles(files, jail ? jail->uid() : 0));

  std::string log_path = spec.run_dir + "/vmm.log";
  DetachedOptions opts;
  opts.log_path = log_path;
  opts.inherit_fds = opened.fds;
  opts.no_transparent_huge_pages = !options_.host_huge_pages;
  if (jail) {
    opts.pre_exec = &enterConfinementHook;
    opts.pre_exec_arg = &*jail;
  }
  auto pid = spawnDetached(commandLine(spec, accel), opts);
  opened.closeAll();  // the VMM holds its own copies now
  if (!pid) {
    return Error(errc::kVmmStartFailed, "qemu failed to start: " + pid.error().message())
        .with("instance_id", spec.instance_id);
  }
  VmHandle h;
  h.driver = "qemu";
  h.instance_id = spec.instance_id;
  h.pid = *pid;
  h.pid_start = processStartTime(*pid);
  h.control_socket = spec.run_dir + "/qmp.sock";
  h.channel_socket = spec.run_dir + "/ch.sock";
  h.console_log = spec.run_dir + "/console.log";
  // QEMU answers on QMP once the machine is built: a bad argument, an
  // unusable drive or tap, or a confinement QEMU cannot live with ends it
  // before that, and its log says why.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while (true) {
    if (h.pid_start == 0 || !alive(h)) {
      return Error(errc::kVmmStartFailed,
                   "qemu failed to start: " + std::string(tailFile(log_path, 5)))
          .with("instance_id", spec.instance_id)
          .with("log", log_path);
    }
    if (auto qmp = Qmp::connect(h.control_socket, std::chrono::milliseconds(500))) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      (void)MicroVmRuntime::kill(h);
      return Error(errc::kVmmStartFailed, "qemu did not answer on QMP within 15 s")
          .with("instance_id", spec.instance_id)
          .with("log", log_path);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return h;
}

Result<void> QemuRuntime::requestStop(const VmHandle& vm) {
  if (!alive(vm)) return ok();
  PLFM_ASSIGN_OR_RETURN(auto qmp, Qmp::connect(vm.control_socket, std::chrono::seconds(2)));
  PLFM_TRY(qmp.execute("system_powerdown"));
  return ok();
}

Result<void> QemuRuntime::resizeDrive(const VmHandle& vm, const VmDrive& drive,
                                      uint64_t size_bytes) {
  PLFM_ASSIGN_OR_RETURN(auto qmp, Qmp::connect(vm.control_socket, std::chrono::seconds(2)));
  // -drive id=<id>,if=none names the block backend <id> (microvm-runtime.md).
  PLFM_TRY(qmp.execute("block_resize", {{"device", drive.id}, {"size", size_bytes}}));
  return ok();
}

Result<std::string> QemuRuntime::startBackup(const VmHandle& vm, const VmDrive& drive,
                                             int target_fd) {
  std::string job;
  {
    std::lock_guard lock(mu_);
    job = "snap-" + drive.id + "-" + std::to_string(++next_backup_);
  }
  PLFM_ASSIGN_OR_RETURN(auto qmp, Qmp::connect(vm.control_socket, std::chrono::seconds(2)));
  // The VMM is confined and cannot open a new path: the target arrives as
  // an fd, in an fd set that the file driver opens as /dev/fdset/N.
  PLFM_ASSIGN_OR_RETURN(auto added,
                        qmp.executeWithFd("add-fd", nlohmann::json::object(), target_fd));
  const int64_t fdset = added.value("fdset-id", int64_t{-1});
  if (fdset < 0) return Error(errc::kInternal, "QMP add-fd returned no fd set");
  {
    std::lock_guard lock(mu_);
    backup_fdsets_[job] = fdset;
  }
  PLFM_TRY(qmp.execute("blockdev-add", {{"driver", "raw"},
                                        {"node-name", job},
                                        {"file",
                                         {{"driver", "file"},
                                          {"filename", "/dev/fdset/" + std::to_string(fdset)},
                                          {"aio", "threads"}}}}));
  // sync=full from this moment: QEMU copies old blocks before the guest
  // overwrites them, so the point in time is the job's start.
  PLFM_TRY(qmp.execute("blockdev-backup", {{"job-id", job},
                                           {"device", drive.id},
                                           {"target", job},
                                           {"sync", "full"},
                                           {"auto-dismiss", false}}));
  return job;
}

Result<void> QemuRuntime::finishBackup(const VmHandle& vm, const std::string& job,
                                       std::chrono::milliseconds timeout) {
  PLFM_ASSIGN_OR_RETURN(auto qmp, Qmp::connect(vm.control_socket, std::chrono::seconds(2)));
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Result<void> outcome = ok();
  // The job stays until dismissed, so its outcome can be read (query-jobs).
  while (true) {
    PLFM_ASSIGN_OR_RETURN(auto jobs, qmp.execute("query-jobs"));
    std::string status = "absent";
    std::string error;
    for (const auto& j : jobs) {
      if (j.value("id", "") != job) continue;
      status = j.value("status", "");
      error = j.value("error", "");
    }
    if (status == "concluded" || status == "absent") {
      if (!error.empty()) outcome = Error(errc::kBackupFailed, "backup job: " + error);
      if (status == "concluded") (void)qmp.execute("job-dismiss", {{"id", job}});
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      (void)qmp.execute("job-cancel", {{"id", job}});
      outcome = Error(errc::kDeadlineExceeded, "the backup job " + job + " did not finish in time");
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  (void)qmp.execute("blockdev-del", {{"node-name", job}});
  int64_t fdset = -1;
  {
    std::lock_guard lock(mu_);
    if (auto it = backup_fdsets_.find(job); it != backup_fdsets_.end()) {
      fdset = it->second;
      backup_fdsets_.erase(it);
    }
  }
  if (fdset >= 0) (void)qmp.execute("remove-fd", {{"fdset-id", fdset}});
  return outcome;
}

Result<void> QemuRuntime::kill(const VmHandle& vm) {
  if (!alive(vm)) return ok();
  // "quit" lets QEMU close its files and sockets; SIGKILL is the backstop.
  if (auto qmp = Qmp::connect(vm.control_socket, std::chrono::milliseconds(500))) {
    (void)qmp->execute("quit", nlohmann::json::object(), std::chrono::milliseconds(500));
    if (waitExit(vm, std::chrono::seconds(2))) return ok();
  }
  return MicroVmRuntime::kill(vm);
}

GuestKernelTraits guestKernelTraits(const std::string& kernel) {
  std::ifstream in(fs::path(kernel).parent_path() / "config");
  bool cmdline_devices = false;
  bool mp_tables = false;
  GuestKernelTraits traits;
  std::string line;
  while (std::getline(in, line)) {
    cmdline_devices = cmdline_devices || line == "CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES=y";
    mp_tables = mp_tables || line == "CONFIG_X86_MPPARSE=y";
    traits.lapic_timer_khz = traits.lapic_timer_khz || line == "CONFIG_X86_LAPIC_TIMER_KHZ_PARAM=y";
  }
  traits.boots_without_acpi = cmdline_devices && mp_tables;
  return traits;
}

bool kernelBootsWithoutAcpi(const std::string& kernel) {
  return guestKernelTraits(kernel).boots_without_acpi;
}

std::vector<std::string> guestKernelArgs(const GuestKernelTraits& kernel, const std::string& accel,
                                         uint64_t tsc_khz) {
  std::vector<std::string> kargs = baseKernelArgs();
  if (accel != "tcg") return kargs;
  if (tsc_khz != 0) kargs.push_back("tsc_early_khz=" + std::to_string(tsc_khz));
  // TCG's TSC follows the host's clock, so the clocksource watchdog that
  // would check it against another clock every 0.5 s only burns CPU: an
  // idle guest cost 2.4% of a core with it, 0.25% without (ADR 0019).
  kargs.emplace_back("tsc=reliable");
  // TCG has no TSC-deadline timer, so the kernel would calibrate its local
  // APIC timer against the PIT (0.1 s) and then verify it (0.1 s more).
  // QEMU's emulated APIC counts at 1 GHz; a kernel built with our patch
  // (guest/kernel/patches) takes that rate from the command line instead.
  if (kernel.lapic_timer_khz) {
    kargs.push_back("lapic_timer_khz=" + std::to_string(kQemuTcgLapicTimerKhz));
  }
  return kargs;
}

bool probeKvm(const std::string& qemu_binary, const std::string& kernel,
              const std::string& work_dir, std::chrono::milliseconds timeout) {
  std::string console = work_dir + "/kvm-probe-console.log";
  std::string vmm_log = work_dir + "/kvm-probe.log";
  std::error_code ec;
  fs::remove(console, ec);
  fs::remove(vmm_log, ec);
  std::vector<std::string> argv = {qemu_binary,
                                   "-M",
                                   "microvm",
                                   "-accel",
                                   "kvm",
                                   "-cpu",
                                   "host",
                                   "-m",
                                   "128",
                                   "-nodefaults",
                                   "-no-user-config",
                                   "-display",
                                   "none",
                                   "-no-reboot",
                                   "-kernel",
                                   kernel,
                                   "-append",
                                   "console=ttyS0 panic=-1 8250.nr_uarts=1 pci=off",
                                   "-serial",
                                   "file:" + console};
  SpawnOptions opts;
  opts.stdout_path = vmm_log;
  auto proc = spawn(argv, opts);
  if (!proc) return false;
  // Decide as soon as the outcome shows: the kernel reached its root mount
  // (KVM works), or QEMU exited or reported a KVM error (it does not). A
  // broken nested KVM often just hangs, hence the timeout.
  bool booted = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (readFile(console).value_or("").find("VFS: Unable to mount root fs") != std::string::npos) {
      booted = true;
      break;
    }
    if (proc->poll()) break;
    if (readFile(vmm_log).value_or("").find("KVM internal error") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (!proc->poll()) {
    proc->signal(SIGKILL);
    proc->wait();
  }
  return booted;
}

std::string probeCacheKey(const std::string& qemu_binary, const std::string& kernel) {
  std::error_code ec;
  auto size = fs::file_size(kernel, ec);
  auto mtime = fs::last_write_time(kernel, ec).time_since_epoch().count();
  return qemu_binary + "|" + kernel + "|" + std::to_string(size) + "|" + std::to_string(mtime) +
         "|" + std::to_string(processStartTime(1));  // the host's boot: a reboot may fix KVM
}

}  // namespace plfm::runtime
