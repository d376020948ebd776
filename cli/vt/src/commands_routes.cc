// vt routes: add, list, get, rm. A route sends an ingress's connections for
// a hostname (SNI) on a listener port to an env's process type
// (docs/specs/api/v1.md "Routes", docs/specs/cli/output.md).
#include <algorithm>
#include <cctype>
#include <charconv>

#include "commands.h"
#include "invocation.h"
#include "route_sync.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// Tables and receipts name a route by what it matches: "app.example.com:443",
// or "tcp:5432" for a tcp route.
std::string label(const json& r) {
  const std::string port = std::to_string(r.value("listener_port", 0));
  if (r.value("protocol", "") == "tcp") return "tcp:" + port;
  return r.value("hostname", "") + ":" + port;
}

std::string target(const json& r) {
  return r.value("process_type", "") + ":" + std::to_string(r.value("backend_port", 0));
}

Result<std::optional<int64_t>> portFlag(Invocation& inv, const std::string& flag) {
  auto v = inv.args.value(flag);
  if (!v) return std::optional<int64_t>();
  int64_t port = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), port);
  if (ec != std::errc() || p != v->data() + v->size() || port < 1 || port > 65535) {
    return Error("usage", "--" + flag + " must be a port 1..65535 (got `" + *v + "`)");
  }
  return std::optional<int64_t>(port);
}

// Routes sorted by what they match, so tables are stable.
std::vector<json> sortedRoutes(std::vector<json> items) {
  std::sort(items.begin(), items.end(), [](const json& a, const json& b) {
    return std::make_tuple(a.value("listener_port", 0), a.value("hostname", ""),
                           a.value("id", "")) <
           std::make_tuple(b.value("listener_port", 0), b.value("hostname", ""), b.value("id", ""));
  });
  return items;
}

