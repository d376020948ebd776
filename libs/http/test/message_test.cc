#include <gtest/gtest.h>

#include "plfm/http/http.h"

namespace plfm::http {
namespace {

TEST(PercentDecodeTest, DecodesEscapes) {
  EXPECT_EQ(percentDecode("a%20b%2Fc%41", false).value(), "a b/cA");
  EXPECT_EQ(percentDecode("%e2%82%AC", false).value(), "\xe2\x82\xac");
  EXPECT_EQ(percentDecode("", false).value(), "");
}

TEST(PercentDecodeTest, PlusIsSpaceOnlyWhenAsked) {
  EXPECT_EQ(percentDecode("a+b%2B", true).value(), "a b+");
  EXPECT_EQ(percentDecode("a+b", false).value(), "a+b");
}

TEST(PercentDecodeTest, RejectsInvalidEscapes) {
  for (const char* bad : {"%", "%4", "a%zz", "%g0", "abc%"}) {
    auto r = percentDecode(bad, false);
    ASSERT_FALSE(r) << bad;
    EXPECT_TRUE(r.error().is(errc::kInvalidArgument)) << bad;
  }
}

TEST(HeadersTest, NamesAreCaseInsensitiveAndFirstWins) {
  Headers h;
  h.add("X-Trace", "one");
  h.add("x-trace", "two");
  EXPECT_EQ(h.get("X-TRACE"), "one");
  EXPECT_EQ(h.get("missing"), std::nullopt);
  h.set("X-TRACE", "three");
  ASSERT_EQ(h.all().size(), 1U);
  EXPECT_EQ(h.get("x-trace"), "three");
}

TEST(ResponseTest, ContentTypes) {
  auto j = Response::json(201, "{}");
  EXPECT_EQ(j.status, 201);
  EXPECT_EQ(j.headers.get("content-type"), "application/json");
  auto t = Response::text(200, "hi");
  EXPECT_EQ(t.headers.get("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(t.body, "hi");
}

TEST(RequestTest, ParamAndQueryAccessors) {
  Request r;
  r.params["id"] = "app_1";
  r.query["limit"] = "5";
  r.headers.add("Accept", "application/json");
  EXPECT_EQ(r.param("id"), "app_1");
  EXPECT_EQ(r.param("nope"), "");
  EXPECT_EQ(r.queryParam("limit"), "5");
  EXPECT_EQ(r.queryParam("nope"), std::nullopt);
  EXPECT_EQ(r.header("accept"), "application/json");
}

}  // namespace
}  // namespace plfm::http
