// Soft CPU for VMMs: each VMM goes into its own cgroup, with cpu.weight =
// 100 x vCPUs under cgroup v2 (/sys/fs/cgroup/plfm-vms/<instance_id>), or
// cpu.shares = 1024 x vCPUs under v1 (/sys/fs/cgroup/cpu/plfm-vms/...), so
// that under contention instances share the host's CPU in proportion to the
// vCPUs they asked for while an idle host lets any of them use more (CPU is
// soft, DESIGN §4). Confined VMMs (confine.h) also get a hard memory limit
// (guest RAM plus the VMM's overhead) and a pids limit: prepareVmmGroups.
//
// "Where available": without a writable hierarchy with the cpu controller
// (a container) placement is skipped; the VM still runs.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::runtime {

struct CgroupOptions {
  std::string root = "/sys/fs/cgroup";
  std::string group = "plfm-vms";
};

// true when placed, false when cgroups are not available here; an error
// only when the hierarchy exists but refuses us.
[[nodiscard]] Result<bool> placeVmm(pid_t pid, const std::string& instance_id, int vcpus,
                                    const CgroupOptions& options = {});
// The cpu cgroup path of `pid` if it is one of ours ("/plfm-vms/ID"), else "".
[[nodiscard]] std::string vmmGroupOf(pid_t pid);
struct VmmLimits {
  int vcpus = 1;
  uint64_t memory_max_bytes = 0;  // hard: guest RAM plus the VMM's overhead
  uint64_t pids_max = 256;
};

// Creates the instance's groups with `limits` applied: one group under
// cgroup v2 (memory.max, pids.max, cpu.weight), or one per controller under
// v1 (memory.limit_in_bytes, pids.max, cpu.shares). Returns the cgroup.procs
// files the VMM joins before exec (confine.h). Memory and pids are required:
// an error names the controller that could not be set up. CPU is soft and
// skipped where the cpu controller is missing.
[[nodiscard]] Result<std::vector<std::string>> prepareVmmGroups(const std::string& instance_id,
                                                                const VmmLimits& limits,
                                                                const CgroupOptions& options = {});

// The instance's group directories that exist now, under every hierarchy it
// may have used (`plfm-node-agent leftovers`).
[[nodiscard]] std::vector<std::string> existingVmmGroups(const std::string& instance_id,
                                                         const CgroupOptions& options = {});

// Removes the instance's groups (they must be empty: the VMM exited), under
// every hierarchy it may have used. Idempotent.
void removeVmmGroup(const std::string& instance_id, const CgroupOptions& options = {});

}  // namespace plfm::runtime
