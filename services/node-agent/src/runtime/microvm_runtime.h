// MicroVmRuntime starts, finds again and stops the one VMM process that runs an
// instance's microVM. The agent talks to the guest itself over the host
// channel (libs/guest-proto); a runtime only owns the VMM: its command line or
// API calls, its process, and its control socket.
//
// VMM processes are detached from the agent (their own session, reparented to
// init), so an agent restart or crash never takes a VM down: a restarted agent
// adopts each VM from its persisted VmHandle (pid, pid start time, sockets).
//
//   QemuRuntime qemu(options);
//   PLFM_ASSIGN_OR_RETURN(VmHandle vm, qemu.start(spec));   // VMM running
//   ... host channel on vm.channel_socket: HELLO, CONFIG, READY ...
//   PLFM_TRY(qemu.requestStop(vm));                        // ACPI power button
//   if (!qemu.waitExit(vm, 10s)) PLFM_TRY(qemu.kill(vm));
//
// Drivers: QemuRuntime (qemu_runtime.h, what CI and dev machines run),
// FirecrackerRuntime (firecracker_runtime.h); FakeRuntime
// (test/support/fake_runtime.h) for unit tests: no VMM, a fake guest that
// speaks the host channel on channel_socket. See
// docs/specs/runtime/microvm-runtime.md.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/result.h"

namespace plfm::runtime {

struct VmDrive {
  std::string id;    // "rootfs", "scratch", "vol-<name>"
  std::string path;  // a raw disk image on the host
  bool read_only = false;
};

// Everything a driver needs to start one microVM.
struct VmSpec {
  std::string instance_id;
  // A private directory for this VM: the VMM's sockets, pid file and console
  // log live here. Keep it short: Unix socket paths are limited to 107 bytes.
  std::string run_dir;
  std::string kernel;     // an uncompressed vmlinux (both drivers) or a bzImage (qemu)
  std::string initramfs;  // newc cpio with vt-init (guest-init-delivery.md)
  std::vector<std::string> kernel_args;  // appended to the driver's defaults
  std::vector<VmDrive> drives;           // in order: /dev/vda, /dev/vdb, ...
  int vcpus = 1;
  int memory_mb = 256;  // the hard cap: the guest's RAM
  std::string tap;      // host tap device; empty: no network
  std::string mac;      // "02:xx:xx:xx:xx:xx"
  int mtu = 1420;
};

// What identifies a running VM, persisted by the agent so that a restart can
// adopt it. `pid_start` (the process's start time in clock ticks since boot,
// /proc/PID/stat field 22) guards against a recycled pid.
struct VmHandle {
  std::string driver;  // "qemu", "firecracker", "fake"
  std::string instance_id;
  pid_t pid = -1;
  uint64_t pid_start = 0;
  std::string control_socket;  // QMP or the Firecracker API socket
  std::string channel_socket;  // the host end of the host channel
  // Firecracker hybrid vsock: after connecting to channel_socket the host
  // sends "CONNECT <port>\n" and reads "OK ...\n" (docs/vsock.md). 0: the
  // socket is the channel itself (QEMU virtio-serial).
  uint32_t channel_vsock_port = 0;
  std::string console_log;  // the guest's serial console, for failure reasons
  // Firecracker: the path the VMM knows each writable drive's file by
  // (/proc/self/fd/N, as configured), for PATCH /drives. Empty for QEMU,
  // which names a drive by its id.
  std::map<std::string, std::string> drive_paths;

  [[nodiscard]] nlohmann::json toJson() const;
  [[nodiscard]] static Result<VmHandle> fromJson(const nlohmann::json& j);
};

class MicroVmRuntime {
 public:
  virtual ~MicroVmRuntime() = default;

  [[nodiscard]] virtual std::string_view name() const = 0;

  // Starts the VMM and returns once its process runs and the channel socket
  // exists. On failure nothing is left running.
  [[nodiscard]] virtual Result<VmHandle> start(const VmSpec& spec) = 0;

  // True while the VMM process of `vm` exists (and is the same process).
  [[nodiscard]] virtual bool alive(const VmHandle& vm) const;

  // Asks the guest to power off (ACPI power button, Ctrl-Alt-Del). The
  // graceful path is the host channel's SHUTDOWN; this is the fallback.
  [[nodiscard]] virtual Result<void> requestStop(const VmHandle& vm) = 0;

  // Ends the VMM now (QMP quit, then SIGKILL). Idempotent: a VM already gone
  // is success.
  [[nodiscard]] virtual Result<void> kill(const VmHandle& vm);

  // Waits up to `timeout` for the VMM process to exit.
  [[nodiscard]] bool waitExit(const VmHandle& vm, std::chrono::milliseconds timeout) const;

  // Tells the running VMM that `drive`'s file (`drive.id` as started) is now
  // `size_bytes` long, so the guest's virtio-blk driver sees the new
  // capacity (QEMU QMP block_resize; Firecracker PATCH /drives/{id}). The
  // caller grew the file first. Drivers without it fail runtime.unsupported.
  [[nodiscard]] virtual Result<void> resizeDrive(const VmHandle& vm, const VmDrive& drive,
                                                 uint64_t size_bytes);

  // A point-in-time copy of `drive` into `target_fd` (a file of the
  // drive's size, opened read-write by the caller): returns once the job
  // runs, so the copy's point in time is fixed and the guest may be thawed;
  // finishBackup waits for the copy to complete and cleans up. QEMU:
  // add-fd, blockdev-add, blockdev-backup sync=full. Others fail
  // runtime.unsupported.
  [[nodiscard]] virtual Result<std::string> startBackup(const VmHandle& vm, const VmDrive& drive,
                                                        int target_fd);
  [[nodiscard]] virtual Result<void> finishBackup(const VmHandle& vm, const std::string& job,
                                                  std::chrono::milliseconds timeout);

  // The virtio-blk serial the guest will read for `drive`
  // (/sys/block/vd*/serial; vt-init finds volumes by it). By default the
  // drive id: QEMU sets serial=<id>.
  [[nodiscard]] virtual Result<std::string> diskSerial(const VmDrive& drive) const {
    return drive.id;
  }
};

// Refuses a spec whose strings could change the meaning of a VMM option:
// QEMU splits -drive, -netdev and -chardev values on ',' (and its legacy
// "file:"/"unix:" forms cannot escape one), so no value that lands there may
// hold a ',' or a control character, and ids must be plain names. The agent
// validates plan fields at its edge (agent/workload_check.h); this is the
// last line, right before a command line is built.
[[nodiscard]] Result<void> checkVmSpec(const VmSpec& spec);

// The start time of a pid, 0 when gone (libs/core).
using plfm::processStartTime;

// True when `pid` runs and started at `start` (0: any start time).
[[nodiscard]] bool processMatches(pid_t pid, uint64_t start);

}  // namespace plfm::runtime
