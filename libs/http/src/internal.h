// Private to libs/http/src: helpers shared by the router, server and client.
// Beast-free.
#pragma once

#include <string_view>

#include "plfm/core/result.h"
#include "plfm/http/http.h"

namespace plfm::http::internal {

// Error codes of the JSON error envelope that the server and router produce.
inline constexpr std::string_view kCodeBadRequest = "bad_request";
inline constexpr std::string_view kCodeNotFound = "not_found";
inline constexpr std::string_view kCodeMethodNotAllowed = "method_not_allowed";
inline constexpr std::string_view kCodePayloadTooLarge = "payload_too_large";
inline constexpr std::string_view kCodeUnavailable = "unavailable";
inline constexpr std::string_view kCodeInternal = "internal";

// {"error":{"code":"<code>","message":"<message>"}} with Content-Type JSON.
[[nodiscard]] Response errorResponse(int status, std::string_view code, std::string_view message);
[[nodiscard]] std::string errorBody(std::string_view code, std::string_view message);

// ASCII case-insensitive equality (header names, tokens).
[[nodiscard]] bool iequals(std::string_view a, std::string_view b);

// The path part of an origin-form target ("/a/b?x" -> "/a/b").
[[nodiscard]] std::string_view targetPath(std::string_view target);

// Fills req.path and req.query from req.target. Fails on a target that is not
// origin-form ("/...") or on invalid percent-encoding.
[[nodiscard]] Result<void> parseTarget(Request& req);

}  // namespace plfm::http::internal
