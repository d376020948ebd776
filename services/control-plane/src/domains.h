// Hostname ownership (docs/specs/ingress/domains.md): the checks a route
// claim must pass, shared by api_routes.cc and api_domains.cc.
//   - A wildcard directly under a public suffix (`*.com`, `*.co.uk`,
//     `*.github.io`) is refused for everyone, admins included.
//   - A name under (or equal to) a domain another org has verified is refused
//     for everyone: the verified org alone routes it.
//   - A non-admin's wildcard `*.x` needs a domain verified by its own org
//     that is x or a parent of x.
// Exact names need no proof (first come, first served) unless another org
// has verified a domain above them.
#pragma once

#include <string>
#include <string_view>

#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp::domains {

// Any constant: the key of the advisory lock that orders verifications
// (exclusive) against route claims and domain creation (shared).
inline constexpr int64_t kDomainLock = 0x646f6d61696e;

// Error codes (docs/specs/api/v1.md "Domains").
inline constexpr std::string_view kDomainConflict = "domain_conflict";
inline constexpr std::string_view kDomainNotVerified = "domain_not_verified";
inline constexpr std::string_view kDnsNotConfigured = "dns_resolver_not_configured";
inline constexpr std::string_view kDnsLookupFailed = "dns_lookup_failed";
inline constexpr std::string_view kPublicSuffixListMissing = "public_suffix_list_unavailable";

// True if `name` (normalized, no wildcard) is a public suffix in the list at
// `path` (ICANN and private rules; an unlisted TLD counts, by the list's
// implicit "*" rule). The list is loaded once per path; if it cannot be read
// every check fails closed with kPublicSuffixListMissing naming the path.
[[nodiscard]] Result<bool> isPublicSuffix(const std::string& path, std::string_view name);

// A domain an org may claim: a normalized DNS name (no wildcard) of at least
// two labels that is not a public suffix. Errors name `field`.
[[nodiscard]] Result<std::string> parseDomain(const std::string& psl_path, std::string_view field,
                                              std::string_view value);

// True if `name` is `domain` or a name under it.
[[nodiscard]] bool within(std::string_view name, std::string_view domain);

// The checks above for a route of `hostname` (normalized; "" for tcp, "*"
// for a port's default route) claimed by `org`. Runs inside the route's
// command transaction and takes kDomainLock shared, so a verification cannot
// interleave. Errors name the field `hostname`.
[[nodiscard]] Result<void> checkRouteClaim(pg::Transaction& tx, const std::string& psl_path,
                                           const std::string& hostname, const std::string& org,
                                           bool is_admin);

}  // namespace plfm::cp::domains
