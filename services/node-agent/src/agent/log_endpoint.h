// The agent's log endpoint, GET /v1/instances/{instance_id}/logs on its
// --listen listener (docs/specs/runtime/logs.md): the control plane's log
// relay reads an instance's stored lines from here.
//
//   ?after=<ts>&skip=<n>   resume after a cursor (log_reader.h); absent: the start
//   ?limit=N               at most N lines (1..5000, default 1000)
//   ?tail=1                the last `limit` lines after the cursor instead
//   ?wait=S                hold up to S seconds (0..30) while there is nothing new
//
// Requests carry `Authorization: Bearer <relay key>`, the key the agent
// generated into STATE/relay.key and reports to the control plane in its
// heartbeats. Answers {"instance_id","lines":[...],"next":{"after","skip"},"more"}.
#pragma once

#include <atomic>
#include <string>

#include "plfm/http/http.h"

namespace plfm::agent {

struct LogEndpoint {
  std::string logs_dir;   // STATE/logs
  std::string relay_key;  // the bearer a request must present
  const std::atomic<bool>* stopping = nullptr;

  // True when `req` is for this endpoint (GET /v1/instances/{id}/logs).
  [[nodiscard]] static bool matches(const http::Request& req);
  [[nodiscard]] http::Response serve(const http::Request& req) const;
};

// Loads STATE/relay.key, creating it (32 random bytes, hex, 0600) if missing.
[[nodiscard]] Result<std::string> loadOrCreateRelayKey(const std::string& state_dir);

}  // namespace plfm::agent
