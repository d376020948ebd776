// What a stopped agent's instance records still hold on this host: a tap and
// VMM cgroups per record (`plfm-node-agent leftovers`, docs/specs/runtime/
// node-agent.md "Leftovers"). The records are the agent's private format;
// other tools (`vt dev down`) learn tap and cgroup names from this command,
// never from the files.
#pragma once

#include <sys/types.h>

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "agent/instance_record.h"

namespace plfm::agent {

struct Leftover {
  std::string instance_id;
  pid_t vmm_pid = 0;                 // 0: the record names no VMM
  bool vmm_running = false;          // that VMM (same pid and start time) still runs
  std::string tap;                   // empty: none, or the link is gone
  std::vector<std::string> cgroups;  // existing group directories

  bool operator==(const Leftover&) const = default;
};

// How the host is looked at and changed; tests pass their own.
struct LeftoverProbe {
  std::function<bool(const std::string& link)> link_exists;
  std::function<bool(const runtime::VmHandle& vm)> vmm_alive;
  std::function<std::vector<std::string>(const std::string& instance_id)> groups_of;
  std::function<void(const std::string& link)> remove_tap;
  std::function<void(const std::string& instance_id)> remove_groups;
};

// The real host: netlink for links, /proc for VMMs, /sys/fs/cgroup for
// groups; removal as the agent itself does it (netdev::removeTap,
// runtime::removeVmmGroup).
[[nodiscard]] LeftoverProbe hostLeftoverProbe();

// One entry per record that still holds something (a running VMM, a tap, a
// group), in instance id order.
[[nodiscard]] std::vector<Leftover> findLeftovers(const std::vector<InstanceRecord>& records,
                                                  const LeftoverProbe& probe);

// Releases the tap and groups of every entry whose VMM is not running (a
// running VMM's are its own; they are left, and stay in the result). Returns
// what is left afterwards, as found again by `probe`.
[[nodiscard]] std::vector<Leftover> removeLeftovers(const std::vector<InstanceRecord>& records,
                                                    const LeftoverProbe& probe);

// {"instances": [{"instance_id", "vmm_pid", "vmm_running", "tap", "cgroups"}]}
[[nodiscard]] nlohmann::json leftoversJson(const std::vector<Leftover>& leftovers);
// One line per item: "tap vt-...", "cgroup /sys/...", "vmm PID (inst_...)".
[[nodiscard]] std::string leftoversText(const std::vector<Leftover>& leftovers);

}  // namespace plfm::agent
