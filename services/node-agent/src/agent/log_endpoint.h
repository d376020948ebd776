// The agent's log endpoint, GET /v1/instances/{instance_id}/logs on its
// --listen listener (docs/specs/runtime/logs.md): the control plane's log
// relay reads an instance's stored lines from here.
//
//   ?after=<ts>&skip=<n>   resume after a cursor (log_reader.h); absent: the start
//   ?limit=N               at most N lines (1..5000, default 1000)
//   ?tail=1                the last `limit` lines after the cursor instead
//   ?wait=S                hold up to S seconds (0..30) while there is nothing new
//
// Each request is signed by the control plane (libs/relay-auth): the
// X-Plfm-Relay-Expires and X-Plfm-Relay-Signature headers cover the method,
// the target (path and query), this node's id, the instance in the path and
// the expiry. The key is the control plane's, pinned at enrollment
// (RelayVerifier); anything else gets 401 before any file is touched.
// Answers {"instance_id","lines":[...],"next":{"after","skip"},"more"}.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "plfm/core/clock.h"
#include "plfm/http/http.h"
#include "plfm/relay_auth/relay_auth.h"

namespace plfm::agent {

// Checks relay requests against this node's id and the control plane's
// pinned public key. Thread-safe: the heartbeat pins the key (once) while
// the listener verifies.
class RelayVerifier {
 public:
  RelayVerifier(std::string node_id, std::optional<relay::PublicKey> pinned,
                const Clock& clock = RealClock::instance())
      : node_id_(std::move(node_id)), pinned_(pinned), clock_(clock) {}

  // Pins `key` when none is pinned yet. A different key than the pinned one
  // is refused (false): a control plane's key changes only by re-enrolling
  // the node (docs/specs/runtime/node-agent.md).
  [[nodiscard]] bool pin(const relay::PublicKey& key);
  [[nodiscard]] std::optional<relay::PublicKey> pinned() const;
  // The request's signature, expiry, node and `instance_id` (from its path).
  [[nodiscard]] Result<void> check(const http::Request& req, std::string_view instance_id) const;

 private:
  const std::string node_id_;
  mutable std::mutex mu_;
  std::optional<relay::PublicKey> pinned_;  // guarded by mu_
  const Clock& clock_;
};

// The agent's signed relay routes, /v1/instances/{instance_id}<suffix> (the
// log and exec endpoints): shared request checks and error answers.
[[nodiscard]] bool matchesInstanceRoute(const http::Request& req, std::string_view suffix);
// GET, signed for this node and the instance in the path (checked before
// anything else is read), and a valid instance id, which it sets; otherwise
// the error response to send.
[[nodiscard]] std::optional<http::Response> checkRelayRequest(const http::Request& req,
                                                              std::string_view suffix,
                                                              const RelayVerifier* verifier,
                                                              std::string_view& instance_id);
// The JSON error envelope.
[[nodiscard]] http::Response relayError(int status, std::string_view code,
                                        const std::string& message);

struct LogEndpoint {
  std::string logs_dir;  // STATE/logs
  std::shared_ptr<const RelayVerifier> verifier;
  const std::atomic<bool>* stopping = nullptr;

  // True when `req` is for this endpoint (GET /v1/instances/{id}/logs).
  [[nodiscard]] static bool matches(const http::Request& req);
  [[nodiscard]] http::Response serve(const http::Request& req) const;
};

}  // namespace plfm::agent
