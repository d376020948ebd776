// Fuzzes the IPv6 text parsers (node prefixes arrive from node registration):
// anything accepted must format canonically and parse back to the same value.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "plfm/reconcile/ipv6.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  using namespace plfm::reconcile;
  if (auto a = parseIpv6(text)) {
    auto again = parseIpv6(formatIpv6(*a));
    if (!again || *again != *a) std::abort();
  }
  if (auto p = parseIpv6Prefix(text)) {
    auto again = parseIpv6Prefix(formatIpv6Prefix(*p));
    if (!again || *again != *p) std::abort();
  }
  return 0;
}
