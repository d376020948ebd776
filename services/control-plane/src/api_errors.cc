// The API's error side: error codes to HTTP statuses, and the error envelope
// every failed request answers with ({"error": {code, message, request_id,
// details}}), including the errors the HTTP layer writes on its own.
#include "api.h"
#include "plfm/core/log.h"

namespace plfm::cp {

int statusFor(std::string_view code) {
  static const std::vector<std::pair<std::string_view, int>> kMap = {
      {apierr::kInvalidJson, 400},
      {apierr::kUnknownField, 400},
      {apierr::kInvalidField, 400},
      {apierr::kInvalidId, 400},
      {apierr::kInvalidQuery, 400},
      {apierr::kKeyRequired, 400},
      {apierr::kKeyInvalid, 400},
      {plfm::errc::kInvalidArgument, 400},
      {"bad_request", 400},
      {plfm::errc::kUnauthenticated, 401},
      {plfm::errc::kPermissionDenied, 403},
      {plfm::errc::kNotFound, 404},
      {"method_not_allowed", 405},
      {plfm::errc::kAlreadyExists, 409},
      {plfm::errc::kConflict, 409},
      {errc::kConcurrencyConflict, 409},
      {plfm::errc::kFailedPrecondition, 409},
      {apierr::kKeyInProgress, 409},
      {apierr::kHostnameConflict, 409},
      {"domain_conflict", 409},
      {"domain_not_verified", 422},
      {apierr::kVolumeNotGrown, 422},
      {"dns_lookup_failed", 502},
      {"dns_resolver_not_configured", 503},
      {"public_suffix_list_unavailable", 503},
      {apierr::kQuotaExceeded, 409},
      {"payload_too_large", 413},
      {apierr::kTooManyLogFollowers, 429},
      {apierr::kTooManyExecSessions, 429},
      {apierr::kKeyReused, 422},
      {plfm::errc::kUnavailable, 503},
      {pg::errc::kConnection, 503},
  };
  for (const auto& [c, s] : kMap) {
    if (c == code) return s;
  }
  return 500;
}

http::Response errorResponse(const Error& e, const std::string& request_id) {
  const int status = statusFor(e.code());
  json::Json details = json::Json::object();
  std::string code = e.code();
  std::string message = e.message();
  if (status == 500) {
    // Internal details go to the log, not to the client.
    code = "internal";
    message = "internal error; the server log has details under this request id";
  } else if (status == 503) {
    code = "unavailable";
  } else {
    for (const auto& [k, v] : e.details()) {
      // Database diagnostics stay internal.
      if (k == "sqlstate" || k == "statement" || k == "pg_detail" || k == "constraint" ||
          k == "table") {
        continue;
      }
      details[k] = v;
    }
  }
  json::Json body = {
      {"error",
       {{"code", code}, {"message", message}, {"request_id", request_id}, {"details", details}}}};
  return jsonResponse(status, body);
}

http::Response jsonResponse(int status, const json::Json& body) {
  return http::Response::json(status, json::dump(body));
}

void completeEnvelope(http::Response& resp, const std::string& rid) {
  auto j = json::parse(resp.body);
  if (j && j->contains("error")) {
    (*j)["error"]["request_id"] = rid;
    if (!(*j)["error"].contains("details")) (*j)["error"]["details"] = json::Json::object();
    resp.body = json::dump(*j);
  }
  resp.headers.set("X-Request-Id", rid);
}

void stampServerError(http::Response& resp) {
  const std::string rid = RequestId::generate().str();
  completeEnvelope(resp, rid);
  log::warn("request refused by the HTTP layer", {{"request_id", rid}, {"status", resp.status}});
}

}  // namespace plfm::cp
