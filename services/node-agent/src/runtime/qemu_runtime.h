// QemuRuntime runs each microVM as `qemu-system-x86_64 -M microvm`: virtio-mmio
// block, net and serial devices, the host channel on a virtio-serial port
// backed by a Unix socket, and QMP for control. QEMU daemonizes itself once the
// machine is set up (-daemonize), so start() returns with the VM created, its
// sockets listening, and the VMM detached from the agent.
//
// Acceleration: KVM when a probe boot under KVM reaches the kernel's root
// mount, TCG otherwise (our build machines expose a /dev/kvm that stock
// kernels cannot boot under; DESIGN §7). Under TCG the kernel needs
// tsc_early_khz or it hangs calibrating the TSC.
//
// The command line it builds is in docs/specs/runtime/microvm-runtime.md.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/confine.h"
#include "runtime/microvm_runtime.h"
#include "runtime/passed_files.h"

namespace plfm::runtime {

// The TCG translation cache QEMU gets unless told otherwise: see ADR 0019.
inline constexpr uint32_t kDefaultTcgTbSizeMb = 8;

struct QemuOptions {
  std::string binary = "qemu-system-x86_64";
  std::string accel = "auto";  // "auto", "kvm" or "tcg"
  uint64_t tsc_khz = 0;        // 0: the host's (hostTscKhz())
  // Density (microvm-runtime.md, "Memory and idle CPU"; ADR 0019).
  // The TCG translation cache in MiB (`-accel tcg,tb-size=N`); 0 leaves QEMU's
  // default (1 GiB, touched as code is translated). Ignored under KVM.
  uint32_t tcg_tb_size_mb = kDefaultTcgTbSizeMb;
  // A virtio-balloon device with free-page reporting: the guest hands the
  // memory it frees back to the host, which drops those pages (vt-init sets
  // the reporting block size, guest-init.md step 2).
  bool free_page_reporting = true;
  // Whether the VMM's memory (guest RAM, the TCG cache) may be backed by the
  // host's transparent huge pages. QEMU asks for them (madvise), and then one
  // touched 4 KiB page makes a 2 MiB block resident. false (the default, as
  // Firecracker's): PR_SET_THP_DISABLE for the VMM (detached.h).
  bool host_huge_pages = false;
  // Where the KVM probe writes its logs and remembers its verdict
  // (accel-probe.json); empty: a temp dir.
  std::string probe_dir;
  ConfineOptions confine;  // uid, Landlock, cgroups (confine.h); on unless the operator says
};

class QemuRuntime final : public MicroVmRuntime {
 public:
  explicit QemuRuntime(QemuOptions options);

  [[nodiscard]] std::string_view name() const override { return "qemu"; }
  [[nodiscard]] Result<VmHandle> start(const VmSpec& spec) override;
  [[nodiscard]] Result<void> requestStop(const VmHandle& vm) override;
  [[nodiscard]] Result<void> kill(const VmHandle& vm) override;
  // QMP block_resize of the -drive id (QEMU truncates nothing: the file is
  // already that size; it re-reads it and signals the capacity change).
  [[nodiscard]] Result<void> resizeDrive(const VmHandle& vm, const VmDrive& drive,
                                         uint64_t size_bytes) override;
  // The job id is "snap-<drive>-<n>"; the target node and fd set are named
  // after it, so finishBackup can remove both.
  [[nodiscard]] Result<std::string> startBackup(const VmHandle& vm, const VmDrive& drive,
                                                int target_fd) override;
  [[nodiscard]] Result<void> finishBackup(const VmHandle& vm, const std::string& job,
                                          std::chrono::milliseconds timeout) override;

  // The argv start() runs for `spec` under `accel` ("kvm" or "tcg").
  [[nodiscard]] std::vector<std::string> commandLine(const VmSpec& spec,
                                                     const std::string& accel) const;
  // "kvm" or "tcg": the configured one, or the probe's verdict for `kernel`
  // (probed once, then remembered).
  [[nodiscard]] Result<std::string> accelFor(const std::string& kernel);

  // What start() hands the VMM as fds 3, 4, ..., in this order.
  using PassedFile = runtime::PassedFile;
  [[nodiscard]] static std::vector<PassedFile> passedFiles(const VmSpec& spec);

 private:
  QemuOptions options_;
  std::mutex mu_;
  std::optional<std::string> probed_accel_;
  // Backup jobs started and not finished: job id -> QEMU fd set id.
  std::map<std::string, int64_t> backup_fdsets_;  // guarded by mu_
  uint64_t next_backup_ = 0;                      // guarded by mu_
};

// True when a guest kernel boots under KVM here: QEMU with -accel kvm boots
// `kernel` without a root device and must reach the "VFS: Unable to mount
// root fs" panic (that is, run the whole kernel init) within `timeout`.
[[nodiscard]] bool probeKvm(const std::string& qemu_binary, const std::string& kernel,
                            const std::string& work_dir, std::chrono::milliseconds timeout);

// What the KVM probe's remembered verdict depends on: the QEMU binary, the
// kernel file (path, size, mtime) and the host's boot.
[[nodiscard]] std::string probeCacheKey(const std::string& qemu_binary, const std::string& kernel);

// What the `config` beside a guest kernel says about it (a scripts/fetch-kernel
// or build-kernel release dir); all false when there is no such file.
struct GuestKernelTraits {
  // It finds its devices without ACPI: virtio-mmio devices from the command
  // line (VIRTIO_MMIO_CMDLINE_DEVICES; QEMU microvm appends
  // virtio_mmio.device= entries when its ACPI is off) and the IOAPIC from MP
  // tables (X86_MPPARSE). The minimal kernel can; Debian's cloud kernel
  // cannot, so it keeps QEMU's ACPI tables.
  bool boots_without_acpi = false;
  // It takes lapic_timer_khz= (X86_LAPIC_TIMER_KHZ_PARAM, our patch in
  // guest/kernel/patches): the local APIC timer's rate, so that it does not
  // calibrate that timer at boot.
  bool lapic_timer_khz = false;
};
[[nodiscard]] GuestKernelTraits guestKernelTraits(const std::string& kernel);
[[nodiscard]] bool kernelBootsWithoutAcpi(const std::string& kernel);

// The rate of QEMU's emulated local APIC timer under TCG: it counts
// nanoseconds (a kernel calibrating it measures 999.997 MHz).
inline constexpr uint64_t kQemuTcgLapicTimerKhz = 1'000'000;

// The kernel command line's fixed part for a kernel with `traits` under
// `accel` ("kvm" or "tcg"): the console, panic and reboot behaviour, the
// boot-time savings (docs/specs/runtime/microvm-runtime.md), and under TCG
// the TSC's rate (`tsc_khz`, 0 for none) and the APIC timer's.
[[nodiscard]] std::vector<std::string> guestKernelArgs(const GuestKernelTraits& traits,
                                                       const std::string& accel, uint64_t tsc_khz);

// The host TSC frequency in kHz: /proc/cpuinfo's "cpu MHz" when the TSC is
// constant, else measured against CLOCK_MONOTONIC.
[[nodiscard]] uint64_t hostTscKhz();

}  // namespace plfm::runtime
