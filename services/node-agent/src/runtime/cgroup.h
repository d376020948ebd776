// Soft CPU for VMMs: each VMM goes into its own cgroup, with cpu.weight =
// 100 x vCPUs under cgroup v2 (/sys/fs/cgroup/plfm-vms/<instance_id>), or
// cpu.shares = 1024 x vCPUs under v1 (/sys/fs/cgroup/cpu/plfm-vms/...), so
// that under contention instances share the host's CPU in proportion to the
// vCPUs they asked for while an idle host lets any of them use more (CPU is
// soft, DESIGN §4). Memory needs no cgroup: the guest's RAM is the hard cap.
//
// "Where available": without a writable hierarchy with the cpu controller
// (a container) placement is skipped; the VM still runs.
#pragma once

#include <sys/types.h>

#include <string>

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
// Removes the instance's group (it must be empty: the VMM exited). Idempotent.
void removeVmmGroup(const std::string& instance_id, const CgroupOptions& options = {});

}  // namespace plfm::runtime
