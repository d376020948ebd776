// vt tokens: the caller's own API tokens (list, create with an expiry,
// revoke). A token is printed once, by `create`; lists show ids and times.
#include <chrono>

#include "commands.h"
#include "invocation.h"
#include "plfm/core/clock.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// Timestamps are all "YYYY-MM-DDTHH:MM:SS.uuuuuuZ", so they compare as text.
std::string tokenState(const json& t, const std::string& now) {
  if (!t.value("revoked_at", json()).is_null()) return "revoked";
  const json& expires = t.value("expires_at", json());
  if (expires.is_string() && expires.get<std::string>() <= now) return "expired";
  return "active";
}

int tokensList(Invocation& inv) {
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto items = (*client)->listAll("/v1/tokens");
  if (!items) return fail(inv, items.error());
  printList(inv, *items, {"ID", "DESCRIPTION", "STATE", "CREATED", "EXPIRES", "FIRST_USED"},
            [now = toRfc3339(std::chrono::system_clock::now())](const json& t) {
              std::string desc = t.value("description", "");
              if (desc.empty()) desc = "-";
              if (t.value("current", false)) desc += " (this session)";
              return std::vector<std::string>{field(t, "id"),
                                              desc,
                                              tokenState(t, now),
                                              shortTime(t.value("created_at", json())),
                                              shortTime(t.value("expires_at", json())),
                                              shortTime(t.value("first_used_at", json()))};
            });
  return 0;
}

int tokensCreate(Invocation& inv) {
  json body = json::object();
  if (auto v = inv.args.value("ttl")) {
    const int64_t ttl = parseDuration(*v);
    if (ttl < 60 || ttl > int64_t{366} * 86'400) {
      return fail(inv, Error("usage", "--ttl must be a duration from 1m to 366d, like 12h or 30d"));
    }
    body["ttl_seconds"] = ttl;
  }
  if (auto d = inv.args.value("description")) body["description"] = *d;
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto t = (*client)->mutate("POST", "/v1/tokens", body);
  if (!t) return fail(inv, t.error());
  const std::string id = (*t)["id"];
  const std::string token = (*t)["token"].is_string() ? (*t)["token"].get<std::string>() : "";
  if (inv.out.quiet() && inv.out.format() != Format::kJson) {
    // For scripts: VT_TOKEN=$(vt tokens create -q)
    inv.out.out() << token << "\n";
    return 0;
  }
  Receipt r{
      .action = "token.created",
      .message = "Created token " + id + "; it expires " + shortTime((*t)["expires_at"]) + " UTC",
      .ids = {id},
      .notes = {"token: " + (token.empty() ? "(not shown again)" : token) + " (shown once)"},
      .next = {"vt tokens list", "vt tokens revoke " + id}};
  inv.out.receipt(r, *t);
  return 0;
}

int tokensRevoke(Invocation& inv) {
  const std::string& id = inv.args.positionals[0];
  if (id.rfind("tok_", 0) != 0) {
    return fail(inv, Error("usage", "TOKEN_ID is an id like tok_..., see `vt tokens list`"));
  }
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto t = (*client)->mutate("DELETE", "/v1/tokens/" + id, json::object());
  if (!t) return fail(inv, t.error());
  Receipt r{.action = "token.revoked",
            .message = "Revoked token " + id,
            .ids = {id},
            .notes = {"it authenticates nothing from the next request on"},
            .next = {"vt tokens list"}};
  inv.out.receipt(r, *t);
  return 0;
}

}  // namespace

Command tokensCommand() {
  Command c{.name = "tokens", .summary = "Your API tokens (list, create, revoke)"};
  c.children.push_back({.name = "list",
                        .summary = "List your tokens, revoked and expired ones included",
                        .run = tokensList});
  c.children.push_back(
      {.name = "create",
       .summary = "Create a token with an expiry",
       .help = "Prints the token once. With --quiet, prints only the token.\n\nExamples:\n"
               "  vt tokens create --description ci --ttl 30d\n"
               "  VT_TOKEN=$(vt tokens create --ttl 1h -q)",
       .flags = {{.name = "ttl",
                  .value_name = "DURATION",
                  .help = "how long the token is valid: 1m to 366d (default 30d)"},
                 {.name = "description", .value_name = "TEXT", .help = "what the token is for"}},
       .mutating = true,
       .run = tokensCreate});
  c.children.push_back({.name = "revoke",
                        .summary = "Revoke a token (refused from the next request on)",
                        .positionals = {{.name = "TOKEN_ID", .help = "token id (tok_...)"}},
                        .mutating = true,
                        .run = tokensRevoke});
  return c;
}

}  // namespace plfm::vt
