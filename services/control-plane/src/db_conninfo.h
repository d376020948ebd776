// The connection strings of a replica's database sessions
// (docs/specs/control-plane/ha.md, "Noticing a lost lock").
//
// Over TCP every session gets keepalives and tcp_user_timeout, client and
// server side, so a replica cut off from the database loses its backends
// within about 5 s, and with them the row locks their transactions held (the
// leadership row FOR SHARE, the views checkpoint FOR UPDATE), which would
// otherwise block the other replicas until the kernel gave up on the
// connection, hours later. The lock session (lockSessionConninfo in
// leadership.h) adds its statement_timeout on top.
#pragma once

#include <string>

#include "plfm/core/result.h"

namespace plfm::cp {

// `conninfo` with the TCP bounds when it reaches the database over TCP;
// unchanged over a Unix socket. Applying it again changes nothing.
[[nodiscard]] Result<std::string> tcpBoundedConninfo(const std::string& conninfo);

}  // namespace plfm::cp
