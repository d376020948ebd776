// vt registries: the org's credentials for private image registries
// (docs/specs/api/v1.md, "Registry credentials"). `login` reads the password
// or token from stdin (a hidden prompt on a terminal), never from the
// command line, where other users' `ps` and the shell history would see it;
// no command prints it again. Instances of the org pull with them.
#include <iostream>
#include <sstream>

#include "commands.h"
#include "invocation.h"
#include "plfm/secrets/format.h"
#include "secret_input.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// The HOST argument as image references name it; the server has the last
// word on the grammar, this only catches the usual slip (a URL).
Result<std::string> hostArg(Invocation& inv) {
  std::string host = inv.args.positionals[0];
  if (host.find("://") != std::string::npos || host.find('/') != std::string::npos) {
    return Error("usage",
                 "HOST is a registry host such as ghcr.io or registry.example.com:5000, "
                 "without a scheme or a path");
  }
  return host;
}

// The secret: one line from a hidden prompt on a terminal, else all of stdin
// without its final line ending.
Result<std::string> readSecret(const std::string& host) {
  std::string secret;
  if (stdinIsTerminal()) {
    secret = readHiddenLine("Password or token for " + host + " (not shown): ");
  } else {
    std::ostringstream ss;
    ss << std::cin.rdbuf();
    if (std::cin.bad()) return Error(errc::kIo, "cannot read the password from stdin");
    secret = ss.str();
    if (!secret.empty() && secret.back() == '\n') secret.pop_back();
    if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  }
  if (secret.empty()) {
    return Error("usage", "no password or token was given")
        .with("hint",
              "type it at the prompt, or pipe it: `printf %s \"$TOKEN\" | vt registries "
              "login " +
                  host + " --username USER`");
  }
  return secret;
}

std::string orgLabel(const json& org) { return cell(field(org, "name")); }

int registriesLogin(Invocation& inv) {
  auto host = hostArg(inv);
  if (!host) return fail(inv, host.error());
  const std::string flag = "username";  // a flag, not JSON (scripts/check-json-access)
  auto user = inv.args.value(flag);
  if (!user || user->empty()) {
    return fail(inv, Error("usage", "--username is required (the registry account or token name)"));
  }
  auto org = inv.org();
  if (!org) return fail(inv, org.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto secret = readSecret(*host);
  if (!secret) return fail(inv, secret.error());
  json body = {{"username", *user}, {"password", std::move(*secret)}};
  plfm::secrets::wipe(*secret);
  auto res = (*client)->mutate(
      "PUT", "/v1/orgs/" + cell(field(*org, "id")) + "/registries/" + *host, body);
  plfm::secrets::wipe(body["password"].get_ref<std::string&>());
  if (!res) return fail(inv, res.error());
  const std::string registry = cell(field(*res, "registry"));
  const std::string version = cell(field(*res, "version"));
  const bool created = version == "1";
  Receipt r{.action = created ? "registry.created" : "registry.updated",
            .message = std::string(created ? "Stored" : "Replaced") + " the credentials of org " +
                       orgLabel(*org) + " for registry " + registry + " (user " +
                       cell(field(*res, "username")) + ", version " + version + ")",
            .ids = {cell(field(*res, "id"))},
            .notes = {"the password is sealed on the control plane; no command shows it again",
                      "instances of org " + orgLabel(*org) + " pull images from " + registry +
                          " with it from their next start"},
            .next = {"vt registries list", "vt deploy"}};
  inv.out.receipt(r, *res);
  return 0;
}

int registriesList(Invocation& inv) {
  auto org = inv.org();
  if (!org) return fail(inv, org.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->get("/v1/orgs/" + cell(field(*org, "id")) + "/registries");
  if (!res) return fail(inv, res.error());
  std::vector<json> items;
  for (const auto& it : field(*res, "items")) items.push_back(it);
  printList(inv, items, {"REGISTRY", "USERNAME", "VERSION", "UPDATED", "BY"}, [](const json& c) {
    return std::vector<std::string>{cell(field(c, "registry")), cell(field(c, "username")),
                                    cell(field(c, "version")), shortTime(field(c, "updated_at")),
                                    cell(field(c, "updated_by"))};
  });
  return 0;
}

int registriesRm(Invocation& inv) {
  auto host = hostArg(inv);
  if (!host) return fail(inv, host.error());
  auto org = inv.org();
  if (!org) return fail(inv, org.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->mutate(
      "DELETE", "/v1/orgs/" + cell(field(*org, "id")) + "/registries/" + *host, json::object());
  if (!res) return fail(inv, res.error());
  const std::string registry = cell(field(*res, "registry"));
  Receipt r{
      .action = "registry.removed",
      .message = "Removed the credentials of org " + orgLabel(*org) + " for registry " + registry,
      .ids = {cell(field(*res, "id"))},
      .notes = {"instances of org " + orgLabel(*org) + " pull from " + registry +
                " anonymously from their next start; running instances keep their image"},
      .next = {"vt registries list", "vt registries login " + registry + " --username USER"}};
  inv.out.receipt(r, *res);
  return 0;
}

}  // namespace

Command registriesCommand() {
  Command c{.name = "registries",
            .summary = "The org's credentials for private image registries (login, list, rm)"};
  c.children.push_back(
      {.name = "login",
       .summary = "Store or replace the org's credentials for a registry",
       .help = "Reads the password or token from stdin, or from a hidden prompt on a terminal; "
               "never from the command line.\n\nExamples:\n"
               "  vt registries login ghcr.io --username octocat\n"
               "  printf %s \"$GHCR_TOKEN\" | vt registries login ghcr.io --username octocat",
       .flags = {{.name = "username",
                  .short_name = 'u',
                  .value_name = "USER",
                  .help = "the registry account (or token name)"}},
       .positionals = {{.name = "HOST", .help = "registry host, e.g. ghcr.io or host:5000"}},
       .mutating = true,
       .run = registriesLogin});
  c.children.push_back({.name = "list",
                        .summary = "List the org's registries with credentials (never a secret)",
                        .run = registriesList});
  c.children.push_back({.name = "rm",
                        .summary = "Remove the org's credentials for a registry",
                        .positionals = {{.name = "HOST", .help = "registry host"}},
                        .mutating = true,
                        .run = registriesRm});
  return c;
}

}  // namespace plfm::vt
