#include "plfm/core/clock.h"

#include <ctime>

#include <fmt/format.h>

namespace plfm {

RealClock& RealClock::instance() {
  static RealClock clock;
  return clock;
}

std::string toRfc3339(Clock::WallTime t) {
  using std::chrono::duration_cast;
  const auto us = duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  int64_t secs = us / 1'000'000;
  int64_t frac = us % 1'000'000;
  if (frac < 0) {  // before the epoch: floor, not truncate
    frac += 1'000'000;
    secs -= 1;
  }
  const auto tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

}  // namespace plfm
