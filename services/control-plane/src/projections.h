// Projections turn the event log into view tables.
//
// Projector::apply() maps one event onto the views. It is deterministic
// (every column comes from the event, never from now()) and idempotent, so a
// replay from seq 0 rebuilds identical views.
//
// ProjectionWorker runs in the control plane: it applies new events in
// batches, advancing the `views` checkpoint in the same transaction as the
// view changes. It wakes on NOTIFY plfm_events (from any control-plane
// process) and on kick() (from this one), with a poll as the fallback.
// Mutations call waitFor(seq) for read-your-writes.
// See docs/specs/state/materialized-views.md.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "event_store.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

class Projector {
 public:
  [[nodiscard]] static Result<void> apply(pg::Transaction& tx, const StoredEvent& e);
  // Every view table, in a stable order (for rebuilds and dumps).
  [[nodiscard]] static const std::vector<std::string>& viewTables();
};

// Whether a watcher of the views reads what an event of this type changes:
// a scheduler round (scheduler_input.cc) or a long-poll feed (the node
// plans, the edge feed, the services feed: version_feed.h). false only for
// the types listed in projections.cc: audit-only events, orgs and their
// members, apps created (an app has nothing to place or route until an env
// and a deploy of it exist). Unknown types: true.
[[nodiscard]] bool watchersRead(std::string_view event_type);

// Applies every event after the `views` checkpoint, in batches of
// `batch` events per transaction. Returns the new checkpoint. When
// `watched_seq` is given, it is raised to the seq of the last applied
// event that watchersRead(), and to the checkpoint as found when it is
// past `known` (events another replica's worker applied: their types are
// not seen here, so they count as read).
[[nodiscard]] Result<int64_t> catchUp(pg::Connection& conn, int batch = 500,
                                      int64_t* watched_seq = nullptr, int64_t known = 0);

// Empties every view, resets the checkpoint and replays the log from seq 0,
// all in one transaction: readers see the old views until it commits.
[[nodiscard]] Result<int64_t> rebuildViews(pg::Connection& conn);

// The current `views` checkpoint.
[[nodiscard]] Result<int64_t> readCheckpoint(pg::Connection& conn);

class ProjectionWorker {
 public:
  struct Options {
    std::chrono::milliseconds poll_interval{1000};
    int batch = 500;
  };

  ProjectionWorker(std::string conninfo, Options options);
  ~ProjectionWorker();
  ProjectionWorker(const ProjectionWorker&) = delete;
  ProjectionWorker& operator=(const ProjectionWorker&) = delete;

  [[nodiscard]] Result<void> start();
  void stop();
  // Wakes the worker now (after a local commit).
  void kick();
  [[nodiscard]] int64_t checkpoint() const { return checkpoint_.load(); }
  // The seq of the last applied event a watcher reads (watchersRead), or of
  // a checkpoint another replica's worker advanced; at most checkpoint(). Published before the
  // checkpoint: read checkpoint() first, and this covers every event up to it.
  [[nodiscard]] int64_t watchedSeq() const { return watched_seq_.load(); }
  // Blocks until the checkpoint reaches `seq` or `timeout` passes.
  [[nodiscard]] bool waitFor(int64_t seq, std::chrono::milliseconds timeout);
  // Blocks until the checkpoint passes `seq` (new events exist) or timeout;
  // returns the checkpoint. For long-polls on the event feed.
  int64_t waitBeyond(int64_t seq, std::chrono::milliseconds timeout);
  // The same, but also returns as soon as `cancelled()` is true once woken
  // by wakeWaiters() (for threads that must stop promptly).
  int64_t waitBeyond(int64_t seq, std::chrono::milliseconds timeout,
                     const std::function<bool()>& cancelled);
  // Wakes every waiter so it re-checks its condition.
  void wakeWaiters();

 private:
  void run();
  Result<void> loopOnce(pg::Connection& conn);
  void publish(int64_t cp, int64_t watched_seq);

  std::string conninfo_;
  Options options_;
  std::thread thread_;
  std::atomic<bool> running_{false};
  std::atomic<int64_t> checkpoint_{0};
  std::atomic<int64_t> watched_seq_{0};
  int wake_fd_ = -1;  // eventfd: kick() and stop()
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace plfm::cp
