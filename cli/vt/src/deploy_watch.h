// Live progress for a deploy: polls the deploy and the env's instances and
// renders each instance's state and an honest elapsed time on stderr until
// the deploy succeeds, fails or is superseded. stdout gets only the final
// receipt (or JSON).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "client.h"
#include "invocation.h"

namespace plfm::vt {

// A deploy that fails and is auto-rolled back (docs/specs/scheduler/
// reconciler.md, Deploys) is followed by its rollback, live, and ends with a
// receipt (exit 6) whose `next` says what to run: `vt logs`, `vt instances
// list`, and `vt rollback` when nothing was rolled back. `scope` is the
// --app/--env flags those commands need (default: the invocation's).
//
// Returns the exit code: 0 succeeded, 6 failed or superseded, 3 on timeout
// (--timeout, default 15m; the deploy continues on the server).
int watchDeploy(Invocation& inv, ApiClient& client, const nlohmann::json& env,
                const nlohmann::json& deploy, const std::string& success_message,
                std::vector<std::string> notes = {}, const std::string& scope = "");

}  // namespace plfm::vt
