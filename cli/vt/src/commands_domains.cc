// vt domains: the domains an org proves it controls, so that it may route
// wildcards under them and no other org may route names under them
// (docs/specs/ingress/domains.md). add prints the DNS TXT record to publish,
// verify has the control plane look it up, list and rm manage them.
#include <functional>

#include "commands.h"
#include "invocation.h"

namespace plfm::vt {
namespace {

using nlohmann::json;

// A domain as the API answers it (the Domain schema), parsed once.
struct DomainView {
  std::string id, domain, status, challenge_name, challenge_value;
  json created_at, verified_at;  // RFC 3339 strings or null, for shortTime
};

std::string text(const json& v) { return v.is_string() ? v.get_ref<const std::string&>() : ""; }

DomainView parseDomainView(const json& j) {
  return DomainView{text(field(j, "id")),
                    text(field(j, "domain")),
                    text(field(j, "status")),
                    text(field(j, "challenge_name")),
                    text(field(j, "challenge_value")),
                    field(j, "created_at"),
                    field(j, "verified_at")};
}

// What the user typed, as the API normalizes it: lower case, no trailing dot.
std::string normalized(std::string name) {
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

Result<std::string> currentOrgId(Invocation& inv) {
  PLFM_ASSIGN_OR_RETURN(auto org, inv.org());
  return text(field(org, "id"));
}

// DOMAIN (a name of the org, or a dom_ id) -> the domain.
Result<json> findDomain(Invocation& inv, const std::string& arg) {
  PLFM_ASSIGN_OR_RETURN(ApiClient * client, inv.api());
  if (arg.rfind("dom_", 0) == 0) return client->get("/v1/domains/" + arg);
  PLFM_ASSIGN_OR_RETURN(auto org, currentOrgId(inv));
  PLFM_ASSIGN_OR_RETURN(auto items, client->listAll("/v1/orgs/" + org + "/domains"));
  const std::string want = normalized(arg);
  for (const auto& d : items) {
    if (parseDomainView(d).domain == want) return d;
  }
  return Error(errc::kNotFound, "no domain `" + want + "` in this org")
      .with("hint",
            "list them with `vt domains list`, or claim it with `vt domains add " + want + "`");
}

int domainsList(Invocation& inv) {
  auto org = currentOrgId(inv);
  if (!org) return fail(inv, org.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto items = (*client)->listAll("/v1/orgs/" + *org + "/domains");
  if (!items) return fail(inv, items.error());
  printList(inv, *items, {"ID", "DOMAIN", "STATUS", "TXT NAME", "TXT VALUE", "VERIFIED"},
            [](const json& j) {
              const DomainView d = parseDomainView(j);
              return std::vector<std::string>{d.id,
                                              d.domain,
                                              d.status,
                                              d.challenge_name,
                                              d.challenge_value,
                                              shortTime(d.verified_at)};
            });
  return 0;
}

int domainsAdd(Invocation& inv) {
  auto org = currentOrgId(inv);
  if (!org) return fail(inv, org.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  auto res = (*client)->mutate("POST", "/v1/orgs/" + *org + "/domains",
                               {{"domain", inv.args.positionals[0]}});
  if (!res) return fail(inv, res.error());
  const DomainView d = parseDomainView(*res);
  Receipt r{.action = "domain.created",
            .message = "Claimed domain " + d.domain + " (" + d.id +
                       "); prove it by publishing this DNS TXT record, then verify",
            .ids = {d.id},
            .notes = {"TXT name:  " + d.challenge_name, "TXT value: " + d.challenge_value},
            .next = {"vt domains verify " + d.domain, "vt domains list"}};
  inv.out.receipt(r, *res);
  return 0;
}

// Finds DOMAIN, sends `method` to its `path_suffix`, and prints the receipt
// `receipt` builds from the answer.
int mutateDomain(Invocation& inv, const std::string& method, const std::string& path_suffix,
                 const std::function<Receipt(const DomainView&)>& receipt) {
  auto found = findDomain(inv, inv.args.positionals[0]);
  if (!found) return fail(inv, found.error());
  auto client = inv.api();
  if (!client) return fail(inv, client.error());
  const DomainView before = parseDomainView(*found);
  auto res = (*client)->mutate(method, "/v1/domains/" + before.id + path_suffix, json::object());
  if (!res) return fail(inv, res.error());
  // A delete answers {"deleted","id"}: the receipt speaks of the domain as it was.
  inv.out.receipt(receipt(method == "DELETE" ? before : parseDomainView(*res)), *res);
  return 0;
}

int domainsVerify(Invocation& inv) {
  return mutateDomain(inv, "POST", "/verify", [](const DomainView& d) {
    return Receipt{.action = "domain.verified",
                   .message = "Verified domain " + d.domain + " (" + d.id +
                              "): only this org may route names under it",
                   .ids = {d.id},
                   .notes = {"wildcard routes such as *." + d.domain + " are now allowed"},
                   .next = {"vt routes add '*." + d.domain + "' --process PROCESS --port PORT",
                            "vt domains list"}};
  });
}

int domainsRm(Invocation& inv) {
  return mutateDomain(inv, "DELETE", "", [](const DomainView& d) {
    return Receipt{
        .action = "domain.deleted",
        .message = "Removed domain " + d.domain + " (" + d.id + ")",
        .ids = {d.id},
        .notes = {"routes already created stay; new wildcards under it need a proof again"},
        .next = {"vt domains list"}};
  });
}

}  // namespace

Command domainsCommand() {
  Command c{.name = "domains",
            .summary = "Domains your org proves it controls (add, verify, list, rm)"};
  c.children.push_back(
      {.name = "add",
       .summary = "Claim a domain; prints the DNS TXT record that proves it",
       .help = "Publish the TXT record it prints, then run `vt domains verify DOMAIN`.\n"
               "A verified domain lets the org route wildcards under it (*.example.com)\n"
               "and stops every other org from routing names under it.\n\nExample:\n"
               "  vt domains add example.com",
       .positionals = {{.name = "DOMAIN", .help = "a domain such as example.com"}},
       .mutating = true,
       .run = domainsAdd});
  c.children.push_back({.name = "verify",
                        .summary = "Have the control plane look up the TXT record",
                        .positionals = {{.name = "DOMAIN", .help = "domain name or id (dom_...)"}},
                        .mutating = true,
                        .run = domainsVerify});
  c.children.push_back({.name = "list",
                        .summary = "List the org's domains and their TXT records",
                        .run = domainsList});
  c.children.push_back({.name = "rm",
                        .summary = "Give up a domain",
                        .positionals = {{.name = "DOMAIN", .help = "domain name or id (dom_...)"}},
                        .mutating = true,
                        .run = domainsRm});
  return c;
}

}  // namespace plfm::vt
