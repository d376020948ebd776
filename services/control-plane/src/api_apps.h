// Apps and envs, parsed then executed (api_apps.cc; docs/specs/api/v1.md).
// The same shape as api_routes.h: a command struct per mutation, parse*()
// from the request alone (unit-tested without a database), execute() inside
// the mutation's transaction. The handlers check access and resolve the org.
#pragma once

#include <optional>
#include <string>

#include "api.h"

namespace plfm::cp::apps {

// POST /v1/orgs/{org_id}/apps.
struct CreateApp {
  OrgId org;
  std::string name;
  std::string description;  // at most 500 bytes; "" when not given
};
[[nodiscard]] Result<CreateApp> parseCreateApp(const http::Request& req);

// DELETE /v1/apps/{app_id}.
struct DeleteApp {
  AppId app;
};
[[nodiscard]] Result<DeleteApp> parseDeleteApp(const http::Request& req);

// POST /v1/apps/{app_id}/envs.
struct CreateEnv {
  AppId app;
  std::string name;
};
[[nodiscard]] Result<CreateEnv> parseCreateEnv(const http::Request& req);

// DELETE /v1/envs/{env_id}.
struct DeleteEnv {
  EnvId env;
};
[[nodiscard]] Result<DeleteEnv> parseDeleteEnv(const http::Request& req);

// Inside the mutation's transaction; `org_id` (and `app_id`) are those of
// the app or env the caller may see. `clock` stamps created_at.
[[nodiscard]] Result<Mutation> execute(const Clock& clock, const CreateApp& c, pg::Transaction& tx);
[[nodiscard]] Result<Mutation> execute(const DeleteApp& c, const std::string& org_id,
                                       pg::Transaction& tx);
[[nodiscard]] Result<Mutation> execute(const Clock& clock, const CreateEnv& c,
                                       const std::string& org_id, pg::Transaction& tx);
[[nodiscard]] Result<Mutation> execute(const DeleteEnv& c, const std::string& org_id,
                                       const std::string& app_id, pg::Transaction& tx);

}  // namespace plfm::cp::apps
