// FirecrackerRuntime runs each microVM under Firecracker: it spawns
// `firecracker --api-sock SOCK` detached (a jailer can wrap the binary through
// `binary`/`extra_args`), then configures the VM over the API socket, in this
// order (Firecracker's swagger, src/firecracker/swagger/firecracker.yaml):
//   PUT /machine-config        {vcpu_count, mem_size_mib, smt:false}
//   PUT /boot-source           {kernel_image_path, boot_args, initrd_path}
//   PUT /drives/{id}           {drive_id, path_on_host, is_root_device:false, is_read_only}
//   PUT /network-interfaces/eth0 {iface_id, host_dev_name, guest_mac}
//   PUT /vsock                 {guest_cid:3, uds_path}
//   PUT /actions               {action_type:"InstanceStart"}
// The host channel is hybrid vsock: the agent connects to uds_path and sends
// "CONNECT <port>\n". Stopping sends {action_type:"SendCtrlAltDel"}; the agent
// kills the process if the guest does not exit in time.
//
// Confinement (confine.h, docs/specs/runtime/vmm-confinement.md) is the
// jailer's, done by the agent: Firecracker runs as the instance's own uid
// with no_new_privs, in its cgroups, under its own seccomp filters and a
// Landlock domain that admits what the jailer would put in its chroot
// (/dev/kvm, /dev/net/tun, /dev/urandom) plus its kernel, initramfs and
// drives, which it gets as fds (paths /proc/self/fd/N), and RUN/api/, the
// only directory it may create anything in (its two sockets). The tap is
// handed to its uid so it can attach by name. With confinement on, `binary`
// must be Firecracker itself, not the jailer.
//
// Firecracker needs a working KVM and an uncompressed vmlinux; see
// docs/specs/runtime/firecracker-boot.md.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "runtime/confine.h"
#include "runtime/microvm_runtime.h"
#include "runtime/passed_files.h"

namespace plfm::runtime {

struct FirecrackerOptions {
  std::string binary = "firecracker";
  std::vector<std::string> extra_args;          // after --api-sock/--id, e.g. "--level", "Warning"
  uint32_t channel_port = 1024;                 // the guest's vsock port for the host channel
  std::chrono::milliseconds api_timeout{5000};  // socket appearance and each call
  ConfineOptions confine;  // uid, Landlock, cgroups (confine.h); on unless the operator says
};

class FirecrackerRuntime final : public MicroVmRuntime {
 public:
  explicit FirecrackerRuntime(FirecrackerOptions options);

  [[nodiscard]] std::string_view name() const override { return "firecracker"; }
  [[nodiscard]] Result<VmHandle> start(const VmSpec& spec) override;
  [[nodiscard]] Result<void> requestStop(const VmHandle& vm) override;
  // Firecracker has no serial option: a disk's serial is made from its file,
  // st_dev, st_rdev and st_ino in decimal, cut to 20 bytes (the kvmtool
  // scheme), so it is computed here from the same file.
  [[nodiscard]] Result<std::string> diskSerial(const VmDrive& drive) const override;
  // PATCH /drives/{id} with the path the VMM opened the drive by (the
  // handle's drive_paths): Firecracker reopens it, reads the new size and
  // tells the guest.
  [[nodiscard]] Result<void> resizeDrive(const VmHandle& vm, const VmDrive& drive,
                                         uint64_t size_bytes) override;
  // The body of that PATCH (tests check it against Firecracker's API).
  [[nodiscard]] static std::string resizeBody(const std::string& drive_id,
                                              const std::string& vmm_path);

  // The API calls start() makes for `spec`, in order: (path, JSON body),
  // with the paths as given (start() passes vmmView(spec)).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> apiCalls(const VmSpec& spec) const;

  // What start() hands the VMM as fds 3, 4, ...: kernel, initramfs, drives.
  [[nodiscard]] static std::vector<PassedFile> passedFiles(const VmSpec& spec);
  // `spec` with each of those files named as the VMM reaches it
  // (/proc/self/fd/N).
  [[nodiscard]] static VmSpec vmmView(const VmSpec& spec);
  // RUN/api: the directory of the API and vsock sockets.
  [[nodiscard]] static std::string socketDir(const VmSpec& spec);

 private:
  FirecrackerOptions options_;
};

}  // namespace plfm::runtime
