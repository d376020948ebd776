// Apps (in an org) and envs (in an app).
#include "api_apps.h"

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

namespace apps {

// ---- parse: the request alone ----

Result<CreateApp> parseCreateApp(const http::Request& req) {
  CreateApp c;
  PLFM_ASSIGN_OR_RETURN(c.org, pathId<OrgId>(req, "org_id"));
  PLFM_ASSIGN_OR_RETURN(auto body, parseBody(req, {"name", "description"}));
  PLFM_ASSIGN_OR_RETURN(c.name, requireString(body, "name"));
  PLFM_TRY(checkName("name", c.name));
  PLFM_ASSIGN_OR_RETURN(auto desc, optionalString(body, "description"));
  if (desc && desc->size() > 500) {
    return Error(apierr::kInvalidField, "field 'description' is longer than 500 bytes")
        .with("field", "description");
  }
  c.description = desc.value_or("");
  return c;
}

Result<DeleteApp> parseDeleteApp(const http::Request& req) {
  DeleteApp c;
  PLFM_ASSIGN_OR_RETURN(c.app, pathId<AppId>(req, "app_id"));
  return c;
}

Result<CreateEnv> parseCreateEnv(const http::Request& req) {
  CreateEnv c;
  PLFM_ASSIGN_OR_RETURN(c.app, pathId<AppId>(req, "app_id"));
  PLFM_ASSIGN_OR_RETURN(auto body, parseBody(req, {"name"}));
  PLFM_ASSIGN_OR_RETURN(c.name, requireString(body, "name"));
  PLFM_TRY(checkName("name", c.name));
  return c;
}

Result<DeleteEnv> parseDeleteEnv(const http::Request& req) {
  DeleteEnv c;
  PLFM_ASSIGN_OR_RETURN(c.env, pathId<EnvId>(req, "env_id"));
  return c;
}

// ---- execute: inside the mutation's transaction ----

Result<Mutation> execute(const Clock& clock, const CreateApp& c, pg::Transaction& tx) {
  const std::string app = AppId::generate().str();
  const std::string& org = c.org.str();
  PLFM_TRY(reserveName(tx, "app:" + org, c.name, app, "an app"));
  const std::string now = toRfc3339(clock.now());
  Mutation m;
  m.body = {{"id", app},         {"org_id", org},
            {"name", c.name},    {"description", c.description},
            {"created_at", now}, {"updated_at", now}};
  m.events = {events::toNewEvent(
      events::AppCreated{
          .app_id = app, .org_id = org, .name = c.name, .description = c.description},
      1, org)};
  return m;
}

Result<Mutation> execute(const DeleteApp& c, const std::string& org_id, pg::Transaction& tx) {
  const std::string& app = c.app.str();
  PLFM_ASSIGN_OR_RETURN(auto envs, tx.exec("SELECT count(*) FROM name_reservations "
                                           "WHERE scope = $1",
                                           {"env:" + app}));
  if (envs.int64(0, 0).value_or(0) > 0) {
    return Error(plfm::errc::kFailedPrecondition,
                 "app " + app + " still has envs; delete them first");
  }
  PLFM_TRY(releaseName(tx, "app:" + org_id, app));
  PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, app));
  Mutation m;
  m.status = 200;
  m.body = {{"deleted", true}, {"id", app}};
  m.events = {
      events::toNewEvent(events::AppDeleted{.app_id = app, .org_id = org_id}, next, org_id)};
  return m;
}

Result<Mutation> execute(const Clock& clock, const CreateEnv& c, const std::string& org_id,
                         pg::Transaction& tx) {
  const std::string env = EnvId::generate().str();
  PLFM_TRY(reserveName(tx, "env:" + c.app.str(), c.name, env, "an env"));
  const std::string now = toRfc3339(clock.now());
  Mutation m;
  m.body = {{"id", env},
            {"org_id", org_id},
            {"app_id", c.app.str()},
            {"name", c.name},
            {"current_release_id", nullptr},
            {"current_deploy_id", nullptr},
            {"created_at", now},
            {"updated_at", now}};
  m.events = {events::toNewEvent(
      events::EnvCreated{.env_id = env, .app_id = c.app.str(), .org_id = org_id, .name = c.name}, 1,
      org_id)};
  return m;
}

