// `vt tokens` end to end: the real vt binary against a real control plane on
// a real PostgreSQL. A created token works until it is revoked, and then the
// next command is refused. The transcript is a golden file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "vt_harness.h"

namespace plfm::vt {
namespace {

using plfm::testing::TempDir;
using testing::runVt;
using testing::Transcript;
using testing::VtResult;

class VtTokensTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    suite_ = new testing::SuiteControlPlane(testing::startSuiteControlPlane());
    cp_ = suite_->cp.get();
  }
  static void TearDownTestSuite() { delete suite_; }

  static inline testing::SuiteControlPlane* suite_ = nullptr;
  static inline testing::ControlPlaneProcess* cp_ = nullptr;
};

TEST_F(VtTokensTest, ListCreateRevokeMatchGoldenTranscript) {
  TempDir config("vt-config");
  testing::Normalizer norm;
  norm.literal(cp_->url, "<url>");
  norm.literal(config.path(), "<config>");
  Transcript t(config.path(), norm);

  ASSERT_EQ(t.run({"login", "--url", cp_->url}, cp_->admin_token + "\n").code, 0);
  EXPECT_EQ(t.run({"tokens", "list", "--format", "table"}).code, 0);
  VtResult created =
      t.run({"tokens", "create", "--description", "ci", "--ttl", "1h", "--format", "table"});
  ASSERT_EQ(created.code, 0) << created.err;
  VtResult json_created = t.run({"tokens", "create", "--format", "json"});
  ASSERT_EQ(json_created.code, 0) << json_created.err;
  VtResult quiet = t.run({"tokens", "create", "--ttl", "30d", "-q"});
  ASSERT_EQ(quiet.code, 0) << quiet.err;
  EXPECT_EQ(std::string(quiet.out.substr(0, 3)), "vt_");
  EXPECT_EQ(t.run({"tokens", "create", "--ttl", "400d"}).code, 2);
  EXPECT_EQ(t.run({"tokens", "revoke", "not-an-id"}).code, 2);

  std::smatch m;
  ASSERT_TRUE(std::regex_search(created.out, m, std::regex(R"(token: (vt_[a-z2-7]{52}))")))
      << created.out;
  const std::string token = m[1].str();
  ASSERT_TRUE(std::regex_search(created.out, m, std::regex(R"(Created token (tok_[0-9a-z]{26}))")))
      << created.out;
  const std::string id = m[1].str();
  // The new token works, until it is revoked.
  EXPECT_EQ(runVt({"whoami"}, config.path(), {"VT_TOKEN=" + token}).code, 0);
  EXPECT_EQ(t.run({"tokens", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"tokens", "revoke", id, "--format", "table"}).code, 0);
  VtResult refused = runVt({"whoami"}, config.path(), {"VT_TOKEN=" + token});
  EXPECT_EQ(refused.code, 5) << refused.out << refused.err;
  t.note("the revoked token is refused: exit " + std::to_string(refused.code));
  EXPECT_EQ(t.run({"tokens", "revoke", id, "--format", "json"}).code, 0);
  EXPECT_EQ(t.run({"tokens", "list", "--format", "json"}).code, 0);
  // No token appears in any list.
  VtResult list = runVt({"tokens", "list", "--format", "json"}, config.path());
  EXPECT_EQ(list.out.find(token), std::string::npos);
  PLFM_EXPECT_GOLDEN("golden/tokens.txt", t.text());
}

}  // namespace
}  // namespace plfm::vt
