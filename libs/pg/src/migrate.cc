#include "plfm/pg/migrate.h"

#include <algorithm>
#include <filesystem>
#include <map>

#include "plfm/core/process.h"
#include "plfm/core/sha256.h"

namespace plfm::pg {
namespace {

// Any fixed key works; every runner uses the same one.
constexpr int64_t kMigrationLockKey = 0x706c666d6d6967;  // "plfmmig"

constexpr std::string_view kCreateTable = R"sql(
CREATE TABLE IF NOT EXISTS schema_migrations (
  version    integer PRIMARY KEY,
  name       text        NOT NULL,
  checksum   text        NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
))sql";

struct Applied {
  std::string name;
  std::string checksum;
};

Result<std::map<int, Applied>> readApplied(Connection& conn) {
  PLFM_ASSIGN_OR_RETURN(auto rs,
                        conn.exec("SELECT version, name, checksum FROM schema_migrations"));
  std::map<int, Applied> out;
  for (int i = 0; i < rs.rows(); ++i) {
    PLFM_ASSIGN_OR_RETURN(int64_t v, rs.int64(i, 0));
    out[static_cast<int>(v)] = Applied{std::string(rs.text(i, 1)), std::string(rs.text(i, 2))};
  }
  return out;
}

Result<void> checkApplied(const std::map<int, Applied>& applied,
                          const std::vector<Migration>& migrations) {
  std::map<int, const Migration*> byVersion;
  for (const auto& m : migrations) byVersion[m.version] = &m;
  for (const auto& [version, a] : applied) {
    auto it = byVersion.find(version);
    if (it == byVersion.end()) {
      return Error(errc::kMigrationMissing,
                   "migration " + a.name + " is applied in the database but its file is missing")
          .with("version", std::to_string(version))
          .with("migration", a.name);
    }
    if (it->second->checksum != a.checksum) {
      return Error(errc::kMigrationChecksum,
                   "migration " + it->second->name +
                       " was edited after it was applied; never change an applied migration, "
                       "add a new one instead")
          .with("version", std::to_string(version))
          .with("migration", it->second->name)
          .with("applied_checksum", a.checksum)
          .with("file_checksum", it->second->checksum);
    }
  }
  return ok();
}

Result<void> applyOne(Connection& conn, const Migration& m) {
  PLFM_ASSIGN_OR_RETURN(auto tx, Transaction::begin(conn));
  auto fail = [&](const Error& e) {
    return Error(errc::kMigrationFailed, "migration " + m.name + " failed: " + e.message())
        .with("version", std::to_string(m.version))
        .with("migration", m.name)
        .with("cause", e.code());
  };
  if (auto r = conn.execScript(m.sql); !r) return fail(r.error());
  if (auto r = tx.exec("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1,$2,$3)",
                       {m.version, m.name, m.checksum});
      !r) {
    return fail(r.error());
  }
  if (auto r = tx.commit(); !r) return fail(r.error());
  return ok();
}

}  // namespace

Result<Migration> makeMigration(std::string name, std::string sql) {
  // NNNN_description.sql: digits, underscore, [a-z0-9_]+, ".sql".
  auto bad = [&](const char* why) {
    return Error(errc::kMigrationBadName,
                 "migration file '" + name + "' " + why +
                     " (expected NNNN_description.sql, e.g. 0001_events.sql)")
        .with("migration", name);
  };
  if (!name.ends_with(".sql")) return bad("does not end in .sql");
  const size_t us = name.find('_');
  if (us == std::string::npos || us == 0) return bad("has no version prefix");
  int version = 0;
  for (size_t i = 0; i < us; ++i) {
    if (name[i] < '0' || name[i] > '9') return bad("has a non-numeric version");
    version = version * 10 + (name[i] - '0');
    if (version > 999'999) return bad("has a version above 999999");
  }
  if (version == 0) return bad("has version 0");
  const std::string_view desc(name.data() + us + 1, name.size() - us - 1 - 4);
  if (desc.empty()) return bad("has no description");
  for (char c : desc) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
      return bad("has characters outside [a-z0-9_] in its description");
    }
  }
  Migration m;
  m.version = version;
  m.checksum = Sha256::hex(sql);
  m.name = std::move(name);
  m.sql = std::move(sql);
  return m;
}

Result<std::vector<Migration>> loadMigrations(const std::string& dir) {
  std::error_code ec;
  std::filesystem::directory_iterator it(dir, ec);
  if (ec) {
    return Error(plfm::errc::kIo, "cannot read migrations directory " + dir + ": " + ec.message());
  }
  std::vector<Migration> out;
  for (const auto& entry : it) {
    if (!entry.is_regular_file() || entry.path().extension() != ".sql") continue;
    PLFM_ASSIGN_OR_RETURN(std::string sql, readFile(entry.path().string()));
    PLFM_ASSIGN_OR_RETURN(Migration m, makeMigration(entry.path().filename().string(), sql));
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i].version == out[i - 1].version) {
      return Error(errc::kMigrationDuplicate, "migrations " + out[i - 1].name + " and " +
                                                  out[i].name + " share version " +
                                                  std::to_string(out[i].version))
          .with("version", std::to_string(out[i].version));
    }
  }
  return out;
}

Result<MigrationReport> migrate(Connection& conn, const std::vector<Migration>& migrations) {
  // Lock first: concurrent CREATE TABLE IF NOT EXISTS can itself collide.
  PLFM_TRY(conn.exec("SELECT pg_advisory_lock($1)", {kMigrationLockKey}));
  struct Unlock {
    Connection& c;
    ~Unlock() { (void)c.exec("SELECT pg_advisory_unlock($1)", {kMigrationLockKey}); }
  } unlock{conn};
  PLFM_TRY(conn.execScript(kCreateTable));

  PLFM_ASSIGN_OR_RETURN(auto applied, readApplied(conn));
  PLFM_TRY(checkApplied(applied, migrations));
  const int newest = applied.empty() ? 0 : applied.rbegin()->first;

  MigrationReport report;
  report.current_version = newest;
  for (const auto& m : migrations) {
    if (applied.contains(m.version)) continue;
    if (m.version < newest) {
      return Error(errc::kMigrationOutOfOrder,
                   "migration " + m.name + " is numbered below the newest applied migration (" +
                       applied.rbegin()->second.name + "); renumber it above " +
                       std::to_string(newest))
          .with("migration", m.name)
          .with("version", std::to_string(m.version));
    }
    PLFM_TRY(applyOne(conn, m));
    report.applied.push_back(m.name);
    report.current_version = m.version;
  }
  return report;
}

}  // namespace plfm::pg
