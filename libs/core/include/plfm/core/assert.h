// PLFM_ASSERT checks an internal invariant and aborts with a message when it
// does not hold. It is for bugs only: anything that comes from the network, a
// guest, the disk or a user is handled as an Error instead.
#pragma once

namespace plfm::internal {
[[noreturn]] void assertFail(const char* expr, const char* file, int line, const char* msg);
}  // namespace plfm::internal

#define PLFM_ASSERT(cond, msg)                                                 \
  do {                                                                         \
    if (!(cond)) ::plfm::internal::assertFail(#cond, __FILE__, __LINE__, msg); \
  } while (false)
