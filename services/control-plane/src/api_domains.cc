// Domains an org proves it controls (docs/specs/ingress/domains.md,
// docs/specs/api/v1.md "Domains"): create (a challenge token), verify (a DNS
// TXT lookup against the operator's resolver), list, get, delete. A verified
// domain gates route claims (domains.h). Domains live in the write-side
// table `domains`; their events are audit-only and carry no challenge.
#include "api.h"
#include "auth.h"
#include "dns_txt.h"
#include "domains.h"

namespace plfm::cp {
namespace {

constexpr std::string_view kChallengeLabel = "_plfm-challenge.";
constexpr std::string_view kChallengePrefix = "plfm-verify=";
// Domains an org may hold, pending or verified: each costs a row and, when
// verified, a lookup per route claim.
constexpr int64_t kMaxDomainsPerOrg = 100;

const std::string kDomainColumns =
    "domain_id AS id, org_id, domain, CASE WHEN verified_at IS NULL THEN 'pending' ELSE "
    "'verified' END AS status, '" +
    std::string(kChallengeLabel) + "' || domain AS challenge_name, challenge AS challenge_value, " +
    ts("created_at") + " AS created_at, " + ts("verified_at") + " AS verified_at";

// A domain's row as the handlers need it (typed, no JSON reads).
struct DomainRow {
  std::string id, org, domain, challenge;
  bool verified = false;
  json::Json body;  // the API's representation
};

Error domainNotFound(const std::string& id) {
  return Error(plfm::errc::kNotFound, "domain " + id + " not found").with("domain_id", id);
}

// The domain if the caller is a member of its org; not_found otherwise.
Result<DomainRow> visibleDomain(Ctx& ctx, const DomainId& id) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs,
      ctx.db().exec("SELECT " + kDomainColumns + " FROM domains WHERE domain_id = $1", {id.str()}));
  if (rs.rows() != 1) return domainNotFound(id.str());
  DomainRow d{std::string(rs.text(0, 0)), std::string(rs.text(0, 1)), std::string(rs.text(0, 2)),
              std::string(rs.text(0, 5)), !rs.isNull(0, 7),           rowToJson(rs, 0)};
  if (!roleIn(ctx.db(), ctx.who, d.org)) return domainNotFound(id.str());
  return d;
}

// Another org's verified domain that contains `domain` or lies under it.
Result<std::optional<std::string>> verifiedElsewhere(pg::Transaction& tx, const std::string& domain,
                                                     const std::string& org) {
  PLFM_ASSIGN_OR_RETURN(
      auto rs, tx.exec("SELECT domain FROM domains WHERE verified_at IS NOT NULL AND org_id <> $2 "
                       "AND ($1::text = domain OR right($1::text, length(domain) + 1) = '.' || "
                       "domain OR right(domain, length($1::text) + 1) = '.' || $1::text) ORDER BY "
                       "domain LIMIT 1",
                       {domain, org}));
  if (rs.rows() == 0) return std::optional<std::string>();
  return std::optional<std::string>(std::string(rs.text(0, 0)));
}

Error conflictWith(const std::string& domain, const std::string& other) {
  return Error(domains::kDomainConflict,
               "domain '" + domain + "' overlaps '" + other +
                   "', which another org has verified; only one org may hold a domain and the "
                   "names under it")
      .with("field", "domain")
      .with("domain", domain);
}

// The TXT check, before any transaction: the lookup may take the whole timeout.
Result<void> proveControl(const ApiOptions& o, const DomainRow& d) {
  if (o.dns_resolver.empty()) {
    return Error(domains::kDnsNotConfigured,
                 "domain verification needs a DNS resolver and none is configured: the operator "
                 "must start the control plane with --dns-resolver ADDRESS:PORT (or set "
                 "dns_resolver); platform admins can still claim routes without a proof")
        .with("domain", d.domain);
  }
  const std::string name = std::string(kChallengeLabel) + d.domain;
  auto found = dns::lookupTxt(o.dns_resolver, name, o.dns_timeout);
  if (!found) {
    return Error(domains::kDnsLookupFailed, found.error().message())
        .with("domain", d.domain)
        .with("challenge_name", name);
  }
  for (const auto& txt : *found) {
    if (txt == d.challenge) return ok();
  }
  return Error(domains::kDomainNotVerified,
               "no TXT record at " + name + " carries this domain's challenge (found " +
                   std::to_string(found->size()) + " TXT record(s)); publish the value that `vt " +
                   "domains list` shows as the challenge, then verify again")
      .with("domain", d.domain)
      .with("challenge_name", name)
      .with("txt_records", std::to_string(found->size()));
}

}  // namespace

