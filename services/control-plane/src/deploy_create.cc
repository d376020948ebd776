#include "deploy_create.h"

#include "plfm/core/id.h"

namespace plfm::cp {

NewDeploy newDeploy(const DeployRequest& r, const std::string& now) {
  const std::string dep = r.id.empty() ? DeployId::generate().str() : r.id;
  const json::Json secrets = r.secrets_version ? json::Json(*r.secrets_version) : json::Json();
  const json::Json rollback_of = r.rollback_of.empty() ? json::Json() : json::Json(r.rollback_of);
  NewDeploy out;
  out.body = {{"id", dep},
              {"org_id", r.org_id},
              {"app_id", r.app_id},
              {"env_id", r.env_id},
              {"release_id", r.release_id},
              {"secrets_version", secrets},
              {"strategy", r.strategy},
              {"status", "pending"},
              {"reason", r.reason},
              {"rollback_of", rollback_of},
              {"created_at", now},
              {"updated_at", now}};
  const std::string correlation = json::dump({{"deploy_id", dep}});
  // An auto-rollback is its own event type, with why and what it replaces.
  if (r.rollback_of.empty()) {
    out.event = events::toNewEvent(events::DeployCreated{.deploy_id = dep,
                                                         .app_id = r.app_id,
                                                         .env_id = r.env_id,
                                                         .org_id = r.org_id,
                                                         .release_id = r.release_id,
                                                         .strategy = r.strategy,
                                                         .secrets_version = r.secrets_version},
                                   1, r.org_id, correlation);
  } else {
    out.event =
        events::toNewEvent(events::DeployRollbackCreated{.deploy_id = dep,
                                                         .app_id = r.app_id,
                                                         .env_id = r.env_id,
                                                         .org_id = r.org_id,
                                                         .release_id = r.release_id,
                                                         .strategy = r.strategy,
                                                         .secrets_version = r.secrets_version,
                                                         .rollback_of = r.rollback_of,
                                                         .reason = r.reason},
                           1, r.org_id, correlation);
  }
  return out;
}

Result<std::optional<std::string>> redeployableRelease(pg::Connection& conn,
                                                       const std::string& env_id) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT coalesce(e.current_release_id, d.release_id) "
                                           "FROM envs_view e LEFT JOIN deploys_view d ON "
                                           "d.deploy_id = e.current_deploy_id WHERE e.env_id = $1",
                                           {env_id}));
  if (rs.rows() != 1 || rs.isNull(0, 0)) return std::optional<std::string>();
  return std::optional<std::string>(std::string(rs.text(0, 0)));
}

}  // namespace plfm::cp
