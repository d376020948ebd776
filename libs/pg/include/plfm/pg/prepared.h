// Hot lookups as statements prepared once per connection: PostgreSQL parses
// and plans them on a connection's first use, and only binds and executes
// them after that (one round trip, like Connection::exec).
//
//   auto rs = pg::execPrepared(conn, "SELECT role FROM m WHERE org_id = $1", {org});
//
// Only for statements whose best plan does not depend on their parameters
// (lookups by a key): after five executions PostgreSQL may keep a generic
// plan. Every other statement stays on Connection::exec. The statements
// (named "plfm_s<N>", apart from the group committer's "plfm_p<N>") live as
// long as the connection; a failed Parse is not kept and is tried again.
#pragma once

#include <initializer_list>
#include <string_view>

#include "plfm/pg/pg.h"

namespace plfm::pg {

[[nodiscard]] Result<ResultSet> execPrepared(Connection& conn, std::string_view sql,
                                             const Params& params = {});
[[nodiscard]] Result<ResultSet> execPrepared(Connection& conn, std::string_view sql,
                                             std::initializer_list<Param> params);

}  // namespace plfm::pg
