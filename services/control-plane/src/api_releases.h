// Releases, deploys and scale, parsed then executed (api_releases.cc;
// docs/specs/api/v1.md). The same shape as api_apps.h: a command struct per
// mutation, parse*() from the request alone (unit-tested without a
// database, and run by the request fuzzer), execute() inside the mutation's
// transaction. The handlers check access and resolve the org and app.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "api.h"

namespace plfm::cp::releases {

// POST /v1/apps/{app_id}/releases. The manifest is checked by the rules of
// `vt manifest validate` and is in its canonical form.
struct CreateRelease {
  AppId app;
  std::string image_ref;     // 1-512 printable ASCII bytes, never an oci: layout
  std::string image_digest;  // sha256:<64 lowercase hex>
  json::Json manifest;
};
[[nodiscard]] Result<CreateRelease> parseCreateRelease(const http::Request& req);

// POST /v1/envs/{env_id}/deploys.
struct CreateDeploy {
  EnvId env;
  ReleaseId release;
  std::string strategy = "rolling";            // "rolling" or "immediate"
  std::optional<std::string> secrets_version;  // checked against the env on execute
};
[[nodiscard]] Result<CreateDeploy> parseCreateDeploy(const http::Request& req);

// PUT /v1/envs/{env_id}/scale: desired counts (0..1000) by process type.
struct SetScale {
  EnvId env;
  std::map<std::string, int64_t> processes;  // not empty
};
[[nodiscard]] Result<SetScale> parseSetScale(const http::Request& req);

// Inside the mutation's transaction; `org_id` (and `app_id`) are those of
// the app or env the caller may see, and a deploy's release was found in
// that app. `api` takes the org's quota lock and stamps the time.
[[nodiscard]] Result<Mutation> execute(Api& api, const CreateRelease& c, const std::string& org_id,
                                       pg::Transaction& tx);
[[nodiscard]] Result<Mutation> execute(Api& api, const CreateDeploy& c, const std::string& org_id,
                                       const std::string& app_id, pg::Transaction& tx);
[[nodiscard]] Result<Mutation> execute(Api& api, const SetScale& c, const std::string& org_id,
                                       pg::Transaction& tx);

}  // namespace plfm::cp::releases
