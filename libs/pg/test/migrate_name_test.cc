#include <gtest/gtest.h>

#include "plfm/pg/migrate.h"

namespace plfm::pg {
namespace {

TEST(MigrationNameTest, AcceptsNumberedSnakeCaseNames) {
  auto m = makeMigration("0007_add_views.sql", "SELECT 1;");
  ASSERT_TRUE(m.has_value()) << m.error().toString();
  EXPECT_EQ(m->version, 7);
  EXPECT_EQ(m->name, "0007_add_views.sql");
  EXPECT_EQ(m->checksum.size(), 64U);
}

class BadMigrationName : public ::testing::TestWithParam<std::pair<const char*, const char*>> {};

TEST_P(BadMigrationName, IsRefusedWithTheReason) {
  auto m = makeMigration(GetParam().first, "SELECT 1;");
  ASSERT_FALSE(m.has_value());
  EXPECT_EQ(m.error().code(), errc::kMigrationBadName);
  EXPECT_NE(m.error().message().find(GetParam().second), std::string::npos) << m.error().message();
  EXPECT_NE(m.error().message().find("expected NNNN_description.sql"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Cases, BadMigrationName,
                         ::testing::Values(std::make_pair("0001_init.txt", "does not end in .sql"),
                                           std::make_pair("init.sql", "has no version prefix"),
                                           std::make_pair("_init.sql", "has no version prefix"),
                                           std::make_pair("00a1_init.sql", "non-numeric version"),
                                           std::make_pair("0000_init.sql", "version 0"),
                                           std::make_pair("0001_.sql", "has no description"),
                                           std::make_pair("0001_Init.sql", "outside [a-z0-9_]"),
                                           std::make_pair("1234567_x.sql", "above 999999")));

}  // namespace
}  // namespace plfm::pg
