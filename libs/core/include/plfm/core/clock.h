// Clock is the one source of time for code that must be testable: production
// wires RealClock, tests wire FakeClock and move time by hand. Wall time
// (`now`) stamps events and IDs; steady time (`steadyNow`) measures timeouts.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace plfm {

class Clock {
 public:
  using WallTime = std::chrono::system_clock::time_point;
  using SteadyTime = std::chrono::steady_clock::time_point;

  virtual ~Clock() = default;
  [[nodiscard]] virtual WallTime now() const = 0;
  [[nodiscard]] virtual SteadyTime steadyNow() const = 0;
};

// The wall time in whole Unix seconds.
[[nodiscard]] inline int64_t unixSeconds(const Clock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count();
}

class RealClock final : public Clock {
 public:
  [[nodiscard]] WallTime now() const override { return std::chrono::system_clock::now(); }
  [[nodiscard]] SteadyTime steadyNow() const override { return std::chrono::steady_clock::now(); }

  // A process-wide instance for wiring defaults.
  static RealClock& instance();
};

// A clock that only moves when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(WallTime start = WallTime(std::chrono::seconds(1'700'000'000)))
      : wall_ns_(toNs(start.time_since_epoch())) {}

  [[nodiscard]] WallTime now() const override {
    return WallTime(
        std::chrono::duration_cast<WallTime::duration>(std::chrono::nanoseconds(wall_ns_.load())));
  }
  [[nodiscard]] SteadyTime steadyNow() const override {
    return SteadyTime(std::chrono::duration_cast<SteadyTime::duration>(
        std::chrono::nanoseconds(steady_ns_.load())));
  }

  void advance(std::chrono::nanoseconds d) {
    wall_ns_ += d.count();
    steady_ns_ += d.count();
  }
  // Sets wall time only; steady time never goes backwards.
  void setWall(WallTime t) { wall_ns_ = toNs(t.time_since_epoch()); }

 private:
  template <class D>
  static int64_t toNs(D d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }
  std::atomic<int64_t> wall_ns_;
  std::atomic<int64_t> steady_ns_{0};
};

// RFC 3339 in UTC with microseconds: "2026-11-26T11:46:40.123456Z".
[[nodiscard]] std::string toRfc3339(Clock::WallTime t);

}  // namespace plfm