void Api::registerDomainRoutes(http::Router& r) {
  route(r, "POST", "/v1/orgs/{org_id}/domains", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
          PLFM_ASSIGN_OR_RETURN(auto body, parseBody(ctx.req, {"domain"}));
          PLFM_ASSIGN_OR_RETURN(auto raw, requireString(body, "domain"));
          PLFM_ASSIGN_OR_RETURN(
              auto domain, domains::parseDomain(deps_.options.public_suffix_file, "domain", raw));
          PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_TRY(tx.exec("SELECT pg_advisory_xact_lock_shared($1)", {domains::kDomainLock}));
            PLFM_ASSIGN_OR_RETURN(auto other, verifiedElsewhere(tx, domain, org.str()));
            if (other) return conflictWith(domain, *other);
            PLFM_ASSIGN_OR_RETURN(
                auto held, tx.exec("SELECT count(*) FROM domains WHERE org_id = $1", {org.str()}));
            if (held.int64(0, 0).value_or(0) >= kMaxDomainsPerOrg) {
              return Error(plfm::errc::kFailedPrecondition,
                           "this org already holds " + std::to_string(kMaxDomainsPerOrg) +
                               " domains, the limit; remove one with `vt domains rm` first")
                  .with("field", "domain")
                  .with("limit", std::to_string(kMaxDomainsPerOrg));
            }
            const std::string id = DomainId::generate().str();
            const std::string challenge =
                std::string(kChallengePrefix) + newToken().substr(3);  // no "vt_": not an API token
            auto inserted = tx.exec(
                "INSERT INTO domains (domain_id, org_id, domain, challenge, created_at) VALUES "
                "($1, $2, $3, $4, $5)",
                {id, org.str(), domain, challenge, toRfc3339(deps_.clock.now())});
            if (!inserted && inserted.error().is(pg::errc::kUniqueViolation)) {
              return Error(plfm::errc::kAlreadyExists,
                           "domain '" + domain + "' is already claimed by this org")
                  .with("field", "domain")
                  .with("domain", domain);
            }
            if (!inserted) return unexpected(std::move(inserted).error());
            PLFM_ASSIGN_OR_RETURN(
                auto rs,
                tx.exec("SELECT " + kDomainColumns + " FROM domains WHERE domain_id = $1", {id}));
            Mutation m;
            m.body = rowToJson(rs, 0);
            m.events = {events::toNewEvent(
                events::DomainCreated{.domain_id = id, .org_id = org.str(), .domain = domain}, 1,
                org.str())};
            return m;
          });
        });

  route(
      r, "GET", "/v1/orgs/{org_id}/domains", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
        PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
        PLFM_ASSIGN_OR_RETURN(auto page, parsePage(ctx.req, "dom"));
        PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
        return listChildren(ctx, kDomainColumns, "domains", "domain_id", "org_id", org.str(), page);
      });

  route(r, "GET", "/v1/domains/{domain_id}", Access::kUser, [](Ctx& ctx) -> Result<http::Response> {
    PLFM_ASSIGN_OR_RETURN(auto id, pathId<DomainId>(ctx.req, "domain_id"));
    PLFM_ASSIGN_OR_RETURN(auto d, visibleDomain(ctx, id));
    return jsonResponse(200, d.body);
  });

  route(r, "POST", "/v1/domains/{domain_id}/verify", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<DomainId>(ctx.req, "domain_id"));
          PLFM_TRY(parseBody(ctx.req, {}));  // {}
          PLFM_ASSIGN_OR_RETURN(auto d, visibleDomain(ctx, id));
          // The lookup runs before the transaction and holds no connection's
          // transaction open; a verified domain is not looked up again.
          if (!d.verified) PLFM_TRY(proveControl(deps_.options, d));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_TRY(tx.exec("SELECT pg_advisory_xact_lock($1)", {domains::kDomainLock}));
            PLFM_ASSIGN_OR_RETURN(
                auto held, tx.exec("SELECT verified_at IS NOT NULL FROM domains WHERE domain_id = "
                                   "$1 AND challenge = $2 FOR UPDATE",
                                   {d.id, d.challenge}));
            if (held.rows() == 0) return domainNotFound(d.id);  // deleted meanwhile
            Mutation m;
            m.status = 200;
            if (!held.boolean(0, 0).value_or(false)) {
              PLFM_ASSIGN_OR_RETURN(auto other, verifiedElsewhere(tx, d.domain, d.org));
              if (other) return conflictWith(d.domain, *other);
              PLFM_TRY(tx.exec("UPDATE domains SET verified_at = $2 WHERE domain_id = $1",
                               {d.id, toRfc3339(deps_.clock.now())}));
              PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, d.id));
              m.events = {events::toNewEvent(
                  events::DomainVerified{.domain_id = d.id, .org_id = d.org, .domain = d.domain},
                  next, d.org)};
            }
            PLFM_ASSIGN_OR_RETURN(
                auto rs,
                tx.exec("SELECT " + kDomainColumns + " FROM domains WHERE domain_id = $1", {d.id}));
            m.body = rowToJson(rs, 0);
            return m;
          });
        });

  route(r, "DELETE", "/v1/domains/{domain_id}", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto id, pathId<DomainId>(ctx.req, "domain_id"));
          PLFM_ASSIGN_OR_RETURN(auto d, visibleDomain(ctx, id));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_ASSIGN_OR_RETURN(auto gone, tx.exec("DELETE FROM domains WHERE domain_id = $1 "
                                                     "RETURNING 1",
                                                     {d.id}));
            if (gone.rows() == 0) return domainNotFound(d.id);
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, d.id));
            Mutation m;
            m.status = 200;
            m.body = {{"deleted", true}, {"id", d.id}};
            m.events = {events::toNewEvent(
                events::DomainDeleted{.domain_id = d.id, .org_id = d.org, .domain = d.domain}, next,
                d.org)};
            return m;
          });
        });
}

}  // namespace plfm::cp
