// plfm::Error is the one error value every layer returns: a stable,
// machine-readable code, a human message, and ordered key/value details.
//
// Codes are part of the public contract (the API error envelope carries them
// and the CLI maps them to exit codes), so they never change meaning once
// shipped. The generic codes live in `plfm::errc`; components add their own
// dotted codes ("pg.unique_violation", "migration.checksum_mismatch").
//
// Details must never carry secret material: IDs, versions, field names and
// limits only.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace plfm {

namespace errc {
inline constexpr std::string_view kInvalidArgument = "invalid_argument";
inline constexpr std::string_view kNotFound = "not_found";
inline constexpr std::string_view kAlreadyExists = "already_exists";
inline constexpr std::string_view kConflict = "conflict";
inline constexpr std::string_view kFailedPrecondition = "failed_precondition";
inline constexpr std::string_view kPermissionDenied = "permission_denied";
inline constexpr std::string_view kUnauthenticated = "unauthenticated";
inline constexpr std::string_view kResourceExhausted = "resource_exhausted";
inline constexpr std::string_view kDeadlineExceeded = "deadline_exceeded";
inline constexpr std::string_view kUnavailable = "unavailable";
inline constexpr std::string_view kInternal = "internal";
inline constexpr std::string_view kIo = "io";
}  // namespace errc

class Error {
 public:
  using Detail = std::pair<std::string, std::string>;

  Error(std::string_view code, std::string message) : code_(code), message_(std::move(message)) {}

  [[nodiscard]] const std::string& code() const { return code_; }
  [[nodiscard]] const std::string& message() const { return message_; }
  [[nodiscard]] const std::vector<Detail>& details() const { return details_; }

  // Returns the value of detail `key`, or an empty view when it is absent.
  [[nodiscard]] std::string_view detail(std::string_view key) const;

  // Adds a detail and returns *this, so errors read as one expression:
  //   return Error(errc::kInvalidArgument, "bad id").with("field", "app_id");
  Error& with(std::string key, std::string value) &;
  Error&& with(std::string key, std::string value) &&;

  // Prefixes the message with context ("applying 0003_views.sql: ...").
  Error& context(std::string_view what) &;
  Error&& context(std::string_view what) &&;

  [[nodiscard]] bool is(std::string_view code) const { return code_ == code; }

  // "code: message (k=v, k=v)" for logs and CLI output.
  [[nodiscard]] std::string toString() const;

 private:
  std::string code_;
  std::string message_;
  std::vector<Detail> details_;
};

// Wraps the current errno value: Error(errc::kIo, "<what>: <strerror>").
[[nodiscard]] Error errnoError(std::string_view what, int err);

}  // namespace plfm
