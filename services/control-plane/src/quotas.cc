#include "quotas.h"

#include "group_commit.h"
#include "projections.h"
#include "stored_release.h"

namespace plfm::cp {
namespace {

// The first key of the per-org advisory lock ("quot"); the second is a hash
// of the org id (a collision only serializes two orgs).
constexpr int kOrgLockClass = 0x71756f74;

const std::array<std::string_view, 5> kNames = {"instances", "memory_mb", "releases_per_app",
                                                "routes", "secrets_bytes"};

const std::array<std::string_view, 5> kWhat = {
    "desired instances over its envs", "MiB of memory for its desired instances",
    "releases of this app", "routes", "bytes of secrets over its envs"};

Result<int64_t> count(pg::Connection& conn, const std::string& sql, const std::string& arg) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec(sql, {arg}));
  if (rs.rows() != 1 || rs.isNull(0, 0)) return int64_t{0};
  return rs.int64(0, 0);
}

struct EnvTarget {
  std::optional<std::string> release_id;
  std::map<std::string, int64_t> scale;
};

// memory_mb per process type of a release; empty when the release is gone
// or its stored manifest does not parse (it cannot run either).
Result<std::map<std::string, int64_t>> releaseMemory(pg::Connection& conn,
                                                     const std::string& release_id) {
  std::map<std::string, int64_t> out;
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT manifest::text FROM releases_view WHERE "
                                           "release_id = $1",
                                           {release_id}));
  if (rs.rows() != 1) return out;
  auto m = readStoredManifest(rs.text(0, 0));
  if (!m) return out;
  for (const auto& p : m->processes) out[p.name] = p.resources.memory_mb;
  return out;
}

}  // namespace

std::string_view quotaName(Quota q) { return kNames[static_cast<size_t>(q)]; }

Result<void> lockOrg(pg::Transaction& tx, ProjectionWorker& worker, const std::string& org_id,
                     std::chrono::milliseconds wait) {
  // Events of the org earlier in this group-commit batch are not committed,
  // so the views cannot hold them yet: run first in the next batch instead.
  if (GroupCommitter::batchWrote(org_id)) {
    return Error(errc::kDeferToNextBatch, "the batch holds uncommitted events of the org");
  }
  PLFM_TRY(tx.exec("SELECT pg_advisory_xact_lock($1, hashtext($2))", {kOrgLockClass, org_id}));
  // Every event of the org that committed before the lock was ours; the
  // views must hold them before any use is read from them.
  PLFM_ASSIGN_OR_RETURN(auto rs, tx.exec("SELECT coalesce(max(seq), 0) FROM events WHERE "
                                         "org_id = $1",
                                         {org_id}));
  PLFM_ASSIGN_OR_RETURN(int64_t last, rs.int64(0, 0));
  if (worker.checkpoint() >= last) return ok();
  worker.kick();
  if (!worker.waitFor(last, wait)) {
    return Error(plfm::errc::kUnavailable,
                 "the views of org " + org_id + " are catching up; retry shortly")
        .with("org_id", org_id);
  }
  return ok();
}

Result<QuotaOverrides> readOverrides(pg::Connection& conn, const std::string& org_id) {
  QuotaOverrides o;
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT instances, memory_mb, releases_per_app, "
                                           "routes, secrets_bytes FROM org_quotas_view WHERE "
                                           "org_id = $1",
                                           {org_id}));
  if (rs.rows() != 1) return o;
  for (size_t i = 0; i < o.size(); ++i) {
    const int col = static_cast<int>(i);
    if (rs.isNull(0, col)) continue;
    PLFM_ASSIGN_OR_RETURN(o[i], rs.int64(0, col));
  }
  return o;
}

QuotaLimits effectiveLimits(const QuotaLimits& defaults, const QuotaOverrides& o) {
  QuotaLimits l = defaults;
  for (size_t i = 0; i < o.size(); ++i) {
    if (o[i]) l.values[i] = *o[i];
  }
  return l;
}

