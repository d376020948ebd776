// The DNS pieces of `hello probe resolve` (probe.h): one AAAA query built by
// hand (RFC 1035 §4.1, the AAAA type of RFC 3596) and its answer read back,
// plus the first nameserver of a resolv.conf. Pure: no sockets, so that the
// unit tests feed them bytes. The answer comes from the network: every length
// and pointer is checked, and a malformed one is an error, never a crash.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"

namespace plfm::hello {

inline constexpr uint16_t kDnsTypeAaaa = 28;
inline constexpr uint16_t kDnsClassIn = 1;

// A query for NAME's AAAA records with recursion desired. Fails on a name
// with an empty label, a label over 63 bytes or a name over 253 bytes.
[[nodiscard]] Result<std::vector<uint8_t>> buildAaaaQuery(uint16_t id, std::string_view name);

struct AaaaAnswer {
  int rcode = 0;  // 0 NOERROR, 3 NXDOMAIN, ...
  bool truncated = false;
  std::vector<std::array<uint8_t, 16>> addresses;  // in answer order
};

// Reads the answer to the query with `id`: a different id, a query (QR
// clear) or bytes that do not parse are errors.
[[nodiscard]] Result<AaaaAnswer> parseAaaaAnswer(uint16_t id, const std::vector<uint8_t>& bytes);

// The address of the first `nameserver` line, or "" when there is none.
[[nodiscard]] std::string firstNameserver(std::string_view resolv_conf);

}  // namespace plfm::hello
