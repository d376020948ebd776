// `vt domains` end to end: the real vt binary against a real control plane
// whose --dns-resolver is a tiny UDP responder in this test. A domain is
// added (the TXT record to publish is printed), refused while the record is
// missing, verified once it is published, listed and removed. The
// transcript is a golden file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "plfm/testing/dns_server.h"
#include "vt_harness.h"

namespace plfm::vt {
namespace {

using plfm::testing::TempDir;
using testing::Transcript;
using testing::VtResult;

class VtDomainsTest : public testing::AcmeOrgTest {
 protected:
  [[nodiscard]] std::vector<std::string> controlPlaneEnv() const override {
    return {"PLFM_CP_DNS_RESOLVER=" + dns_.address()};
  }

  plfm::testing::DnsServer dns_;
};

TEST_F(VtDomainsTest, AddVerifyListRmMatchGoldenTranscript) {
  Transcript& t = t_;
  EXPECT_EQ(t.run({"domains", "list", "--format", "table"}).code, 0);
  VtResult added = t.run({"domains", "add", "Example.COM", "--format", "table"});
  ASSERT_EQ(added.code, 0) << added.err;
  EXPECT_EQ(t.run({"domains", "add", "shop.example.org", "--format", "json"}).code, 0);
  // Bad names and public suffixes are refused before anything is stored.
  EXPECT_EQ(t.run({"domains", "add", "co.uk"}).code, 1);
  EXPECT_EQ(t.run({"domains", "add", "*.example.com"}).code, 1);
  EXPECT_EQ(t.run({"domains", "add"}).code, 2);

  // No record yet: refused with what to do.
  VtResult early = t.run({"domains", "verify", "example.com"});
  EXPECT_NE(early.code, 0);
  EXPECT_NE(early.err.find("_plfm-challenge.example.com"), std::string::npos) << early.err;

  auto list = testing::runVt({"domains", "list", "--format", "json"}, config_.path());
  ASSERT_EQ(list.code, 0) << list.err;
  auto items = nlohmann::json::parse(list.out)["items"];
  ASSERT_EQ(items.size(), 2U) << list.out;
  std::string challenge;
  for (const auto& d : items) {
    if (d["domain"] == "example.com") challenge = d["challenge_value"];
  }
  dns_.setTxt("_plfm-challenge.example.com", {challenge});
  EXPECT_EQ(t.run({"domains", "verify", "example.com.", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"domains", "verify", "example.com", "--format", "json"}).code, 0);
  EXPECT_EQ(t.run({"domains", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"domains", "rm", "shop.example.org", "--format", "table"}).code, 0);
  EXPECT_EQ(t.run({"domains", "rm", "shop.example.org"}).code, 1);
  EXPECT_EQ(t.run({"domains", "list", "--format", "json"}).code, 0);
  PLFM_EXPECT_GOLDEN("golden/domains.txt", t.text());
}

}  // namespace
}  // namespace plfm::vt
