// The agent's exec endpoint, GET /v1/instances/{instance_id}/exec?open=<sha256>
// on its --listen listener, upgraded to a WebSocket
// (docs/specs/runtime/exec-sessions.md, "Agent endpoint" and "Wire protocol
// between hops").
//
// The control plane signs the request like the log endpoint's (RelayVerifier:
// method, target with its query, node id, instance id, expiry); `open` is the
// lowercase hex SHA-256 of the EXEC_OPEN payload, so the signature covers the
// command. Before the upgrade: 401 (signature), 404 (not on this node), 409
// (not running, guest without exec). After it: the first message must be
// that EXEC_OPEN (else close 1008), then each message is one exec frame:
// client -> guest DATA (stdin), WINDOW, RESIZE, SIGNAL, CLOSE; guest ->
// client DATA, WINDOW, then one EXIT and close 1000. Other endings: 1002 (a
// malformed frame), 1008 (credit overrun), 4000 session_lost, 4001 refused.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/exec_mux.h"
#include "agent/instance_fsm.h"
#include "agent/log_endpoint.h"
#include "plfm/core/metrics.h"
#include "plfm/http/http.h"
#include "plfm/http/websocket.h"

namespace plfm::agent {

// WebSocket close codes of an exec session that ends without EXIT.
inline constexpr uint16_t kCloseSessionLost = 4000;
inline constexpr uint16_t kCloseRefused = 4001;

// What the endpoint needs to know of an instance.
struct ExecTarget {
  Phase phase = Phase::kAllocated;
  uint32_t exec_revision = 0;  // the guest's HELLO; 0: no exec
  std::shared_ptr<ExecMux> mux;
};

// Why `target` cannot take a new session ("" when it can).
[[nodiscard]] std::string execRefusal(const ExecTarget& target);

struct ExecEndpoint {
  std::shared_ptr<const RelayVerifier> verifier;
  // The instance on this node, or nullopt. Thread-safe.
  std::function<std::optional<ExecTarget>(const std::string& instance_id)> lookup;
  http::WebSocketOptions ws_options = defaultWebSocketOptions();
  // plfm_agent_exec_sessions_total{outcome} when set (outlives the endpoint).
  metrics::Registry* metrics = nullptr;

  [[nodiscard]] static http::WebSocketOptions defaultWebSocketOptions();
  // True when `req` is for this endpoint (/v1/instances/{id}/exec).
  [[nodiscard]] static bool matches(const http::Request& req);
  [[nodiscard]] http::Response serve(const http::Request& req) const;
};

// Runs one session on an upgraded WebSocket whose first message must be an
// EXEC_OPEN with payload SHA-256 `open_sha256`; returns when it is over and
// every thread it started has ended, with how it ended: "exited" (EXIT
// relayed), "lost" (4000), "refused" (4001), "client_gone" (the client left
// before EXIT), "protocol" (1002), "credit" (1008), "open_mismatch" (1008).
[[nodiscard]] std::string_view runExecSession(
    http::WebSocket& ws, const std::string& open_sha256,
    const std::function<std::optional<ExecTarget>()>& lookup);

}  // namespace plfm::agent
