// InstanceWorker drives one instance through its state machine on its own
// thread: prepare (image, scratch disk, tap), boot (VMM, HELLO, CONFIG, READY),
// supervise (logs, exit, health checks, stop requests) and clean up. The plan
// loop only hands it new specs (update) or tells it the instance is gone
// (remove); everything else happens here, so one slow boot never holds up
// another instance.
//
// The worker sees the agent only through InstanceHost (instance_host.h) and
// reads time only from its Clock, so unit tests drive it with fakes
// (test/agent/instance_worker_test.cc).
//
// Lock rules: mu_ guards rec_, pending_, removed_, done_, woken_ and
// last_reported_reason_ (the plan loop, the exec endpoint and status readers
// touch them from other threads; cv_ signals changes). Every other member is
// owned by the worker thread and read without a lock; exec_mux_ and channel_
// are thread-safe for the exec sessions' sends. The worker thread may read
// rec_ without mu_ (it is the only writer), but writes it only under mu_.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "agent/agent.h"
#include "agent/exec_endpoint.h"
#include "agent/exec_mux.h"
#include "agent/guest_channel.h"
#include "agent/instance_host.h"
#include "agent/instance_log.h"
#include "agent/instance_record.h"
#include "agent/volume_extend.h"
#include "agent/volume_snapshot.h"
#include "agent/workload_check.h"

namespace plfm::agent {

class InstanceWorker {
 public:
  InstanceWorker(InstanceHost& host, InstanceRecord record);
  ~InstanceWorker();
  InstanceWorker(const InstanceWorker&) = delete;
  InstanceWorker& operator=(const InstanceWorker&) = delete;

  void start();
  void update(const Workload& workload);
  void remove();
  void wake();
  void join();
  [[nodiscard]] bool finished() const;
  [[nodiscard]] InstanceStatus status() const;
  // True when this instance's spec (or the one it is about to take) names
  // the volume: its file must stay.
  [[nodiscard]] bool usesVolume(const std::string& volume_id) const;
  // Any thread: hands a snapshot of one of this instance's volumes to the
  // worker thread (volume_snapshot.h); the job's future says how it went.
  // Fails at once when the instance is not running.
  [[nodiscard]] Result<void> enqueueSnapshot(std::shared_ptr<SnapshotJob> job);
  // For the exec endpoint: the phase, the guest's exec_revision, the mux.
  [[nodiscard]] ExecTarget execTarget() const;

 private:
  using SteadyTime = Clock::SteadyTime;

  [[nodiscard]] SteadyTime steadyNow() const { return host_.clock().steadyNow(); }

