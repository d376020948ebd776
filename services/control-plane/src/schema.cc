#include "schema.h"

#include <string_view>
#include <utility>

namespace plfm::cp {

// Defined in the generated migrations_embedded.cc.
const std::vector<std::pair<std::string_view, std::string_view>>& migrationFiles();

Result<std::vector<pg::Migration>> schemaMigrations() {
  std::vector<pg::Migration> out;
  for (const auto& [name, sql] : migrationFiles()) {
    PLFM_ASSIGN_OR_RETURN(auto m, pg::makeMigration(std::string(name), std::string(sql)));
    out.push_back(std::move(m));
  }
  return out;
}

Result<pg::MigrationReport> migrateSchema(pg::Connection& conn) {
  PLFM_ASSIGN_OR_RETURN(auto ms, schemaMigrations());
  return pg::migrate(conn, ms);
}

}  // namespace plfm::cp
