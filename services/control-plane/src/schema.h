// The control plane's database schema: the migrations under
// services/control-plane/migrations/, embedded in the binary at build time.
#pragma once

#include <vector>

#include "plfm/core/result.h"
#include "plfm/pg/migrate.h"
#include "plfm/pg/pg.h"

namespace plfm::cp {

[[nodiscard]] Result<std::vector<pg::Migration>> schemaMigrations();

// Applies pending migrations; refuses edited or missing ones.
[[nodiscard]] Result<pg::MigrationReport> migrateSchema(pg::Connection& conn);

}  // namespace plfm::cp
