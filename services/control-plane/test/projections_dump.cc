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

}  // namespace plfm::cp::testsupport
