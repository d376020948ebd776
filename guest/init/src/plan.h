// The pure core of vt-init (docs/specs/runtime/guest-init.md): everything it
// decides from CONFIG and the files it finds, as values, so that unit tests
// cover the decisions and the syscall layer (sys.cc, netlink.cc) only acts.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <tl/expected.hpp>
#include <vector>

#include "plfm/guest_proto/messages.h"
#include "plfm/secrets/format.h"

namespace plfm::init {

// vt-init's errors are messages for the console and the ERROR frame: there is
// no caller to branch on codes, so a string is enough.
template <class T = void>
using Result = tl::expected<T, std::string>;

[[nodiscard]] inline tl::unexpected<std::string> fail(std::string message) {
  return tl::unexpected<std::string>(std::move(message));
}

inline constexpr std::string_view kInitVersion = "vt-init 0.1.0";

// Initramfs layout (guest-init-delivery.md §Layout).
inline constexpr std::string_view kModulesDir = "/lib/modules";
inline constexpr std::string_view kModulesOrderFile = "/lib/modules/modules.order";

// Free-page reporting (virtio_balloon) hands the memory the guest frees back to
// the host in blocks of 2^order pages, and only while 32 such blocks are free
// above the low watermark. The kernel's default order, pageblock_order (2 MiB
// blocks, so 64 MiB free), is never reached by a 128 MiB guest; 5 is 128 KiB
// blocks (guest-init.md step 2, microvm-runtime.md "Memory and idle CPU").
inline constexpr std::string_view kPageReportingOrderFile =
    "/sys/module/page_reporting/parameters/page_reporting_order";
inline constexpr std::string_view kPageReportingOrder = "5";

// Where the drives are mounted before the switch (guest-init.md §Mounts).
inline constexpr std::string_view kRootfsMount = "/mnt/rootfs";
inline constexpr std::string_view kScratchMount = "/mnt/scratch";
inline constexpr std::string_view kNewRoot = "/newroot";

inline constexpr std::string_view kDefaultPath =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// The module file names of modules.order in load order. Blank lines and
// #-comments are skipped; a name with a '/' or not ending in .ko is refused.
[[nodiscard]] Result<std::vector<std::string>> parseModuleOrder(std::string_view text);

// The module files split by when they load: `boot` at once; `vsock` (the
// Firecracker transport: vsock*, vmw_vsock*) only when no virtio-serial
// port shows up, which saves their load time on every QEMU boot.
struct ModuleSets {
  std::vector<std::string> boot;
  std::vector<std::string> vsock;
};
[[nodiscard]] ModuleSets splitModules(const std::vector<std::string>& files);

struct MountStep {
  enum class Kind { kMount, kMove };
  Kind kind = Kind::kMount;
  std::string source;
  std::string target;  // created (mkdir -p) before mounting
  std::string fstype;
  unsigned long flags = 0;  // NOLINT(google-runtime-int): mount(2)'s type
  std::string data;
  std::vector<std::string> mkdirs;  // created after this step (overlay dirs)

  bool operator==(const MountStep&) const = default;
};

// The early mounts of the initramfs: proc, sys, dev, run, tmp.
[[nodiscard]] std::vector<MountStep> earlyMounts();

// Rootfs read-only, scratch read-write, the overlay at kNewRoot, and the
// early mounts moved under it, in order. Then the caller switches root.
[[nodiscard]] std::vector<MountStep> rootMountPlan(const guest_proto::Config& config);

// Mounts made after the switch: /dev/pts and /dev/shm.
[[nodiscard]] std::vector<MountStep> lateMounts();

// ---- Volumes (volume-mounts.md §vt-init) ----

// A virtio-blk disk as /sys/block shows it: "vdc" and its serial file.
struct BlockDisk {
  std::string name;
  std::string serial;
};
// "/dev/<name>" of the one disk whose serial (trailing whitespace and NULs
// ignored) is `serial`. Never probe order: the host names each volume's
// disk. Fails when no disk or more than one has it.
[[nodiscard]] Result<std::string> volumeDevice(std::string_view serial,
                                               const std::vector<BlockDisk>& disks);
// The components of an absolute, normalized path ("/var/lib/db" -> var,
// lib, db); guest-proto has checked the mount's shape.
[[nodiscard]] std::vector<std::string> pathComponents(std::string_view path);

// What vt-init needs of an ext4 superblock (the 1024 bytes at offset 1024).
struct Ext4Superblock {
  uint64_t blocks = 0;      // s_blocks_count (hi half with the 64bit feature)
  uint64_t block_size = 0;  // 1024 << s_log_block_size
};
[[nodiscard]] Result<Ext4Superblock> parseExt4Superblock(std::string_view bytes);
// The block count to grow the filesystem to (EXT4_IOC_RESIZE_FS) when the
// device holds at least one more whole block; 0: nothing to grow.
[[nodiscard]] uint64_t ext4GrowTarget(const Ext4Superblock& sb, uint64_t device_bytes);
// True when a fresh volume's root (owned by 0:0, holding nothing but
// lost+found) should go to the workload's uid:gid so the image's user can
// write; a filesystem the workload already shaped is left alone.
[[nodiscard]] bool chownFreshVolumeRoot(uint32_t owner_uid, uint32_t owner_gid,
                                        const std::vector<std::string>& entries, uint32_t uid,
                                        uint32_t gid);

// The workload's environment: CONFIG's env, then (secrets_as_env) the
// secrets, which replace a CONFIG entry of the same name; values with a NUL
// byte cannot be env vars and stay file-only. PATH defaults to kDefaultPath
// and HOSTNAME to the hostname, as Docker does.
[[nodiscard]] std::vector<std::string> workloadEnv(const guest_proto::Config& config,
                                                   const secrets::SecretMap* secrets);

// The PATH entry of `env`, or kDefaultPath.
[[nodiscard]] std::string pathOf(const std::vector<std::string>& env);

// Resolves argv[0] the way execvp would, but against the workload's PATH
// (glibc's execvpe searches the caller's): a name with a '/' is taken as is
// (relative to workdir); otherwise the first PATH entry where `executable`
// holds wins.
[[nodiscard]] Result<std::string> resolveProgram(
    std::string_view program, std::string_view path,
    const std::function<bool(const std::string&)>& executable);

// /etc/hosts: localhost lines plus the hostname on the instance's addresses.
[[nodiscard]] std::string hostsFile(const guest_proto::Config& config);

// /etc/resolv.conf for CONFIG's nameservers ("" when it has none: the image's
// file stays).
[[nodiscard]] std::string resolvConf(const guest_proto::Config& config);

// A wait(2) status as the EXIT frame reports it.
[[nodiscard]] guest_proto::Exit exitFromWaitStatus(int status);

// EXIT code for a workload that could not be exec'd (shell conventions).
[[nodiscard]] int execFailureCode(int err);

}  // namespace plfm::init
