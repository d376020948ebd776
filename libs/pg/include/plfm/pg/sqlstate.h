// Which server errors end a database session.
//
// After such an error the session is of no further use although its socket
// may still be open. The statement reports pg::errc::kConnection and the
// connection is closed (Connection::healthy() turns false), so pools and
// workers replace it; with target_session_attrs=read-write the new
// connection finds the primary of the moment (docs/specs/control-plane/ha.md,
// "Following a PostgreSQL failover").
#pragma once

#include <string_view>

namespace plfm::pg {

// True for class 08 (the link is gone), 25006 (read_only_sql_transaction:
// the server is a standby now, e.g. a primary demoted by a failover that
// kept its sessions), 57P01/57P02 (the server is shutting down) and 57P03
// (it does not accept connections yet).
[[nodiscard]] bool endsSession(std::string_view sqlstate);

}  // namespace plfm::pg
