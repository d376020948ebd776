#include "plfm/testing/pg_test.h"

#include "plfm/core/sha256.h"
#include "plfm/pg/migrate.h"

namespace plfm::testing {

void PgTest::SetUp() {
  auto c = testCluster();
  ASSERT_TRUE(c.has_value()) << "cannot start the PostgreSQL test cluster: "
                             << c.error().toString();
  cluster_ = *c;
  const std::string tmpl = templateDatabase();
  if (HasFatalFailure()) return;
  auto db = cluster_->createDatabase(tmpl);
  ASSERT_TRUE(db.has_value()) << db.error().toString();
  database_ = *db;
}

std::string PgTest::migratedTemplate(const std::string& dir) {
  auto migrations = pg::loadMigrations(dir);
  if (!migrations) {
    ADD_FAILURE() << migrations.error().toString();
    return "template1";
  }
  // Name the template by content, so an edited migration gets a new one.
  Sha256 h;
  for (const auto& m : *migrations) h.update(m.name + m.checksum);
  std::string name = "tmpl_" + h.hexDigest().substr(0, 16);
  auto r = cluster_->ensureTemplate(name, [&](pg::Connection& conn) -> Result<void> {
    PLFM_TRY(pg::migrate(conn, *migrations));
    return ok();
  });
  if (!r) {
    ADD_FAILURE() << "building template " << name << ": " << r.error().toString();
    return "template1";
  }
  return name;
}

pg::Connection PgTest::connect() {
  auto c = pg::Connection::connect(conninfo());
  if (!c) {
    ADD_FAILURE() << c.error().toString();
    return {};
  }
  return std::move(*c);
}

}  // namespace plfm::testing
