// Which server errors end a session (pg::endsSession): after them pools and
// workers replace the connection, which is how the control plane follows a
// PostgreSQL failover (docs/specs/control-plane/ha.md).
#include <gtest/gtest.h>

#include "plfm/pg/sqlstate.h"

namespace plfm::pg {
namespace {

TEST(SqlStateTest, ReadOnlyShutdownAndLinkErrorsEndTheSession) {
  for (const char* s : {"25006", "57P01", "57P02", "57P03", "08006", "08001", "08P01"}) {
    EXPECT_TRUE(endsSession(s)) << s;
  }
}

TEST(SqlStateTest, OtherErrorsKeepTheSession) {
  for (const char* s : {"", "40001", "40P01", "23505", "57014", "25P02", "25001", "P0001", "0"}) {
    EXPECT_FALSE(endsSession(s)) << s;
  }
}

}  // namespace
}  // namespace plfm::pg
