// Small helpers shared by instance_worker.cc and instance_worker_volumes.cc
// (one class split over two files); not for use elsewhere.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "plfm/core/clock.h"

namespace plfm::agent::worker_internal {

// How long the worker waits for a frame before it looks at everything else.
inline constexpr std::chrono::milliseconds kTick{200};

// `text` as printable ASCII: anything else as \xNN (guest bytes in logs).
inline std::string printableOrEscaped(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

inline int64_t msBetween(Clock::SteadyTime from, Clock::SteadyTime to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

inline uint64_t unixNs(const Clock& clock) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock.now().time_since_epoch()).count());
}

}  // namespace plfm::agent::worker_internal
