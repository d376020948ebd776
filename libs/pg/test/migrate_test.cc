// The migrations runner against a real PostgreSQL.
#include "plfm/pg/migrate.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "plfm/testing/pg_test.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::pg {
namespace {

class MigrateTest : public testing::PgTest {
 protected:
  void SetUp() override {
    testing::PgTest::SetUp();
    if (HasFatalFailure()) return;
    conn_ = connect();
    write("0001_accounts.sql", "CREATE TABLE accounts (id text PRIMARY KEY);");
    write("0002_apps.sql",
          "CREATE TABLE apps (id text PRIMARY KEY, account text REFERENCES accounts);\n"
          "CREATE INDEX apps_account ON apps (account);");
  }

  void write(const std::string& name, const std::string& sql) {
    std::ofstream(dir_.file(name)) << sql;
  }

  Result<MigrationReport> run(Connection& c) {
    PLFM_ASSIGN_OR_RETURN(auto ms, loadMigrations(dir_.path()));
    return migrate(c, ms);
  }
  Result<MigrationReport> run() { return run(conn_); }

  int64_t count(const std::string& sql) {
    auto rs = conn_.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs ? *rs->int64(0, 0) : -1;
  }

  plfm::testing::TempDir dir_{"plfm-mig"};
  Connection conn_;
};

TEST_F(MigrateTest, AppliesInOrderAndRecordsChecksums) {
  auto r = run();
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(r->applied, (std::vector<std::string>{"0001_accounts.sql", "0002_apps.sql"}));
  EXPECT_EQ(r->current_version, 2);
  auto rs = conn_.exec("SELECT version, name, checksum FROM schema_migrations ORDER BY version");
  ASSERT_TRUE(rs.has_value());
  ASSERT_EQ(rs->rows(), 2);
  EXPECT_EQ(rs->text(1, 1), "0002_apps.sql");
  EXPECT_EQ(rs->text(0, 2).size(), 64U);
  EXPECT_EQ(count("SELECT count(*) FROM apps"), 0);
}

TEST_F(MigrateTest, SecondRunIsANoOpAndNewFilesApplyLater) {
  ASSERT_TRUE(run().has_value());
  auto again = run();
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(again->applied.empty());
  EXPECT_EQ(again->current_version, 2);
  write("0003_envs.sql", "CREATE TABLE envs (id text);");
  auto third = run();
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(third->applied, std::vector<std::string>{"0003_envs.sql"});
}

TEST_F(MigrateTest, EditedAppliedMigrationIsRefused) {
  ASSERT_TRUE(run().has_value());
  write("0001_accounts.sql", "CREATE TABLE accounts (id text PRIMARY KEY, name text);");
  write("0003_envs.sql", "CREATE TABLE envs (id text);");
  auto r = run();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::kMigrationChecksum);
  EXPECT_NE(r.error().message().find("0001_accounts.sql was edited after it was applied"),
            std::string::npos)
      << r.error().message();
  EXPECT_EQ(r.error().detail("version"), "1");
  EXPECT_NE(r.error().detail("applied_checksum"), r.error().detail("file_checksum"));
  // Nothing after the refusal ran.
  EXPECT_EQ(count("SELECT count(*) FROM schema_migrations"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM pg_tables WHERE tablename = 'envs'"), 0);
}

TEST_F(MigrateTest, MissingAppliedFileIsRefused) {
  ASSERT_TRUE(run().has_value());
  std::filesystem::remove(dir_.file("0002_apps.sql"));
  auto r = run();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::kMigrationMissing);
  EXPECT_EQ(r.error().detail("migration"), "0002_apps.sql");
}

TEST_F(MigrateTest, OutOfOrderFileIsRefused) {
  std::filesystem::rename(dir_.file("0002_apps.sql"), dir_.file("0005_apps.sql"));
  ASSERT_TRUE(run().has_value());
  write("0003_late.sql", "CREATE TABLE late (id text);");
  auto r = run();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::kMigrationOutOfOrder);
  EXPECT_NE(r.error().message().find("renumber it above 5"), std::string::npos);
}

TEST_F(MigrateTest, FailingMigrationRollsBackAloneAndNamesItself) {
  write("0003_broken.sql",
        "CREATE TABLE half (id text);\nALTER TABLE no_such_table ADD COLUMN x int;");
  auto r = run();
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::kMigrationFailed);
  EXPECT_NE(r.error().message().find("migration 0003_broken.sql failed"), std::string::npos);
  EXPECT_NE(r.error().message().find("no_such_table"), std::string::npos);
  EXPECT_EQ(count("SELECT max(version) FROM schema_migrations"), 2);
  EXPECT_EQ(count("SELECT count(*) FROM pg_tables WHERE tablename = 'half'"), 0);
}

TEST_F(MigrateTest, DuplicateVersionsAreRefused) {
  write("0002_other.sql", "SELECT 1;");
  auto ms = loadMigrations(dir_.path());
  ASSERT_FALSE(ms.has_value());
  EXPECT_EQ(ms.error().code(), errc::kMigrationDuplicate);
}

TEST_F(MigrateTest, ConcurrentRunnersApplyEachMigrationOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> applied{0};
  std::atomic<int> failures{0};
  threads.reserve(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      auto c = Connection::connect(conninfo());
      if (!c) {
        ++failures;
        return;
      }
      auto r = run(*c);
      if (!r) {
        ++failures;
        return;
      }
      applied += static_cast<int>(r->applied.size());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(applied, 2);
  EXPECT_EQ(count("SELECT count(*) FROM schema_migrations"), 2);
}

}  // namespace
}  // namespace plfm::pg
