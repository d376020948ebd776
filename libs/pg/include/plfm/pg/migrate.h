// The migrations runner: numbered SQL files applied in order, each in its own
// transaction, each recorded in `schema_migrations` with a SHA-256 checksum.
//
// Files are named `NNNN_description.sql` (e.g. `0001_events.sql`). Rules:
//   - a migration already applied whose file has changed is refused
//     (migration.checksum_mismatch): never edit a shipped migration, add one;
//   - an applied migration whose file is gone is refused (migration.missing);
//   - a new file numbered below the newest applied one is refused
//     (migration.out_of_order);
//   - concurrent runners serialize on a PostgreSQL advisory lock.
// A failing migration rolls back alone; earlier ones stay applied.
#pragma once

#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/pg/pg.h"

namespace plfm::pg {

namespace errc {
inline constexpr std::string_view kMigrationBadName = "migration.bad_name";
inline constexpr std::string_view kMigrationDuplicate = "migration.duplicate_version";
inline constexpr std::string_view kMigrationChecksum = "migration.checksum_mismatch";
inline constexpr std::string_view kMigrationMissing = "migration.missing";
inline constexpr std::string_view kMigrationOutOfOrder = "migration.out_of_order";
inline constexpr std::string_view kMigrationFailed = "migration.failed";
}  // namespace errc

struct Migration {
  int version = 0;
  std::string name;  // file name, e.g. "0001_events.sql"
  std::string sql;
  std::string checksum;  // sha256 hex of sql
};

// Builds a migration from a file name and its contents; validates the name.
[[nodiscard]] Result<Migration> makeMigration(std::string name, std::string sql);

// Loads every *.sql file in `dir`, sorted by version.
[[nodiscard]] Result<std::vector<Migration>> loadMigrations(const std::string& dir);

struct MigrationReport {
  std::vector<std::string> applied;  // names applied by this run, in order
  int current_version = 0;           // newest version in the database afterwards
};

// Applies what is pending. `migrations` must be sorted by version.
[[nodiscard]] Result<MigrationReport> migrate(Connection& conn,
                                              const std::vector<Migration>& migrations);

}  // namespace plfm::pg
