// vt login, vt context list|use|show, vt whoami.
#include <cstdlib>
#include <filesystem>

#include "commands.h"
#include "invocation.h"
#include "plfm/core/strings.h"
#include "plfm/http/failover.h"
#include "secret_input.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// Reads one line from stdin; on a terminal, with echo off.
std::string readSecretLine(const std::string& prompt) {
  return std::string(trim(readHiddenLine(prompt)));
}

std::string envVar(const char* name) {
  const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return v != nullptr ? std::string(v) : std::string();
}

// The URLs of --url (repeatable, each may hold several comma-separated), or
// of VT_URL when `fallback_env`; an empty list when none is given.
Result<std::vector<std::string>> urlsOf(const Invocation& inv, bool fallback_env) {
  std::vector<std::string> values;
  if (auto it = inv.args.flags.find("url"); it != inv.args.flags.end()) values = it->second;
  const char* setting = "--url";
  if (values.empty() && fallback_env && !envVar("VT_URL").empty()) {
    values = {envVar("VT_URL")};
    setting = "VT_URL";
  }
  if (values.empty()) return std::vector<std::string>{};
  auto urls = http::parseBaseUrls(setting, values);
  if (!urls) return Error("usage", urls.error().message());
  return urls;
}

std::string joinUrls(const std::vector<std::string>& urls) {
  std::string out;
  for (const std::string& url : urls) {
    if (!out.empty()) out += ",";
    out += url;
  }
  return out;
}

int login(Invocation& inv) {
  auto urls = urlsOf(inv, /*fallback_env=*/true);
  if (!urls) return fail(inv, urls.error());
  if (urls->empty()) {
    return fail(inv, Error("usage", "which control plane? pass --url http://HOST:PORT")
                         .with("hint", "e.g. vt login --url http://[::1]:8080"));
  }
  const std::string url = joinUrls(*urls);
  std::string ca_file = inv.args.value("ca").value_or(envVar("VT_CA_FILE"));
  if (!ca_file.empty()) {
    std::error_code ec;
    const auto absolute = std::filesystem::absolute(ca_file, ec);
    if (!ec) ca_file = absolute.string();
  }
  std::string token = inv.args.value("token").value_or(envVar("VT_TOKEN"));
  if (token.empty()) token = readSecretLine("Token: ");
  if (token.empty()) {
    return fail(inv, Error("usage", "no token given")
                         .with("hint",
                               "pass it on stdin (`vt login --url URL < token-file`) "
                               "or in VT_TOKEN"));
  }
  std::string name = inv.args.value("context").value_or("default");
  if (!validContextName(name)) {
    return fail(inv, Error("usage", "context names are 1-63 of [A-Za-z0-9._-]"));
  }
  ApiClient client(*urls, token,
                   ApiOptions{.attempts = 2,
                              .ca_file = ca_file,
                              .on_retry = [&](const std::string& why) { inv.out.progress(why); }});
  auto who = client.get("/v1/whoami");
  if (!who) {
    if (who.error().is("unauthenticated")) {
      return fail(inv,
                  Error("unauthenticated", "the control plane at " + url + " rejected this token")
                      .with("hint",
                            "check the token; admins create tokens with "
                            "`POST /v1/users` or find theirs in the state dir"));
    }
    return fail(inv, who.error());
  }
  auto config = loadConfig(configPath());
  if (!config) return fail(inv, config.error());
  Context& ctx = config->contexts[name];
  bool existed = !ctx.urls.empty();
  ctx.name = name;
  ctx.urls = *urls;
  ctx.token = token;
  ctx.ca_file = ca_file;
  if (auto org = inv.args.value("org")) ctx.org = *org;
  if (ctx.org.empty()) {
    auto orgs = client.listAll("/v1/orgs");
    if (orgs && orgs->size() == 1) ctx.org = (*orgs)[0]["name"];
  }
  config->current = name;
  if (auto saved = saveConfig(configPath(), *config); !saved) return fail(inv, saved.error());
  std::string user = (*who)["name"];
  Receipt r{.action = "context.saved",
            .message = "Logged in to " + url + " as " + user + " (" +
                       (*who)["user_id"].get<std::string>() + "); context `" + name + "` is " +
                       (existed ? "updated" : "saved") + " and current",
            .ids = {name},
            .notes = {ctx.org.empty() ? "no default org yet" : "default org: " + ctx.org},
            .next = {ctx.org.empty() ? "vt orgs create NAME" : "vt apps list", "vt context show"}};
  json result = {
      {"context", name}, {"url", urls->front()}, {"urls", *urls}, {"user", *who}, {"org", ctx.org}};
  inv.out.receipt(r, result);
  return 0;
}

