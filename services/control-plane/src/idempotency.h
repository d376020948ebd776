// The idempotency record of a keyed mutation (docs/specs/api/idempotency.md):
// claimed before the command runs and completed with its answer, both in
// the command's transaction (a savepoint of a group-commit batch).
#pragma once

#include <optional>
#include <string>

#include "group_commit.h"
#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

struct IdempotencyKey {
  std::string scope;  // the caller
  std::string key;    // the Idempotency-Key header
  std::string hash;   // of the request (or a keyed MAC)
};

// Claims `k` in `tx`: nullopt when this request is the first (run the
// command, then saveIdempotencyRecord), or the saved outcome to replay. A
// record of the same key earlier in the same transaction is a replay too. A
// key held by another open transaction blocks until it ends or lock_timeout
// (idempotency_in_progress); another request under the key is
// idempotency_key_reused.
[[nodiscard]] Result<std::optional<CommandOutcome>> claimIdempotencyKey(pg::Transaction& tx,
                                                                        const IdempotencyKey& k);
// claimIdempotencyKey in two steps, for a claim sent ahead in a pipeline
// (the group committer's opening statement): the statement, then what its
// result means.
[[nodiscard]] pg::Statement claimStatement(const IdempotencyKey& k);
[[nodiscard]] Result<std::optional<CommandOutcome>> resolveClaim(pg::Transaction& tx,
                                                                 const IdempotencyKey& k,
                                                                 Result<pg::ResultSet> claim);

// Completes the claimed record with the answer to replay (`saved_body`: the
// body, or its redacted form).
// The record's completion as a statement to send right after the append of
// the command's events (EventStore::appendLocked's `then`): its seq is the
// log's head, the command's last event. For a claimed key (the usual way); a
// presumed command inserts its record whole (saveIdempotencyRecord).
[[nodiscard]] pg::Statement saveAfterAppendStatement(const IdempotencyKey& k, int status,
                                                     const std::string& saved_body);

// The same with the seq known (`out.seq`). Inserted whole (`insert`), it is
// queued on the connection (Connection::execDeferred): a pipelined command's
// record goes out with the batch's next round trip.
[[nodiscard]] Result<void> saveIdempotencyRecord(pg::Transaction& tx, const IdempotencyKey& k,
                                                 const CommandOutcome& out,
                                                 const std::string& saved_body,
                                                 bool insert = false);

}  // namespace plfm::cp