Result<InstanceUse> instanceUse(pg::Connection& conn, const std::string& org_id,
                                const EnvChange* change) {
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        conn.exec("SELECT e.env_id, coalesce(d.release_id, e.current_release_id), "
                                  "s.process_type, s.count FROM envs_view e "
                                  "LEFT JOIN env_scale_view s ON s.env_id = e.env_id "
                                  "LEFT JOIN deploys_view d ON d.deploy_id = e.current_deploy_id "
                                  "WHERE e.org_id = $1 ORDER BY e.env_id, s.process_type",
                                  {org_id}));
  std::map<std::string, EnvTarget> envs;
  for (int i = 0; i < rs.rows(); ++i) {
    EnvTarget& t = envs[std::string(rs.text(i, 0))];
    t.release_id = rs.optText(i, 1);
    if (!rs.isNull(i, 2)) {
      PLFM_ASSIGN_OR_RETURN(t.scale[std::string(rs.text(i, 2))], rs.int64(i, 3));
    }
  }
  if (change != nullptr) {
    EnvTarget& t = envs[change->env_id];
    for (const auto& [proc, n] : change->scale) t.scale[proc] = n;
    if (change->release_id) t.release_id = change->release_id;
  }
  InstanceUse use;
  std::map<std::string, std::map<std::string, int64_t>> memory;  // by release
  for (const auto& [env, t] : envs) {
    const std::map<std::string, int64_t>* mem = nullptr;
    if (t.release_id) {
      auto it = memory.find(*t.release_id);
      if (it == memory.end()) {
        PLFM_ASSIGN_OR_RETURN(auto m, releaseMemory(conn, *t.release_id));
        it = memory.emplace(*t.release_id, std::move(m)).first;
      }
      mem = &it->second;
    }
    for (const auto& [proc, n] : t.scale) {
      use.instances += n;
      if (mem == nullptr) continue;
      if (auto m = mem->find(proc); m != mem->end()) use.memory_mb += n * m->second;
    }
  }
  return use;
}

Result<int64_t> releasesOfApp(pg::Connection& conn, const std::string& app_id) {
  return count(conn, "SELECT count(*) FROM releases_view WHERE app_id = $1", app_id);
}

Result<int64_t> routesOfOrg(pg::Connection& conn, const std::string& org_id) {
  // route_claims is the write side: exact even before the views catch up.
  return count(conn, "SELECT count(*) FROM route_claims WHERE org_id = $1", org_id);
}

Result<int64_t> secretsBytesOfOrg(pg::Connection& conn, const std::string& org_id,
                                  const std::string& except_env) {
  PLFM_ASSIGN_OR_RETURN(auto rs, conn.exec("SELECT coalesce(sum(s.bytes), 0) FROM "
                                           "secret_bundle_sizes s JOIN envs_view e ON e.env_id "
                                           "= s.env_id WHERE s.org_id = $1 AND s.env_id <> $2",
                                           {org_id, except_env}));
  return rs.int64(0, 0);
}

Result<QuotaLimits> orgUsage(pg::Connection& conn, const std::string& org_id) {
  QuotaLimits u;
  PLFM_ASSIGN_OR_RETURN(auto inst, instanceUse(conn, org_id));
  u[Quota::kInstances] = inst.instances;
  u[Quota::kMemoryMb] = inst.memory_mb;
  PLFM_ASSIGN_OR_RETURN(u[Quota::kReleasesPerApp],
                        count(conn,
                              "SELECT max(n) FROM (SELECT count(*) AS n FROM releases_view r "
                              "JOIN apps_view a ON a.app_id = r.app_id WHERE a.org_id = $1 "
                              "GROUP BY r.app_id) c",
                              org_id));
  PLFM_ASSIGN_OR_RETURN(u[Quota::kRoutes], routesOfOrg(conn, org_id));
  PLFM_ASSIGN_OR_RETURN(u[Quota::kSecretsBytes], secretsBytesOfOrg(conn, org_id));
  return u;
}

Result<void> checkQuota(Quota q, int64_t limit, int64_t used, int64_t after) {
  if (after <= limit || after <= used) return ok();
  const auto i = static_cast<size_t>(q);
  const int64_t requested = after - used;
  std::string msg = "quota '";
  msg.append(kNames[i])
      .append("' exceeded: the org may have ")
      .append(std::to_string(limit))
      .append(" ")
      .append(kWhat[i])
      .append("; ")
      .append(std::to_string(used))
      .append(" are in use and this asks for ")
      .append(std::to_string(requested))
      .append(" more (a platform admin can raise the limit; `vt orgs quotas` shows them)");
  return Error(kQuotaExceededCode, msg)
      .with("quota", std::string(kNames[i]))
      .with("limit", std::to_string(limit))
      .with("used", std::to_string(used))
      .with("requested", std::to_string(requested));
}

Result<void> checkInstanceQuotas(pg::Connection& conn, const QuotaLimits& limits,
                                 const std::string& org_id, const EnvChange& change) {
  PLFM_ASSIGN_OR_RETURN(auto before, instanceUse(conn, org_id));
  PLFM_ASSIGN_OR_RETURN(auto after, instanceUse(conn, org_id, &change));
  PLFM_TRY(
      checkQuota(Quota::kInstances, limits[Quota::kInstances], before.instances, after.instances));
  return checkQuota(Quota::kMemoryMb, limits[Quota::kMemoryMb], before.memory_mb, after.memory_mb);
}

}  // namespace plfm::cp
