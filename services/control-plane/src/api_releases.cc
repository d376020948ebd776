// Releases (immutable: image pinned by digest plus manifest), deploys,
// scale (desired count per process type) and instances (desired vs current).
#include "api_releases.h"

#include "deploy_create.h"
#include "plfm/manifest/manifest.h"
#include "secrets_store.h"

namespace plfm::cp {
namespace {

const std::string kReleaseColumns =
    "release_id AS id, org_id, app_id, image_ref, image_digest, "
    "manifest, " +
    ts("created_at") + " AS created_at";
const std::string kDeployColumns =
    "deploy_id AS id, org_id, app_id, env_id, release_id, secrets_version, "
    "strategy, status, reason, rollback_of, " +
    ts("created_at") + " AS created_at, " + ts("updated_at") + " AS updated_at";
const std::string kInstanceColumns =
    "instance_id AS id, env_id, process_type, release_id, deploy_id, node_id, generation, "
    "desired_state, current_state, reason, address, lost, restarts, exit_code, vcpus, "
    "memory_mb, timings, slot, " +
    ts("not_before") + " AS not_before, " + ts("phase_since") + " AS phase_since, " +
    ts("created_at") + " AS created_at, " + ts("updated_at") + " AS updated_at";

Result<void> checkProcessName(const std::string& p) {
  if (!validProcessName(p)) {
    return Error(apierr::kInvalidField,
                 "process name '" + p.substr(0, 40) + "' must match [a-z][a-z0-9-]{0,29}")
        .with("field", "processes." + p.substr(0, 40));
  }
  return ok();
}

Result<json::Json> scaleJson(pg::Connection& db, const std::string& env) {
  PLFM_ASSIGN_OR_RETURN(auto rs, db.exec("SELECT process_type, count, " + ts("updated_at") +
                                             " FROM env_scale_view WHERE env_id = $1 "
                                             "ORDER BY process_type",
                                         {env}));
  json::Json procs = json::Json::object();
  std::string updated;
  for (int i = 0; i < rs.rows(); ++i) {
    procs[std::string(rs.text(i, 0))] = rs.int64(i, 1).value_or(0);
    updated = std::max(updated, std::string(rs.text(i, 2)));
  }
  return json::Json{{"env_id", env},
                    {"processes", procs},
                    {"updated_at", updated.empty() ? json::Json() : json::Json(updated)}};
}

// The secrets version a deploy of `env` pins: `asked` (which must be one of
// the env's versions), else the env's newest, else none.
Result<std::optional<std::string>> pinSecretsVersion(pg::Connection& db, const std::string& env,
                                                     const std::optional<std::string>& asked) {
  if (asked) {
    PLFM_ASSIGN_OR_RETURN(auto info, secretstore::versionInfo(db, *asked));
    if (!info || info->env_id != env) {
      return Error(plfm::errc::kNotFound,
                   "secrets version " + asked->substr(0, 40) + " not found in env " + env)
          .with("field", "secrets_version");
    }
    return asked;
  }
  PLFM_ASSIGN_OR_RETURN(auto head, secretstore::readHead(db, env));
  if (!head) return std::optional<std::string>();
  return std::optional<std::string>(head->version_id);
}

// The envs of the release's app that run it now, by name: it is their
// current release (their last deploy that succeeded), instances of it
// should run there, or their current deploy is deploying it.
Result<json::Json> envsOfRelease(pg::Connection& db, const std::string& rel) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      db.exec("SELECT * FROM (SELECT e.env_id, e.name, "
              "coalesce(e.current_release_id = r.release_id, false) AS current, "
              "(SELECT count(*) FROM instances_view i WHERE i.env_id = e.env_id AND "
              "i.release_id = r.release_id AND i.desired_state = 'run' AND "
              "i.current_state <> 'stopped') AS instances, "
              "(SELECT d.status FROM deploys_view d WHERE d.deploy_id = e.current_deploy_id AND "
              "d.release_id = r.release_id) AS deploy_status "
              "FROM releases_view r JOIN envs_view e ON e.app_id = r.app_id "
              "WHERE r.release_id = $1) x "
              "WHERE current OR instances > 0 OR deploy_status IS NOT NULL ORDER BY name",
              {rel}));
  return rowsToJson(rs);
}

