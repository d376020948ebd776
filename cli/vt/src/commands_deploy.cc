// vt deploy, vt manifest validate.
#include <filesystem>

#include "commands.h"
#include "deploy_watch.h"
#include "image_resolve.h"
#include "invocation.h"
#include "plfm/manifest/manifest.h"
#include "route_sync.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// Prints every diagnostic, one per line, then a count. Returns 1.
int reportDiagnostics(Invocation& inv, const std::string& file,
                      const std::vector<manifest::Diagnostic>& diags) {
  if (inv.out.format() == Format::kJson) {
    json items = json::array();
    for (const auto& d : diags) {
      items.push_back({{"file", d.file},
                       {"line", d.line},
                       {"column", d.column},
                       {"path", d.path},
                       {"message", d.message},
                       {"hint", d.hint}});
    }
    inv.out.json({{"file", file}, {"valid", false}, {"errors", items}});
  }
  for (const auto& d : diags) inv.out.err() << d.format() << "\n";
  inv.out.err() << file << ": " << diags.size() << (diags.size() == 1 ? " error" : " errors")
                << "\n";
  return exitcode::kUserError;
}

std::string manifestPath(Invocation& inv) {
  if (auto m = inv.args.value("manifest")) return *m;
  if (!inv.args.positionals.empty()) return inv.args.positionals[0];
  return "vt.toml";
}

int manifestValidate(Invocation& inv) {
  std::string path = manifestPath(inv);
  auto parsed = manifest::parseFile(path);
  if (!parsed.ok()) return reportDiagnostics(inv, path, parsed.diagnostics);
  const manifest::Manifest& m = *parsed.manifest;
  if (inv.out.format() == Format::kJson) {
    inv.out.json({{"file", path}, {"valid", true}, {"manifest", m.toJson()}});
  } else if (!inv.out.quiet()) {
    std::string procs;
    for (const auto& p : m.processes) procs += (procs.empty() ? "" : ", ") + p.name;
    inv.out.out() << path << ": valid (app " << m.app << ", image " << m.image
                  << ", processes: " << procs << ")\n";
  }
  return 0;
}

// Finds the app or creates it; notes what happened.
Result<json> ensureApp(Invocation& inv, const json& org, const std::string& name,
                       std::vector<std::string>& notes) {
  PLFM_ASSIGN_OR_RETURN(auto found, inv.findApp(org["id"], name));
  if (found) return *found;
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  PLFM_ASSIGN_OR_RETURN(auto app,
                        client->mutate("POST", "/v1/orgs/" + org["id"].get<std::string>() + "/apps",
                                       {{"name", name}}));
  notes.push_back("created app " + name + " (" + app["id"].get<std::string>() + ")");
  inv.out.progress("Created app " + name);
  return app;
}

Result<json> ensureEnv(Invocation& inv, const json& app, const std::string& name,
                       std::vector<std::string>& notes) {
  PLFM_ASSIGN_OR_RETURN(auto found, inv.findEnv(app["id"], name));
  if (found) return *found;
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  PLFM_ASSIGN_OR_RETURN(auto env,
                        client->mutate("POST", "/v1/apps/" + app["id"].get<std::string>() + "/envs",
                                       {{"name", name}}));
  notes.push_back("created env " + name + " (" + env["id"].get<std::string>() + ")");
  inv.out.progress("Created env " + name);
  return env;
}