json contextJson(const Context& c, bool current) {
  return {{"name", c.name},
          {"url", c.urls.empty() ? std::string() : c.urls.front()},
          {"urls", c.urls},
          {"org", c.org},
          {"app", c.app},
          {"env", c.env},
          {"token_set", !c.token.empty()},
          {"current", current}};
}

int contextList(Invocation& inv) {
  auto config = loadConfig(configPath());
  if (!config) return fail(inv, config.error());
  std::vector<json> items;
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, c] : config->contexts) {  // std::map: sorted by name
    bool current = name == config->current;
    items.push_back(contextJson(c, current));
    rows.push_back({std::string(current ? "*" : ""), name, joinUrls(c.urls),
                    c.org.empty() ? "-" : c.org, c.app.empty() ? "-" : c.app,
                    c.env.empty() ? "-" : c.env});
  }
  if (inv.out.format() == Format::kJson) {
    inv.out.json({{"items", items}});
  } else if (inv.out.quiet()) {
    for (const auto& [name, c] : config->contexts) inv.out.out() << name << "\n";
  } else {
    inv.out.table({"CURRENT", "NAME", "URL", "ORG", "APP", "ENV"}, rows);
    if (rows.empty()) inv.out.progress("no contexts yet; run `vt login --url URL`");
  }
  return 0;
}

int contextUse(Invocation& inv) {
  auto config = loadConfig(configPath());
  if (!config) return fail(inv, config.error());
  std::string name = inv.args.positionals.empty() ? config->current : inv.args.positionals[0];
  auto it = config->contexts.find(name);
  if (name.empty() || it == config->contexts.end()) {
    return fail(inv, Error(errc::kNotFound,
                           name.empty() ? "no current context" : "no context named `" + name + "`")
                         .with("hint",
                               "list them with `vt context list`, or add one with "
                               "`vt login --url URL --context NAME`"));
  }
  std::vector<std::string> notes;
  auto urls = urlsOf(inv, /*fallback_env=*/false);
  if (!urls) return fail(inv, urls.error());
  if (!urls->empty()) {
    it->second.urls = *urls;
    notes.push_back("control plane: " + joinUrls(*urls));
  }
  for (const char* key : {"org", "app", "env"}) {
    if (auto v = inv.args.value(key)) {
      std::string& slot = std::string(key) == "org"   ? it->second.org
                          : std::string(key) == "app" ? it->second.app
                                                      : it->second.env;
      slot = *v == "-" ? "" : *v;
      notes.push_back(std::string("default ") + key + ": " + (slot.empty() ? "(none)" : slot));
    }
  }
  config->current = name;
  if (auto saved = saveConfig(configPath(), *config); !saved) return fail(inv, saved.error());
  Receipt r{.action = "context.used",
            .message = "Now using context `" + name + "` (" + joinUrls(it->second.urls) + ")",
            .ids = {name},
            .notes = notes,
            .next = {"vt context show", "vt apps list"}};
  inv.out.receipt(r, contextJson(it->second, true));
  return 0;
}