Result<void> checkDigest(const std::string& d) {
  bool okDigest = d.size() == 71 && d.starts_with("sha256:");
  for (size_t i = 7; okDigest && i < d.size(); ++i) {
    okDigest = (d[i] >= '0' && d[i] <= '9') || (d[i] >= 'a' && d[i] <= 'f');
  }
  if (!okDigest) {
    return Error(apierr::kInvalidField,
                 "field 'image_digest' must be 'sha256:' followed by 64 lowercase hex digits "
                 "(releases pin images by digest)")
        .with("field", "image_digest");
  }
  return ok();
}

// The release's manifest, checked by the rules `vt manifest validate`
// applies and rewritten in its canonical form (api/schemas/manifest.json):
// only that form is stored, so every later reader sees valid, complete
// values (resources within range, no unknown fields).
Result<json::Json> canonicalManifest(const json::Json& body) {
  auto it = body.find("manifest");
  if (it == body.end() || !it->is_object()) {
    return Error(apierr::kInvalidField, "field 'manifest' must be an object")
        .with("field", "manifest");
  }
  auto m = manifest::fromJson(*it);
  if (!m) {
    const std::string field(m.error().detail("field"));
    std::string why = m.error().message();
    if (why.starts_with("invalid manifest: ")) why.erase(0, 18);
    return Error(apierr::kInvalidField, "invalid manifest: " + why)
        .with("field", field.empty() ? std::string("manifest") : "manifest." + field);
  }
  return m->toJson();
}

}  // namespace

const std::string& instanceColumns() { return kInstanceColumns; }

