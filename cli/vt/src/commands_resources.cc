// vt orgs | apps | envs: create, list, get, delete.
#include <algorithm>

#include "commands.h"
#include "invocation.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

std::vector<json> sortedBy(std::vector<json> items, const char* key) {
  std::stable_sort(items.begin(), items.end(), [key](const json& a, const json& b) {
    return std::make_pair(a.value(key, ""), a.value("id", "")) <
           std::make_pair(b.value(key, ""), b.value("id", ""));
  });
  return items;
}

// ---- orgs ----

int orgsCreate(Invocation& inv) {
  const std::string& name = inv.args.positionals[0];
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto org = (*client)->mutate("POST", "/v1/orgs", {{"name", name}});
  if (!org) return fail(inv, org.error());
  std::string id = (*org)["id"];
  Receipt r{.action = "org.created",
            .message = "Created org " + name + " (" + id + ")",
            .ids = {id},
            .next = {"vt context use --org " + name, "vt apps create NAME --org " + name}};
  inv.out.receipt(r, *org);
  return 0;
}

int orgsList(Invocation& inv) {
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto orgs = (*client)->listAll("/v1/orgs");
  if (!orgs) return fail(inv, orgs.error());
  printList(inv, sortedBy(*orgs, "name"), {"ID", "NAME", "CREATED"}, [](const json& o) {
    return std::vector<std::string>{field(o, "id"), field(o, "name"),
                                    shortTime(field(o, "created_at"))};
  });
  return 0;
}

int orgsGet(Invocation& inv) {
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto orgs = (*client)->listAll("/v1/orgs");
  if (!orgs) return fail(inv, orgs.error());
  const std::string& sel = inv.args.positionals[0];
  for (const auto& o : *orgs) {
    if (field(o, "id") == sel || field(o, "name") == sel) {
      auto members = (*client)->listAll("/v1/orgs/" + o["id"].get<std::string>() + "/members");
      if (!members) return fail(inv, members.error());
      json full = o;
      full["members"] = sortedBy(*members, "user_id");
      std::string who;
      for (const auto& m : full["members"]) {
        who += (who.empty() ? "" : ", ") + field(m, "user_id").get<std::string>() + " (" +
               field(m, "role").get<std::string>() + ")";
      }
      printOne(inv, full,
               {{"id", field(o, "id")},
                {"name", field(o, "name")},
                {"members", who},
                {"created", shortTime(field(o, "created_at"))}});
      return 0;
    }
  }
  return fail(inv, Error(errc::kNotFound, "no org `" + sel + "` that you can see")
                       .with("hint", "list yours with `vt orgs list`"));
}

int orgsDelete(Invocation& inv) {
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto orgs = (*client)->listAll("/v1/orgs");
  if (!orgs) return fail(inv, orgs.error());
  const std::string& sel = inv.args.positionals[0];
  for (const auto& o : *orgs) {
    if (field(o, "id") == sel || field(o, "name") == sel) {
      std::string id = field(o, "id");
      auto res = (*client)->mutate("DELETE", "/v1/orgs/" + id, json::object());
      if (!res) return fail(inv, res.error());
      Receipt r{.action = "org.deleted",
                .message = "Deleted org " + field(o, "name").get<std::string>() + " (" + id + ")",
                .ids = {id},
                .next = {"vt orgs list"}};
      inv.out.receipt(r, *res);
      return 0;
    }
  }
  return fail(inv, Error(errc::kNotFound, "no org `" + sel + "` that you can see"));
}

// ---- apps ----