int contextShow(Invocation& inv) {
  auto ctx = inv.context();
  if (!ctx) return fail(inv, ctx.error());
  auto config = loadConfig(configPath());
  bool current = config && ctx->name == config->current;
  json j = contextJson(*ctx, current);
  if (inv.out.format() == Format::kJson) {
    inv.out.json(j);
  } else if (inv.out.quiet()) {
    inv.out.out() << ctx->name << "\n";
  } else {
    inv.out.fields({{"context", ctx->name.empty() ? "(from environment)" : ctx->name},
                    {"url", joinUrls(ctx->urls)},
                    {"token", ctx->token.empty() ? "not set" : "set (never shown)"},
                    {"org", ctx->org.empty() ? "-" : ctx->org},
                    {"app", ctx->app.empty() ? "-" : ctx->app},
                    {"env", ctx->env.empty() ? "-" : ctx->env},
                    {"config", configPath().string()}});
  }
  return 0;
}

int whoami(Invocation& inv) {
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto who = (*client)->get("/v1/whoami");
  if (!who) return fail(inv, who.error());
  if (inv.out.format() == Format::kJson) {
    inv.out.json(*who);
  } else if (inv.out.quiet()) {
    inv.out.out() << (*who)["user_id"].get<std::string>() << "\n";
  } else {
    inv.out.fields({{"user", (*who)["name"]},
                    {"id", (*who)["user_id"]},
                    {"admin", (*who)["is_admin"].get<bool>() ? "yes" : "no"},
                    {"url", (*client)->baseUrl()}});
  }
  return 0;
}

}  // namespace

Command loginCommand() {
  return {.name = "login",
          .summary = "Save a control-plane URL and token as a context",
          .help =
              "Checks the token with the control plane, then saves it in\n"
              "$XDG_CONFIG_HOME/vt/config.toml (mode 0600) as context `default` (or\n"
              "--context NAME) and makes it current. The token is read from --token,\n"
              "VT_TOKEN, or stdin (a prompt without echo on a terminal).\n\n"
              "Examples:\n"
              "  vt login --url http://[::1]:8080 < ~/.plfm/admin-token\n"
              "  vt login --url https://cp.internal:8443 --ca cp-ca.pem --context staging\n"
              "  vt login --url https://cp1:8443 --url https://cp2:8443 --ca cp-ca.pem\n\n"
              "Several --url (or one with comma-separated URLs, or VT_URL=a,b) list the\n"
              "control plane's replicas: vt tries them in order and moves to the next\n"
              "when one cannot be reached, keeping a mutation's Idempotency-Key.",
          .flags = {{.name = "url",
                     .value_name = "URL",
                     .help = "control plane base URL; one per replica",
                     .repeatable = true},
                    {.name = "ca",
                     .value_name = "FILE",
                     .help = "PEM CA that signed the control plane's certificate (saved in the "
                             "context; VT_CA_FILE)"},
                    {.name = "token",
                     .value_name = "TOKEN",
                     .help = "the token (prefer stdin: flags show up in `ps`)"}},
          .mutating = true,
          .run = login};
}

Command contextCommand() {
  Command c{.name = "context",
            .summary = "List, switch and show contexts (URL, token, default org/app/env)",
            .help =
                "A context names a control plane and your token there, plus default\n"
                "org, app and env. Environment overrides: VT_CONTEXT, VT_URL, VT_TOKEN,\n"
                "VT_ORG, VT_APP, VT_ENV."};
  c.children.push_back({.name = "list", .summary = "List contexts", .run = contextList});
  c.children.push_back(
      {.name = "use",
       .summary = "Switch context, and set its default org, app or env",
       .help = "Examples:\n  vt context use staging\n  vt context use --org acme --env prod\n"
               "  vt context use --app -     # clear the default app\n"
               "  vt context use prod --url https://cp1:8443 --url https://cp2:8443\n"
               "                             # its control plane's replicas, tried in order",
       .flags = {{.name = "url",
                  .value_name = "URL",
                  .help = "replace the context's control-plane URLs (one per replica)",
                  .repeatable = true}},
       .positionals = {{.name = "NAME", .help = "context to make current", .required = false}},
       .mutating = true,
       .run = contextUse});
  c.children.push_back(
      {.name = "show", .summary = "Show the effective context", .run = contextShow});
  return c;
}

Command whoamiCommand() {
  return {.name = "whoami", .summary = "Show who the current token belongs to", .run = whoami};
}

}  // namespace plfm::vt