Result<Mutation> execute(const DeleteEnv& c, const std::string& org_id, const std::string& app_id,
                         pg::Transaction& tx) {
  const std::string& env = c.env.str();
  PLFM_ASSIGN_OR_RETURN(auto routes, tx.exec("SELECT count(*) FROM route_claims "
                                             "WHERE env_id = $1",
                                             {env}));
  if (routes.int64(0, 0).value_or(0) > 0) {
    return Error(plfm::errc::kFailedPrecondition,
                 "env " + env + " still has routes; delete them first");
  }
  PLFM_TRY(releaseName(tx, "env:" + app_id, env));
  PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, env));
  Mutation m;
  m.status = 200;
  m.settle = true;  // its instances are drained
  m.body = {{"deleted", true}, {"id", env}};
  // Its volumes go with it: the placed ones to their nodes' agents.
  PLFM_ASSIGN_OR_RETURN(m.events, envVolumeDeletions(tx, env, org_id));
  m.events.push_back(events::toNewEvent(
      events::EnvDeleted{.env_id = env, .app_id = app_id, .org_id = org_id}, next, org_id));
  return m;
}

// ---- handlers: parse, check access, execute ----
namespace {

Result<http::Response> createApp(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(CreateApp c, parseCreateApp(ctx.req));
  PLFM_TRY(roleIn(ctx.db(), ctx.who, c.org.str()));
  return api.runMutation(ctx,
                         [&](pg::Transaction& tx) { return execute(api.deps().clock, c, tx); });
}

Result<http::Response> listApps(Api& /*api*/, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
  PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "app"));
  PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
  return listChildren(ctx, kAppColumns, "apps_view", "app_id", "org_id", org.str(), page);
}

Result<http::Response> getApp(Api& /*api*/, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto app, pathId<AppId>(ctx.req, "app_id"));
  PLFM_ASSIGN_OR_RETURN(auto j, visibleApp(ctx, app));
  return jsonResponse(200, j);
}

Result<http::Response> deleteApp(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(DeleteApp c, parseDeleteApp(ctx.req));
  PLFM_ASSIGN_OR_RETURN(auto j, visibleApp(ctx, c.app));
  const std::string org = j["org_id"];
  PLFM_TRY(requireOwner(ctx, org));  // members deploy; owners delete
  return api.runMutation(ctx, [&](pg::Transaction& tx) { return execute(c, org, tx); });
}

Result<http::Response> createEnv(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(CreateEnv c, parseCreateEnv(ctx.req));
  PLFM_ASSIGN_OR_RETURN(auto j, visibleApp(ctx, c.app));
  const std::string org = j["org_id"];
  return api.runMutation(
      ctx, [&](pg::Transaction& tx) { return execute(api.deps().clock, c, org, tx); });
}

Result<http::Response> listEnvs(Api& /*api*/, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto app, pathId<AppId>(ctx.req, "app_id"));
  PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "env"));
  PLFM_TRY(visibleApp(ctx, app));
  return listChildren(ctx, kEnvColumns, "envs_view", "env_id", "app_id", app.str(), page);
}

Result<http::Response> getEnv(Api& /*api*/, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
  PLFM_ASSIGN_OR_RETURN(auto j, visibleEnv(ctx, env));
  return jsonResponse(200, j);
}

Result<http::Response> deleteEnv(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(DeleteEnv c, parseDeleteEnv(ctx.req));
  PLFM_ASSIGN_OR_RETURN(auto j, visibleEnv(ctx, c.env));
  const std::string org = j["org_id"];
  const std::string app = j["app_id"];
  PLFM_TRY(requireOwner(ctx, org));  // members deploy; owners delete
  return api.runMutation(ctx, [&](pg::Transaction& tx) { return execute(c, org, app, tx); });
}

// The resource's routes, registered in this order.
constexpr RouteSpec kTable[] = {
    {"POST", "/v1/orgs/{org_id}/apps", Access::kUser, createApp},
    {"GET", "/v1/orgs/{org_id}/apps", Access::kUser, listApps},
    {"GET", "/v1/apps/{app_id}", Access::kUser, getApp},
    {"DELETE", "/v1/apps/{app_id}", Access::kUser, deleteApp},
    {"POST", "/v1/apps/{app_id}/envs", Access::kUser, createEnv},
    {"GET", "/v1/apps/{app_id}/envs", Access::kUser, listEnvs},
    {"GET", "/v1/envs/{env_id}", Access::kUser, getEnv},
    {"DELETE", "/v1/envs/{env_id}", Access::kUser, deleteEnv},
};

}  // namespace
}  // namespace apps

void Api::registerAppRoutes(http::Router& r) { addRoutes(r, apps::kTable); }

}  // namespace plfm::cp
