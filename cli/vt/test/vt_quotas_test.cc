// `vt orgs quotas` and `vt orgs set-quotas` end to end: the real vt binary
// against a real control plane on a real PostgreSQL. Limits and use in a
// table and in JSON, an admin's override with its receipt, bad flags
// refused before any request, and a scale over the limit refused with the
// quota named. The transcript is a golden file.
#include <gtest/gtest.h>

#include "vt_harness.h"

namespace plfm::vt {
namespace {

using testing::VtResult;

class VtQuotasTest : public testing::SuiteTest {};

TEST_F(VtQuotasTest, ShowSetAndExceedMatchGoldenTranscript) {
  testing::AdminSession session(*cp_);
  ASSERT_EQ(session.login_code, 0);
  testing::Transcript& t = session.t;
  ASSERT_EQ(t.run({"orgs", "create", "quota-co", "--format", "json"}).code, 0);
  EXPECT_EQ(t.run({"orgs", "quotas", "--org", "quota-co", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"orgs", "set-quotas", "--org", "quota-co", "--instances", "2", "--routes", "5",
                   "--format", "json"})
                .code,
            0);
  // Unnamed limits keep their override; `default` drops one.
  EXPECT_EQ(
      t.run({"orgs", "set-quotas", "--org", "quota-co", "--routes", "default", "--format", "table"})
          .code,
      0);
  EXPECT_EQ(t.run({"orgs", "set-quotas", "--org", "quota-co", "--instances", "-1"}).code, 2);
  EXPECT_EQ(t.run({"orgs", "set-quotas", "--org", "quota-co"}).code, 2);
  ASSERT_EQ(t.run({"apps", "create", "shop", "--org", "quota-co", "--format", "json"}).code, 0);
  ASSERT_EQ(
      t.run({"envs", "create", "prod", "--org", "quota-co", "--app", "shop", "--format", "json"})
          .code,
      0);
  EXPECT_EQ(t.run({"scale", "set", "web=2", "--org", "quota-co", "--app", "shop", "--env", "prod",
                   "--format", "json"})
                .code,
            0);
  VtResult over = t.run({"scale", "set", "web=3", "--org", "quota-co", "--app", "shop", "--env",
                         "prod", "--format", "table"});
  EXPECT_NE(over.code, 0);
  EXPECT_NE((over.out + over.err).find("quota 'instances' exceeded"), std::string::npos)
      << over.out << over.err;
  EXPECT_EQ(t.run({"orgs", "quotas", "--org", "quota-co", "--format", "json"}).code, 0);
  PLFM_EXPECT_GOLDEN("golden/quotas.txt", t.text());
}

}  // namespace
}  // namespace plfm::vt
