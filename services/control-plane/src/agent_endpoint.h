// Where the control plane reaches a node agent's log endpoint
// (docs/specs/runtime/logs.md, "The relay hop"). A heartbeat reports it; this
// checks it before it is stored, so the relay only ever connects where the
// node's registered address says, and only over TLS pinned to the
// certificate the agent reported (plain http only to a loopback agent that
// reports no certificate, i.e. everything on one host, as under `vt dev`).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "plfm/core/result.h"

namespace plfm::cp {

struct AgentEndpoint {
  std::string url;          // "https://[2001:db8::10]:9102", no path
  std::string cert_sha256;  // hex SHA-256 of the agent's certificate; empty for http://
};

// Checks a heartbeat's `agent_url` and `agent_cert_sha256` against the
// node's `underlay_address` (from its enrollment):
//   - https://HOST:PORT or http://HOST:PORT, nothing after the port;
//   - HOST is the underlay address (IP literals compare as addresses, names
//     case-insensitively), or a loopback address when the underlay address
//     is itself loopback;
//   - https:// needs agent_cert_sha256 (64 lowercase hex digits); http:// is
//     only for a loopback HOST and takes no certificate.
// Errors are invalid_field naming agent_url or agent_cert_sha256.
[[nodiscard]] Result<AgentEndpoint> checkAgentEndpoint(std::string_view url,
                                                       const std::optional<std::string>& cert,
                                                       std::string_view underlay_address);

}  // namespace plfm::cp
