// Per-org quotas: limits and use (members), overrides (platform admins).
// See quotas.h and docs/specs/api/v1.md, "Quotas".
#include "api.h"

namespace plfm::cp {
namespace {

// PUT /v1/orgs/{org_id}/quotas, parsed: every limit is an integer
// 0..kMaxQuotaValue, or null/absent for the operator's default.
Result<QuotaOverrides> parseOverrides(const http::Request& req) {
  PLFM_ASSIGN_OR_RETURN(auto body, parseBody(req, {"instances", "memory_mb", "releases_per_app",
                                                   "routes", "secrets_bytes"}));
  QuotaOverrides o;
  for (Quota q : kAllQuotas) {
    const std::string field(quotaName(q));
    auto it = body.find(field);
    if (it == body.end() || it->is_null()) continue;
    auto v = it->is_number_integer() ? json::getInt(body, field) : Result<int64_t>(-1);
    if (!v || *v < 0 || *v > kMaxQuotaValue) {
      return Error(apierr::kInvalidField, "field '" + field + "' must be null or an integer 0.." +
                                              std::to_string(kMaxQuotaValue))
          .with("field", field);
    }
    o[static_cast<size_t>(q)] = *v;
  }
  return o;
}

json::Json quotasJson(const std::string& org, const QuotaLimits& defaults,
                      const QuotaOverrides& overrides, const QuotaLimits& used) {
  const QuotaLimits limits = effectiveLimits(defaults, overrides);
  json::Json items = json::Json::array();
  for (Quota q : kAllQuotas) {
    items.push_back({{"name", std::string(quotaName(q))},
                     {"limit", limits[q]},
                     {"used", used[q]},
                     {"default", defaults[q]},
                     {"overridden", overrides[static_cast<size_t>(q)].has_value()}});
  }
  return {{"org_id", org}, {"items", std::move(items)}};
}

Result<void> orgExists(pg::Connection& db, const std::string& org) {
  PLFM_ASSIGN_OR_RETURN(auto rs, db.exec("SELECT 1 FROM orgs_view WHERE org_id = $1", {org}));
  if (rs.rows() == 1) return ok();
  return Error(plfm::errc::kNotFound, "org " + org + " not found").with("org_id", org);
}

}  // namespace

void Api::registerQuotaRoutes(http::Router& r) {
  route(r, "GET", "/v1/orgs/{org_id}/quotas", Access::kUser,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
          if (ctx.who.is_admin) {
            PLFM_TRY(orgExists(ctx.db(), org.str()));
          } else {
            PLFM_TRY(roleIn(ctx.db(), ctx.who, org.str()));
          }
          PLFM_ASSIGN_OR_RETURN(auto overrides, readOverrides(ctx.db(), org.str()));
          PLFM_ASSIGN_OR_RETURN(auto used, orgUsage(ctx.db(), org.str()));
          return jsonResponse(200, quotasJson(org.str(), deps_.options.quotas, overrides, used));
        });

  route(r, "PUT", "/v1/orgs/{org_id}/quotas", Access::kAdmin,
        [this](Ctx& ctx) -> Result<http::Response> {
          PLFM_ASSIGN_OR_RETURN(auto org, pathId<OrgId>(ctx.req, "org_id"));
          PLFM_ASSIGN_OR_RETURN(auto overrides, parseOverrides(ctx.req));
          PLFM_TRY(orgExists(ctx.db(), org.str()));
          return runMutation(ctx, [&](pg::Transaction& tx) -> Result<Mutation> {
            PLFM_TRY(lockOrgQuotas(tx, org.str()));
            PLFM_ASSIGN_OR_RETURN(auto used, orgUsage(tx.connection(), org.str()));
            PLFM_ASSIGN_OR_RETURN(int next, nextAggregateSeq(tx, org.str()));
            auto limit = [&](Quota q) { return overrides[static_cast<size_t>(q)]; };
            const events::OrgQuotasSet payload{.org_id = org.str(),
                                               .instances = limit(Quota::kInstances),
                                               .memory_mb = limit(Quota::kMemoryMb),
                                               .releases_per_app = limit(Quota::kReleasesPerApp),
                                               .routes = limit(Quota::kRoutes),
                                               .secrets_bytes = limit(Quota::kSecretsBytes)};
            Mutation m;
            m.status = 200;
            m.body = quotasJson(org.str(), deps_.options.quotas, overrides, used);
            m.events = {events::toNewEvent(payload, next, org.str())};
            return m;
          });
        });
}

}  // namespace plfm::cp
