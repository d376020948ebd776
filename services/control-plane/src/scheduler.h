// The scheduler: a thread in the control plane that drives current state
// towards desired state. Each round it
//   1. marks nodes whose heartbeats stopped unreachable (and, much later,
//      down): node.state_changed events;
//   2. loads the reconciler's Input from the views (scheduler_input.h);
//   3. runs plfm::reconcile::reconcile();
//   4. appends one event per action, in batches, in one transaction, and
//      stores each group's Pending reason in scheduler_status;
//   5. waits until the views have applied its events, so the next round
//      never acts twice on the same state.
// Rounds run when the views change (the projection worker's checkpoint,
// itself woken by LISTEN/NOTIFY) and on a timer while something is
// time-sensitive (an unreachable node's grace period). Only the leader
// (leadership.h) schedules, and every transaction it writes in checks its
// fencing epoch first; the others wait for it, and follow its `settled`
// through the leadership row. See docs/specs/control-plane/ha.md.
//
// waitSettled() is read-your-writes for the scheduler's reaction: a request
// that changed desired state, or reads state the scheduler derives, waits
// (bounded) until a round has seen its seq and that round's events are in
// the views. See docs/specs/scheduler/scheduler.md.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "drain_gate.h"
#include "event_store.h"
#include "leadership.h"
#include "nodes.h"
#include "plfm/core/clock.h"
#include "plfm/reconcile/types.h"
#include "projections.h"

namespace plfm::cp {

class Scheduler {
 public:
  struct Options {
    reconcile::Config reconcile;
    LivenessOptions liveness;
    // Time between rounds when nothing changes but something is
    // time-sensitive; also how often heartbeats are checked.
    std::chrono::milliseconds interval{2000};
    // The drain gate's bounds (drain_gate.h), and how often it looks again
    // while an instance waits at it.
    drain::Options drain;
    std::chrono::milliseconds drain_poll{250};
    size_t append_batch = 5000;  // events per INSERT statement
    // How long a round waits for the views to apply its events.
    std::chrono::milliseconds projection_wait{30'000};
    // Called right after a round's events commit, before the wait for the
    // views (benchmarks take their timings there).
    std::function<void()> on_committed = nullptr;
  };

  // What one round did, for logs, tests and the benchmark.
  struct Round {
    int64_t checkpoint = 0;  // the views' checkpoint the round's Input reflected
    int64_t last_seq = 0;    // the last event it appended (0: none)
    size_t events = 0;
    size_t allocations = 0;
    size_t pending = 0;           // groups with a reason
    size_t liveness_changes = 0;  // node.state_changed events
    size_t drains_released = 0;   // instance.drain_released events
    size_t drains_waiting = 0;    // instances still at the drain gate
    bool time_sensitive = false;  // an unreachable node: run again on the timer
    double load_ms = 0;
    double reconcile_ms = 0;
    double write_ms = 0;    // events and reasons, up to commit
    double project_ms = 0;  // waiting for the views to apply them
  };

  Scheduler(std::string conninfo, EventStore& store, ProjectionWorker& worker, const Clock& clock,
            Options options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Connects, tries to become the leader, and starts the thread.
  [[nodiscard]] Result<void> start();
  void stop();

  // One round on `conn`. Without `fence` there is no leadership check
  // (tests, benchmarks); with one, every transaction checks it first and
  // the round fails with errc::kFenced once the epoch moved on.
  [[nodiscard]] Result<Round> runOnce(pg::Connection& conn,
                                      std::optional<Fence> fence = std::nullopt);

  // True once a round that saw the views at `seq` or later has finished and
  // its own events are in the views; waits up to `timeout`. On a replica
  // that does not lead, `settled` is the leader's, read from the database.
  // Immediately true once stopped.
  bool waitSettled(int64_t seq, std::chrono::milliseconds timeout);

  [[nodiscard]] bool leader() const { return leader_.load(); }
  [[nodiscard]] int64_t settled() const { return settled_.load(); }
  [[nodiscard]] const Leadership& leadership() const { return leadership_; }

 private:
  void run();
  // A follower's turn: reads the leader's settled, then waits (briefly while
  // a request waits on it).
  void follow(uint64_t generation);
  // The first thing a new leader does: its views catch up with the log.
  Result<void> takeOver(const Fence& fence);
  // Steps down when `e` is a fencing failure; true if it was.
  bool steppedDown(const Error& e);
  Result<void> storeSettled(pg::Connection& conn, int64_t checkpoint);
  // Liveness transitions: how many, and the last seq appended (0: none).
  Result<std::pair<size_t, int64_t>> expireNodes(pg::Connection& conn);
  // Appends what `decide` returns in one transaction of its own; its count
  // and last seq.
  Result<std::pair<size_t, int64_t>> appendNodeEvents(
      pg::Connection& conn,
      const std::function<Result<std::vector<NewEvent>>(pg::Transaction&)>& decide);
  // The drain gate: releases, waiting, and the last seq appended (0: none).
  struct GateRound {
    size_t released = 0;
    size_t waiting = 0;
    int64_t last_seq = 0;
  };
  Result<GateRound> gateDrains(pg::Connection& conn);
  Result<size_t> writeReasons(pg::Transaction& tx, const std::vector<reconcile::Pending>& pending);
  void publishSettled(int64_t checkpoint);

  std::string conninfo_;
  EventStore& store_;
  ProjectionWorker& worker_;
  const Clock& clock_;
  Options options_;

  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<bool> leader_{false};
  std::atomic<int64_t> settled_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<pg::Connection> conn_;  // the scheduler's own work
  Leadership leadership_;
  std::optional<Fence> fence_;   // the round's fence (none: unchecked, tests)
  int64_t stored_settled_ = 0;   // the last settled written to the leadership row
  std::atomic<int> waiters_{0};  // requests in waitSettled()

  // The reasons last written to scheduler_status, keyed by (env, process).
  struct Reason {
    int missing = 0;
    int outdated = 0;
    std::string text;
    bool operator==(const Reason&) const = default;
  };
  std::optional<std::map<std::pair<std::string, std::string>, Reason>> reasons_;
};

}  // namespace plfm::cp
