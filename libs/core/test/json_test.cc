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

TEST(JsonTest, DepthLimitHoldsBeforeAnyRecursion) {
  // 800 KB of '[' overflowed the stack of whoever copied or dumped it.
  const std::string deep(size_t{800} * 1024, '[');
  auto r = parse(deep);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), "invalid_argument");
  EXPECT_EQ(r.error().detail("reason"), kTooDeep);
  EXPECT_EQ(r.error().detail("offset"), "64");
  // Exactly the limit parses; one more does not.
  const std::string at64 = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(parse(at64).has_value());
  const std::string at65 = std::string(65, '[') + std::string(65, ']');
  EXPECT_EQ(parse(at65).error().detail("reason"), kTooDeep);
  EXPECT_TRUE(parse(at65, Limits{65, 100}).has_value());
  // Objects count as levels too.
  std::string objs;
  for (int i = 0; i < 65; ++i) objs += R"({"a":)";
  objs += "1" + std::string(65, '}');
  EXPECT_EQ(parse(objs).error().detail("reason"), kTooDeep);
}

TEST(JsonTest, BracketsInsideStringsDoNotCount) {
  const std::string text = R"({"s":")" + std::string(1000, '[') + R"(\"[,,,,\\"})";
  auto r = parse(text, Limits{2, 3});
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ((*r)["s"].get<std::string>().size(), 1000U + 7U);
}

TEST(JsonTest, ElementLimitBoundsWideDocuments) {
  std::string wide = "[0";
  for (int i = 0; i < 100; ++i) wide += ",0";
  wide += "]";
  EXPECT_TRUE(parse(wide, Limits{64, 200}).has_value());
  auto r = parse(wide, Limits{64, 50});
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().detail("reason"), kTooManyElements);
  EXPECT_TRUE(checkLimits(wide, kRequestLimits).has_value());
  std::string objects = "[{}";
  for (int i = 0; i < 30; ++i) objects += ",{}";
  objects += "]";
  EXPECT_EQ(parse(objects, Limits{64, 40}).error().detail("reason"), kTooManyElements);
}

TEST(JsonTest, MalformedNamesTheReason) {
  for (std::string_view bad : {"", "[", "]]]]", "{\"a\"}", "[1,]", "\"\xff\"", "nul"}) {
    auto r = parse(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().detail("reason"), kMalformed) << bad;
  }
}

}  // namespace
}  // namespace plfm::json
