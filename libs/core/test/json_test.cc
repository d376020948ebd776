#include "plfm/core/json.h"

#include <gtest/gtest.h>

namespace plfm::json {
namespace {

TEST(JsonTest, ParseReportsOffsetWithoutThrowing) {
  auto ok = parse(R"({"a":1})");
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ((*ok)["a"], 1);
  auto bad = parse(R"({"a":)");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code(), "invalid_argument");
  EXPECT_NE(bad.error().message().find("malformed JSON at byte"), std::string::npos);
}

TEST(JsonTest, AnOverflowingNumberIsAnErrorNotATerminate) {
  // nlohmann throws out_of_range (not parse_error) for a literal no number
  // type holds; image_parsers_fuzz found it escaping as std::terminate.
  auto r = json::parse(std::string(40, '4') + "E0172258667541");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::kInvalidArgument);
  EXPECT_NE(r.error().message().find("malformed JSON"), std::string::npos);
  auto nested = json::parse("{\"a\":[1e99999]}");
  EXPECT_FALSE(nested);
}

TEST(JsonTest, DumpIsSortedAndStable) {
  Json j = {{"zeta", 1}, {"alpha", {{"y", true}, {"b", "x"}}}};
  EXPECT_EQ(dump(j), R"({"alpha":{"b":"x","y":true},"zeta":1})");
}

TEST(JsonTest, FieldReadersNameTheFieldPath) {
  Json j = {{"name", "web"}, {"count", "3"}, {"spec", {{"memory_mb", 512}}}, {"big", 1e30}};
  EXPECT_EQ(*getString(j, "name"), "web");
  auto c = getInt(j, "count");
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().message(), "field 'count' must be an integer");
  EXPECT_EQ(c.error().detail("field"), "count");
  auto spec = getObject(j, "spec");
  ASSERT_TRUE(spec.has_value());
  EXPECT_EQ(*getInt(**spec, "memory_mb", "spec"), 512);
  auto missing = getBool(**spec, "enabled", "spec");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().message(), "field 'spec.enabled' is required");
  EXPECT_FALSE(getInt(j, "big").has_value());
  auto notObj = getString(Json::array(), "x");
  ASSERT_FALSE(notObj.has_value());
  EXPECT_EQ(notObj.error().detail("field"), "body");
}

TEST(JsonTest, RejectUnknownFields) {
  Json j = {{"name", "a"}, {"nmae", "b"}};
  auto r = rejectUnknownFields(j, {"name"});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().detail("field"), "nmae");
  EXPECT_TRUE(rejectUnknownFields(j, {"name", "nmae"}).has_value());
}

TEST(JsonTest, IntegerRange) {
  auto j = parse(R"({"n": 18446744073709551615})");
  ASSERT_TRUE(j.has_value());
  auto n = getInt(*j, "n");
  ASSERT_FALSE(n.has_value());
  EXPECT_NE(n.error().message().find("out of range"), std::string::npos);
}

}  // namespace
}  // namespace plfm::json
