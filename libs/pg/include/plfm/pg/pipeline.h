// Several statements in one round trip (libpq pipeline mode), for the hot
// path of the group committer, where each round trip is spent while holding
// the event log's append lock.
//
//   std::vector<pg::Statement> s = {{"SAVEPOINT gc", {}}, {"INSERT ...", {a, b}}};
//   PLFM_ASSIGN_OR_RETURN(auto results, pg::execPipeline(conn, s));
//
// Each statement runs in order as its own statement (its own snapshot under
// READ COMMITTED), inside the connection's current transaction. After the
// first failure the rest are skipped; inside a transaction block that block
// is then aborted, exactly as if the statements had been sent one by one.
// Outside a transaction block the statements form one implicit transaction:
// a failure rolls back the ones before it too.
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "plfm/pg/pg.h"

namespace plfm::pg {

struct Statement {
  std::string_view sql;
  Params params;
};

// The statements one connection has prepared, so that a hot statement is
// parsed and planned once per connection instead of on every execution.
// While a UsePrepared is alive on a thread, execPipeline() on that thread
// prepares and reuses statements for `conn` (and only for it).
class PreparedStatements {
 public:
  // Names are `prefix` and a number ("plfm_p1", ...); two caches on one
  // connection need different prefixes.
  explicit PreparedStatements(const Connection& conn, std::string prefix = "plfm_p")
      : conn_(conn.raw()), prefix_(std::move(prefix)) {}
  [[nodiscard]] bool owns(const Connection& conn) const { return conn.raw() == conn_; }
  // The statement's name; `fresh` is set when it still has to be prepared.
  [[nodiscard]] std::string name(std::string_view sql, bool& fresh);
  void forget(std::string_view sql) { names_.erase(std::string(sql)); }

 private:
  pg_conn* conn_;
  std::string prefix_;
  std::unordered_map<std::string, std::string> names_;
};

class UsePrepared {
 public:
  explicit UsePrepared(PreparedStatements& p);
  ~UsePrepared();
  UsePrepared(const UsePrepared&) = delete;
  UsePrepared& operator=(const UsePrepared&) = delete;

 private:
  PreparedStatements* previous_;
};

// One result per statement: its rows, its error, or (after a failure) an
// error saying it was skipped. The outer error is a broken connection.
[[nodiscard]] Result<std::vector<Result<ResultSet>>> execPipeline(
    Connection& conn, std::span<const Statement> statements);

}  // namespace plfm::pg