  void run();
  // Takes pending plan changes; returns false when the worker should exit.
  bool absorbUpdates();
  void startGeneration();
  // Claims the workload's volumes for this instance, waiting (a tick at a
  // time, the reason in rec_.reason) while another instance holds one;
  // false when woken by a plan change or a stop instead.
  [[nodiscard]] bool claimVolumes(const Workload& w);
  [[nodiscard]] Result<void> prepare();
  [[nodiscard]] Result<void> boot();
  void supervise();
  void handleFrame(const guest_proto::Frame& frame);
  // channel_.send with the agent's deadline; a stall sets stalled_.
  [[nodiscard]] Result<void> sendToGuest(const std::string& frame);
  // Notices a stall of any sender (exec sessions send from their threads).
  void noteStall(const Error& e);
  // Attaches the exec mux when the channel is up and the instance running
  // with a guest that serves exec; refuses new sessions once it is stopping.
  void syncExec();
  // Registers the values of a secrets file with the instance log's mask.
  [[nodiscard]] Result<void> maskSecrets(const std::string& file);
  // The VM booted with its volumes' files as they are now: report each at
  // that size (volume-mounts.md §Node side "Extend").
  void volumesStarted(const Workload& w);
  // Starts the online extends the plan asks for (a guest with
  // volume_revision only) and gives up the ones unanswered too long.
  void extendVolumes(const runtime::VmHandle& vm);
  // Reports a finished extend: the new size, or why not (instance log).
  void extendDone(const VolumeExtender::Outcome& outcome);
  // Takes the queued snapshots (worker thread, while running).
  void serveSnapshots();
  [[nodiscard]] Result<SnapshotResult> takeSnapshot(const SnapshotJob& job,
                                                    const runtime::VmHandle& vm);
  // The copy while the guest holds the freeze: a reflink, the start of a
  // QEMU backup job (its id in `backup_job`), or a copy. Returns the method.
  [[nodiscard]] Result<std::string> snapshotCopy(const runtime::VmHandle& vm,
                                                 const runtime::VmDrive& drive,
                                                 const std::string& target,
                                                 std::optional<std::string>& backup_job);
  // Reads frames until the volume answer of `type` (or VOLUME_FAILED) for
  // `id`, handing every other frame to handleFrame.
  [[nodiscard]] Result<guest_proto::Frame> awaitVolumeAnswer(uint32_t id,
                                                             guest_proto::FrameType type,
                                                             std::chrono::milliseconds timeout);
  // Fails the snapshots still queued (the instance is stopping or gone).
  void failSnapshots(const std::string& why);
  void runHealthCheck();
  // An exec check (exec-sessions.md §Exec health checks): starts a session
  // when one is due, and otherwise polls the running one without waiting.
  void runExecCheck(const CheckSpec& check, SteadyTime now);
  // Counts a check verdict against the check's failure threshold.
  void checkVerdict(const CheckSpec& check, SteadyTime now, const Result<void>& verdict,
                    const std::string& what);
  void finish(Phase terminal, const std::string& report_phase, const std::string& reason);
  void releaseResources();
  void setPhase(Phase p);
  void save();
  void report(const std::string& phase, const std::string& reason = "",
              std::optional<int> exit_code = std::nullopt);
  void retryReport();
  // Sleeps up to `d` or until an update/removal arrives; true if woken early.
  bool sleepFor(std::chrono::milliseconds d);
  [[nodiscard]] bool stopWanted() const;  // with mu_ held

  InstanceHost& host_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_ (written only under it; the worker thread may read rec_
  // without it).
  InstanceRecord rec_;
  std::optional<Workload> pending_;                          // guarded by mu_: the plan's next spec
  std::string last_reported_reason_;                         // guarded by mu_
  bool removed_ = false;                                     // guarded by mu_
  bool done_ = false;                                        // guarded by mu_
  bool woken_ = false;                                       // guarded by mu_
  std::vector<std::shared_ptr<SnapshotJob>> snapshot_jobs_;  // guarded by mu_
  std::thread thread_;

  // The worker thread's own state: no lock.

  GuestChannel channel_;
  const std::shared_ptr<ExecMux> exec_mux_;
  std::unique_ptr<InstanceLog> log_;
  SteadyTime plan_seen_;
  SteadyTime vmm_started_;
  std::optional<SteadyTime> shutdown_sent_;
  bool powerdown_sent_ = false;
  bool exit_seen_ = false;
  bool stalled_ = false;  // a send to the guest missed its deadline: kill the VM
  bool masked_ = false;
  std::string boot_error_;
  std::optional<StatusReport> unsent_;
  // Health checks.
  std::optional<SteadyTime> next_check_;
  SteadyTime running_since_;
  int check_failures_ = 0;
  // The exec check in flight, if any: its session, when it is given up on,
  // and the last bytes of its output (for the unhealthy reason).
  struct ExecCheckRun {
    std::shared_ptr<ExecSession> session;
    SteadyTime give_up;
    std::string tail;
  };
  std::optional<ExecCheckRun> exec_check_;
  VolumeExtender extender_;
  // FREEZE ids: apart from the extender's RESIZE_VOLUME ids (from 1).
  uint32_t next_freeze_id_ = 0x80000000u;
  bool healthy_ = false;
};

}  // namespace plfm::agent
