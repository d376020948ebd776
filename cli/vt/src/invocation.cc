#include "invocation.h"

#include <cstdlib>

#include "plfm/core/error.h"
#include "plfm/http/failover.h"

namespace plfm::vt {
namespace {

std::string envVar(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return v != nullptr ? std::string(v) : std::string();
}

bool looksLikeId(std::string_view s, std::string_view prefix) {
  return s.size() == prefix.size() + 27 && s.substr(0, prefix.size()) == prefix &&
         s[prefix.size()] == '_';
}

}  // namespace

int exitCodeFor(const Error& e) {
  const std::string& c = e.code();
  if (c == "usage") return exitcode::kUsage;
  if (c == "unauthenticated" || c == "permission_denied") return exitcode::kAuth;
  if (c == "already_exists" || c == "failed_precondition" || c == "concurrency_conflict" ||
      c == "idempotency_in_progress" || c == "idempotency_key_reused" || c == "conflict" ||
      c == "hostname_conflict") {
    return exitcode::kConflict;
  }
  if (c == "unavailable" || c == "internal" || c == "deadline_exceeded" ||
      c.rfind("http_5", 0) == 0) {
    return exitcode::kUnavailable;
  }
  if (c == "deploy_failed") return exitcode::kDeployFailed;
  return exitcode::kUserError;
}

std::string hintFor(const Error& e) {
  const std::string& c = e.code();
  if (c == "unauthenticated") {
    return "run `vt login --url URL` (a token comes from your platform admin)";
  }
  if (c == "permission_denied") return "ask an owner of the org for access";
  if (c == "hostname_conflict") {
    return "pick another hostname or listener port; `vt routes list` shows this env's routes";
  }
  if (c == "unavailable") {
    return "check the URL with `vt context show`, and that the control plane is running";
  }
  if (c == "internal") {
    std::string id(e.detail("request_id"));
    return "this is a server bug; quote " + (id.empty() ? std::string("the time") : id) +
           " when you report it";
  }
  return "";
}

Result<Context> Invocation::context() {
  if (context_) return *context_;
  auto config = loadConfig(configPath());
  if (!config) return config.error();
  std::string name = args.value("context").value_or(envVar("VT_CONTEXT"));
  if (name.empty()) name = config->current;
  Context ctx;
  if (!name.empty()) {
    auto it = config->contexts.find(name);
    if (it == config->contexts.end()) {
      return Error(errc::kNotFound, "no context named `" + name + "`")
          .with("hint", "list them with `vt context list`");
    }
    ctx = it->second;
  }
  if (auto v = envVar("VT_URL"); !v.empty()) {
    PLFM_ASSIGN_OR_RETURN(ctx.urls, http::parseBaseUrls("VT_URL", {v}));
  }
  if (auto v = envVar("VT_TOKEN"); !v.empty()) ctx.token = v;
  if (auto v = envVar("VT_CA_FILE"); !v.empty()) ctx.ca_file = v;
  if (auto v = envVar("VT_ORG"); !v.empty()) ctx.org = v;
  if (auto v = envVar("VT_APP"); !v.empty()) ctx.app = v;
  if (auto v = envVar("VT_ENV"); !v.empty()) ctx.env = v;
  if (auto v = args.value("org")) ctx.org = *v;
  if (ctx.urls.empty() || ctx.token.empty()) {
    return Error(errc::kUnauthenticated, name.empty()
                                             ? "not logged in: no vt context is set up"
                                             : "context `" + name + "` has no URL or token");
  }
  context_ = ctx;
  return ctx;
}

Result<ApiClient*> Invocation::api() {
  if (api_) return api_.get();
  PLFM_ASSIGN_OR_RETURN(auto ctx, context());
  ApiOptions options;
  Output* output = &out;
  options.on_retry = [output](const std::string& why) { output->progress(why); };
  options.ca_file = ctx.ca_file;
  api_ = std::make_unique<ApiClient>(ctx.urls, ctx.token, options);
  return api_.get();
}

Result<nlohmann::json> Invocation::org() {
  if (org_) return *org_;
  PLFM_ASSIGN_OR_RETURN(auto ctx, context());
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, api());
  if (looksLikeId(ctx.org, "org")) {
    PLFM_ASSIGN_OR_RETURN(auto o, client->get("/v1/orgs/" + ctx.org));
    org_ = o;
    return o;
  }
  PLFM_ASSIGN_OR_RETURN(auto orgs, client->listAll("/v1/orgs"));
  if (ctx.org.empty()) {
    if (orgs.size() == 1) {
      org_ = orgs[0];
      return orgs[0];
    }
    return Error(errc::kInvalidArgument, orgs.empty()
                                             ? "you belong to no org yet"
                                             : "several orgs are available; choose one with --org")
        .with("hint", orgs.empty() ? "create one with `vt orgs create NAME`"
                                   : "or set a default: `vt context use --org NAME`");
  }
  for (const auto& o : orgs) {
    if (o.value("name", "") == ctx.org) {
      org_ = o;
      return o;
    }
  }
  return Error(errc::kNotFound, "no org named `" + ctx.org + "` that you can see")
      .with("hint", "list yours with `vt orgs list`");
}

