// The ids and sizes the agent's volume tests share (volume_*_test.cc), one
// definition for all of them.
#pragma once

#include <cstdint>

namespace plfm::agent::testing {

inline constexpr const char* kVol = "vol_01jd0000000000000000000001";
inline constexpr const char* kVol2 = "vol_01jd0000000000000000000002";
inline constexpr uint64_t kMiB = uint64_t{1} << 20;

}  // namespace plfm::agent::testing
