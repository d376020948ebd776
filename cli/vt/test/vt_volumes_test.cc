// `vt volumes` end to end: the real vt binary against a real control plane on
// a real PostgreSQL. The transcript (receipts, tables, JSON, errors and exit
// codes) is a golden file.
#include <gtest/gtest.h>

#include "vt_harness.h"

namespace plfm::vt {
namespace {

using testing::Transcript;

class VtVolumesTest : public testing::AcmeOrgTest {};

TEST_F(VtVolumesTest, CreateListGetExtendRmMatchGoldenTranscript) {
  Transcript& t = t_;
  ASSERT_EQ(t.run({"apps", "create", "shop", "-q"}).code, 0);
  ASSERT_EQ(t.run({"envs", "create", "prod", "--app", "shop", "-q"}).code, 0);
  const std::vector<std::string> scope = {"--app", "shop", "--env", "prod"};
  auto in = [&](std::vector<std::string> args) {
    args.insert(args.end(), scope.begin(), scope.end());
    return args;
  };

  EXPECT_EQ(t.run(in({"volumes", "list", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "create", "uploads", "--process", "web", "--size", "10GiB",
                      "--format", "table"}))
                .code,
            0);
  EXPECT_EQ(t.run(in({"volumes", "create", "uploads", "--process", "web", "--slot", "1", "--size",
                      "1GiB", "--format", "json"}))
                .code,
            0);
  EXPECT_EQ(
      t.run(in({"volumes", "create", "cache", "--process", "worker", "--size", "512MiB", "-q"}))
          .code,
      0);
  // Taken, out of range, bad grammar, and usage errors.
  EXPECT_EQ(t.run(in({"volumes", "create", "uploads", "--process", "web", "--size", "2GiB"})).code,
            4);
  EXPECT_EQ(t.run(in({"volumes", "create", "tiny", "--process", "web", "--size", "1MiB"})).code, 1);
  EXPECT_EQ(t.run(in({"volumes", "create", "Bad_Name", "--process", "web", "--size", "1GiB"})).code,
            1);
  EXPECT_EQ(t.run(in({"volumes", "create", "data", "--process", "web", "--size", "10GB"})).code, 2);
  EXPECT_EQ(t.run(in({"volumes", "create", "data", "--size", "1GiB"})).code, 2);

  EXPECT_EQ(t.run(in({"volumes", "list", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "list", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "get", "uploads-0", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "get", "uploads"})).code, 1);
  EXPECT_EQ(
      t.run(in({"volumes", "extend", "uploads-0", "--size", "20GiB", "--format", "table"})).code,
      0);
  EXPECT_EQ(t.run(in({"volumes", "extend", "uploads-0", "--size", "20GiB"})).code, 1);
  EXPECT_EQ(t.run(in({"volumes", "rm", "uploads-1", "--format", "table"})).code, 2);
  EXPECT_EQ(t.run(in({"volumes", "rm", "uploads-1", "--yes", "--format", "table"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "rm", "cache-0", "--yes", "--format", "json"})).code, 0);
  EXPECT_EQ(t.run(in({"volumes", "get", "uploads-1"})).code, 1);
  EXPECT_EQ(t.run(in({"volumes", "list", "--format", "table"})).code, 0);
  PLFM_EXPECT_GOLDEN("golden/volumes.txt", t.text());
}

}  // namespace
}  // namespace plfm::vt