std::string Invocation::appSelector() {
  if (auto v = args.value("app")) return *v;
  if (auto v = envVar("VT_APP"); !v.empty()) return v;
  if (auto m = args.value("manifest")) {
    if (auto name = manifestAppName(*m); !name.empty()) return name;
  }
  if (auto name = manifestAppName("vt.toml"); !name.empty()) return name;
  if (context_ || context()) return context_->app;
  return "";
}

std::string Invocation::envSelector() {
  if (auto v = args.value("env")) return *v;
  if (auto v = envVar("VT_ENV"); !v.empty()) return v;
  if ((context_ || context()) && !context_->env.empty()) return context_->env;
  return "prod";
}

Result<std::optional<nlohmann::json>> Invocation::findApp(const std::string& org_id,
                                                          const std::string& name_or_id) {
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, api());
  if (looksLikeId(name_or_id, "app")) {
    auto a = client->get("/v1/apps/" + name_or_id);
    if (!a && a.error().is("not_found")) return std::optional<nlohmann::json>();
    if (!a) return a.error();
    return std::optional<nlohmann::json>(*a);
  }
  PLFM_ASSIGN_OR_RETURN(auto apps, client->listAll("/v1/orgs/" + org_id + "/apps"));
  for (const auto& a : apps) {
    if (a.value("name", "") == name_or_id) return std::optional<nlohmann::json>(a);
  }
  return std::optional<nlohmann::json>();
}

Result<std::optional<nlohmann::json>> Invocation::findEnv(const std::string& app_id,
                                                          const std::string& name_or_id) {
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, api());
  if (looksLikeId(name_or_id, "env")) {
    auto e = client->get("/v1/envs/" + name_or_id);
    if (!e && e.error().is("not_found")) return std::optional<nlohmann::json>();
    if (!e) return e.error();
    return std::optional<nlohmann::json>(*e);
  }
  PLFM_ASSIGN_OR_RETURN(auto envs, client->listAll("/v1/apps/" + app_id + "/envs"));
  for (const auto& e : envs) {
    if (e.value("name", "") == name_or_id) return std::optional<nlohmann::json>(e);
  }
  return std::optional<nlohmann::json>();
}

Result<nlohmann::json> Invocation::app() {
  if (app_) return *app_;
  std::string sel = appSelector();
  if (sel.empty()) {
    return Error(errc::kInvalidArgument, "which app? none was given")
        .with("hint",
              "pass --app NAME, run inside a directory with vt.toml, or set one with "
              "`vt context use --app NAME`");
  }
  PLFM_ASSIGN_OR_RETURN(auto o, org());
  PLFM_ASSIGN_OR_RETURN(auto found, findApp(o["id"].get<std::string>(), sel));
  if (!found) {
    return Error(errc::kNotFound, "no app `" + sel + "` in org " + o.value("name", ""))
        .with("hint",
              "list apps with `vt apps list`, or create it with `vt apps create " + sel + "`");
  }
  app_ = *found;
  return *found;
}

Result<nlohmann::json> Invocation::env() {
  if (env_) return *env_;
  PLFM_ASSIGN_OR_RETURN(auto a, app());
  std::string sel = envSelector();
  PLFM_ASSIGN_OR_RETURN(auto found, findEnv(a["id"].get<std::string>(), sel));
  if (!found) {
    return Error(errc::kNotFound, "no env `" + sel + "` in app " + a.value("name", ""))
        .with("hint", "list envs with `vt envs list --app " + a.value("name", "") +
                          "`, or create it with `vt envs create " + sel + " --app " +
                          a.value("name", "") + "`");
  }
  env_ = *found;
  return *found;
}

std::string Invocation::scopeFlags() {
  std::string s;
  if (auto v = args.value("app")) s += " --app " + *v;
  if (auto v = args.value("env")) s += " --env " + *v;
  return s;
}

int fail(Invocation& inv, const Error& e) {
  std::string hint(e.detail("hint"));
  inv.out.error(e.message(), hint.empty() ? hintFor(e) : hint);
  return exitCodeFor(e);
}

void printOne(Invocation& inv, const nlohmann::json& item,
              const std::vector<std::pair<std::string, std::string>>& kv) {
  if (inv.out.format() == Format::kJson) {
    inv.out.json(item);
  } else if (inv.out.quiet()) {
    inv.out.out() << item.value("id", "") << "\n";
  } else {
    inv.out.fields(kv);
  }
}

void printList(Invocation& inv, const std::vector<nlohmann::json>& items,
               const std::vector<std::string>& headers,
               const std::function<std::vector<std::string>(const nlohmann::json&)>& row) {
  if (inv.out.format() == Format::kJson) {
    inv.out.json({{"items", items}});
    return;
  }
  std::vector<std::vector<std::string>> rows;
  rows.reserve(items.size());
  for (const auto& item : items) rows.push_back(row(item));
  inv.out.table(headers, rows);
}

}  // namespace plfm::vt
