// Per-org quotas and the per-org write lock (docs/specs/api/v1.md, "Quotas";
// docs/security.md, "Control plane: quotas and roles").
//
// The operator sets a default for each limit (--quota-* flags); an admin may
// override them per org (PUT /v1/orgs/{org_id}/quotas, event org.quotas_set).
// A mutation that adds to a quota's use first takes lockOrg(), which
// serializes every such mutation of one org inside its transaction and
// waits until the views hold every event the org has committed, so the use
// it reads is exact: two concurrent scale-ups cannot both pass. The same lock
// keeps the last-owner check of org memberships race-free.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

class ProjectionWorker;

// The error code of a refused mutation (HTTP 409).
inline constexpr std::string_view kQuotaExceededCode = "quota_exceeded";

enum class Quota { kInstances, kMemoryMb, kReleasesPerApp, kRoutes, kSecretsBytes };
inline constexpr std::array<Quota, 5> kAllQuotas = {Quota::kInstances, Quota::kMemoryMb,
                                                    Quota::kReleasesPerApp, Quota::kRoutes,
                                                    Quota::kSecretsBytes};
// The limit's name in the API, the flags (--quota-<name with '-'>) and events.
[[nodiscard]] std::string_view quotaName(Quota q);

// One value per quota, indexed by Quota.
struct QuotaLimits {
  std::array<int64_t, 5> values = {
      50,       // instances: the sum of desired scale over the org's envs
      51'200,   // memory_mb: instances x their release's memory_mb
      1'000,    // releases_per_app
      100,      // routes
      1 << 20,  // secrets_bytes: the keys and values of every env's secrets
  };
  [[nodiscard]] int64_t operator[](Quota q) const { return values[static_cast<size_t>(q)]; }
  int64_t& operator[](Quota q) { return values[static_cast<size_t>(q)]; }
};
inline constexpr int64_t kMaxQuotaValue = int64_t{1} << 40;

// An admin's overrides; nullopt: the operator's default.
using QuotaOverrides = std::array<std::optional<int64_t>, 5>;

// Takes the org's transaction-scoped lock, then waits (at most `wait`)
// until the views have applied every event of the org committed so far.
// unavailable if they do not catch up in time.
[[nodiscard]] Result<void> lockOrg(pg::Transaction& tx, ProjectionWorker& worker,
                                   const std::string& org_id, std::chrono::milliseconds wait);

[[nodiscard]] Result<QuotaOverrides> readOverrides(pg::Connection& conn, const std::string& org_id);
[[nodiscard]] QuotaLimits effectiveLimits(const QuotaLimits& defaults, const QuotaOverrides& o);

// A change to one env that the instance and memory use is computed under:
// new counts for some process types, and/or a new release.
struct EnvChange {
  std::string env_id;
  std::map<std::string, int64_t> scale;
  std::optional<std::string> release_id;
};

struct InstanceUse {
  int64_t instances = 0;
  int64_t memory_mb = 0;
};
// The org's desired instances and their memory, from the views: each env's
// scale times the memory_mb of its target release (its current deploy's,
// else its current release). `change` replaces one env's part.
[[nodiscard]] Result<InstanceUse> instanceUse(pg::Connection& conn, const std::string& org_id,
                                              const EnvChange* change = nullptr);

// The use of every quota (releases_per_app: the app with the most).
[[nodiscard]] Result<QuotaLimits> orgUsage(pg::Connection& conn, const std::string& org_id);

[[nodiscard]] Result<int64_t> releasesOfApp(pg::Connection& conn, const std::string& app_id);
[[nodiscard]] Result<int64_t> routesOfOrg(pg::Connection& conn, const std::string& org_id);
[[nodiscard]] Result<int64_t> secretsBytesOfOrg(pg::Connection& conn, const std::string& org_id,
                                                const std::string& except_env = "");

// quota_exceeded (409) when `after` is over `limit` and above `used` (a
// change that lowers use always passes, even over a lowered limit). The
// error names the limit, the use and the requested amount.
[[nodiscard]] Result<void> checkQuota(Quota q, int64_t limit, int64_t used, int64_t after);

// The whole check of a scale or deploy: instances and memory after `change`.
[[nodiscard]] Result<void> checkInstanceQuotas(pg::Connection& conn, const QuotaLimits& limits,
                                               const std::string& org_id, const EnvChange& change);

}  // namespace plfm::cp
