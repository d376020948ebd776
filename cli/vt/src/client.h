// The control-plane API client used by every `vt` command.
//
// Mutations carry an Idempotency-Key chosen once per logical operation. On a
// network error, a 503, or a 409 idempotency_in_progress, the request is
// retried with the SAME key (backoff 0.2 s, 0.5 s, 1 s, 2 s), so a retried
// `vt deploy` whose first response was lost never creates two deploys: the
// server replays the saved response.
//
// A context may list several control-plane URLs (its replicas): a request
// that cannot reach one (refused, reset, timed out, an untrusted certificate,
// a 502/503/504) goes at once to the next, with the same Idempotency-Key;
// the backoff above starts only when every URL failed.
//
// API errors become plfm::Error values whose code is the API's stable code
// ("not_found", "already_exists", ...) with details status, request_id and
// field; transport failures have code "unavailable".
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/http/failover.h"

namespace plfm::vt {

struct ApiOptions {
  int attempts = 5;  // tries per request, including the first
  std::chrono::milliseconds timeout{30'000};
  // PEM CA that verifies an https:// control plane; empty: the system store.
  std::string ca_file{};
  // Called before each retry with a one-line reason (for stderr).
  std::function<void(const std::string&)> on_retry = nullptr;
};

struct ApiResponse {
  int status = 0;
  std::string request_id;
  bool replayed = false;  // Idempotent-Replayed: true
  std::string body;
};

class ApiClient {
 public:
  // `base_urls`: one per control-plane replica, tried in order.
  ApiClient(std::vector<std::string> base_urls, std::string token, ApiOptions options = {});
  ApiClient(std::string base_url, std::string token, ApiOptions options = {});
  ~ApiClient();
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  [[nodiscard]] Result<nlohmann::json> get(const std::string& target,
                                           std::chrono::milliseconds timeout = {});
  // Every page of a paginated list, in server order.
  [[nodiscard]] Result<std::vector<nlohmann::json>> listAll(const std::string& target);
  // POST/PUT/DELETE with a fresh Idempotency-Key (or `key` when given).
  [[nodiscard]] Result<nlohmann::json> mutate(const std::string& method, const std::string& target,
                                              const nlohmann::json& body, std::string key = "");

  [[nodiscard]] const ApiResponse& last() const { return last_; }
  // The URL that answered last (the first before any request).
  [[nodiscard]] const std::string& baseUrl() const { return urls_.url(urls_.current()); }

  // A new idempotency key ("vt-<ulid>").
  [[nodiscard]] static std::string newKey();

 private:
  [[nodiscard]] Result<ApiResponse> send(const std::string& method, const std::string& target,
                                         const std::string& body, const std::string& key,
                                         std::chrono::milliseconds timeout);
  [[nodiscard]] Result<nlohmann::json> decode(const ApiResponse& r) const;

  http::EndpointList urls_;
  std::string token_;
  ApiOptions options_;
  ApiResponse last_;
};

// Percent-encodes a query value.
[[nodiscard]] std::string urlEncode(std::string_view s);

}  // namespace plfm::vt