int deploy(Invocation& inv) {
  std::string path = manifestPath(inv);
  auto parsed = manifest::parseFile(path);
  if (!parsed.ok()) return reportDiagnostics(inv, path, parsed.diagnostics);
  manifest::Manifest m = *parsed.manifest;
  if (auto image = inv.args.value("image")) m.image = *image;
  if (auto a = inv.args.value("app"); a && *a != m.app) {
    return fail(inv,
                Error("usage", "--app " + *a + " disagrees with app = \"" + m.app + "\" in " + path)
                    .with("hint",
                          "deploy reads the app from the manifest; edit it or drop "
                          "--app"));
  }
  inv.out.progress("Resolving image " + m.image + " ...");
  auto pinned = pinImage(m.image);
  if (!pinned) return fail(inv, pinned.error());
  inv.out.progress("Pinned " + m.image + " to " + pinned->digest);

  auto org = inv.org();
  if (!org) return fail(inv, org.error());
  std::vector<std::string> notes;
  auto app = ensureApp(inv, *org, m.app, notes);
  if (!app) return fail(inv, app.error());
  auto env = ensureEnv(inv, *app, inv.envSelector(), notes);
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  const std::string app_id = (*app)["id"];
  const std::string env_id = (*env)["id"];

  auto release = (*client)->mutate(
      "POST", "/v1/apps/" + app_id + "/releases",
      {{"image_ref", pinned->ref}, {"image_digest", pinned->digest}, {"manifest", m.toJson()}});
  if (!release) return fail(inv, release.error());
  const std::string rel_id = (*release)["id"];
  inv.out.progress("Created release " + rel_id);
  // The manifest's [[services]] routes, before the deploy: a hostname taken
  // elsewhere stops here, with nothing deployed.
  if (auto routed = syncManifestRoutes(inv, *env, m, notes); !routed) {
    return fail(inv, routed.error());
  }

  // A process that has never been scaled starts with one instance, so that a
  // first deploy serves something; later counts are the user's (vt scale).
  auto scale = (*client)->get("/v1/envs/" + env_id + "/scale");
  if (!scale) return fail(inv, scale.error());
  json missing = json::object();
  for (const auto& p : m.processes) {
    if (!(*scale)["processes"].contains(p.name)) missing[p.name] = 1;
  }
  if (!missing.empty()) {
    auto set = (*client)->mutate("PUT", "/v1/envs/" + env_id + "/scale", {{"processes", missing}});
    if (!set) return fail(inv, set.error());
    for (const auto& [name, count] : missing.items()) {
      notes.push_back("scaled new process " + name + " to 1 (change with `vt scale set`)");
    }
  }

  auto dep = (*client)->mutate("POST", "/v1/envs/" + env_id + "/deploys",
                               {{"release_id", rel_id}, {"strategy", m.deploy.strategy}});
  if (!dep) return fail(inv, dep.error());
  const std::string dep_id = (*dep)["id"];
  std::string scope = " --app " + m.app + " --env " + (*env)["name"].get<std::string>();
  if (inv.args.has("detach")) {
    Receipt r{.action = "deploy.created",
              .message = "Deploying release " + rel_id + " of " + m.app + " to env " +
                         (*env)["name"].get<std::string>() + " (deploy " + dep_id + ")",
              .ids = {dep_id, rel_id},
              .notes = notes,
              .next = {"vt deploys get " + dep_id, "vt instances list" + scope,
                       "vt events tail --follow"}};
    inv.out.receipt(r, {{"deploy", *dep}, {"release", *release}});
    return 0;
  }
  return watchDeploy(inv, **client, *env, *dep,
                     "Deployed release " + rel_id + " of " + m.app + " to env " +
                         (*env)["name"].get<std::string>(),
                     notes, scope);
}

}  // namespace

Command deployCommand() {
  return {
      .name = "deploy",
      .summary = "Release the manifest's image and deploy it, watching progress",
      .help =
          "Validates the manifest, pins the image to a digest, creates an immutable\n"
          "release and a deploy of it to the env (default prod), then shows each\n"
          "instance's state until the deploy succeeds or fails. The app and env are\n"
          "created on first use, and the routes of the manifest's [[services]] are\n"
          "created or updated (routes it does not declare are kept). Ctrl-C stops\n"
          "watching; the deploy goes on.\n\n"
          "Examples:\n"
          "  vt deploy\n"
          "  vt deploy --manifest deploy/vt.toml --env staging\n"
          "  vt deploy --image registry.local:5000/hello@sha256:... --detach",
      .flags = {{.name = "manifest", .value_name = "FILE", .help = "manifest (default ./vt.toml)"},
                {.name = "image", .value_name = "REF", .help = "override the manifest's image"},
                {.name = "detach", .help = "return once the deploy is created"},
                {.name = "timeout",
                 .value_name = "DURATION",
                 .help = "stop watching after this long (default 15m)"}},
      .mutating = true,
      .run = deploy};
}

Command manifestCommand() {
  Command c{.name = "manifest", .summary = "Work with vt.toml manifests"};
  c.children.push_back(
      {.name = "validate",
       .summary = "Validate a manifest and report every error at once",
       .help = "Each error names file:line:column, the field path and what was expected.\n"
               "Exit code 0 when valid, 1 when not.",
       .positionals = {{.name = "FILE", .help = "manifest (default ./vt.toml)", .required = false}},
       .run = manifestValidate});
  return c;
}

}  // namespace plfm::vt