Result<std::vector<json>> envRoutes(Invocation& inv, json* env_out = nullptr) {
  PLFM_ASSIGN_OR_RETURN(auto env, inv.env());
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  if (env_out != nullptr) *env_out = env;
  PLFM_ASSIGN_OR_RETURN(auto items,
                        client->listAll("/v1/envs/" + env["id"].get<std::string>() + "/routes"));
  return sortedRoutes(std::move(items));
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// ROUTE is an id (route_...), a hostname (any case, on any port unless
// --listener-port says which), or tcp:PORT.
Result<json> findRoute(Invocation& inv) {
  const std::string& sel = inv.args.positionals[0];
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  if (sel.rfind("route_", 0) == 0) return client->get("/v1/routes/" + sel);
  PLFM_ASSIGN_OR_RETURN(auto port, portFlag(inv, "listener-port"));
  json env;
  PLFM_ASSIGN_OR_RETURN(auto routes, envRoutes(inv, &env));
  const std::string want = lower(sel);
  std::vector<json> matches;
  for (auto& r : routes) {
    const bool named = r.value("protocol", "") == "tcp" ? want == label(r) : want == r["hostname"];
    if (named && (!port || *port == r.value("listener_port", 0))) matches.push_back(std::move(r));
  }
  if (matches.size() == 1) return matches[0];
  const std::string where = " in env " + env.value("name", "");
  if (matches.empty()) {
    return Error(errc::kNotFound, "no route `" + sel + "`" + where)
        .with("hint", "list them with `vt routes list" + inv.scopeFlags() + "`");
  }
  return Error(errc::kInvalidArgument,
               std::to_string(matches.size()) + " routes match `" + sel + "`" + where)
      .with("hint", "name one by its id, or add --listener-port");
}

int routesAdd(Invocation& inv) {
  const bool tcp = inv.args.has("tcp");
  const std::string hostname = inv.args.positionals.empty() ? "" : inv.args.positionals[0];
  if (tcp == !hostname.empty()) {
    return fail(inv, Error("usage", tcp ? "a --tcp route takes no HOSTNAME (it owns its port)"
                                        : "give the HOSTNAME to route, or --tcp"));
  }
  auto listener = portFlag(inv, "listener-port");
  if (!listener) return fail(inv, listener.error());
  auto backend = portFlag(inv, "port");
  if (!backend) return fail(inv, backend.error());
  if (!*backend)
    return fail(inv, Error("usage", "--port (the port the instances listen on) is required"));
  if (tcp && !*listener) {
    return fail(inv, Error("usage", "a --tcp route needs --listener-port (a port of its own)"));
  }
  json body = {{"process_type", inv.args.value("process").value_or("web")},
               {"backend_port", **backend}};
  if (tcp) {
    body["protocol"] = "tcp";
  } else {
    body["hostname"] = hostname;
  }
  if (*listener) body["listener_port"] = **listener;
  if (auto pp = inv.args.value("proxy-protocol")) body["proxy_protocol"] = *pp;
  auto env = inv.env();
  if (!env) return fail(inv, env.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto route =
      (*client)->mutate("POST", "/v1/envs/" + (*env)["id"].get<std::string>() + "/routes", body);
  if (!route) return fail(inv, route.error());
  const std::string id = (*route)["id"];
  Receipt r{.action = "route.created",
            .message = "Routed " + label(*route) + " to " + target(*route) + " in env " +
                       (*env)["name"].get<std::string>() + " (" + id + ")",
            .ids = {id},
            .notes = {"proxy protocol: " + (*route)["proxy_protocol"].get<std::string>()},
            .next = {"vt routes list" + inv.scopeFlags(), "vt instances list" + inv.scopeFlags()}};
  inv.out.receipt(r, *route);
  return 0;
}

int routesList(Invocation& inv) {
  auto routes = envRoutes(inv);
  if (!routes) return fail(inv, routes.error());
  printList(inv, *routes, {"ID", "ROUTE", "PROTOCOL", "TARGET", "PROXY", "CREATED"},
            [](const json& r) {
              return std::vector<std::string>{r["id"],
                                              label(r),
                                              r["protocol"],
                                              target(r),
                                              r["proxy_protocol"],
                                              shortTime(r["created_at"])};
            });
  return 0;
}

// "[fd7a::2]:8443 healthy, [fd7a::3]:8443 running" for the table view.
std::string backendsCell(const json& items) {
  std::string out;
  for (const auto& b : items) {
    out += (out.empty() ? "" : ", ") + ("[" + b.value("address", "") + "]:") +
           std::to_string(b.value("port", 0)) + " " + b.value("phase", "");
  }
  return out.empty() ? "- (no running instance)" : out;
}

int routesGet(Invocation& inv) {
  auto r = findRoute(inv);
  if (!r) return fail(inv, r.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto backends = (*client)->get("/v1/routes/" + (*r)["id"].get<std::string>() + "/backends");
  if (!backends) return fail(inv, backends.error());
  json full = *r;
  full["backends"] = (*backends)["items"];
  printOne(
      inv, full,
      {{"id", (*r)["id"]},
       {"hostname", (*r)["hostname"].get<std::string>().empty() ? "-" : cell((*r)["hostname"])},
       {"listener_port", cell((*r)["listener_port"])},
       {"protocol", cell((*r)["protocol"])},
       {"target", target(*r)},
       {"proxy_protocol", cell((*r)["proxy_protocol"])},
       {"backends", backendsCell(full["backends"])},
       {"env", cell((*r)["env_id"])},
       {"created", shortTime((*r)["created_at"])},
       {"updated", shortTime((*r)["updated_at"])}});
  return 0;
}

int routesRm(Invocation& inv) {
  auto r = findRoute(inv);
  if (!r) return fail(inv, r.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  const std::string id = (*r)["id"];
  auto res = (*client)->mutate("DELETE", "/v1/routes/" + id, json::object());
  if (!res) return fail(inv, res.error());
  Receipt receipt{.action = "route.deleted",
                  .message = "Deleted route " + label(*r) + " (" + id + ")",
                  .ids = {id},
                  .next = {"vt routes list" + inv.scopeFlags()}};
  inv.out.receipt(receipt, *res);
  return 0;
}

// What a manifest route asks for, as the API's create body.
json desiredRoute(const manifest::Service& s, const manifest::Route& r) {
  json body = {{"listener_port", r.port},
               {"protocol", s.protocol},
               {"process_type", s.process},
               {"backend_port", s.internal_port},
               {"proxy_protocol", r.proxy_protocol}};
  // A tcp route owns its port; the manifest's hostname only names it in DNS.
  body["hostname"] = s.protocol == "tcp" ? "" : r.hostname;
  return body;
}

bool sameTarget(const json& a, const json& b) {
  return a["process_type"] == b["process_type"] && a["backend_port"] == b["backend_port"] &&
         a["proxy_protocol"] == b["proxy_protocol"];
}

const Positional kRoute{.name = "ROUTE", .help = "route id (route_...), hostname, or tcp:PORT"};
const Flag kListenerPort{.name = "listener-port",
                         .value_name = "PORT",
                         .help = "the ingress port the route is on (default 443)"};

}  // namespace

Result<void> syncManifestRoutes(Invocation& inv, const json& env, const manifest::Manifest& m,
                                std::vector<std::string>& notes) {
  if (m.services.empty()) return ok();  // nothing declared: no request at all
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  const std::string env_id = env["id"];
  PLFM_ASSIGN_OR_RETURN(auto existing, client->listAll("/v1/envs/" + env_id + "/routes"));
  std::vector<bool> declared(existing.size(), false);
  for (const auto& s : m.services) {
    for (const auto& r : s.routes) {
      const json want = desiredRoute(s, r);
      size_t i = 0;
      while (i < existing.size() && !(existing[i]["listener_port"] == want["listener_port"] &&
                                      existing[i]["hostname"] == want["hostname"] &&
                                      existing[i]["protocol"] == want["protocol"])) {
        ++i;
      }
      if (i == existing.size()) {
        PLFM_ASSIGN_OR_RETURN(auto made,
                              client->mutate("POST", "/v1/envs/" + env_id + "/routes", want));
        notes.push_back("routed " + label(made) + " to " + target(made) + " (" +
                        made["id"].get<std::string>() + ")");
        inv.out.progress("Routed " + label(made) + " to " + target(made));
        continue;
      }
      declared[i] = true;
      if (sameTarget(existing[i], want)) continue;
      const std::string id = existing[i]["id"];
      PLFM_ASSIGN_OR_RETURN(auto changed,
                            client->mutate("PUT", "/v1/routes/" + id,
                                           {{"process_type", want["process_type"]},
                                            {"backend_port", want["backend_port"]},
                                            {"proxy_protocol", want["proxy_protocol"]}}));
      notes.push_back("updated route " + label(changed) + " to " + target(changed) + " (" + id +
                      ")");
      inv.out.progress("Updated route " + label(changed));
    }
  }
  for (size_t i = 0; i < existing.size(); ++i) {
    if (!declared[i]) {
      notes.push_back("route " + label(existing[i]) +
                      " is not in the manifest; kept (vt routes rm removes it)");
    }
  }
  return ok();
}

Command routesCommand() {
  const std::string scope =
      "Routes live in an env: --app and --env (or VT_APP/VT_ENV, ./vt.toml, the context).";
  Command c{.name = "routes",
            .summary = "Route hostnames on the ingress to a process: add, list, get, rm",
            .help = scope +
                    "\n\nExamples:\n"
                    "  vt routes add app.example.com --process web --port 8443\n"
                    "  vt routes add '*.example.com' --port 8443 --proxy-protocol v2\n"
                    "  vt routes add --tcp --listener-port 5432 --process db --port 5432\n"
                    "  vt routes list --format json\n"
                    "  vt routes rm app.example.com"};
  c.children.push_back(
      {.name = "add",
       .summary = "Route a hostname (TLS passthrough by SNI) or a whole port (--tcp)",
       .help = scope +
               "\nA hostname is an exact name, a one-label wildcard (*.example.com) or * (the\n"
               "port's default route). It is unique per listener port across every org.\n\n"
               "Examples:\n"
               "  vt routes add app.example.com --process web --port 8443\n"
               "  vt routes add --tcp --listener-port 5432 --process db --port 5432",
       .flags = {{.name = "process",
                  .value_name = "TYPE",
                  .help = "the process type (default web)"},
                 {.name = "port", .value_name = "PORT", .help = "the port the instances listen on"},
                 kListenerPort,
                 {.name = "proxy-protocol",
                  .value_name = "none|v2",
                  .help = "prepend a PROXY v2 header with the client's address (default none)"},
                 {.name = "tcp", .help = "a raw TCP route that owns its listener port"}},
       .positionals = {{.name = "HOSTNAME",
                        .help = "app.example.com, *.example.com or *",
                        .required = false}},
       .mutating = true,
       .run = routesAdd});
  c.children.push_back({.name = "list",
                        .summary = "List the env's routes, by listener port and hostname",
                        .help = scope,
                        .run = routesList});
  c.children.push_back({.name = "get",
                        .summary = "Show one route and its backends (the instances it reaches)",
                        .help = scope,
                        .flags = {kListenerPort},
                        .positionals = {kRoute},
                        .run = routesGet});
  c.children.push_back({.name = "rm",
                        .summary = "Delete a route; its hostname is free again",
                        .help = scope,
                        .flags = {kListenerPort},
                        .positionals = {kRoute},
                        .mutating = true,
                        .run = routesRm});
  return c;
}

}  // namespace plfm::vt
