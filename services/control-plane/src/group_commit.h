// The group committer: runs concurrent keyed mutations as savepoints of one
// shared transaction, so a batch of commands takes the event log's append
// lock once and commits once.
//
// A caller hands run() a command body (claim the key, run the handler,
// append, record the answer) and blocks until the batch that ran it has
// committed, or failed. One thread with a connection of its own runs the
// batches; commands in a batch run one after another in queue order, each in
// its own SAVEPOINT, so one command's failure rolls back only that command.
// Nobody is answered before COMMIT returns. See docs/specs/state/event-log.md
// ("Group commit").
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "event_store.h"
#include "plfm/core/metrics.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"
#include "plfm/pg/pipeline.h"

namespace plfm::cp {

namespace errc {
// A command that must see the views of an org its own batch already wrote
// to (lockOrg): rolled back to its savepoint and run again first in the next
// batch. Never reaches a client.
inline constexpr std::string_view kDeferToNextBatch = "defer_to_next_batch";
}  // namespace errc

// What one command of a batch produced.
struct CommandOutcome {
  int status = 0;
  std::string body;  // the response body
  int64_t seq = 0;   // the last seq of its events (or of the replayed ones); 0: none
  bool replayed = false;
  bool settle = false;
};

class GroupCommitter {
 public:
  // `opened`: the result of the command's opening statement (see run()),
  // or an empty result when it has none.
  using Body =
      std::function<Result<CommandOutcome>(pg::Transaction&, Result<pg::ResultSet> opened)>;
  struct Options {
    size_t max_batch = 64;
    std::chrono::seconds lock_timeout{10};  // the transaction's lock_timeout
    int attempts = 5;                       // per command, on transient errors
    metrics::Counter* batches = nullptr;    // batches committed or failed
    metrics::Counter* commands = nullptr;   // commands they ran (not deferred)
  };

  // Connects (and reconnects after a failure) with `conninfo`.
  GroupCommitter(std::string conninfo, Options options);
  ~GroupCommitter();  // queued commands fail with unavailable
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Runs `body` in the next batch and returns once that batch committed (the
  // outcome) or failed (an error; nothing of the command was committed, or,
  // for a commit whose outcome is unknown, a retry with the same key replays).
  // `opening` (optional) is sent in the same round trip as the command's
  // SAVEPOINT: the idempotency key's claim.
  //
  // `presume` (with `opening`): the committer first runs `body` without the
  // opening (openingPresumed() is true inside it), and the body claims the
  // key itself with a write that fails on a taken key (the idempotency
  // record inserted whole, not updated): one statement and one round trip
  // less per command. If the command fails in any way, it is rolled back to
  // its savepoint and run again the usual way, with `opening`'s result.
  [[nodiscard]] Result<CommandOutcome> run(const Body& body,
                                           std::optional<pg::Statement> opening = std::nullopt,
                                           bool presume = false);
  // True inside a body run on a presumed opening: `opened` is then empty;
  // the body goes on as if its claim was fresh, and claims it by its write.
  [[nodiscard]] static bool openingPresumed();
  // Inside a body run on a presumed opening: the log's head as the batch
  // knows it, for EventStore::appendLocked, which then queues its insert
  // instead of sending it. The command's writes go out with the next
  // command's round trip or the batch's COMMIT, in one pipeline; a failure
  // there rolls back to the failed command, which runs again the usual way,
  // and the commands after it run again too. nullptr elsewhere.
  [[nodiscard]] static int64_t* knownHead();

  // For command bodies: record that the running command appended events of
  // these orgs (they are in the batch's uncommitted transaction).
  static void noteAppended(const std::vector<NewEvent>& events);
  // True when called from inside a batch that already holds events of
  // `org_id` which the views cannot have yet (lockOrg defers on it).
  [[nodiscard]] static bool batchWrote(const std::string& org_id);

  // Commands waiting for a batch (not counting the running one).
  [[nodiscard]] size_t queued() const;

  struct Stats {
    uint64_t batches = 0;
    uint64_t commands = 0;
  };
  [[nodiscard]] Stats stats() const;

 private:
  struct Pending {
    const Body* body = nullptr;
    const pg::Statement* opening = nullptr;
    bool presume = false;
    std::optional<Result<CommandOutcome>> result;  // written by the committer thread
    bool done = false;                             // under mu_: result is final
    std::condition_variable cv;                    // the caller waits for `done`
  };
  class Batch;  // group_commit.cc: one batch's run
  void loop();
  void runBatch(std::vector<Pending*>& batch, std::vector<Pending*>& deferred);
  Result<void> ensureConnected();

  const std::string conninfo_;
  const Options options_;
  std::optional<pg::Connection> conn_;              // the committer thread's only
  std::optional<pg::PreparedStatements> prepared_;  // conn_'s
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<Pending*> queue_;
  bool stop_ = false;
  Stats stats_;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace plfm::cp
