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

// Returns the exit code: 0 succeeded, 6 failed or superseded, 3 on timeout
// (--timeout, default 15m; the deploy continues on the server).
int watchDeploy(Invocation& inv, ApiClient& client, const nlohmann::json& env,
                const nlohmann::json& deploy, const std::string& success_message,
                std::vector<std::string> notes = {});

}  // namespace plfm::vt
