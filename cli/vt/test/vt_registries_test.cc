// `vt registries` end to end: the real vt binary against a real control
// plane (with a master key) on a real PostgreSQL. login reads the secret
// from stdin (never argv), list shows hosts and usernames, rm removes; the
// transcript is a golden file in table and JSON form, and the secrets are
// canaries that must appear in no output of vt, nor in the control plane's
// log or state dir, nor in vt's config dir.
#include <gtest/gtest.h>

#include "plfm/testing/leak_scan.h"
#include "vt_harness.h"

namespace plfm::vt {
namespace {

using plfm::testing::TempDir;
using testing::runVt;
using testing::Transcript;
using testing::VtResult;

using VtRegistriesTest = testing::SecretsSuiteTest;

TEST_F(VtRegistriesTest, LoginListRmMatchGoldenAndNoSecretLeaks) {
  TempDir config("vt-config");
  plfm::testing::LeakScanner scan;
  testing::Normalizer norm;
  norm.literal(cp_->url, "<url>");
  norm.literal(config.path(), "<config>");
  const std::string first = scan.addCanary("FIRST");
  const std::string second = scan.addCanary("SECOND");
  Transcript t(config.path(), norm);
  auto run = [&](const std::vector<std::string>& args, const std::string& in = "") {
    VtResult r = t.run(args, in);
    scan.scanText("vt stdout", r.out);
    scan.scanText("vt stderr", r.err);
    return r;
  };

  ASSERT_EQ(run({"login", "--url", cp_->url}, cp_->admin_token + "\n").code, 0);
  ASSERT_EQ(run({"orgs", "create", "acme", "--format", "json"}).code, 0);
  ASSERT_EQ(run({"context", "use", "--org", "acme", "--format", "json"}).code, 0);
  EXPECT_EQ(run({"registries", "list", "--format", "table"}).code, 0);
  // The secret comes from stdin (a pipe here; a hidden prompt on a terminal).
  EXPECT_EQ(run({"registries", "login", "ghcr.io", "--username", "octocat", "--format", "table"},
                first + "\n")
                .code,
            0);
  EXPECT_EQ(run({"registries", "login", "Registry.Example.com:5000", "-u", "deploy-bot", "--format",
                 "json"},
                first)
                .code,
            0);
  // A replacement: same id, next version.
  EXPECT_EQ(
      run({"registries", "login", "ghcr.io", "-u", "octocat-2", "--format", "table"}, second + "\n")
          .code,
      0);
  EXPECT_EQ(run({"registries", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(run({"registries", "list", "--format", "json"}).code, 0);
  // Usage errors: no username, a URL for a host, no secret; the server's
  // refusal names the field.
  EXPECT_EQ(run({"registries", "login", "ghcr.io"}, second).code, 2);
  EXPECT_EQ(run({"registries", "login", "https://ghcr.io", "-u", "x"}, second).code, 2);
  EXPECT_EQ(run({"registries", "login", "ghcr.io", "-u", "x"}, "").code, 2);
  EXPECT_EQ(run({"registries", "login", "ghcr.io:99999", "-u", "x"}, second).code, 1);
  EXPECT_EQ(run({"registries", "rm", "ghcr.io", "--format", "table"}).code, 0);
  EXPECT_EQ(run({"registries", "rm", "ghcr.io", "--format", "table"}).code, 1);
  EXPECT_EQ(run({"registries", "list", "--format", "table"}).code, 0);
  PLFM_EXPECT_GOLDEN("golden/registries.txt", t.text());

  scan.scanDir(config.path());
  scan.scanDir(state_->path());
  scan.expectClean();
}

}  // namespace
}  // namespace plfm::vt
