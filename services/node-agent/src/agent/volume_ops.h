// The node's volume ops (docs/specs/runtime/volume-mounts.md "Contracts for
// snapshots, backups, restore and verify", §Agent): NodePlan.volume_ops
// (snapshot, restore, verify) and the agent's own schedule (a snapshot per
// volume every backup_every_seconds, a restore drill of its newest backup
// every verify_every), run one at a time on a thread apart from the plan
// loop, each once per op id.
//
// Every op leaves a record, STATE/snapshots/<snapshot_id>.json for a
// snapshot and STATE/volume-ops/<op_id>.json for a restore or verify, that
// holds its outcome and the reports not delivered yet: after a restart the
// agent sends those again instead of taking the snapshot again. A snapshot
// that was taken but not backed up yet is backed up after a restart.
//
//   VolumeOps ops(deps, backups, options);
//   ops.start();
//   ops.observe(plan_ops, plan_volumes);   // from each plan round; never blocks
//   ...
//   ops.stop();
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/cp_client.h"
#include "agent/volume_backup.h"
#include "agent/volume_op_records.h"
#include "agent/volume_snapshot.h"
#include "agent/volume_store.h"
#include "agent/workload_check.h"
#include "plfm/core/clock.h"
#include "plfm/core/metrics.h"
#include "plfm/core/result.h"

namespace plfm::agent {

// What the executor needs of a backup repository: BackupRepository
// (volume_backup.h) in the agent, a fake in tests.
class VolumeBackups {
 public:
  virtual ~VolumeBackups() = default;
  [[nodiscard]] virtual bool configured() const = 0;
  [[nodiscard]] virtual Result<void> ensureInitialized() = 0;
  [[nodiscard]] virtual Result<BackupRecord> backup(const std::string& file,
                                                    const std::string& volume_id,
                                                    const std::string& snapshot_id) = 0;
  [[nodiscard]] virtual Result<void> restore(const std::string& backup_id,
                                             const std::string& snapshot_id,
                                             const std::string& target) = 0;
  [[nodiscard]] virtual Result<std::vector<std::string>> forget(const std::string& volume_id,
                                                                int keep) = 0;
  [[nodiscard]] virtual Result<void> prune() = 0;
};

// restic through BackupRepository.
class ResticBackups final : public VolumeBackups {
 public:
  explicit ResticBackups(BackupOptions options) : repo_(std::move(options)) {}
  [[nodiscard]] bool configured() const override { return repo_.configured(); }
  [[nodiscard]] Result<void> ensureInitialized() override { return repo_.ensureInitialized(); }
  [[nodiscard]] Result<BackupRecord> backup(const std::string& file, const std::string& volume_id,
                                            const std::string& snapshot_id) override {
    return repo_.backup(file, volume_id, snapshot_id);
  }
  [[nodiscard]] Result<void> restore(const std::string& backup_id, const std::string& snapshot_id,
                                     const std::string& target) override {
    return repo_.restore(backup_id, snapshot_id, target);
  }
  [[nodiscard]] Result<std::vector<std::string>> forget(const std::string& volume_id,
                                                        int keep) override {
    return repo_.forget(volume_id, keep);
  }
  [[nodiscard]] Result<void> prune() override { return repo_.prune(); }

 private:
  BackupRepository repo_;
};

// What the executor needs of the agent.
struct VolumeOpsDeps {
  std::string state_dir;
  VolumeStore* volumes = nullptr;
  metrics::Registry* metrics = nullptr;
  const Clock* clock = &RealClock::instance();
  std::string e2fsck = "e2fsck";
  // How often the newest backup of each volume is restored as a drill.
  std::chrono::seconds verify_every{86'400};
  // Agent::snapshotVolume.
  std::function<Result<SnapshotResult>(const std::string& volume_id,
                                       const std::string& snapshot_id)>
      snapshot;
  // The control plane's agent routes; empty in plan-file mode (nothing is
  // sent, and the records keep nothing to send). An error with code
  // kNotFound, kFailedPrecondition or kInvalidArgument is final (logged and
  // dropped); any other is retried.
  std::function<Result<bool>(const std::string& volume_id, const std::string& snapshot_id,
                             const SnapshotReport& report)>
      report_snapshot;
  std::function<Result<bool>(const std::string& op_id, const VolumeOpReport& report)> report_op;
  // The existing volume status route (deduplicated, retried by the agent).
  std::function<void(const std::string& volume_id, const VolumeReport& report)> report_volume;
};

class VolumeOps {
 public:
  VolumeOps(VolumeOpsDeps deps, VolumeBackups& backups);
  ~VolumeOps();
  VolumeOps(const VolumeOps&) = delete;
  VolumeOps& operator=(const VolumeOps&) = delete;

  // Loads the records (removing half-made restore and verify files) and
  // starts the thread.
  [[nodiscard]] Result<void> start();
  void stop();

  // The plan's ops and volumes (both already parsed at the edge). Ops run in
  // the order given; an op id that has a record is not run again.
  void observe(std::vector<VolumeOp> ops, std::vector<NodeVolume> volumes);

  // Reports not delivered yet (tests, logs).
  [[nodiscard]] size_t undelivered() const;

 private:
  void loop();
  // Sends what the records hold undelivered, in order per record.
  void flushReports();
  // The next op to run (plan ops first, then the schedule); nullopt: none.
  [[nodiscard]] std::optional<VolumeOp> nextOp();
  void run(const VolumeOp& op);
  void refuse(const VolumeOp& op);  // an entry refused at the edge: reported failed
  void runSnapshot(const VolumeOp& op, const std::string& origin);
  void backUp(const std::string& snapshot_id, int keep);
  void expireLocal(const std::string& volume_id);
  void runRestore(const VolumeOp& op);
  void runVerify(const VolumeOp& op);
  [[nodiscard]] Result<std::string> restoreInto(const VolumeOp& op, const std::string& target);
  void finishOp(OpRecord rec, const VolumeOpReport& report);
  void saveSnapshot(const SnapshotRecord& rec);
  void saveOp(const OpRecord& rec);
  void updateRpo();
  void prune();
  [[nodiscard]] int keepOf(const std::string& volume_id) const;
  [[nodiscard]] int64_t nowMs() const;

  VolumeOpsDeps deps_;
  VolumeBackups& backups_;
  std::string snapshots_dir_;
  std::string ops_dir_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                        // guarded by mu_
  std::vector<VolumeOp> plan_ops_;               // guarded by mu_
  std::vector<NodeVolume> plan_volumes_;         // guarded by mu_
  std::map<std::string, SnapshotRecord> snaps_;  // guarded by mu_: by snapshot id
  std::map<std::string, OpRecord> ops_;          // guarded by mu_: by op id
  bool repo_ready_ = false;                      // the loop's own
  std::thread thread_;
};

}  // namespace plfm::agent
