// What a command handler gets: its parsed arguments, the output, and lazy
// access to the context, the API client and name -> id resolution.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "args.h"
#include "client.h"
#include "config.h"
#include "output.h"
#include "plfm/core/result.h"

namespace plfm::vt {

// Documented exit codes (docs/specs/cli/output.md).
namespace exitcode {
inline constexpr int kOk = 0;
inline constexpr int kUserError = 1;     // bad input, not found, invalid manifest
inline constexpr int kUsage = 2;         // unknown command or flag, wrong arguments
inline constexpr int kUnavailable = 3;   // server error, network error, timeout
inline constexpr int kConflict = 4;      // already exists, failed precondition, conflict
inline constexpr int kAuth = 5;          // not logged in, token rejected, permission denied
inline constexpr int kDeployFailed = 6;  // the deploy we waited for failed or was superseded
}  // namespace exitcode

[[nodiscard]] int exitCodeFor(const Error& e);
// One line saying what to do next for an error, or "".
[[nodiscard]] std::string hintFor(const Error& e);

struct Invocation {
  Parsed args;
  Output& out;

  Invocation(Parsed a, Output& o) : args(std::move(a)), out(o) {}

  // The effective context (flags > env > config). Errors when there is no
  // usable context (code "unauthenticated", with a hint to run vt login).
  [[nodiscard]] Result<Context> context();
  [[nodiscard]] Result<ApiClient*> api();

  // Resolve names or ids to API objects. Each needs a context.
  [[nodiscard]] Result<nlohmann::json> org();
  [[nodiscard]] Result<nlohmann::json> app();  // --app, VT_APP, ./vt.toml, context
  [[nodiscard]] Result<nlohmann::json> env();  // --env, VT_ENV, context, "prod"
  // Name lookups without the defaulting rules (nullopt when absent).
  [[nodiscard]] Result<std::optional<nlohmann::json>> findApp(const std::string& org_id,
                                                              const std::string& name_or_id);
  [[nodiscard]] Result<std::optional<nlohmann::json>> findEnv(const std::string& app_id,
                                                              const std::string& name_or_id);
  [[nodiscard]] std::string appSelector();  // the app name/id the user asked for, or ""
  [[nodiscard]] std::string envSelector();  // defaults to "prod"

  // A flag's value (nullopt when not given).
  [[nodiscard]] std::optional<std::string> flag(const std::string& name) const {
    return args.value(name);
  }

  // "--app hello --env prod" for next-step hints when they differ from the
  // context defaults.
  [[nodiscard]] std::string scopeFlags();

 private:
  std::optional<Context> context_;
  std::unique_ptr<ApiClient> api_;
  std::optional<nlohmann::json> org_, app_, env_;
};

// Prints the error (and its hint) on stderr; returns its exit code.
int fail(Invocation& inv, const Error& e);

// A single resource: the JSON itself, its id with --quiet, else "key: value" lines.
void printOne(Invocation& inv, const nlohmann::json& item,
              const std::vector<std::pair<std::string, std::string>>& kv);

// A list result: {"items": [...]} in JSON, else a table with one row per
// item (items are printed in the order given).
void printList(Invocation& inv, const std::vector<nlohmann::json>& items,
               const std::vector<std::string>& headers,
               const std::function<std::vector<std::string>(const nlohmann::json&)>& row);

}  // namespace plfm::vt
