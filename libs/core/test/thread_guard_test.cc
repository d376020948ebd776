#include "plfm/core/thread_guard.h"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

namespace plfm {
namespace {

constexpr GuardOptions kFast{std::chrono::milliseconds(1), std::chrono::milliseconds(2)};

TEST(ThreadGuardTest, AThrowingLoopIsRestartedNotFatal) {
  std::atomic<int> runs = 0;
  std::atomic<bool> stop = false;
  const int caught = runGuarded(
      "test",
      [&] {
        if (++runs < 4) throw std::runtime_error("bad stored item");
        stop = true;
      },
      [&] { return stop.load(); }, kFast);
  EXPECT_EQ(caught, 3);
  EXPECT_EQ(runs, 4);
}

TEST(ThreadGuardTest, NonStandardExceptionsAreCaughtToo) {
  std::atomic<int> runs = 0;
  const int caught = runGuarded(
      "test",
      [&] {
        if (++runs == 1) throw 42;
      },
      [&] { return runs >= 2; }, kFast);
  EXPECT_EQ(caught, 1);
}

TEST(ThreadGuardTest, ALoopThatReturnsEarlyRunsAgainUntilStopped) {
  std::atomic<int> runs = 0;
  const int caught = runGuarded(
      "test", [&] { ++runs; }, [&] { return runs >= 3; }, kFast);
  EXPECT_EQ(runs, 3);
  EXPECT_EQ(caught, 2);
}

TEST(ThreadGuardTest, StoppingEndsTheBackoffAtOnce) {
  std::atomic<bool> stop = false;
  const auto start = std::chrono::steady_clock::now();
  runGuarded(
      "test",
      [&] {
        stop = true;
        throw std::runtime_error("x");
      },
      [&] { return stop.load(); }, GuardOptions{std::chrono::hours(1), std::chrono::hours(1)});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace plfm
