// `vt routes` end to end: the real vt binary against a real control plane on
// a real PostgreSQL. The transcript (receipts, tables, JSON, errors and exit
// codes) is a golden file.
#include <gtest/gtest.h>

#include "plfm/testing/pg_cluster.h"
#include "vt_harness.h"

namespace plfm::vt {
namespace {

using plfm::testing::TempDir;
using testing::Transcript;

TEST(VtRoutesTest, AddListGetRmMatchGoldenTranscript) {
  auto cluster = plfm::testing::PgCluster::shared();
  ASSERT_TRUE(cluster) << cluster.error().toString();
  auto db = (*cluster)->createDatabase();
  ASSERT_TRUE(db) << db.error().toString();
  TempDir state("vt-routes");
  const auto cp = testing::startControlPlane((*cluster)->conninfo(*db), state);
  TempDir config("vt-config");
  testing::Normalizer norm;
  norm.literal(cp.url, "<url>");
  norm.literal(config.path(), "<config>");
  Transcript t(config.path(), norm);

  ASSERT_EQ(t.run({"login", "--url", cp.url}, cp.admin_token + "\n").code, 0);
  ASSERT_EQ(t.run({"orgs", "create", "acme", "-q"}).code, 0);
  ASSERT_EQ(t.run({"context", "use", "--org", "acme", "-q"}).code, 0);
  ASSERT_EQ(t.run({"apps", "create", "shop", "-q"}).code, 0);
  ASSERT_EQ(t.run({"envs", "create", "prod", "--app", "shop", "-q"}).code, 0);
  const std::vector<std::string> scope = {"--app", "shop", "--env", "prod"};
  auto in = [&](std::vector<std::string> args) {
    args.insert(args.end(), scope.begin(), scope.end());
    return args;
  };

  EXPECT_EQ(t.run(in({"routes", "list", "--format", "table"})).code, 0);
  EXPECT_EQ(
      t.run(in({"routes", "add", "Shop.Example.com.", "--port", "8443", "--format", "table"})).code,
      0);
  EXPECT_EQ(t.run(in({"routes", "add", "*.example.com", "--process", "web", "--port", "8443",
                      "--proxy-protocol", "v2", "--format", "json"}))
                .code,
            0);
  EXPECT_EQ(t.run(in({"routes", "add", "--tcp", "--listener-port", "5432", "--process", "db",
                      "--port", "5432", "-q"}))
                .code,
            0);
  // A taken name (any spelling), a bad name, and usage errors.
  EXPECT_EQ(t.run(in({"routes", "add", "SHOP.example.com", "--port", "9000"})).code, 4);
  EXPECT_EQ(t.run(in({"routes", "add", "bad..name", "--port", "9000"})).code, 1);
  EXPECT_EQ(t.run(in({"routes", "add", "--tcp", "--port", "1"})).code, 2);
  EXPECT_EQ(t.run(in({"routes", "add", "a.example.com"})).code, 2);

  EXPECT_EQ(t.run(in({"routes", "list", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "list", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "get", "shop.example.com", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "get", "tcp:5432", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "rm", "shop.example.com", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "get", "shop.example.com"})).code, 1);
  EXPECT_EQ(t.run(in({"routes", "rm", "*.example.com", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"routes", "list", "--format", "table"})).code, 0);
  PLFM_EXPECT_GOLDEN("golden/routes.txt", t.text());
}

}  // namespace
}  // namespace plfm::vt
