// Host-side helpers for tests and benchmarks that boot real microVMs: the
// guest kernel (scripts/fetch-kernel), the host TSC rate, ext4 drives from a
// directory, a QEMU microvm process, and a client for the host channel.
// The qemu command line here is the reference the qemu driver follows
// (docs/specs/runtime/guest-init-delivery.md §Booting under QEMU).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/result.h"
#include "plfm/guest_proto/guest_proto.h"

namespace plfm::microvm::testing {

struct Kernel {
  std::string release_dir;  // .../kernel/<release>
  std::string vmlinux;
  std::string modules_dir;
  std::string modules_order;
  // The guest's `uname -r`: the release dir's `release` file (the minimal
  // kernel's dir is named by its cache key), else the dir's name.
  std::string release;
};

// Runs scripts/fetch-kernel (cached after the first run). Fails with code
// "unavailable" when apt cannot reach a mirror and nothing is cached, so a
// test can skip with that message.
[[nodiscard]] Result<Kernel> fetchKernel();

// The host TSC in kHz for the guest's tsc_early_khz= (DESIGN §7): "cpu MHz"
// from /proc/cpuinfo. 0 when unknown.
[[nodiscard]] uint64_t hostTscKhz();

// mkfs.ext4 -d DIR (no mounts, no root needed), `size_mb` big.
[[nodiscard]] Result<void> makeExt4(const std::string& image, const std::string& dir,
                                    uint32_t size_mb);
// An empty ext4 scratch drive, as the agent formats one per instance.
[[nodiscard]] Result<void> makeScratch(const std::string& image, uint32_t size_mb);

struct QemuOptions {
  std::string kernel;  // vmlinux (or bzImage)
  std::string initrd;
  std::string rootfs;          // /dev/vda in the guest, read-only
  std::string scratch;         // /dev/vdb
  std::string channel_socket;  // virtio-serial port "plfm"; QEMU listens here
  std::string console_log;     // the guest's ttyS0
  bool with_nic = false;       // a virtio-net eth0 on QEMU user networking
  uint32_t memory_mb = 256;
  std::string extra_cmdline;
};

// The argv for qemu-system-x86_64 -M microvm under TCG.
[[nodiscard]] std::vector<std::string> qemuArgv(const QemuOptions& options);

// A client of the host channel: connects to QEMU's socket, writes frames,
// reads them with a deadline.
class ChannelClient {
 public:
  ChannelClient() = default;
  ChannelClient(ChannelClient&& o) noexcept;
  ChannelClient& operator=(ChannelClient&& o) noexcept;
  ChannelClient(const ChannelClient&) = delete;
  ChannelClient& operator=(const ChannelClient&) = delete;
  ~ChannelClient();

  // Retries until the socket accepts or `timeout` passes.
  [[nodiscard]] static Result<ChannelClient> connect(const std::string& path,
                                                     std::chrono::milliseconds timeout);
  [[nodiscard]] Result<void> send(const std::string& frame_bytes);
  // The next frame; fails on timeout, EOF or a decoding error.
  [[nodiscard]] Result<guest_proto::Frame> next(std::chrono::milliseconds timeout);

 private:
  explicit ChannelClient(int fd) : fd_(fd) {}
  int fd_ = -1;
  guest_proto::Decoder decoder_;
};

// One booted VM: the qemu process plus its connected channel.
struct BootedVm {
  Process qemu;
  ChannelClient channel;
  std::chrono::steady_clock::time_point spawned_at;
};

[[nodiscard]] Result<BootedVm> bootQemu(const QemuOptions& options);

}  // namespace plfm::microvm::testing
