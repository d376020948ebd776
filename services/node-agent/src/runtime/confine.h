// VMM confinement, in the spirit of Firecracker's jailer: a VMM is the
// process a hostile guest attacks first, so it runs with as little as the
// host can take away from it.
//
//  * its own unprivileged uid and gid (one per instance, numeric, no passwd
//    entry), no supplementary groups, no_new_privs;
//  * a Landlock domain (Linux >= 5.13): it may read and execute /usr and read
//    /etc/ld.so.cache, read its kernel, initramfs and rootfs, and read and
//    write its scratch disk and console log, nothing else: no other file, no
//    directory to create anything in, and (Landlock ABI >= 4) no TCP bind or
//    connect, (ABI >= 6) no abstract Unix socket or signal outside itself.
//    Everything else it needs (tap, sockets, disks) arrives as open fds;
//  * cgroups: memory at guest RAM plus a documented overhead (hard), a pids
//    limit, and the CPU weight by vCPUs (soft), joined before exec so the
//    limits hold from the first allocation;
//  * its own nodes of the devices it opens by path (/dev/kvm for KVM,
//    /dev/net/tun for Firecracker's tap), bound in a private mount namespace;
//  * the VMM's own seccomp filter (QEMU's -sandbox, qemu_runtime.cc;
//    Firecracker's built-in filters).
//
// Confinement fails closed: if any part cannot be applied, prepare() or the
// spawn fails with a reason naming it, unless the operator turned it off
// (`--unsafe-unconfined-vms`). See docs/specs/runtime/vmm-confinement.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "runtime/cgroup.h"

namespace plfm::runtime {

struct ConfineOptions {
  bool enabled = true;             // false only by the operator's --unsafe-unconfined-vms
  uint32_t uid_base = 0x60000000;  // per-instance uids and gids: base + [0, uid_count)
  uint32_t uid_count = 1U << 20;
  uint64_t memory_overhead_mb = 256;  // the VMM's own memory on top of guest RAM
  uint64_t pids_max = 256;            // threads of the VMM (vCPUs, I/O workers)
  CgroupOptions cgroups;
};

struct FileGrant {
  enum Access {
    kRead,       // read a file
    kReadWrite,  // read, write and truncate a file (or a device)
    kExecute,    // read and execute a file (a VMM binary outside /usr)
    kSocketDir,  // create and remove Unix sockets in a directory, nothing else
  };
  std::string path;
  Access access = kRead;
};

struct ConfineRequest {
  std::string instance_id;
  int vcpus = 1;
  int memory_mb = 256;
  std::vector<FileGrant> files;  // the only files (beyond libraries) it may open
  // Character devices it opens by their usual path (/dev/kvm, /dev/net/tun),
  // which need not be open to its uid (on Debian /dev/kvm is root:kvm 0660):
  // a node of the same device, its own (0600), is made in `device_dir` and
  // bound over the usual path in a private mount namespace, so the host's
  // nodes and everyone else's view stay as they are.
  std::vector<std::string> devices;
  std::string device_dir;  // e.g. RUN/dev; made root's 0711 if missing
};

// Prepared in the agent, entered in the child between fork and exec.
class Confinement {
 public:
  Confinement() = default;
  Confinement(Confinement&& o) noexcept;
  Confinement& operator=(Confinement&& o) noexcept;
  Confinement(const Confinement&) = delete;
  Confinement& operator=(const Confinement&) = delete;
  ~Confinement();

  // Allocates the uid, creates the cgroups with their limits and builds the
  // Landlock ruleset. Errors name what could not be applied.
  [[nodiscard]] static Result<Confinement> prepare(const ConfineOptions& options,
                                                   const ConfineRequest& request);

  // In the child after fork: joins the cgroups, drops to the uid, restricts
  // itself. Async-signal-safe (no allocation, no locks). Returns 0 or an
  // errno, with `stage` naming the step that failed.
  int enter(const char** stage) const noexcept;

  [[nodiscard]] uint32_t uid() const { return uid_; }
  [[nodiscard]] int abi() const { return abi_; }

 private:
  uint32_t uid_ = 0;
  int abi_ = 0;
  int ruleset_fd_ = -1;
  std::vector<int> procs_fds_;  // cgroup.procs files to write "0" to
  // (own node, usual path) pairs bound in enter(); built before the fork so
  // that enter() only reads them.
  std::vector<std::pair<std::string, std::string>> device_binds_;
};

// The Landlock ABI version of the running kernel; 0 when unavailable.
[[nodiscard]] int landlockAbi();

// For spawnDetached's pre_exec hook: `arg` is a const Confinement*.
int enterConfinementHook(const void* arg, const char** stage) noexcept;

}  // namespace plfm::runtime