namespace releases {

// ---- parse: the request alone ----

Result<CreateRelease> parseCreateRelease(const http::Request& req) {
  CreateRelease c;
  PLFM_ASSIGN_OR_RETURN(c.app, pathId<AppId>(req, "app_id"));
  PLFM_ASSIGN_OR_RETURN(auto body, parseBody(req, {"image_ref", "image_digest", "manifest"}));
  PLFM_ASSIGN_OR_RETURN(c.image_ref, requireString(body, "image_ref"));
  if (c.image_ref.empty() || c.image_ref.size() > 512) {
    return Error(apierr::kInvalidField, "field 'image_ref' must be 1 to 512 characters")
        .with("field", "image_ref");
  }
  // An oci:DIR reference names a directory on whichever node runs it, never
  // a tenant's to choose (docs/security.md); nor may a reference carry
  // whitespace or control bytes into the agents' logs and reasons.
  if (c.image_ref.rfind("oci:", 0) == 0) {
    return Error(apierr::kInvalidField,
                 "field 'image_ref' names an oci: layout on a node; push the image to a "
                 "registry and use host/repository@sha256:...")
        .with("field", "image_ref");
  }
  for (const char ch : c.image_ref) {
    const auto u = static_cast<unsigned char>(ch);
    if (u <= 0x20 || u >= 0x7f) {
      return Error(apierr::kInvalidField,
                   "field 'image_ref' must be printable ASCII without spaces")
          .with("field", "image_ref");
    }
  }
  PLFM_ASSIGN_OR_RETURN(c.image_digest, requireString(body, "image_digest"));
  PLFM_TRY(checkDigest(c.image_digest));
  PLFM_ASSIGN_OR_RETURN(c.manifest, canonicalManifest(body));
  return c;
}

Result<CreateDeploy> parseCreateDeploy(const http::Request& req) {
  CreateDeploy c;
  PLFM_ASSIGN_OR_RETURN(c.env, pathId<EnvId>(req, "env_id"));
  PLFM_ASSIGN_OR_RETURN(auto body, parseBody(req, {"release_id", "strategy", "secrets_version"}));
  PLFM_ASSIGN_OR_RETURN(c.release, bodyId<ReleaseId>(body, "release_id"));
  PLFM_ASSIGN_OR_RETURN(c.secrets_version, optionalString(body, "secrets_version"));
  PLFM_ASSIGN_OR_RETURN(auto strategy, optionalString(body, "strategy"));
  c.strategy = strategy.value_or("rolling");
  if (c.strategy != "rolling" && c.strategy != "immediate") {
    return Error(apierr::kInvalidField, "field 'strategy' must be 'rolling' or 'immediate'")
        .with("field", "strategy");
  }
  return c;
}

Result<SetScale> parseSetScale(const http::Request& req) {
  SetScale c;
  PLFM_ASSIGN_OR_RETURN(c.env, pathId<EnvId>(req, "env_id"));
  PLFM_ASSIGN_OR_RETURN(auto body, parseBody(req, {"processes"}));
  auto procs = body.find("processes");
  if (procs == body.end() || !procs->is_object() || procs->empty()) {
    return Error(apierr::kInvalidField,
                 "field 'processes' must be a non-empty object like {\"web\": 2}")
        .with("field", "processes");
  }
  for (const auto& [name, count] : procs->items()) {
    PLFM_TRY(checkProcessName(name));
    if (!count.is_number_integer() || count.get<int64_t>() < 0 || count.get<int64_t>() > 1000) {
      return Error(apierr::kInvalidField,
                   "field 'processes." + name + "' must be an integer 0..1000")
          .with("field", "processes." + name);
    }
    c.processes[name] = count.get<int64_t>();
  }
  return c;
}

// ---- execute: inside the mutation's transaction ----

Result<Mutation> execute(Api& api, const CreateRelease& c, const std::string& org_id,
                         pg::Transaction& tx) {
  const std::string& app = c.app.str();
  PLFM_ASSIGN_OR_RETURN(auto limits, api.lockOrgQuotas(tx, org_id));
  PLFM_ASSIGN_OR_RETURN(int64_t releases, releasesOfApp(tx.connection(), app));
  PLFM_TRY(
      checkQuota(Quota::kReleasesPerApp, limits[Quota::kReleasesPerApp], releases, releases + 1));
  const std::string rel = ReleaseId::generate().str();
  Mutation m;
  m.body = {{"id", rel},
            {"org_id", org_id},
            {"app_id", app},
            {"image_ref", c.image_ref},
            {"image_digest", c.image_digest},
            {"manifest", c.manifest},
            {"created_at", toRfc3339(api.deps().clock.now())}};
  m.events = {events::toNewEvent(events::ReleaseCreated{.release_id = rel,
                                                        .app_id = app,
                                                        .org_id = org_id,
                                                        .image_ref = c.image_ref,
                                                        .image_digest = c.image_digest,
                                                        .manifest = c.manifest},
                                 1, org_id)};
  return m;
}

Result<Mutation> execute(Api& api, const CreateDeploy& c, const std::string& org_id,
                         const std::string& app_id, pg::Transaction& tx) {
  const std::string& env = c.env.str();
  // The release's memory times the env's scale must fit the org.
  PLFM_ASSIGN_OR_RETURN(auto limits, api.lockOrgQuotas(tx, org_id));
  PLFM_TRY(
      checkInstanceQuotas(tx.connection(), limits, org_id, EnvChange{env, {}, c.release.str()}));
  // A deploy pins a secrets version: the one asked for, else the env's
  // newest (docs/specs/secrets/bundles.md).
  PLFM_ASSIGN_OR_RETURN(auto pinned, pinSecretsVersion(tx.connection(), env, c.secrets_version));
  auto d = newDeploy({org_id, app_id, env, c.release.str(), c.strategy, pinned},
                     toRfc3339(api.deps().clock.now()));
  Mutation m;
  m.settle = true;  // the scheduler starts (or supersedes) rollouts
  m.body = std::move(d.body);
  m.events = {std::move(d.event)};
  return m;
}

Result<Mutation> execute(Api& api, const SetScale& c, const std::string& org_id,
                         pg::Transaction& tx) {
  const std::string& env = c.env.str();
  PLFM_ASSIGN_OR_RETURN(auto limits, api.lockOrgQuotas(tx, org_id));
  PLFM_TRY(checkInstanceQuotas(tx.connection(), limits, org_id,
                               EnvChange{env, c.processes, std::nullopt}));
  PLFM_ASSIGN_OR_RETURN(auto current, scaleJson(tx.connection(), env));
  json::Json merged = current["processes"];
  for (const auto& [name, count] : c.processes) merged[name] = count;
  PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, env));
  Mutation m;
  m.status = 200;
  m.settle = true;  // the scheduler places or drains instances
  m.body = {
      {"env_id", env}, {"processes", merged}, {"updated_at", toRfc3339(api.deps().clock.now())}};
  m.events = {events::toNewEvent(
      events::EnvScaleSet{.env_id = env, .org_id = org_id, .processes = c.processes}, next,
      org_id)};
  return m;
}

