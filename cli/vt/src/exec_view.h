// Typed views of the answers `vt exec` reads (commands_exec.cc): an env's
// instance list (GET /v1/envs/{env_id}/instances) and the exec ticket
// (POST /v1/instances/{instance_id}/exec, docs/specs/runtime/exec-sessions.md
// "Control plane"), parsed once from the API's JSON. Lenient like
// describe_view.h: a missing or null field is empty.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::vt {

struct ExecInstanceView {
  std::string id, process_type, desired_state, current_state;
};

struct ExecTicketView {
  std::string ticket;  // "" when the answer is an idempotent replay (no ticket)
  std::string url;     // as given; "/v1/exec" when absent
};

// The items of an instance list.
[[nodiscard]] Result<std::vector<ExecInstanceView>> parseExecInstances(const nlohmann::json& j);
[[nodiscard]] Result<ExecTicketView> parseExecTicket(const nlohmann::json& j);
// An app's or env's "name" and "id" ("" when absent).
[[nodiscard]] std::string nameOf(const nlohmann::json& j);
[[nodiscard]] std::string idOf(const nlohmann::json& j);

}  // namespace plfm::vt
