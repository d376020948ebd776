#include "agent/instance_host.h"

#include <filesystem>

#include "agent/agent.h"
#include "netdev/tap.h"
#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "runtime/cgroup.h"

namespace plfm::agent {
namespace fs = std::filesystem;

InstanceMetrics::InstanceMetrics(metrics::Registry& registry)
    : transitions(registry.counter("plfm_agent_instance_transitions_total",
                                   "Instance phase transitions by phase")),
      channel_stalls(registry.counter("plfm_agent_channel_stalls_total",
                                      "Host channel sends that missed their deadline")),
      spawn_overhead(registry.histogram("plfm_agent_spawn_overhead_seconds",
                                        "Plan received to VMM start requested (agent overhead)")),
      boot(registry.histogram("plfm_agent_boot_seconds", "VMM started to guest READY",
                              {0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60})) {}

void killVmmsIn(runtime::MicroVmRuntime& rt, const std::string& dir, const std::string& instance_id,
                pid_t keep) {
  if (dir.empty()) return;  // "/" would match every process
  for (int pass = 0; pass < 10; ++pass) {
    bool any = false;
    for (pid_t pid : processesMentioning(dir + "/")) {
      if (pid == keep) continue;
      runtime::VmHandle h;
      h.pid = pid;
      h.instance_id = instance_id;
      (void)rt.kill(h);
      any = true;
      log::info("killed a VMM no record owned", {{"instance_id", instance_id}, {"pid", pid}});
    }
    if (!any) return;
  }
}

void releaseInstanceResources(InstanceHost& host, InstanceRecord& rec, ReleaseMode mode) {
  const std::string& id = rec.workload.instance_id;
  runtime::MicroVmRuntime& rt = host.runtime();
  if (rec.vm && rt.alive(*rec.vm)) (void)rt.kill(*rec.vm);
  if (mode.kill_strays) {
    killVmmsIn(rt, rec.run_dir.empty() ? host.runDirFor(id) : rec.run_dir, id);
  }
  if (rec.vm || mode.kill_strays) runtime::removeVmmGroup(id);
  if (!rec.tap.empty()) {
    if (auto t = netdev::removeTap(rec.tap); !t) {
      log::warn("removing tap failed", {{"instance_id", id}, {"error", t.error().toString()}});
    }
    host.unfilterGuest(id);  // nothing when it has no entry
  }
  if (!rec.run_dir.empty()) {
    std::error_code ec;
    // Keep the console for post-mortems, beside the workload's log.
    if (mode.keep_console) {
      fs::rename(rec.run_dir + "/console.log", host.logPathFor(id) + ".console", ec);
    }
    fs::remove_all(rec.run_dir, ec);
  }
  if (rec.image_acquired) host.releaseImage(rec.workload.image_digest, id);
  host.volumes().release(id);  // the VM is gone: another instance may write them
  rec.vm.reset();
  rec.tap.clear();
  rec.run_dir.clear();
  rec.scratch.clear();
  rec.image_acquired = false;
}

}  // namespace plfm::agent
