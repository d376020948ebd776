// vt orgs quotas | set-quotas: an org's limits and use, and (platform admins)
// per-org overrides of the operator's defaults. See docs/specs/api/v1.md,
// "Quotas".
#include <array>
#include <charconv>

#include "commands.h"
#include "invocation.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// The API's quota names, in its order; each has a --flag with '-' for '_'.
constexpr std::array<const char*, 5> kQuotas = {"instances", "memory_mb", "releases_per_app",
                                                "routes", "secrets_bytes"};
constexpr int64_t kMaxQuota = int64_t{1} << 40;

std::string flagName(std::string name) {
  for (char& c : name) c = c == '_' ? '-' : c;
  return name;
}

// The org's id: --org given as an id is used as is (a platform admin may
// manage an org it does not belong to); otherwise the context's org.
Result<std::string> orgId(Invocation& inv) {
  const std::string org_flag = "org";  // a flag, not JSON: check-json-access
  if (auto o = inv.args.value(org_flag); o && o->rfind("org_", 0) == 0) return *o;
  PLFM_ASSIGN_OR_RETURN(auto org, inv.org());
  const json& id = field(org, "id");
  if (!id.is_string()) return Error(errc::kInternal, "the server's org has no id");
  return std::string(id);
}

int quotasShow(Invocation& inv) {
  auto org = orgId(inv);
  if (!org) return fail(inv, org.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto q = (*client)->get("/v1/orgs/" + *org + "/quotas");
  if (!q) return fail(inv, q.error());
  std::vector<json> items;
  for (const auto& it : field(*q, "items")) items.push_back(it);
  printList(inv, items, {"QUOTA", "LIMIT", "USED", "DEFAULT", "SOURCE"}, [](const json& it) {
    const bool org_set = field(it, "overridden") == json(true);
    return std::vector<std::string>{cell(field(it, "name")), cell(field(it, "limit")),
                                    cell(field(it, "used")), cell(field(it, "default")),
                                    org_set ? "org" : "default"};
  });
  return 0;
}

// A flag's value: an integer 0..2^40, or "default" (null).
Result<json> parseLimit(const std::string& flag, const std::string& v) {
  if (v == "default") return json();
  int64_t n = -1;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || p != v.data() + v.size() || n < 0 || n > kMaxQuota) {
    return Error("usage", "--" + flag + " must be an integer 0.." + std::to_string(kMaxQuota) +
                              " or `default`");
  }
  return json(n);
}

int quotasSet(Invocation& inv) {
  // Parse every flag before anything goes to the server.
  json changes = json::object();
  for (const char* name : kQuotas) {
    const std::string flag = flagName(name);
    if (auto v = inv.args.value(flag)) {
      auto limit = parseLimit(flag, *v);
      if (!limit) return fail(inv, limit.error());
      changes[name] = *limit;
    }
  }
  if (changes.empty()) {
    return fail(inv, Error("usage",
                           "name at least one limit, e.g. --instances 20 or "
                           "--routes default"));
  }
  auto org = orgId(inv);
  if (!org) return fail(inv, org.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  // The PUT replaces every override: keep the ones not named here.
  auto current = (*client)->get("/v1/orgs/" + *org + "/quotas");
  if (!current) return fail(inv, current.error());
  json body = json::object();
  for (const auto& it : field(*current, "items")) {
    const json& name = field(it, "name");
    if (!name.is_string()) continue;
    body[std::string(name)] = field(it, "overridden") == json(true) ? field(it, "limit") : json();
  }
  for (const auto& [name, limit] : changes.items()) body[name] = limit;
  auto res = (*client)->mutate("PUT", "/v1/orgs/" + *org + "/quotas", body);
  if (!res) return fail(inv, res.error());
  std::vector<std::string> notes;
  for (const auto& it : field(*res, "items")) {
    notes.push_back(cell(field(it, "name")) + ": " + cell(field(it, "limit")) +
                    (field(it, "overridden") == json(true) ? " (this org)" : " (default)"));
  }
  Receipt r{.action = "org.quotas_set",
            .message = "Set the quotas of org " + *org,
            .ids = {*org},
            .notes = notes,
            .next = {"vt orgs quotas --org " + *org}};
  inv.out.receipt(r, *res);
  return 0;
}

}  // namespace

void addQuotaCommands(Command& orgs) {
  orgs.children.push_back(
      {.name = "quotas",
       .summary = "Show the org's quota limits and use",
       .help = "One row per quota: instances (desired scale over the org's envs), memory_mb\n"
               "(instances x their release's memory_mb), releases_per_app (the app with the\n"
               "most), routes and secrets_bytes. SOURCE says whether the limit is the\n"
               "operator's default or set for this org.\n\nExamples:\n"
               "  vt orgs quotas\n  vt orgs quotas --org acme --format json",
       .run = quotasShow});
  Command set{.name = "set-quotas",
              .summary = "Set an org's quota limits (platform admins)",
              .help =
                  "Limits not named keep their current value; `default` returns one to\n"
                  "the operator's default. --org takes a name or, for an org you do not\n"
                  "belong to, its id.\n\nExamples:\n"
                  "  vt orgs set-quotas --org acme --instances 20 --memory-mb 8192\n"
                  "  vt orgs set-quotas --org org_01... --routes default",
              .mutating = true,
              .run = quotasSet};
  for (const char* name : kQuotas) {
    set.flags.push_back({.name = flagName(name),
                         .value_name = "N",
                         .help = "the " + std::string(name) + " limit, or `default`"});
  }
  orgs.children.push_back(std::move(set));
}

}  // namespace plfm::vt
