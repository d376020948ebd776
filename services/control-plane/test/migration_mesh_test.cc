// Migration 0019 on a database that already has orgs and nodes: every org
// gets a network tag in creation order (the seq of its org.created), the
// sequence goes on from there, and existing nodes get the mesh columns with
// a mesh_seq from their membership events (docs/specs/networking/mesh.md).
#include <gtest/gtest.h>

#include "event_store.h"
#include "plfm/core/clock.h"
#include "plfm/pg/migrate.h"
#include "plfm/testing/pg_test.h"

namespace plfm::cp {
namespace {

class MigrationMeshTest : public plfm::testing::PgTest {};  // an empty database

TEST_F(MigrationMeshTest, TagsEveryOrgInCreationOrderAndNumbersTheNodesMesh) {
  auto all = pg::loadMigrations(std::string(PLFM_TEST_DIR) + "/migrations");
  ASSERT_TRUE(all.has_value()) << all.error().toString();
  std::vector<pg::Migration> before;
  for (const auto& m : *all) {
    if (m.version < 19) before.push_back(m);
  }
  auto conn = connect();
  ASSERT_TRUE(pg::migrate(conn, before).has_value());

  // org_z before org_a; a node enrolled, then down and back (into and out
  // of down), then merely unreachable (no mesh change).
  RealClock clock;
  EventStore store(clock);
  auto append = [&](const std::vector<NewEvent>& evs) {
    auto tx = pg::Transaction::begin(conn);
    ASSERT_TRUE(tx.has_value());
    ASSERT_TRUE(store.append(*tx, {"usr_test", "req_test"}, evs).has_value());
    ASSERT_TRUE(tx->commit().has_value());
  };
  const std::string down = R"({"node_id":"node_1","from":"active","to":"down","reason":"x"})";
  const std::string back = R"({"node_id":"node_1","from":"down","to":"active","reason":"x"})";
  const std::string away =
      R"({"node_id":"node_1","from":"active","to":"unreachable","reason":"x"})";
  append({NewEvent{"org", "org_z", 1, "org.created", 1, "org_z", R"({"org_id":"org_z"})"},
          NewEvent{"org", "org_a", 1, "org.created", 1, "org_a", R"({"org_id":"org_a"})"},
          NewEvent{"node", "node_1", 1, "node.enrolled", 1, "", R"({"node_id":"node_1"})"},
          NewEvent{"node", "node_1", 2, "node.state_changed", 1, "", down},
          NewEvent{"node", "node_1", 3, "node.state_changed", 1, "", back},
          NewEvent{"node", "node_1", 4, "node.state_changed", 1, "", away}});
  ASSERT_TRUE(conn.exec("INSERT INTO nodes_view (node_id, hostname, state, cores, memory_mb, "
                        "ipv6_prefix, version, created_at, updated_at) VALUES ('node_1', 'n1', "
                        "'unreachable', 4, 4096, 'fd7a:5c00:0:1::/64', 4, now(), now())")
                  .has_value());

  ASSERT_TRUE(pg::migrate(conn, *all).has_value());
  auto q = [&](const std::string& sql) {
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  };
  EXPECT_EQ(q("SELECT string_agg(org_id || '=' || net_tag, ',' ORDER BY net_tag) FROM "
              "org_net_tags"),
            "org_z=1,org_a=2");
  EXPECT_EQ(q("INSERT INTO org_net_tags (org_id) VALUES ('org_new') RETURNING net_tag"), "3");
  EXPECT_EQ(q("SELECT mesh_port || ' ' || role || ' ' || (mesh_seq = (SELECT seq FROM events "
              "WHERE aggregate_id = 'node_1' AND aggregate_seq = 3)) FROM nodes_view"),
            "51820 worker true");
  // A tag is unique and in range.
  EXPECT_FALSE(conn.exec("INSERT INTO org_net_tags VALUES ('org_b', 1)").has_value());
  EXPECT_FALSE(conn.exec("INSERT INTO org_net_tags VALUES ('org_c', 4294967295)").has_value());
}

// Migration 0022 (mesh.md, "Contract for key rotation"): an existing node's
// key dates from its enrollment (created_at), nothing is staged or asked.
TEST_F(MigrationMeshTest, ExistingNodesKeysDateFromTheirEnrollment) {
  auto all = pg::loadMigrations(std::string(PLFM_TEST_DIR) + "/migrations");
  ASSERT_TRUE(all.has_value()) << all.error().toString();
  std::vector<pg::Migration> before;
  for (const auto& m : *all) {
    if (m.version < 22) before.push_back(m);
  }
  auto conn = connect();
  ASSERT_TRUE(pg::migrate(conn, before).has_value());
  ASSERT_TRUE(conn.exec("INSERT INTO nodes_view (node_id, hostname, state, cores, memory_mb, "
                        "ipv6_prefix, version, created_at, updated_at) VALUES ('node_1', 'n1', "
                        "'active', 4, 4096, 'fd7a:5c00:0:1::/64', 1, "
                        "'2026-01-02T03:04:05Z', now())")
                  .has_value());
  ASSERT_TRUE(pg::migrate(conn, *all).has_value());
  auto rs = conn.exec(
      "SELECT (mesh_key_since = '2026-01-02T03:04:05Z'::timestamptz) || ' ' || "
      "coalesce(next_wireguard_public_key, '-') || ' ' || coalesce(next_mesh_port, 0) || ' ' || "
      "mesh_rotation_requested FROM nodes_view");
  ASSERT_TRUE(rs.has_value()) << rs.error().toString();
  EXPECT_EQ(rs->text(0, 0), "true - 0 false");
}

}  // namespace
}  // namespace plfm::cp
