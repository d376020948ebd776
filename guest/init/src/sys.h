// The syscall layer of vt-init: small wrappers that turn errno into messages.
// No decisions here; plan.h decides.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "plan.h"

namespace plfm::init {

// "vt-init: message\n" on the console (fd 2). Never pass secret material.
void logLine(std::string_view message);

[[nodiscard]] std::string errnoText(std::string_view what, int err);

// execve's argv/envp: pointers into `strings`, NULL-terminated. Built before
// fork, since the child may only make async-signal-safe calls.
[[nodiscard]] std::vector<char*> cStringArray(const std::vector<std::string>& strings);

// Closes `fd` when open and sets it to -1.
void closeFd(int& fd);

// What a forked child was doing when it failed: childFail writes {stage,
// errno} to the parent's report pipe, then exits 127.
enum ChildStage : int { kChdir = 1, kCredentials = 2, kExec = 3, kStdio = 4 };
// Only async-signal-safe calls between fork and exec.
[[noreturn]] void childFail(int report_fd, int stage);

[[nodiscard]] Result<std::string> readFile(const std::string& path);
[[nodiscard]] Result<void> mkdirs(const std::string& path, mode_t mode = 0755);
// Writes to PATH.tmp (mode, owner) and renames it over PATH: readers see the
// old file or the new one. No fsync: everything vt-init writes is written
// again at every boot, on the instance's own scratch disk or on tmpfs, and
// on the scratch disk an fsync is a flush that QEMU turns into a host
// fdatasync (cache=none): 30 to 60 ms each under TCG (docs/benchmarks.md).
[[nodiscard]] Result<void> writeFileAtomic(const std::string& path, std::string_view content,
                                           mode_t mode, uid_t uid, gid_t gid);

// finit_module(2) for each file of `dir`, in order; an already loaded module
// (EEXIST) is fine.
[[nodiscard]] Result<void> loadModules(const std::string& dir,
                                       const std::vector<std::string>& files);

// Writes `value` into an existing file such as a sysfs parameter; a file that
// does not exist (the kernel lacks the feature) is not an error.
[[nodiscard]] Result<void> writeKernelParameter(const std::string& path, std::string_view value);

[[nodiscard]] Result<void> runMounts(const std::vector<MountStep>& steps);

// Moves `new_root` over / and chroots into it (the initramfs is rootfs,
// which pivot_root cannot leave, so this is what switch_root does).
[[nodiscard]] Result<void> switchRoot(const std::string& new_root);

// Waits up to `timeout_ms` for `path` to exist (devtmpfs nodes appear as
// drivers probe).
[[nodiscard]] bool waitForPath(const std::string& path, int timeout_ms);

[[nodiscard]] Result<void> setHostname(const std::string& name);

// Writes the secrets file to secrets::kGuestPath (tmpfs), mode 0400 in a
// 0500 directory, both owned by the workload user (secrets-file-format.md).
[[nodiscard]] Result<void> writeSecretsFile(std::string_view content, uid_t uid, gid_t gid);

[[nodiscard]] Result<void> setRealtime(uint64_t ns);

// CLOCK_BOOTTIME and CLOCK_REALTIME in ns.
[[nodiscard]] uint64_t bootNs();
[[nodiscard]] uint64_t realtimeNs();
[[nodiscard]] uint64_t monotonicMs();

// Kills everything left, syncs and powers the VM off. Never returns.
[[noreturn]] void powerOff();

}  // namespace plfm::init
