// The event log: appends with a gapless, commit-ordered global sequence and
// per-aggregate optimistic concurrency, and reads by cursor.
//
// Appends run inside the caller's transaction, so a command's events, its
// idempotency record and any write-side rows commit together or not at all.
// append() takes the log's append lock (a transaction-scoped advisory lock)
// and holds it until commit: call it as the last step of a command.
// See docs/specs/state/event-log.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "plfm/core/clock.h"
#include "plfm/core/id.h"
#include "plfm/core/result.h"
#include "plfm/events/events.h"
#include "plfm/pg/pg.h"
#include "plfm/pg/pipeline.h"

namespace plfm::cp {

namespace errc {
// Another command changed the aggregate since it was read (HTTP 409).
inline constexpr std::string_view kConcurrencyConflict = "concurrency_conflict";
}  // namespace errc

// The typed event structs build these (libs/events, toNewEvent).
using events::NewEvent;

struct AppendContext {
  std::string actor;       // "usr_...", "node_...", "system:scheduler"
  std::string request_id;  // "req_..." or empty
};

struct StoredEvent {
  int64_t seq = 0;
  std::string event_id;
  std::string occurred_at;  // RFC 3339, UTC, microseconds
  std::string aggregate_type;
  std::string aggregate_id;
  int aggregate_seq = 0;
  std::string event_type;
  int event_version = 1;
  std::optional<std::string> org_id;
  std::string actor;
  std::optional<std::string> request_id;
  std::string correlation;  // JSON object text
  std::string payload;      // JSON object text
};

struct AppendResult {
  int64_t first_seq = 0;
  int64_t last_seq = 0;
  std::string occurred_at;
};

class EventStore {
 public:
  explicit EventStore(const Clock& clock, IdGenerator& ids = IdGenerator::global())
      : clock_(clock), ids_(ids) {}

  // Appends `events` in order. A duplicate (aggregate_id, aggregate_seq)
  // fails with errc::kConcurrencyConflict and the transaction must be rolled
  // back. NOTIFY plfm_events is sent on commit.
  [[nodiscard]] Result<AppendResult> append(pg::Transaction& tx, const AppendContext& ctx,
                                            const std::vector<NewEvent>& events);

  // append() for the group committer (group_commit.h), which took the
  // append lock for its whole batch (lockLog) and sends NOTIFY once for it:
  // numbers and inserts `events` after every seq the transaction can see.
  // `then` (optional) is sent in the same round trip, right after the
  // insert; its failure fails the append.
  //
  // `known_head` (optional; GroupCommitter::knownHead()): the log's head as
  // the committer knows it. The insert and `then` are then queued on the
  // connection (execDeferred) instead of sent, and the seqs counted from
  // *known_head, which moves past them: no round trip. The committer checks
  // the numbering once per batch, before its COMMIT (events_expect_head,
  // migration 0025): a duplicate seq fails the insert (primary key), a gap
  // fails the batch.
  [[nodiscard]] Result<AppendResult> appendLocked(pg::Transaction& tx, const AppendContext& ctx,
                                                  const std::vector<NewEvent>& events,
                                                  const pg::Statement* then = nullptr,
                                                  int64_t* known_head = nullptr);

  // Events with seq > after, oldest first, at most `limit`; optionally only
  // one org's events.
  [[nodiscard]] static Result<std::vector<StoredEvent>> readAfter(
      pg::Connection& conn, int64_t after, int limit,
      const std::optional<std::string>& org_id = std::nullopt);

  // The newest seq (0 when the log is empty).
  [[nodiscard]] static Result<int64_t> headSeq(pg::Connection& conn);

  // Takes the append lock now instead of at append(), for a command that
  // reads aggregate versions from the log (aggregateSeqs) and must append
  // the next ones without racing other appenders. Held until the
  // transaction ends, like append()'s.
  [[nodiscard]] static Result<void> lockLog(pg::Transaction& tx);
  // lockLog's statement, for a caller that pipelines it (group_commit.h).
  [[nodiscard]] static pg::Statement lockLogStatement();

  // The current aggregate_seq of each id (0 for an aggregate with no event),
  // read from the log itself: the write-side truth, which never lags.
  [[nodiscard]] static Result<std::unordered_map<std::string, int>> aggregateSeqs(
      pg::Transaction& tx, const std::vector<std::string>& ids);

  // The ids in column `col` of `rows`, in row order, and their current
  // aggregate seqs, read under the log lock (lockLog, then aggregateSeqs):
  // for a writer about to append one event to each.
  struct LockedSeqs {
    std::vector<std::string> ids;
    std::unordered_map<std::string, int> seqs;
  };
  [[nodiscard]] static Result<LockedSeqs> lockedSeqsOf(pg::Transaction& tx,
                                                       const pg::ResultSet& rows, int col = 0);

  // The JSON envelope of a stored event, as the API and schemas define it.
  [[nodiscard]] static std::string envelopeJson(const StoredEvent& e);

  static constexpr std::string_view kNotifyChannel = "plfm_events";

 private:
  [[nodiscard]] Result<AppendResult> insert(pg::Transaction& tx, const AppendContext& ctx,
                                            const std::vector<NewEvent>& events,
                                            const pg::Statement* then = nullptr);
  [[nodiscard]] Result<AppendResult> queueInsert(pg::Transaction& tx, const AppendContext& ctx,
                                                 const std::vector<NewEvent>& events,
                                                 const pg::Statement* then, int64_t& head);
  // The events as one JSON array of rows for the insert statements.
  [[nodiscard]] Result<std::string> rowsJson(const std::vector<NewEvent>& events);

  const Clock& clock_;
  IdGenerator& ids_;
};

}  // namespace plfm::cp
