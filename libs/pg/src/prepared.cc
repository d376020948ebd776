#include "plfm/pg/prepared.h"

#include <libpq-fe.h>

#include <memory>
#include <mutex>
#include <unordered_map>

#include "plfm/pg/pipeline.h"
#include "result_error.h"

namespace plfm::pg {
namespace {

// Each open connection's statements, by its libpq handle. A Connection is
// used by one thread at a time; the lock only guards the map itself.
struct Registry {
  std::mutex mu;
  std::unordered_map<PGconn*, std::unique_ptr<PreparedStatements>> by_conn;
};

Registry& registry() {
  // Never destroyed: connections may close during static destruction.
  static auto* r = new Registry;  // NOLINT(cppcoreguidelines-owning-memory)
  return *r;
}

}  // namespace

namespace internal {
void forgetPrepared(PGconn* c) {
  Registry& r = registry();
  const std::lock_guard lock(r.mu);
  r.by_conn.erase(c);
}

PreparedStatements& preparedFor(Connection& conn) {
  Registry& r = registry();
  const std::lock_guard lock(r.mu);
  auto& slot = r.by_conn[conn.raw()];
  if (!slot) slot = std::make_unique<PreparedStatements>(conn, "plfm_s");
  return *slot;
}
}  // namespace internal

Result<ResultSet> execPrepared(Connection& conn, std::string_view sql, const Params& params) {
  const UsePrepared use(internal::preparedFor(conn));
  const Statement s{sql, params};
  PLFM_ASSIGN_OR_RETURN(auto results, execPipeline(conn, std::span<const Statement>(&s, 1)));
  return std::move(results.front());
}

Result<ResultSet> execPrepared(Connection& conn, std::string_view sql,
                               std::initializer_list<Param> params) {
  return execPrepared(conn, sql, Params(params));
}

}  // namespace plfm::pg
