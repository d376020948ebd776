#include "agent/leftovers.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string_view>

#include "netdev/tap.h"
#include "runtime/cgroup.h"

namespace plfm::agent {

LeftoverProbe hostLeftoverProbe() {
  LeftoverProbe p;
  p.link_exists = [](const std::string& link) { return netdev::linkExists(link); };
  p.vmm_alive = [](const runtime::VmHandle& vm) {
    return vm.pid > 0 && runtime::processMatches(vm.pid, vm.pid_start);
  };
  p.groups_of = [](const std::string& id) { return runtime::existingVmmGroups(id); };
  p.remove_tap = [](const std::string& link) { (void)netdev::removeTap(link); };
  p.remove_groups = [](const std::string& id) { runtime::removeVmmGroup(id); };
  return p;
}

std::vector<Leftover> findLeftovers(const std::vector<InstanceRecord>& records,
                                    const LeftoverProbe& probe) {
  std::vector<Leftover> out;
  for (const auto& rec : records) {
    Leftover l;
    l.instance_id = rec.workload.instance_id;
    if (rec.vm) {
      l.vmm_pid = rec.vm->pid;
      l.vmm_running = probe.vmm_alive(*rec.vm);
    }
    if (!rec.tap.empty() && probe.link_exists(rec.tap)) l.tap = rec.tap;
    l.cgroups = probe.groups_of(l.instance_id);
    if (l.vmm_running || !l.tap.empty() || !l.cgroups.empty()) out.push_back(std::move(l));
  }
  std::sort(out.begin(), out.end(),
            [](const Leftover& a, const Leftover& b) { return a.instance_id < b.instance_id; });
  return out;
}

std::vector<Leftover> removeLeftovers(const std::vector<InstanceRecord>& records,
                                      const LeftoverProbe& probe) {
  for (const auto& l : findLeftovers(records, probe)) {
    if (l.vmm_running) continue;
    if (!l.tap.empty()) probe.remove_tap(l.tap);
    if (!l.cgroups.empty()) probe.remove_groups(l.instance_id);
  }
  return findLeftovers(records, probe);
}

nlohmann::json leftoversJson(const std::vector<Leftover>& leftovers) {
  auto list = nlohmann::json::array();
  for (const auto& l : leftovers) {
    list.push_back({{"instance_id", l.instance_id},
                    {"vmm_pid", l.vmm_pid},
                    {"vmm_running", l.vmm_running},
                    {"tap", l.tap.empty() ? nlohmann::json() : nlohmann::json(l.tap)},
                    {"cgroups", l.cgroups}});
  }
  return {{"instances", std::move(list)}};
}

std::string leftoversText(const std::vector<Leftover>& leftovers) {
  std::string out;
  const auto line = [&out](std::string_view kind, const std::string& what, const std::string& id) {
    out.append(kind).append(" ").append(what).append(" (").append(id).append(")\n");
  };
  for (const auto& l : leftovers) {
    if (l.vmm_running) line("vmm", std::to_string(l.vmm_pid), l.instance_id);
    if (!l.tap.empty()) line("tap", l.tap, l.instance_id);
    for (const auto& g : l.cgroups) line("cgroup", g, l.instance_id);
  }
  return out;
}

}  // namespace plfm::agent
