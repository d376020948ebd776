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
// Firecracker needs a working KVM and an uncompressed vmlinux; see
// docs/specs/runtime/firecracker-boot.md.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "runtime/microvm_runtime.h"

namespace plfm::runtime {

struct FirecrackerOptions {
  std::string binary = "firecracker";
  std::vector<std::string> extra_args;          // after --api-sock/--id, e.g. "--level", "Warning"
  uint32_t channel_port = 1024;                 // the guest's vsock port for the host channel
  std::chrono::milliseconds api_timeout{5000};  // socket appearance and each call
};

class FirecrackerRuntime final : public MicroVmRuntime {
 public:
  explicit FirecrackerRuntime(FirecrackerOptions options);

  [[nodiscard]] std::string_view name() const override { return "firecracker"; }
  [[nodiscard]] Result<VmHandle> start(const VmSpec& spec) override;
  [[nodiscard]] Result<void> requestStop(const VmHandle& vm) override;

  // The API calls start() makes for `spec`, in order: (path, JSON body).
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> apiCalls(const VmSpec& spec) const;

 private:
  FirecrackerOptions options_;
};

}  // namespace plfm::runtime
