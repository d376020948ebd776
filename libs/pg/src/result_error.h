// The errors of a failed statement, shared by Connection and execPipeline.
#pragma once

#include <libpq-fe.h>

#include <string_view>

#include "plfm/core/result.h"

namespace plfm::pg::internal {

Error connectionError(PGconn* c, std::string_view what);
// The typed error of a failed result (SQLSTATE, constraint, table, the
// statement's first line); the result is not freed.
Error resultError(PGconn* c, const PGresult* r, std::string_view sql);
// Closes a session that an error ended (see endsSession()): healthy() turns
// false, so its owner replaces it.
void endSession(PGconn* c);
// Drops a connection's prepared statements from execPrepared's registry
// (prepared.cc), before the connection is closed.
void forgetPrepared(PGconn* c);

}  // namespace plfm::pg::internal

namespace plfm::pg {
class Connection;
class PreparedStatements;
}  // namespace plfm::pg

namespace plfm::pg::internal {

// The statements execPrepared() keeps for a connection (prepared.cc).
PreparedStatements& preparedFor(Connection& conn);

}  // namespace plfm::pg::internal
