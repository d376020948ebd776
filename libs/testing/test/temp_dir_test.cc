#include "plfm/testing/temp_dir.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace plfm::testing {
namespace {

TEST(TempDirTest, CreatesAndRemoves) {
  std::string path;
  {
    TempDir d("plfm-td");
    path = d.path();
    EXPECT_TRUE(std::filesystem::is_directory(path));
    std::ofstream(d.file("x")) << "data";
    std::filesystem::create_directories(d.file("a/b"));
    EXPECT_LT(d.file("s/.s.PGSQL.5432").size(), 108U);
  }
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(TempDirTest, FreePortIsBindable) {
  int p = freeTcpPort();
  EXPECT_GT(p, 0);
  EXPECT_LT(p, 65536);
}

TEST(GoldenTest, MatchesCommittedFile) {
  PLFM_EXPECT_GOLDEN("golden/example.txt", "line one\nline two\n");
}

TEST(GoldenTest, MismatchNamesTheFirstDifferingLine) {
  EXPECT_NONFATAL_FAILURE(PLFM_EXPECT_GOLDEN("golden/example.txt", "line one\nline 2\n"),
                          "at line 2");
}

TEST(GoldenTest, MissingFileSaysHowToCreateIt) {
  EXPECT_NONFATAL_FAILURE(PLFM_EXPECT_GOLDEN("golden/does-not-exist.txt", "x"),
                          "PLFM_UPDATE_GOLDEN=1");
}

}  // namespace
}  // namespace plfm::testing
