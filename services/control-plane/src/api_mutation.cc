// The mutation pipeline: an Idempotency-Key claimed in the same transaction
// as the handler's writes and its events, one retry rule for transient
// database errors, and the read-your-writes wait before the answer.
#include <algorithm>
#include <functional>

#include "api.h"
#include "idempotency.h"
#include "plfm/core/sha256.h"
#include "scheduler.h"

namespace plfm::cp {

namespace {

Result<std::string> idempotencyKey(const http::Request& req) {
  int count = 0;
  std::string key;
  for (const auto& [name, value] : req.headers.all()) {
    if (name.size() == 15 && std::equal(name.begin(), name.end(), "idempotency-key",
                                        [](char a, char b) { return std::tolower(a) == b; })) {
      ++count;
      key = value;
    }
  }
  if (count == 0) {
    return Error(apierr::kKeyRequired,
                 "mutations need an Idempotency-Key header (a fresh random value per operation, "
                 "reused on retries)")
        .with("field", "Idempotency-Key");
  }
  if (count > 1) {
    return Error(apierr::kKeyInvalid, "send exactly one Idempotency-Key header")
        .with("field", "Idempotency-Key");
  }
  if (key.empty() || key.size() > 255 ||
      !std::all_of(key.begin(), key.end(), [](char c) { return c > 32 && c < 127; })) {
    return Error(apierr::kKeyInvalid,
                 "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces")
        .with("field", "Idempotency-Key");
  }
  return key;
}

bool retryable(const Error& e) { return pg::isRetryable(e) || e.is(errc::kConcurrencyConflict); }

// Runs `attempt` (one whole transaction) again while it fails with a
// transient error (serialization failure, deadlock, a lost race on a
// write-side row), at most kAttempts times in all.
Result<void> withRetries(const std::function<Result<void>()>& attempt) {
  constexpr int kAttempts = 5;
  for (int n = 1;; ++n) {
    auto outcome = attempt();
    if (outcome || !retryable(outcome.error()) || n >= kAttempts) return outcome;
  }
}

}  // namespace

Result<http::Response> Api::runMutation(Ctx& ctx, const MutationFn& fn,
                                        const std::optional<std::string>& request_hash) {
  PLFM_ASSIGN_OR_RETURN(std::string key, idempotencyKey(ctx.req));
  const std::string hash =
      request_hash ? *request_hash
                   : Sha256::hex(ctx.req.method + "\n" + ctx.req.path + "\n" + ctx.req.body);
  const IdempotencyKey k{ctx.who.id, key, hash};
  const AppendContext actx = ctx.appendContext();
  // The command runs on the group committer's connection, in a savepoint of
  // its batch (docs/specs/state/event-log.md, "Group commit").
  ctx.lease.reset();
  const GroupCommitter::Body body = [&](pg::Transaction& tx,
                                        Result<pg::ResultSet> claim) -> Result<CommandOutcome> {
    // Presumed (GroupCommitter::run): no claim yet; the record below is
    // inserted whole instead, and a taken key fails it.
    const bool presumed = GroupCommitter::openingPresumed();
    if (!presumed) {
      PLFM_ASSIGN_OR_RETURN(auto replay, resolveClaim(tx, k, std::move(claim)));
      if (replay) return std::move(*replay);
    }
    CommandOutcome out;
    PLFM_ASSIGN_OR_RETURN(Mutation m, fn(tx));
    out.settle = m.settle;
    out.status = m.status;
    // Pipelined (GroupCommitter::knownHead): the append and the record are
    // queued, and the record names its seq.
    int64_t* const known_head = GroupCommitter::knownHead();
    if (!m.events.empty() && !m.stamp && known_head == nullptr) {
      // The usual way: the answer is known before the append, so the
      // record goes in the append's round trip.
      out.body = json::dump(m.body);
      const pg::Statement save = saveAfterAppendStatement(
          k, out.status, m.replay_body ? json::dump(*m.replay_body) : out.body);
      PLFM_ASSIGN_OR_RETURN(auto appended, deps_.store.appendLocked(tx, actx, m.events, &save));
      GroupCommitter::noteAppended(m.events);
      out.seq = appended.last_seq;
      return out;
    }
    if (!m.events.empty()) {
      PLFM_ASSIGN_OR_RETURN(auto appended,
                            deps_.store.appendLocked(tx, actx, m.events, nullptr, known_head));
      GroupCommitter::noteAppended(m.events);
      out.seq = appended.last_seq;
      if (m.stamp) m.stamp(m.body, appended);
    }
    out.body = json::dump(m.body);
    PLFM_TRY(saveIdempotencyRecord(
        tx, k, out, m.replay_body ? json::dump(*m.replay_body) : out.body, presumed));
    return out;
  };
  PLFM_ASSIGN_OR_RETURN(CommandOutcome done,
                        committer_->run(body, claimStatement(k), /*presume=*/true));

  if (done.seq > 0 && !done.replayed) {
    mutations_.inc({{"method", ctx.req.method}});
    deps_.worker.kick();
  }
  http::Response resp = finishWrite(ctx, done.status, done.body, done.seq, done.settle);
  if (done.replayed) {
    replays_.inc();
    resp.headers.set("Idempotent-Replayed", "true");
  }
  return resp;
}

http::Response Api::finishWrite(Ctx& ctx, int status, const std::string& body, int64_t seq,
                                bool settle) {
  // Read-your-writes: answer once the views reflect `seq`.
  ctx.lease.reset();  // do not hold a connection while waiting
  http::Response resp;
  if (seq > 0 && !deps_.worker.waitFor(seq, deps_.options.read_your_writes_wait)) {
    rw_timeouts_.inc();
    resp = jsonResponse(202, {{"accepted", true},
                              {"seq", seq},
                              {"message",
                               "accepted; the views have not caught up yet, "
                               "read again shortly"}});
  } else {
    // A change to desired state: also wait (bounded) for the scheduler's
    // reaction, so the next read shows it.
    if (settle && seq > 0 && deps_.scheduler != nullptr) {
      (void)deps_.scheduler->waitSettled(seq, deps_.options.scheduler_wait);
    }
    resp = http::Response::json(status, body);
  }
  resp.headers.set("X-Event-Seq", std::to_string(seq));
  return resp;
}

Result<http::Response> Api::runWrite(Ctx& ctx, const MutationFn& fn) {
  pg::Connection& conn = ctx.db();
  int status = 0;
  std::string body;
  int64_t seq = 0;
  bool settle = false;
  const Result<void> written = withRetries([&]() -> Result<void> {
    seq = 0;
    PLFM_ASSIGN_OR_RETURN(auto tx, pg::Transaction::begin(conn));
    PLFM_ASSIGN_OR_RETURN(Mutation m, fn(tx));
    if (!m.events.empty()) {
      AppendContext actx = ctx.appendContext();
      if (!m.actor.empty()) actx.actor = m.actor;
      PLFM_ASSIGN_OR_RETURN(auto appended, deps_.store.append(tx, actx, m.events));
      seq = appended.last_seq;
    }
    PLFM_TRY(tx.commit());
    status = m.status;
    body = json::dump(m.body);
    settle = m.settle;
    return ok();
  });
  if (!written) return unexpected(written.error());
  if (seq > 0) {
    mutations_.inc({{"method", ctx.req.method}});
    deps_.worker.kick();
  }
  return finishWrite(ctx, status, body, seq, settle);
}

}  // namespace plfm::cp