// ---- handlers: parse, check access, execute ----
namespace {

Result<http::Response> createRelease(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(const CreateRelease c, parseCreateRelease(ctx.req));
  PLFM_ASSIGN_OR_RETURN(auto j, visibleApp(ctx, c.app));
  const std::string org = j["org_id"];
  return api.runMutation(ctx, [&](pg::Transaction& tx) { return execute(api, c, org, tx); });
}

Result<http::Response> listReleases(Api& /*api*/, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto app, pathId<AppId>(ctx.req, "app_id"));
  PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "rel"));
  PLFM_TRY(visibleApp(ctx, app));
  return listChildren(ctx, kReleaseColumns, "releases_view", "release_id", "app_id", app.str(),
                      page);
}

Result<http::Response> getRelease(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto rel, pathId<ReleaseId>(ctx.req, "release_id"));
  PLFM_TRY(api.awaitScheduler(ctx));
  PLFM_ASSIGN_OR_RETURN(
      auto j,
      visibleRow(ctx, "SELECT " + kReleaseColumns + " FROM releases_view WHERE release_id = $1",
                 rel.str(), "release"));
  PLFM_ASSIGN_OR_RETURN(j["envs"], envsOfRelease(ctx.db(), rel.str()));
  return jsonResponse(200, j);
}

Result<http::Response> createDeploy(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(const CreateDeploy c, parseCreateDeploy(ctx.req));
  PLFM_ASSIGN_OR_RETURN(auto e, visibleEnv(ctx, c.env));
  const std::string org = e["org_id"];
  const std::string app = e["app_id"];
  PLFM_ASSIGN_OR_RETURN(auto rs, ctx.db().exec("SELECT app_id FROM releases_view "
                                               "WHERE release_id = $1",
                                               {c.release.str()}));
  if (rs.rows() != 1 || rs.text(0, 0) != app) {
    return Error(plfm::errc::kNotFound,
                 "release " + c.release.str() + " not found in the env's app " + app)
        .with("field", "release_id");
  }
  return api.runMutation(ctx, [&](pg::Transaction& tx) { return execute(api, c, org, app, tx); });
}

Result<http::Response> listDeploys(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
  PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "dep"));
  PLFM_TRY(visibleEnv(ctx, env));
  PLFM_TRY(api.awaitScheduler(ctx));
  return listChildren(ctx, kDeployColumns, "deploys_view", "deploy_id", "env_id", env.str(), page);
}

Result<http::Response> getDeploy(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto dep, pathId<DeployId>(ctx.req, "deploy_id"));
  PLFM_TRY(api.awaitScheduler(ctx));
  PLFM_ASSIGN_OR_RETURN(
      auto j,
      visibleRow(ctx, "SELECT " + kDeployColumns + " FROM deploys_view WHERE deploy_id = $1",
                 dep.str(), "deploy"));
  return jsonResponse(200, j);
}

Result<http::Response> setScale(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(const SetScale c, parseSetScale(ctx.req));
  PLFM_ASSIGN_OR_RETURN(auto e, visibleEnv(ctx, c.env));
  const std::string org = e["org_id"];
  return api.runMutation(ctx, [&](pg::Transaction& tx) { return execute(api, c, org, tx); });
}

