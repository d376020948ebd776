// PgTest: a GoogleTest fixture that hands each test a fresh database on the
// shared real PostgreSQL cluster.
//
//   class EventStoreTest : public plfm::testing::PgTest {
//     std::string templateDatabase() override { return migratedTemplate(kMigrationsDir); }
//   };
//   TEST_F(EventStoreTest, Appends) { auto conn = connect(); ... }
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "plfm/pg/pg.h"
#include "plfm/testing/pg_cluster.h"

namespace plfm::testing {

class PgTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // The template each test's database is cloned from. Override to start
  // every test from a migrated schema.
  virtual std::string templateDatabase() { return "template1"; }

  // The cluster the test's database lives on: the shared one. Override to
  // use one of the fixture's own (e.g. listening on TCP).
  virtual Result<PgCluster*> testCluster() { return PgCluster::shared(); }

  // A template with every migration in `dir` applied, built once per process.
  std::string migratedTemplate(const std::string& dir);

  [[nodiscard]] PgCluster& cluster() { return *cluster_; }
  [[nodiscard]] const std::string& database() const { return database_; }
  [[nodiscard]] std::string conninfo() const { return cluster_->conninfo(database_); }
  // A new connection to this test's database; fails the test on error.
  [[nodiscard]] pg::Connection connect();

 private:
  PgCluster* cluster_ = nullptr;
  std::string database_;
};

}  // namespace plfm::testing
