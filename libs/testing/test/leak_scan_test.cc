// LeakScanner finds a canary in each form it takes (raw, JSON-escaped, its
// random core inside other escaping), in texts and in files of a tree, and
// reports where by label without printing the value.
#include "plfm/testing/leak_scan.h"

#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "plfm/core/json.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::testing {
namespace {

TEST(LeakScannerTest, FindsEveryFormAndNamesThePlace) {
  LeakScanner scan;
  const std::string v = scan.addCanary("TOKEN");
  EXPECT_NE(v.find("TOKEN"), std::string::npos);
  EXPECT_NE(v, scan.addCanary("OTHER"));
  scan.scanText("clean", "nothing here");
  scan.scanText("raw", "x" + v + "y");
  scan.scanText("json", json::dump(json::Json{{"v", v}}));
  // The secrets file escapes quotes and '$'; the random core still shows.
  std::string escaped;
  for (char c : v) {
    if (c == '"' || c == '$' || c == '\\') escaped += '\\';
    escaped += c;
  }
  scan.scanText("escaped", escaped);
  ASSERT_EQ(scan.findings().size(), 3U);
  EXPECT_EQ(scan.findings()[0].where, "raw");
  EXPECT_EQ(scan.findings()[1].where, "json");
  EXPECT_EQ(scan.findings()[2].where, "escaped");
  EXPECT_EQ(scan.findings()[0].label, "TOKEN");
  EXPECT_EQ(scan.scanned(), 4);
}

TEST(LeakScannerTest, ScansTreesIncludingBinaryFilesAndFailsPerFinding) {
  TempDir dir("leak");
  LeakScanner scan;
  const std::string v = scan.addCanary("K");
  std::filesystem::create_directories(dir.file("a/b"));
  std::ofstream(dir.file("a/b/blob"), std::ios::binary) << std::string("\0\1", 2) << v << '\0';
  std::ofstream(dir.file("a/clean.log")) << "ok\n";
  scan.scanDir(dir.path());
  ASSERT_EQ(scan.findings().size(), 1U);
  EXPECT_EQ(scan.findings()[0].where, "file " + dir.file("a/b/blob"));
  EXPECT_NONFATAL_FAILURE(scan.expectClean(), "canary K leaked into file");
}

}  // namespace
}  // namespace plfm::testing
