// InstanceHost is everything an InstanceWorker needs from the node agent, and
// nothing more: the worker's seam. Agent implements it; unit tests implement
// it with in-memory fakes (test/agent/instance_worker_test.cc: FakeHost) and
// drive a worker with a FakeRuntime (test/support/fake_runtime.h), its fake
// guest and a FakeClock, no VM involved.
//
//   InstanceWorker worker(host, std::move(record));   // host: InstanceHost&
//   worker.start();
//
// Threads: every method may be called from any worker thread at once.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "agent/cp_client.h"
#include "agent/guest_config.h"
#include "agent/instance_record.h"
#include "agent/volume_store.h"
#include "image/image_config.h"
#include "netdev/firewall.h"
#include "plfm/core/clock.h"
#include "plfm/core/metrics.h"
#include "plfm/core/result.h"
#include "runtime/microvm_runtime.h"

namespace plfm::agent {

struct AgentOptions;

// The worker's metrics, registered once (not looked up by name at each use).
struct InstanceMetrics {
  explicit InstanceMetrics(metrics::Registry& registry);
  metrics::Counter& transitions;       // plfm_agent_instance_transitions_total{phase}
  metrics::Counter& channel_stalls;    // plfm_agent_channel_stalls_total
  metrics::Histogram& spawn_overhead;  // plfm_agent_spawn_overhead_seconds
  metrics::Histogram& boot;            // plfm_agent_boot_seconds
};

// The image an instance runs, once pulled and held for it.
struct AcquiredImage {
  std::string rootfs;  // the ext4 image's path
};

class InstanceHost {
 public:
  virtual ~InstanceHost() = default;

  [[nodiscard]] virtual const AgentOptions& options() const = 0;
  [[nodiscard]] virtual runtime::MicroVmRuntime& runtime() = 0;
  // The worker's only source of time (steady for timeouts, wall for reports,
  // log stamps, the guest's clock and restart_not_before_ms).
  [[nodiscard]] virtual const Clock& clock() const = 0;
  [[nodiscard]] virtual InstanceMetrics& instanceMetrics() = 0;
  // True once the agent is stopping (workers leave VMs running unless
  // options().stop_instances_on_exit).
  [[nodiscard]] virtual bool stopping() const = 0;

  // The instance's record on disk (instances/<id>.json).
  [[nodiscard]] virtual Result<void> saveRecord(const InstanceRecord& rec) = 0;
  [[nodiscard]] virtual Result<void> removeRecord(const std::string& instance_id) = 0;
  [[nodiscard]] virtual std::string runDirFor(const std::string& instance_id) const = 0;
  [[nodiscard]] virtual std::string logPathFor(const std::string& instance_id) const = 0;

  // Sends a status report; false when the control plane could not be reached
  // (the worker resends later). Always true in plan-file mode.
  virtual bool sendReport(const std::string& instance_id, const StatusReport& report) = 0;
  // The secrets file of `version` for `instance_id`; fails in plan-file mode.
  [[nodiscard]] virtual Result<std::string> fetchSecrets(const std::string& instance_id,
                                                         const std::string& version) = 0;

  // Pulls the workload's image (pinned to its digest, for its org, with the
  // org's registry credentials) and holds it for the instance. Errors are
  // the failed report's reason.
  [[nodiscard]] virtual Result<AcquiredImage> acquireImage(const Workload& w) = 0;
  // The OCI config of a held image (entrypoint, user, env).
  [[nodiscard]] virtual Result<image::ImageConfig> imageConfig(const std::string& digest) = 0;
  // Lets go of the instance's hold on the image (and asks for a collection).
  virtual void releaseImage(const std::string& digest, const std::string& instance_id) = 0;

  // An empty ext4 of options().scratch_mb; each scratch disk is a copy.
  [[nodiscard]] virtual Result<std::string> scratchTemplate() = 0;
  // The image's /etc/passwd and /etc/group, read by `load` on first use.
  [[nodiscard]] virtual UserDb userDb(const std::string& rootfs,
                                      const std::function<UserDb()>& load) = 0;
  // Adds the guest's filter entry (see Agent::filterGuest); drops it again.
  [[nodiscard]] virtual Result<void> filterGuest(const std::string& instance_id,
                                                 netdev::GuestFilter filter) = 0;
  virtual void unfilterGuest(const std::string& instance_id) = 0;
  // The guest's private IPv4 (mesh.md "Egress"): the lowest free address >=
  // .2 of the node's subnet, held for the instance until unfilterGuest();
  // empty when the node gives guests no IPv4 (the default here).
  [[nodiscard]] virtual Result<std::string> guestIpv4(const std::string& instance_id) {
    (void)instance_id;
    return std::string();
  }
  // The DNS responder's address for CONFIG's nameservers ("" when none runs).
  [[nodiscard]] virtual std::string nameserver() const { return {}; }
  // The node's volume files and who writes each (volume_store.h).
  [[nodiscard]] virtual VolumeStore& volumes() = 0;
  // Reports a volume's state to the control plane (deduplicated; resent
  // later when it cannot be delivered). The worker reports the volumes its
  // VM holds: at their size once the guest has them (volume_extend.h).
  virtual void reportVolume(const std::string& volume_id, const VolumeReport& report) = 0;
};

// How releaseInstanceResources treats the run dir and stray VMMs.
struct ReleaseMode {
  // Moves the console log beside the workload's log (a worker's teardown);
  // adoption's rollback of a half-done start throws it away.
  bool keep_console = true;
  // Also kills VMMs whose command line names the run dir but whose handle
  // never reached the record (adoption after a crash).
  bool kill_strays = false;
};

// The one teardown of an instance's host resources: the VMM (killed), its
// cgroup, its tap and filter entry, its run dir, its hold on the image, its
// claim on its volumes (never their files: those outlive instances). It
// clears what it released from `rec` (vm, tap, run_dir, scratch,
// image_acquired), so a second call does nothing. The caller saves `rec`.
void releaseInstanceResources(InstanceHost& host, InstanceRecord& rec, ReleaseMode mode = {});

// Kills every process but `keep` whose command line names the run dir `dir`
// (its sockets and pid file live there): VMMs started just before a crash,
// before their handle reached the record and possibly before they wrote a pid
// file. Scans until a pass finds none, so a QEMU that forked into the
// background while its parent was being killed is found too.
void killVmmsIn(runtime::MicroVmRuntime& rt, const std::string& dir, const std::string& instance_id,
                pid_t keep = -1);

}  // namespace plfm::agent
