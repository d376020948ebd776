#include "plfm/pg/pipeline.h"

#include <libpq-fe.h>

#include <optional>

#include "result_error.h"

namespace plfm::pg {
namespace {
thread_local PreparedStatements* t_prepared = nullptr;
}  // namespace

std::string PreparedStatements::name(std::string_view sql, bool& fresh) {
  auto [it, inserted] = names_.try_emplace(std::string(sql));
  fresh = inserted;
  if (inserted) it->second = prefix_ + std::to_string(names_.size());
  return it->second;
}

UsePrepared::UsePrepared(PreparedStatements& p) : previous_(t_prepared) { t_prepared = &p; }
UsePrepared::~UsePrepared() { t_prepared = previous_; }

namespace {

// Sends `statements` in one pipeline and reads their results. The first
// `queued` of them are a connection's deferred writes, prepared in
// `queued_cache`; the rest use the thread's UsePrepared cache, if any.
Result<std::vector<Result<ResultSet>>> runPipeline(Connection& conn,
                                                   std::span<const Statement> statements,
                                                   size_t queued,
                                                   PreparedStatements* queued_cache) {
  PGconn* c = conn.raw();
  if (c == nullptr || PQenterPipelineMode(c) != 1) {
    return internal::connectionError(c, "cannot enter pipeline mode");
  }
  PreparedStatements* own = t_prepared != nullptr && t_prepared->owns(conn) ? t_prepared : nullptr;
  std::vector<PreparedStatements*> cache(statements.size(), own);
  for (size_t i = 0; i < queued && i < cache.size(); ++i) cache[i] = queued_cache;
  std::vector<bool> fresh(statements.size(), false);
  for (size_t i = 0; i < statements.size(); ++i) {
    const Statement& s = statements[i];
    PreparedStatements* prepared = cache[i];
    std::vector<const char*> values;
    values.reserve(s.params.size());
    for (const auto& p : s.params) values.push_back(p.value() ? p.value()->c_str() : nullptr);
    const std::string text(s.sql);
    const int n = static_cast<int>(values.size());
    int sent = 0;
    if (prepared != nullptr) {
      bool is_new = false;
      const std::string name = prepared->name(s.sql, is_new);
      fresh[i] = is_new;
      sent =
          (!is_new || PQsendPrepare(c, name.c_str(), text.c_str(), n, nullptr) == 1) &&
                  PQsendQueryPrepared(c, name.c_str(), n, values.data(), nullptr, nullptr, 0) == 1
              ? 1
              : 0;
    } else {
      sent = PQsendQueryParams(c, text.c_str(), n, nullptr, values.data(), nullptr, nullptr, 0);
    }
    if (sent != 1) {
      // A send fails only when the connection broke; it is not reused.
      return internal::connectionError(c, "pipeline send failed");
    }
  }
  if (PQpipelineSync(c) != 1 || PQflush(c) != 0) {
    return internal::connectionError(c, "pipeline sync failed");
  }
  std::vector<Result<ResultSet>> out;
  out.reserve(statements.size());
  bool ended = false;  // a statement's error ended the session (a demoted primary's 25006)
  for (size_t i = 0; i < statements.size(); ++i) {
    const Statement& s = statements[i];
    std::optional<Error> parse_error;  // the statement's own error when its Parse failed
    if (fresh[i]) {
      PreparedStatements* prepared = cache[i];
      // The Parse of a statement seen for the first time: if it did not
      // happen (an earlier statement failed) or failed, it is not prepared.
      PGresult* p = PQgetResult(c);
      if (p == nullptr) return internal::connectionError(c, "pipeline result missing");
      const ExecStatusType parsed = PQresultStatus(p);
      if (parsed != PGRES_COMMAND_OK) prepared->forget(s.sql);
      if (parsed == PGRES_FATAL_ERROR) parse_error = internal::resultError(c, p, s.sql);
      PQclear(p);
      while (PGresult* extra = PQgetResult(c)) PQclear(extra);
    }
    PGresult* r = PQgetResult(c);
    if (r == nullptr) return internal::connectionError(c, "pipeline result missing");
    const ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) {
      out.emplace_back(ResultSet(r));
    } else if (st == PGRES_PIPELINE_ABORTED && parse_error) {
      PQclear(r);
      ended = ended || parse_error->is(errc::kConnection);
      out.emplace_back(std::move(*parse_error));
    } else if (st == PGRES_PIPELINE_ABORTED) {
      PQclear(r);
      out.emplace_back(Error(errc::kError, "skipped: an earlier statement of the pipeline failed")
                           .with("statement", std::string(s.sql.substr(0, 120))));
    } else {
      out.emplace_back(internal::resultError(c, r, s.sql));
      ended = ended || out.back().error().is(errc::kConnection);
      PQclear(r);
    }
    // Each statement's results end with a null result.
    while (PGresult* extra = PQgetResult(c)) PQclear(extra);
  }
  PGresult* sync = PQgetResult(c);
  const bool synced = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  PQclear(sync);
  if (!synced || PQexitPipelineMode(c) != 1) {
    return internal::connectionError(c, "pipeline did not end cleanly");
  }
  if (ended) internal::endSession(c);
  return out;
}

}  // namespace

Result<std::vector<Result<ResultSet>>> execPipeline(Connection& conn,
                                                    std::span<const Statement> statements) {
  if (conn.deferredWrites() == 0) return runPipeline(conn, statements, 0, nullptr);
  const uint64_t first_index = conn.deferredSent();
  std::vector<Connection::DeferredWrite> queued = conn.takeDeferred();
  std::vector<Statement> all;
  all.reserve(queued.size() + statements.size());
  for (auto& w : queued) all.push_back(Statement{w.sql, std::move(w.params)});
  all.insert(all.end(), statements.begin(), statements.end());
  PLFM_ASSIGN_OR_RETURN(auto results,
                        runPipeline(conn, all, queued.size(), &internal::preparedFor(conn)));
  std::optional<Error> failed;  // the first queued write's error
  for (size_t i = 0; i < queued.size() && !failed; ++i) {
    if (results[i]) continue;
    conn.noteDeferredFailure(first_index + i);
    const auto& on_error = queued[i].on_error;
    failed =
        on_error && results[i].error().is(on_error->code) ? on_error->instead : results[i].error();
  }
  std::vector<Result<ResultSet>> out;
  out.reserve(statements.size());
  for (size_t i = queued.size(); i < results.size(); ++i) out.push_back(std::move(results[i]));
  if (failed && !out.empty()) out.front() = unexpected(std::move(*failed));
  if (failed && out.empty()) return unexpected(std::move(*failed));
  return out;
}

}  // namespace plfm::pg
