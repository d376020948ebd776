// Hostname ownership checks (domains.h, docs/specs/ingress/domains.md).
#include "domains.h"

#include <libpsl.h>

#include <map>
#include <mutex>

#include "api.h"
#include "plfm/net/hostname.h"

namespace plfm::cp::domains {
namespace {

// The loaded lists, by path; loaded once, kept for the process's life.
Result<const psl_ctx_t*> loadList(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, psl_ctx_t*> lists;
  const std::lock_guard lock(mu);
  if (auto it = lists.find(path); it != lists.end()) return it->second;
  psl_ctx_t* psl = psl_load_file(path.c_str());
  if (psl == nullptr || psl_suffix_count(psl) <= 0) {
    if (psl != nullptr) psl_free(psl);
    return Error(kPublicSuffixListMissing,
                 "the public suffix list '" + path +
                     "' cannot be read, so wildcard routes and domains are refused; the operator "
                     "must install it (Debian package publicsuffix) or set public_suffix_file")
        .with("field", "public_suffix_file");
  }
  lists.emplace(path, psl);
  return psl;
}

}  // namespace

Result<bool> isPublicSuffix(const std::string& path, std::string_view name) {
  PLFM_ASSIGN_OR_RETURN(const psl_ctx_t* psl, loadList(path));
  const std::string n(name);
  return psl_is_public_suffix2(psl, n.c_str(), PSL_TYPE_ANY) != 0;
}

bool within(std::string_view name, std::string_view domain) {
  if (name == domain) return true;
  return name.size() > domain.size() && name.ends_with(domain) &&
         name[name.size() - domain.size() - 1] == '.';
}

Result<std::string> parseDomain(const std::string& psl_path, std::string_view field,
                                std::string_view value) {
  auto fieldError = [&](const std::string& why) {
    return Error(apierr::kInvalidField, "field '" + std::string(field) + "' " + why)
        .with("field", std::string(field));
  };
  auto norm = net::normalizeHostname(value);
  if (!norm || norm->starts_with("*")) {
    return fieldError("must be a DNS name like \"example.com\", without a wildcard");
  }
  if (norm->find('.') == std::string::npos) {
    return fieldError("must have at least two labels, like \"example.com\"");
  }
  PLFM_ASSIGN_OR_RETURN(bool suffix, isPublicSuffix(psl_path, *norm));
  if (suffix) {
    return fieldError("must not be a public suffix, and '" + *norm +
                      "' is one (anyone can register names under it); claim a domain "
                      "registered under it instead");
  }
  return std::move(*norm);
}

Result<void> checkRouteClaim(pg::Transaction& tx, const std::string& psl_path,
                             const std::string& hostname, const std::string& org, bool is_admin) {
  if (hostname.empty() || hostname == "*") return ok();  // tcp, or the admin-only default route
  const bool wildcard = hostname.starts_with("*.");
  const std::string name = wildcard ? hostname.substr(2) : hostname;
  if (wildcard) {
    PLFM_ASSIGN_OR_RETURN(bool suffix, isPublicSuffix(psl_path, name));
    if (suffix) {
      return Error(plfm::errc::kPermissionDenied,
                   "hostname '" + hostname + "' is a wildcard directly under the public suffix '" +
                       name +
                       "', which covers names of unrelated owners; it is refused for "
                       "everyone")
          .with("field", "hostname")
          .with("hostname", hostname);
    }
  }
  PLFM_TRY(tx.exec("SELECT pg_advisory_xact_lock_shared($1)", {kDomainLock}));
  // Another org's verified domain above the name (or, for a wildcard, one
  // the wildcard would cover).
  PLFM_ASSIGN_OR_RETURN(
      auto taken,
      tx.exec(
          "SELECT domain FROM domains WHERE verified_at IS NOT NULL AND org_id <> $2 AND "
          "($1::text = domain OR right($1::text, length(domain) + 1) = '.' || domain OR "
          "($3::boolean AND right(domain, length($1) + 1) = '.' || $1)) ORDER BY domain LIMIT 1",
          {name, org, wildcard}));
  if (taken.rows() > 0) {
    const std::string domain(taken.text(0, 0));
    return Error(kDomainConflict, "hostname '" + hostname + "' is under the domain '" + domain +
                                      "', which another org has verified; only that org may "
                                      "route names under it")
        .with("field", "hostname")
        .with("hostname", hostname)
        .with("domain", domain);
  }
  if (!wildcard || is_admin) return ok();
  PLFM_ASSIGN_OR_RETURN(
      auto mine,
      tx.exec("SELECT 1 FROM domains WHERE verified_at IS NOT NULL AND org_id = $2 AND "
              "($1::text = domain OR right($1::text, length(domain) + 1) = '.' || domain) LIMIT 1",
              {name, org}));
  if (mine.rows() == 0) {
    return Error(plfm::errc::kPermissionDenied, "hostname '" + hostname +
                                                    "' is a wildcard: this org must first prove it "
                                                    "controls '" +
                                                    name + "' (vt domains add " + name +
                                                    ", then vt domains verify " + name + ")")
        .with("field", "hostname")
        .with("hostname", hostname)
        .with("domain", name);
  }
  return ok();
}

}  // namespace plfm::cp::domains
