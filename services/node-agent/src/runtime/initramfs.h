// The guest initramfs: a newc cpio holding /init (vt-init), the kernel
// modules it loads and their load order, built by the agent and cached by
// content hash (docs/specs/runtime/guest-init-delivery.md).
//
//   plfm::runtime::InitramfsInputs in{.init_binary = "build/guest/init/vt-init",
//                                     .modules_dir = kernel_dir + "/modules"};
//   auto path = plfm::runtime::buildInitramfs(in, state_dir + "/initramfs");
//   // qemu ... -initrd *path   /   firecracker boot-source initrd_path
//
// The archive is deterministic (fixed inode numbers, owners 0, mtime 0), so
// equal inputs give equal bytes and one cache entry.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::runtime {

struct CpioEntry {
  std::string path;   // relative, no leading '/': "init", "lib/modules/virtio.ko"
  uint32_t mode = 0;  // including the type bits (S_IFREG | 0755, S_IFDIR | 0755, S_IFCHR | 0600)
  std::string data;   // regular files only
  uint32_t rdev_major = 0;
  uint32_t rdev_minor = 0;

  bool operator==(const CpioEntry&) const = default;
};

// Serialises entries as a newc ("070701") archive ending in TRAILER!!!.
[[nodiscard]] std::string writeNewc(const std::vector<CpioEntry>& entries);
// Parses a newc archive (up to TRAILER!!!); for tests and for checking a
// cached file. Fails on a bad magic, a truncated entry or a missing trailer.
[[nodiscard]] Result<std::vector<CpioEntry>> readNewc(std::string_view archive);

struct InitramfsInputs {
  std::string init_binary;  // host path of the static vt-init
  // Host directory with the *.ko files and modules.order (scripts/fetch-kernel's
  // <release>/modules and <release>/modules.order); empty: no modules.
  std::string modules_dir;
  std::string modules_order;  // default: modules_dir + "/../modules.order"
};

// The archive's entries: the directories vt-init mounts on, /dev/console,
// /init, lib/modules/*.ko and lib/modules/modules.order.
[[nodiscard]] Result<std::vector<CpioEntry>> initramfsEntries(const InitramfsInputs& inputs);

// Builds the archive and stores it as CACHE_DIR/initramfs-<sha256>.cpio
// (temp file + rename, so concurrent builders and crashes never leave a
// partial file under the final name); returns that path. An existing entry
// is reused.
[[nodiscard]] Result<std::string> buildInitramfs(const InitramfsInputs& inputs,
                                                 const std::string& cache_dir);

}  // namespace plfm::runtime