Result<http::Response> getScale(Api& /*api*/, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
  PLFM_TRY(visibleEnv(ctx, env));
  PLFM_ASSIGN_OR_RETURN(auto j, scaleJson(ctx.db(), env.str()));
  return jsonResponse(200, j);
}

// Desired vs current per process type, with the scheduler's reason when
// they differ (scheduler_status).
Result<json::Json> instanceSummary(Ctx& ctx, const std::string& env, bool deployed) {
  PLFM_ASSIGN_OR_RETURN(
      auto sum, ctx.db().exec("SELECT s.process_type, s.count, (SELECT count(*) FROM "
                              "instances_view i WHERE i.env_id = s.env_id AND i.process_type = "
                              "s.process_type AND i.desired_state = 'run' AND NOT i.lost AND "
                              "i.current_state = 'healthy'), st.reason FROM env_scale_view s "
                              "LEFT JOIN scheduler_status st ON st.env_id = s.env_id AND "
                              "st.process_type = s.process_type WHERE s.env_id = $1 "
                              "ORDER BY s.process_type",
                              {env}));
  json::Json summary = json::Json::array();
  for (int i = 0; i < sum.rows(); ++i) {
    const int64_t desired = sum.int64(i, 1).value_or(0);
    const int64_t current = sum.int64(i, 2).value_or(0);
    std::string reason(sum.text(i, 3));
    if (reason.empty() && desired != current) {
      // The scheduler has not said (yet, or it runs elsewhere).
      reason = deployed ? "waiting for the scheduler to place instances"
                        : "no deploy yet: run a deploy to start instances";
    }
    summary.push_back({{"process_type", std::string(sum.text(i, 0))},
                       {"desired", desired},
                       {"current", current},
                       {"reason", reason}});
  }
  return summary;
}

Result<http::Response> listInstances(Api& api, Ctx& ctx) {
  PLFM_ASSIGN_OR_RETURN(auto env, pathId<EnvId>(ctx.req, "env_id"));
  PLFM_ASSIGN_OR_RETURN(auto e, visibleEnv(ctx, env));
  PLFM_TRY(api.awaitScheduler(ctx));
  // Instances that reported `stopped` are gone: they are not listed.
  PLFM_ASSIGN_OR_RETURN(auto rs, ctx.db().exec("SELECT " + kInstanceColumns +
                                                   " FROM instances_view WHERE env_id "
                                                   "= $1 AND current_state <> 'stopped' "
                                                   "ORDER BY process_type, instance_id",
                                               {env.str()}));
  PLFM_ASSIGN_OR_RETURN(auto summary,
                        instanceSummary(ctx, env.str(), !e["current_deploy_id"].is_null()));
  return jsonResponse(200, {{"items", rowsToJson(rs)}, {"summary", summary}});
}

// The resource's routes, registered in this order.
constexpr RouteSpec kTable[] = {
    {"POST", "/v1/apps/{app_id}/releases", Access::kUser, createRelease},
    {"GET", "/v1/apps/{app_id}/releases", Access::kUser, listReleases},
    {"GET", "/v1/releases/{release_id}", Access::kUser, getRelease},
    {"POST", "/v1/envs/{env_id}/deploys", Access::kUser, createDeploy},
    {"GET", "/v1/envs/{env_id}/deploys", Access::kUser, listDeploys},
    {"GET", "/v1/deploys/{deploy_id}", Access::kUser, getDeploy},
    {"PUT", "/v1/envs/{env_id}/scale", Access::kUser, setScale},
    {"GET", "/v1/envs/{env_id}/scale", Access::kUser, getScale},
    {"GET", "/v1/envs/{env_id}/instances", Access::kUser, listInstances},
};

}  // namespace
}  // namespace releases

void Api::registerReleaseRoutes(http::Router& r) { addRoutes(r, releases::kTable); }

}  // namespace plfm::cp
