#include "idempotency.h"

#include "api.h"

namespace plfm::cp {

pg::Statement claimStatement(const IdempotencyKey& k) {
  return {
      "INSERT INTO idempotency_keys (scope, key, request_hash, status, response_body, seq) "
      "VALUES ($1, $2, $3, 0, '', 0) ON CONFLICT DO NOTHING RETURNING 1",
      {k.scope, k.key, k.hash}};
}

Result<std::optional<CommandOutcome>> claimIdempotencyKey(pg::Transaction& tx,
                                                          const IdempotencyKey& k) {
  const pg::Statement s = claimStatement(k);
  return resolveClaim(tx, k, tx.exec(s.sql, s.params));
}

Result<std::optional<CommandOutcome>> resolveClaim(pg::Transaction& tx, const IdempotencyKey& k,
                                                   Result<pg::ResultSet> claim) {
  if (!claim) {
    if (claim.error().detail("sqlstate") == "55P03") {
      return Error(apierr::kKeyInProgress,
                   "a request with this Idempotency-Key is still in progress; retry later");
    }
    return unexpected(std::move(claim).error());
  }
  if (claim->rows() == 1) return std::optional<CommandOutcome>();
  PLFM_ASSIGN_OR_RETURN(auto rec, tx.exec("SELECT request_hash, status, response_body, seq "
                                          "FROM idempotency_keys WHERE scope = $1 AND key = $2",
                                          {k.scope, k.key}));
  if (rec.rows() != 1) {
    return Error(errc::kConcurrencyConflict, "idempotency record vanished; retry");
  }
  if (rec.text(0, 0) != k.hash) {
    return Error(apierr::kKeyReused,
                 "this Idempotency-Key was already used for a different request; use a new key "
                 "for a new operation")
        .with("field", "Idempotency-Key");
  }
  CommandOutcome out;
  out.status = static_cast<int>(rec.int64(0, 1).value_or(500));
  out.body = rec.text(0, 2);
  out.seq = rec.int64(0, 3).value_or(0);
  out.replayed = true;
  return std::optional<CommandOutcome>(std::move(out));
}

pg::Statement saveAfterAppendStatement(const IdempotencyKey& k, int status,
                                       const std::string& saved_body) {
  return {
      "UPDATE idempotency_keys SET status = $3, response_body = $4, "
      "seq = (SELECT max(seq) FROM events) WHERE scope = $1 AND key = $2",
      {k.scope, k.key, status, saved_body}};
}

Result<void> saveIdempotencyRecord(pg::Transaction& tx, const IdempotencyKey& k,
                                   const CommandOutcome& out, const std::string& saved_body,
                                   bool insert) {
  if (insert) {
    return tx.connection().execDeferred(
        "INSERT INTO idempotency_keys (scope, key, status, response_body, seq, request_hash) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        {k.scope, k.key, out.status, saved_body, out.seq, k.hash});
  }
  PLFM_TRY(
      tx.exec("UPDATE idempotency_keys SET status = $3, response_body = $4, seq = $5 "
              "WHERE scope = $1 AND key = $2",
              {k.scope, k.key, out.status, saved_body, out.seq}));
  return ok();
}

}  // namespace plfm::cp
