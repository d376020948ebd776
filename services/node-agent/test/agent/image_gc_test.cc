// The agent's image GC policy (agent/image_gc.h): which images each env
// keeps beyond those its instances hold, and the budget's grammar.
#include "agent/image_gc.h"

#include <gtest/gtest.h>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::agent {
namespace {

image::Digest digest(char c) { return *image::Digest::parse("sha256:" + std::string(64, c)); }

const std::string kEnvA = "env_01jd0000000000000000000000";
const std::string kEnvB = "env_01jd0000000000000000000001";

TEST(ImageHistory, KeepsEachEnvsCurrentAndPreviousReleaseAcrossDeploysAndRollbacks) {
  plfm::testing::TempDir dir("ih");
  ImageHistory h(dir.file("history"));
  h.observe({{kEnvA, {digest('1')}}});
  EXPECT_EQ(h.keep(), (std::set<image::Digest>{digest('1')}));
  // A rolling deploy: both in the plan, then only the new one.
  h.observe({{kEnvA, {digest('1'), digest('2')}}});
  h.observe({{kEnvA, {digest('2')}}});
  EXPECT_EQ(h.snapshot().at(kEnvA), (std::vector<image::Digest>{digest('2'), digest('1')}));
  // The next deploy pushes the oldest out.
  h.observe({{kEnvA, {digest('3')}}});
  EXPECT_EQ(h.snapshot().at(kEnvA), (std::vector<image::Digest>{digest('3'), digest('2')}));
  // A rollback to 2 keeps 3 as the previous one.
  h.observe({{kEnvA, {digest('2')}}});
  EXPECT_EQ(h.snapshot().at(kEnvA), (std::vector<image::Digest>{digest('3'), digest('2')}));
  // A rollback to a release already evicted from the history: new again.
  h.observe({{kEnvA, {digest('1')}}});
  EXPECT_EQ(h.snapshot().at(kEnvA), (std::vector<image::Digest>{digest('1'), digest('3')}));
}

TEST(ImageHistory, KeepsEveryDigestThePlanUsesAndForgetsEnvsThatLeftIt) {
  plfm::testing::TempDir dir("ih");
  ImageHistory h(dir.file("history"));
  h.observe({{kEnvA, {digest('1')}}, {kEnvB, {digest('4')}}});
  h.observe({{kEnvA, {digest('2')}}, {kEnvB, {digest('4')}}});
  // Three at once (two processes on different images during a deploy).
  h.observe({{kEnvA, {digest('1'), digest('2'), digest('3')}}, {kEnvB, {digest('4')}}});
  EXPECT_EQ(h.snapshot().at(kEnvA).size(), 3U);
  h.observe({{kEnvA, {digest('3')}}});
  EXPECT_EQ(h.keep().count(digest('4')), 0U) << "env B left the plan";
  EXPECT_EQ(h.snapshot().count(kEnvB), 0U);
}

TEST(ImageHistory, SurvivesARestartAndDropsLinesThatDoNotParse) {
  plfm::testing::TempDir dir("ih");
  {
    ImageHistory h(dir.file("history"));
    h.observe({{kEnvA, {digest('1')}}});
    h.observe({{kEnvA, {digest('2')}}});
  }
  auto text = readFile(dir.file("history"));
  ASSERT_TRUE(text);
  ASSERT_TRUE(writeFileAtomic(dir.file("history"), *text + "../etc sha256:" + std::string(64, '9') +
                                                       "\n" + kEnvB + " sha256:short\n" + kEnvB +
                                                       "\n"));
  ImageHistory again(dir.file("history"));
  EXPECT_EQ(again.keep(), (std::set<image::Digest>{digest('1'), digest('2')}));
  EXPECT_EQ(again.snapshot().size(), 1U);
}

TEST(ImageBudget, AcceptsSizesAndSharesAndNamesTheFlagOtherwise) {
  const uint64_t fs = uint64_t{100} << 30;
  EXPECT_EQ(*parseImageBudget("50%", fs), uint64_t{50} << 30);
  EXPECT_EQ(*parseImageBudget("100%", fs), fs);
  EXPECT_EQ(*parseImageBudget("20GiB", fs), uint64_t{20} << 30);
  EXPECT_EQ(*parseImageBudget("512M", fs), uint64_t{512} << 20);
  EXPECT_EQ(*parseImageBudget("1", fs), 1U);
  EXPECT_EQ(*parseImageBudget("2TiB", fs), uint64_t{2} << 40);
  for (const char* bad : {"", "0%", "101%", "-1", "1.5GiB", "GiB", "1 GiB", "1gib", "50%%",
                          "99999999999999999999", "16777216TiB"}) {
    auto r = parseImageBudget(bad, fs);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().detail("field"), "image-cache-budget") << bad;
  }
  auto unknown = parseImageBudget("50%", 0);
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message().find("as a size"), std::string::npos);
}

}  // namespace
}  // namespace plfm::agent
