// Apps (in an org) and envs (in an app).
#include "api.h"
#include "volume_deletion.h"

namespace plfm::cp {
namespace {

const std::string kAppColumns = "app_id AS id, org_id, name, description, " + ts("created_at") +
                                " AS created_at, " + ts("updated_at") + " AS updated_at";
const std::string kEnvColumns =
    "env_id AS id, org_id, app_id, name, current_release_id, "
    "current_deploy_id, " +
    ts("created_at") + " AS created_at, " + ts("updated_at") + " AS updated_at";

}  // namespace

Result<json::Json> visibleRow(Ctx& ctx, const std::string& select_sql, const std::string& id,
                              const std::string& what) {
  auto notFound = [&] {
    return Error(plfm::errc::kNotFound, what + " " + id + " not found").with(what + "_id", id);
  };
  PLFM_ASSIGN_OR_RETURN(auto rs, ctx.db().exec(select_sql, {id}));
  if (rs.rows() != 1) return notFound();
  json::Json j = rowToJson(rs, 0);
  if (!roleIn(ctx.db(), ctx.who, j["org_id"].get<std::string>())) return notFound();
  return j;
}

Result<json::Json> visibleApp(Ctx& ctx, const AppId& app) {
  return visibleRow(ctx, "SELECT " + kAppColumns + " FROM apps_view WHERE app_id = $1", app.str(),
                    "app");
}

Result<json::Json> visibleEnv(Ctx& ctx, const EnvId& env) {
  return visibleRow(ctx, "SELECT " + kEnvColumns + " FROM envs_view WHERE env_id = $1", env.str(),
                    "env");
}

void Api::registerAppRoutes(http::Router& r) {
  route(r, "POST", "/v1/orgs/{org_id}/apps", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"name", "description"}));
          PLFM_ASSIGN_OR_RETURN(auto name, requireString(body, "name"));
          PLFM_TRY(checkName("name", name));
          PLFM_ASSIGN_OR_RETURN(auto desc, optionalString(body, "description"));
          if (desc && desc->size() > 500) {
            return Error(apierr::kInvalidField, "field 'description' is longer than 500 bytes")
                .with("field", "description");
          }
          PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            const std::string app = AppId::generate().str();
            PLFM_TRY(reserveName(tx, "app:" + org.str(), name, app, "an app"));
            const std::string now = toRfc3339(deps_.clock.now());
            Mutation m;
            m.body = {{"id", app},         {"org_id", org.str()},
                      {"name", name},      {"description", desc.value_or("")},
                      {"created_at", now}, {"updated_at", now}};
            m.events = {events::toNewEvent(events::AppCreated{.app_id = app,
                                                              .org_id = org.str(),
                                                              .name = name,
                                                              .description = desc.value_or("")},
                                           1, org.str())};
            return m;
          });
        });

  route(r, "GET", "/v1/orgs/{org_id}/apps", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
    PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "app"));
    PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
    return listChildren(ctx, kAppColumns, "apps_view", "app_id", "org_id", org.str(), page);
  });

  route(r, "GET", "/v1/apps/{app_id}", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto app, pathId<AppId>(ctx.req, "app_id"));
    PLFM_ASSIGN_OR_RETURN(auto j, visibleApp(ctx, app));
    return jsonResponse(200, j);
  });

  route(r, "DELETE", "/v1/apps/{app_id}", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto app, pathId<AppId>(ctx.req, "app_id"));
          PLFM_ASSIGN_OR_RETURN(auto j, visibleApp(ctx, app));
          const std::string org = j["org_id"];
          PLFM_TRY(requireOwner(ctx, org));  // members deploy; owners delete
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto envs, tx.exec("SELECT count(*) FROM name_reservations "
                                                     "WHERE scope = $1",
                                                     {"env:" + app.str()}));
            if (envs.int64(0, 0).value_or(0) > 0) {
              return Error(plfm::errc::kFailedPrecondition,
                           "app " + app.str() + " still has envs; delete them first");
            }
            PLFM_TRY(releaseName(tx, "app:" + org, app.str()));
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, app.str()));
            Mutation m;
            m.status = 200;
            m.body = {{"deleted", true}, {"id", app.str()}};
            m.events = {events::toNewEvent(events::AppDeleted{.app_id = app.str(), .org_id = org},
                                           next, org)};
            return m;
          });
        });

  route(r, "POST", "/v1/apps/{app_id}/envs", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto app, pathId<AppId>(ctx.req, "app_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"name"}));
          PLFM_ASSIGN_OR_RETURN(auto name, requireString(body, "name"));
          PLFM_TRY(checkName("name", name));
          PLFM_ASSIGN_OR_RETURN(auto j, visibleApp(ctx, app));
          const std::string org = j["org_id"];
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            const std::string env = EnvId::generate().str();
            PLFM_TRY(reserveName(tx, "env:" + app.str(), name, env, "an env"));
            const std::string now = toRfc3339(deps_.clock.now());
            Mutation m;
            m.body = {{"id", env},
                      {"org_id", org},
                      {"app_id", app.str()},
                      {"name", name},
                      {"current_release_id", nullptr},
                      {"current_deploy_id", nullptr},
                      {"created_at", now},
                      {"updated_at", now}};
            m.events = {events::toNewEvent(
                events::EnvCreated{.env_id = env, .app_id = app.str(), .org_id = org, .name = name},
                1, org)};
            return m;
          });
        });

  route(r, "GET", "/v1/apps/{app_id}/envs", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto app, pathId<AppId>(ctx.req, "app_id"));
    PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "env"));
    PLFM_TRY(visibleApp(ctx, app));
    return listChildren(ctx, kEnvColumns, "envs_view", "env_id", "app_id", app.str(), page);
  });

  route(r, "GET", "/v1/envs/{env_id}", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
    PLFM_ASSIGN_OR_RETURN(auto j, visibleEnv(ctx, env));
    return jsonResponse(200, j);
  });

  route(r, "DELETE", "/v1/envs/{env_id}", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
          PLFM_ASSIGN_OR_RETURN(auto j, visibleEnv(ctx, env));
          const std::string org = j["org_id"];
          const std::string app = j["app_id"];
          PLFM_TRY(requireOwner(ctx, org));  // members deploy; owners delete
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto routes, tx.exec("SELECT count(*) FROM route_claims "
                                                       "WHERE env_id = $1",
                                                       {env.str()}));
            if (routes.int64(0, 0).value_or(0) > 0) {
              return Error(plfm::errc::kFailedPrecondition,
                           "env " + env.str() + " still has routes; delete them first");
            }
            PLFM_TRY(releaseName(tx, "env:" + app, env.str()));
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, env.str()));
            Mutation m;
            m.status = 200;
            m.settle = true;  // its instances are drained
            m.body = {{"deleted", true}, {"id", env.str()}};
            // Its volumes go with it: the placed ones to their nodes' agents.
            PLFM_ASSIGN_OR_RETURN(m.events, envVolumeDeletions(tx, env.str(), org));
            m.events.push_back(events::toNewEvent(
                events::EnvDeleted{.env_id = env.str(), .app_id = app, .org_id = org}, next, org));
            return m;
          });
        });
}

}  // namespace plfm::cp
