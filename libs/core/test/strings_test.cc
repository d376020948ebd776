#include "plfm/core/strings.h"

#include <gtest/gtest.h>

namespace plfm {
namespace {

TEST(StringsTest, JsonEscape) {
  EXPECT_EQ(jsonEscape("plain"), "plain");
  EXPECT_EQ(jsonEscape("a\"b\\c\nd\te"), "a\\\"b\\\\c\\nd\\te");
  EXPECT_EQ(jsonEscape(std::string("\x01\x1f", 2)), "\\u0001\\u001f");
  EXPECT_EQ(jsonEscape("héllo"), "héllo");
}

TEST(StringsTest, SplitTrimHex) {
  auto lines = splitLines("a\r\nb\n\nc");
  ASSERT_EQ(lines.size(), 4U);
  EXPECT_EQ(lines[0], "a");
  EXPECT_EQ(lines[2], "");
  EXPECT_EQ(lines[3], "c");
  EXPECT_EQ(trim("  x y \n"), "x y");
  EXPECT_EQ(trim("   "), "");
  EXPECT_EQ(hexEncode(std::string("\x00\xff\x10", 3)), "00ff10");
}

TEST(StringsTest, ClosestMatchSuggestsPlausibleTypos) {
  const std::vector<std::string_view> keys = {"listen", "database", "state_dir", "log_level"};
  EXPECT_EQ(closestMatch("databse", keys), "database");
  EXPECT_EQ(closestMatch("listne", keys), "listen");
  EXPECT_EQ(closestMatch("nmae", {"name", "description"}), "name");
  EXPECT_EQ(closestMatch("loglevel", keys), "log_level");
  EXPECT_EQ(closestMatch("colour", keys), std::nullopt);
  EXPECT_EQ(closestMatch("x", keys), std::nullopt);
  EXPECT_EQ(closestMatch("anything", {}), std::nullopt);
}

}  // namespace
}  // namespace plfm
