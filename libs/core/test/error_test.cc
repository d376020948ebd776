#include "plfm/core/error.h"

#include <gtest/gtest.h>

#include "plfm/core/assert.h"
#include "plfm/core/result.h"

namespace plfm {
namespace {

Result<int> parsePositive(int v) {
  if (v <= 0) return Error(errc::kInvalidArgument, "must be positive").with("field", "v");
  return v;
}

Result<int> doubled(int v) {
  PLFM_ASSIGN_OR_RETURN(int x, parsePositive(v));
  return x * 2;
}

Result<void> checkAll(int a, int b) {
  PLFM_TRY(parsePositive(a));
  PLFM_TRY(parsePositive(b));
  return ok();
}

TEST(ErrorTest, CarriesCodeMessageAndOrderedDetails) {
  Error e = Error(errc::kNotFound, "app not found").with("app_id", "app_x").with("org", "o");
  EXPECT_EQ(e.code(), "not_found");
  EXPECT_TRUE(e.is(errc::kNotFound));
  EXPECT_EQ(e.message(), "app not found");
  ASSERT_EQ(e.details().size(), 2U);
  EXPECT_EQ(e.details()[0].first, "app_id");
  EXPECT_EQ(e.detail("org"), "o");
  EXPECT_EQ(e.detail("missing"), "");
  EXPECT_EQ(e.toString(), "not_found: app not found (app_id=app_x, org=o)");
}

TEST(ErrorTest, ContextPrefixesMessage) {
  Error e(errc::kIo, "disk full");
  e.context("writing blob");
  EXPECT_EQ(e.message(), "writing blob: disk full");
}

TEST(ErrorTest, ErrnoErrorNamesTheCall) {
  Error e = errnoError("open /x", ENOENT);
  EXPECT_EQ(e.code(), "io");
  EXPECT_NE(e.message().find("open /x: "), std::string::npos);
  EXPECT_EQ(e.detail("errno"), std::to_string(ENOENT));
}

TEST(ResultTest, AssignOrReturnPropagatesErrors) {
  ASSERT_TRUE(doubled(4).has_value());
  EXPECT_EQ(*doubled(4), 8);
  auto r = doubled(-1);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), "invalid_argument");
  EXPECT_EQ(r.error().detail("field"), "v");
}

TEST(ResultTest, TryPropagatesTheFirstError) {
  EXPECT_TRUE(checkAll(1, 2).has_value());
  auto r = checkAll(1, 0);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().message(), "must be positive");
}

TEST(AssertTest, AbortsWithMessage) {
  EXPECT_DEATH({ PLFM_ASSERT(1 + 1 == 3, "arithmetic is broken"); }, "arithmetic is broken");
}

}  // namespace
}  // namespace plfm
