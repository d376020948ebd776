// Creating a deploy: shared by POST /v1/envs/{env_id}/deploys and by secrets
// changes, which redeploy the env's current release with the new secrets
// version (docs/specs/secrets/bundles.md). A deploy pins its release and
// its secrets version; the scheduler rolls instances whose pair differs.
#pragma once

#include <optional>
#include <string>

#include "event_store.h"
#include "plfm/core/json.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

struct DeployRequest {
  std::string org_id;
  std::string app_id;
  std::string env_id;
  std::string release_id;
  std::string strategy = "rolling";
  std::optional<std::string> secrets_version;  // nullopt: the env has no secrets
  // An auto-rollback (the scheduler's, a deploy.rollback_created event): its
  // id, the failed deploy and why.
  std::string id{};  // empty: a new id
  std::string rollback_of{};
  std::string reason{};
};

struct NewDeploy {
  json::Json body;  // the Deploy resource as the API returns it
  NewEvent event;   // deploy.created, or deploy.rollback_created
};

[[nodiscard]] NewDeploy newDeploy(const DeployRequest& req, const std::string& now);

// The release a secrets change redeploys: the env's current release (its
// last successful deploy), else the release of its current deploy; nullopt
// when the env was never deployed.
[[nodiscard]] Result<std::optional<std::string>> redeployableRelease(pg::Connection& conn,
                                                                     const std::string& env_id);

}  // namespace plfm::cp
