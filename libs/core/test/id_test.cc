#include "plfm/core/id.h"

#include <gtest/gtest.h>

#include <random>
#include <set>
#include <thread>
#include <vector>

namespace plfm {
namespace {

IdGenerator::RandomFn seeded(uint32_t seed) {
  auto rng = std::make_shared<std::mt19937>(seed);
  return [rng](uint8_t* out, size_t n) {
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>((*rng)() & 0xFF);
  };
}

TEST(IdTest, GeneratedIdsHavePrefixAndRoundTrip) {
  AppId id = AppId::generate();
  EXPECT_EQ(id.str().substr(0, 4), "app_");
  EXPECT_EQ(id.str().size(), 4U + 26U);
  auto parsed = AppId::parse(id.str());
  ASSERT_TRUE(parsed.has_value()) << parsed.error().toString();
  EXPECT_EQ(*parsed, id);
}

TEST(IdTest, EncodesTimestampFirstSoIdsSortByTime) {
  FakeClock clock;
  IdGenerator gen(clock, seeded(1));
  std::vector<std::string> ids;
  for (int i = 0; i < 50; ++i) {
    ids.push_back(DeployId::generate(gen).str());
    clock.advance(std::chrono::milliseconds(i % 3));  // some share a millisecond
  }
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_LT(ids[i - 1], ids[i]) << i;
  auto first = DeployId::parse(ids[0]);
  ASSERT_TRUE(first.has_value());
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(FakeClock().now().time_since_epoch())
          .count();
  EXPECT_EQ(first->timestampMs(), static_cast<uint64_t>(ms));
}

TEST(IdTest, KnownVector) {
  std::array<uint8_t, 10> zero{};
  EXPECT_EQ(id_internal::encodeBody(0, zero), std::string(26, '0'));
  std::array<uint8_t, 10> ones;
  ones.fill(0xFF);
  EXPECT_EQ(id_internal::encodeBody((uint64_t{1} << 48) - 1, ones), "7zzzzzzzzzzzzzzzzzzzzzzzzz");
  EXPECT_EQ(id_internal::decodeTimestampMs("7zzzzzzzzzzzzzzzzzzzzzzzzz"), (uint64_t{1} << 48) - 1);
  EXPECT_EQ(id_internal::decodeTimestampMs("00000000010000000000000000"), 1U);
}

TEST(IdTest, MonotonicWithinOneMillisecondAcrossThreads) {
  FakeClock clock;  // frozen: every id shares one millisecond
  IdGenerator gen(clock, seeded(7));
  std::vector<std::vector<std::string>> per(4);
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) per[t].push_back(EventId::generate(gen).str());
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> all;
  for (const auto& v : per) {
    for (size_t i = 1; i < v.size(); ++i) EXPECT_LT(v[i - 1], v[i]);
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), 2000U);
}

TEST(IdTest, DistinctTypesDoNotMix) {
  static_assert(!std::is_convertible_v<AppId, EnvId>);
  static_assert(!std::is_constructible_v<EnvId, AppId>);
  EXPECT_FALSE(EnvId().valid());
}

struct BadIdCase {
  const char* name;
  std::string text;
  const char* reason;
};

class StrictParseTest : public ::testing::TestWithParam<BadIdCase> {};

TEST_P(StrictParseTest, Rejects) {
  auto r = AppId::parse(GetParam().text);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), "invalid_argument");
  EXPECT_NE(r.error().message().find(GetParam().reason), std::string::npos) << r.error().message();
}

const std::string kBody = "01jdq3v7k2m9x4c8r6t0w5y1zb";

INSTANTIATE_TEST_SUITE_P(
    Cases, StrictParseTest,
    ::testing::Values(BadIdCase{"empty", "", "must start with 'app_'"},
                      BadIdCase{"wrong_prefix", "env_" + kBody, "must start with 'app_'"},
                      BadIdCase{"prefix_only", "app", "must start with 'app_'"},
                      BadIdCase{"no_separator", "app" + kBody, "must start with 'app_'"},
                      BadIdCase{"prefix_case", "APP_" + kBody, "must start with 'app_'"},
                      BadIdCase{"too_short", "app_" + kBody.substr(1), "must be 30 characters"},
                      BadIdCase{"too_long", "app_" + kBody + "0", "must be 30 characters"},
                      BadIdCase{"uppercase", "app_01JDQ3V7K2M9X4C8R6T0W5Y1ZB", "alphabet"},
                      BadIdCase{"letter_i", "app_01jdq3v7k2m9x4c8r6t0w5y1zi", "alphabet"},
                      BadIdCase{"letter_l", "app_01jdq3v7k2m9x4c8r6t0w5y1zl", "alphabet"},
                      BadIdCase{"letter_o", "app_01jdq3v7k2m9x4c8r6t0w5y1zo", "alphabet"},
                      BadIdCase{"letter_u", "app_01jdq3v7k2m9x4c8r6t0w5y1zu", "alphabet"},
                      BadIdCase{"punct", "app_01jdq3v7k2m9x4c8r6t0w5y1z-", "alphabet"},
                      BadIdCase{"nul", std::string("app_01jdq3v7k2m9x4c8r6t0w5y1z\0", 30),
                                "alphabet"},
                      BadIdCase{"overflow", "app_81jdq3v7k2m9x4c8r6t0w5y1zb", "overflows"}),
    [](const auto& p) { return std::string(p.param.name); });

TEST(IdTest, ErrorNamesExpectedPrefix) {
  auto r = InstanceId::parse("app_" + kBody);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().detail("expected_prefix"), "inst_");
}

}  // namespace
}  // namespace plfm
