// CpTest::dumpViews, shared by the store and API test binaries.
#include "cp_test_support.h"
#include "projections.h"

namespace plfm::cp::testsupport {

std::string CpTest::dumpViews(pg::Connection& conn) {
  std::string out;
  for (const auto& table : Projector::viewTables()) {
    auto rs = conn.exec("SELECT t::text FROM " + table + " t ORDER BY 1");
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    out += "== " + table + "\n";
    for (int i = 0; rs && i < rs->rows(); ++i) {
      out += std::string(rs->text(i, 0)) + "\n";
    }
  }
  return out;
}

void CpTest::expectReplayAndRebuildIdentical(pg::Connection& conn) {
  const std::string before = dumpViews(conn);
  auto events = EventStore::readAfter(conn, 0, 1000);
  ASSERT_TRUE(events.has_value());
  auto tx = pg::Transaction::begin(conn);
  ASSERT_TRUE(tx.has_value());
  for (const auto& e : *events) ASSERT_TRUE(Projector::apply(*tx, e).has_value()) << e.event_type;
  ASSERT_TRUE(tx->commit().has_value());
  EXPECT_EQ(dumpViews(conn), before);
  ASSERT_TRUE(rebuildViews(conn).has_value());
  EXPECT_EQ(dumpViews(conn), before);
}

}  // namespace plfm::cp::testsupport
