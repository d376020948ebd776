#include "plfm/core/clock.h"

#include <gtest/gtest.h>

namespace plfm {
namespace {

TEST(ClockTest, FakeClockMovesOnlyWhenTold) {
  FakeClock c;
  auto w = c.now();
  auto s = c.steadyNow();
  EXPECT_EQ(c.now(), w);
  c.advance(std::chrono::seconds(5));
  EXPECT_EQ(c.now() - w, std::chrono::seconds(5));
  EXPECT_EQ(c.steadyNow() - s, std::chrono::seconds(5));
  c.setWall(w);
  EXPECT_EQ(c.now(), w);
  EXPECT_EQ(c.steadyNow() - s, std::chrono::seconds(5));  // steady never goes back
}

TEST(ClockTest, Rfc3339) {
  using namespace std::chrono;
  EXPECT_EQ(toRfc3339(Clock::WallTime(seconds(0))), "1970-01-01T00:00:00.000000Z");
  EXPECT_EQ(toRfc3339(Clock::WallTime(seconds(1700000000) + microseconds(123456))),
            "2023-11-14T22:13:20.123456Z");
  EXPECT_EQ(toRfc3339(Clock::WallTime(microseconds(-1))), "1969-12-31T23:59:59.999999Z");
}

TEST(ClockTest, RealClockAdvances) {
  auto& c = RealClock::instance();
  auto a = c.steadyNow();
  auto b = c.steadyNow();
  EXPECT_LE(a, b);
}

}  // namespace
}  // namespace plfm