int appsCreate(Invocation& inv) {
  const std::string& name = inv.args.positionals[0];
  auto org = inv.org();
  if (!org) return fail(inv, org.error());
  json body = {{"name", name}};
  if (auto d = inv.args.value("description")) body["description"] = *d;
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto app =
      (*client)->mutate("POST", "/v1/orgs/" + (*org)["id"].get<std::string>() + "/apps", body);
  if (!app) return fail(inv, app.error());
  std::string id = (*app)["id"];
  Receipt r{.action = "app.created",
            .message =
                "Created app " + name + " (" + id + ") in org " + (*org)["name"].get<std::string>(),
            .ids = {id},
            .next = {"vt envs create prod --app " + name, "vt deploy   # uses ./vt.toml"}};
  inv.out.receipt(r, *app);
  return 0;
}

int appsList(Invocation& inv) {
  auto org = inv.org();
  if (!org) return fail(inv, org.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto apps = (*client)->listAll("/v1/orgs/" + (*org)["id"].get<std::string>() + "/apps");
  if (!apps) return fail(inv, apps.error());
  printList(inv, sortedBy(*apps, "name"), {"ID", "NAME", "DESCRIPTION", "CREATED"},
            [](const json& a) {
              return std::vector<std::string>{field(a, "id"), field(a, "name"),
                                              cell(field(a, "description")),
                                              shortTime(field(a, "created_at"))};
            });
  return 0;
}

Result<json> appByArg(Invocation& inv) {
  PLFM_ASSIGN_OR_RETURN(auto org, inv.org());
  const std::string& sel = inv.args.positionals[0];
  PLFM_ASSIGN_OR_RETURN(auto found, inv.findApp(org["id"], sel));
  if (!found) {
    return Error(errc::kNotFound, "no app `" + sel + "` in org " + org["name"].get<std::string>())
        .with("hint", "list apps with `vt apps list`");
  }
  return *found;
}

int appsGet(Invocation& inv) {
  auto app = appByArg(inv);
  if (!app) return fail(inv, app.error());
  printOne(inv, *app,
           {{"id", (*app)["id"]},
            {"name", (*app)["name"]},
            {"org", (*app)["org_id"]},
            {"description", cell((*app)["description"])},
            {"created", shortTime((*app)["created_at"])}});
  return 0;
}

int appsDelete(Invocation& inv) {
  auto app = appByArg(inv);
  if (!app) return fail(inv, app.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  std::string id = (*app)["id"];
  auto res = (*client)->mutate("DELETE", "/v1/apps/" + id, json::object());
  if (!res) return fail(inv, res.error());
  Receipt r{.action = "app.deleted",
            .message = "Deleted app " + (*app)["name"].get<std::string>() + " (" + id + ")",
            .ids = {id},
            .next = {"vt apps list"}};
  inv.out.receipt(r, *res);
  return 0;
}

// ---- envs ----

int envsCreate(Invocation& inv) {
  const std::string& name = inv.args.positionals[0];
  auto app = inv.app();
  if (!app) return fail(inv, app.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  std::string app_name = (*app)["name"];
  auto env = (*client)->mutate("POST", "/v1/apps/" + (*app)["id"].get<std::string>() + "/envs",
                               {{"name", name}});
  if (!env) return fail(inv, env.error());
  std::string id = (*env)["id"];
  Receipt r{.action = "env.created",
            .message = "Created env " + name + " (" + id + ") in app " + app_name,
            .ids = {id},
            .next = {"vt deploy --app " + app_name + " --env " + name,
                     "vt scale show --app " + app_name + " --env " + name}};
  inv.out.receipt(r, *env);
  return 0;
}

int envsList(Invocation& inv) {
  auto app = inv.app();
  if (!app) return fail(inv, app.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto envs = (*client)->listAll("/v1/apps/" + (*app)["id"].get<std::string>() + "/envs");
  if (!envs) return fail(inv, envs.error());
  printList(inv, sortedBy(*envs, "name"), {"ID", "NAME", "RELEASE", "DEPLOY", "CREATED"},
            [](const json& e) {
              return std::vector<std::string>{
                  field(e, "id"), field(e, "name"), cell(field(e, "current_release_id")),
                  cell(field(e, "current_deploy_id")), shortTime(field(e, "created_at"))};
            });
  return 0;
}

Result<json> envByArg(Invocation& inv) {
  PLFM_ASSIGN_OR_RETURN(auto app, inv.app());
  const std::string& sel = inv.args.positionals[0];
  PLFM_ASSIGN_OR_RETURN(auto found, inv.findEnv(app["id"], sel));
  if (!found) {
    return Error(errc::kNotFound, "no env `" + sel + "` in app " + app["name"].get<std::string>())
        .with("hint", "list envs with `vt envs list --app " + app["name"].get<std::string>() + "`");
  }
  return *found;
}

int envsGet(Invocation& inv) {
  auto env = envByArg(inv);
  if (!env) return fail(inv, env.error());
  printOne(inv, *env,
           {{"id", (*env)["id"]},
            {"name", (*env)["name"]},
            {"app", (*env)["app_id"]},
            {"release", cell((*env)["current_release_id"])},
            {"deploy", cell((*env)["current_deploy_id"])},
            {"created", shortTime((*env)["created_at"])}});
  return 0;
}

int envsDelete(Invocation& inv) {
  auto env = envByArg(inv);
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  std::string id = (*env)["id"];
  auto res = (*client)->mutate("DELETE", "/v1/envs/" + id, json::object());
  if (!res) return fail(inv, res.error());
  Receipt r{.action = "env.deleted",
            .message = "Deleted env " + (*env)["name"].get<std::string>() + " (" + id + ")",
            .ids = {id},
            .next = {"vt envs list" + inv.scopeFlags()}};
  inv.out.receipt(r, *res);
  return 0;
}

Command crud(std::string noun, const std::string& what, const std::string& a_thing,
             const std::string& parent_hint, std::function<int(Invocation&)> create,
             std::function<int(Invocation&)> list, std::function<int(Invocation&)> get,
             std::function<int(Invocation&)> del) {
  Command c{.name = std::move(noun), .summary = "Create, list, inspect and delete " + what};
  c.children.push_back(
      {.name = "create",
       .summary = "Create " + a_thing,
       .help = parent_hint,
       .positionals = {{.name = "NAME", .help = "1-63 of [a-z0-9-], starting with a letter"}},
       .mutating = true,
       .run = std::move(create)});
  c.children.push_back({.name = "list",
                        .summary = "List " + what + ", sorted by name",
                        .help = parent_hint,
                        .run = std::move(list)});
  c.children.push_back({.name = "get",
                        .summary = "Show one of the " + what,
                        .help = parent_hint,
                        .positionals = {{.name = "NAME", .help = "name or id"}},
                        .run = std::move(get)});
  c.children.push_back({.name = "delete",
                        .summary = "Delete one of the " + what,
                        .help = parent_hint,
                        .positionals = {{.name = "NAME", .help = "name or id"}},
                        .mutating = true,
                        .run = std::move(del)});
  return c;
}

}  // namespace

Command orgsCommand() {
  Command c = crud("orgs", "orgs", "an org", "Orgs own apps. You see only the orgs you belong to.",
                   orgsCreate, orgsList, orgsGet, orgsDelete);
  addQuotaCommands(c);
  return c;
}

Command appsCommand() {
  Command c = crud("apps", "apps", "an app",
                   "Apps live in an org: --org, VT_ORG or the context's org.\n\nExamples:\n"
                   "  vt apps create hello\n  vt apps list --format json",
                   appsCreate, appsList, appsGet, appsDelete);
  c.children[0].flags.push_back(
      {.name = "description", .value_name = "TEXT", .help = "a short description"});
  return c;
}

Command envsCommand() {
  return crud("envs", "envs", "an env",
              "Envs (prod, staging, ...) live in an app: --app, VT_APP, ./vt.toml or the "
              "context's app.\n\nExamples:\n  vt envs create staging --app hello\n  vt envs list",
              envsCreate, envsList, envsGet, envsDelete);
}

}  // namespace plfm::vt
