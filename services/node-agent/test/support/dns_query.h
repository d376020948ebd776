// A DNS query on the wire for the responder's tests: `name` (dotted) of
// `type`, class IN, RD set, with an OPT record when edns > 0.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace plfm::netdev::testing {

inline std::vector<std::uint8_t> dnsQuery(const std::string& name, std::uint16_t type,
                                          std::uint16_t edns, std::uint16_t id) {
  std::vector<std::uint8_t> b{static_cast<std::uint8_t>(id >> 8),
                              static_cast<std::uint8_t>(id),
                              0x01,
                              0x00,
                              0,
                              1,
                              0,
                              0,
                              0,
                              0,
                              0,
                              static_cast<std::uint8_t>(edns > 0 ? 1 : 0)};
  std::size_t start = 0;
  while (start < name.size()) {
    std::size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    b.push_back(static_cast<std::uint8_t>(dot - start));
    b.insert(b.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
             name.begin() + static_cast<std::ptrdiff_t>(dot));
    start = dot + 1;
  }
  b.push_back(0);
  b.insert(b.end(), {static_cast<std::uint8_t>(type >> 8), static_cast<std::uint8_t>(type), 0, 1});
  if (edns > 0) {
    b.insert(b.end(), {0, 0, 41, static_cast<std::uint8_t>(edns >> 8),
                       static_cast<std::uint8_t>(edns), 0, 0, 0, 0, 0, 0});
  }
  return b;
}

}  // namespace plfm::netdev::testing
