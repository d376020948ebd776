#include "image/address_policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace plfm::image {

namespace {

bool matches(const uint8_t* a, const uint8_t* prefix, int bits) {
  const int whole = bits / 8;
  if (std::memcmp(a, prefix, static_cast<size_t>(whole)) != 0) return false;
  const int rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (prefix[whole] & mask);
}

struct Range {
  std::array<uint8_t, 16> bytes;
  int bits;
};

// IANA special-purpose registries (RFC 6890 and successors) that a registry
// must never be reached at without the operator's say-so.
const Range kV4NotPublic[] = {
    {{0, 0, 0, 0}, 8},      {{10, 0, 0, 0}, 8},     {{100, 64, 0, 0}, 10}, {{127, 0, 0, 0}, 8},
    {{169, 254, 0, 0}, 16}, {{172, 16, 0, 0}, 12},  {{192, 0, 0, 0}, 24},  {{192, 0, 2, 0}, 24},
    {{192, 88, 99, 0}, 24}, {{192, 168, 0, 0}, 16}, {{198, 18, 0, 0}, 15}, {{198, 51, 100, 0}, 24},
    {{203, 0, 113, 0}, 24}, {{224, 0, 0, 0}, 4},    {{240, 0, 0, 0}, 4},
};
const Range kV6NotPublic[] = {
    {{}, 128},                                                // ::
    {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, 128},  // ::1
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48},                        // local NAT64
    {{0x01, 0x00}, 64},                                       // discard
    {{0x20, 0x01, 0x00, 0x00}, 23},                           // IETF protocol
    {{0x20, 0x01, 0x0d, 0xb8}, 32},                           // documentation
    {{0xfc}, 7},                                              // ULA
    {{0xfe, 0x80}, 10},                                       // link-local
    {{0xfe, 0xc0}, 10},                                       // site-local
    {{0xff}, 8},                                              // multicast
};

}  // namespace

std::string IpPrefix::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(length);
}

std::string IpAddress::str() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), buf, sizeof buf);
  return buf;
}

Result<IpPrefix> parseIpPrefix(std::string_view text) {
  const auto bad = [&](const char* why) {
    return Error(errc::kInvalidArgument,
                 "'" + std::string(text.substr(0, 64)) + "' is not an IP prefix: " + why);
  };
  IpPrefix p;
  const size_t slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  if (::inet_pton(AF_INET, addr.c_str(), p.bytes.data()) == 1) {
    p.v4 = true;
  } else if (::inet_pton(AF_INET6, addr.c_str(), p.bytes.data()) != 1) {
    return bad("not an IPv4 or IPv6 address");
  }
  const int max = p.v4 ? 32 : 128;
  p.length = max;
  if (slash != std::string_view::npos) {
    const std::string_view len = text.substr(slash + 1);
    if (len.empty() || len.size() > 3 || len.find_first_not_of("0123456789") != std::string::npos) {
      return bad("the length after / must be a number");
    }
    p.length = std::stoi(std::string(len));
    if (p.length > max) return bad("the length is longer than the address");
  }
  return p;
}

bool fromSockaddr(const sockaddr* sa, IpAddress& out) {
  if (sa == nullptr) return false;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    out.v4 = true;
    out.bytes = {};
    std::memcpy(out.bytes.data(), &in->sin_addr, 4);
    return true;
  }
  if (sa->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    const auto* b = reinterpret_cast<const uint8_t*>(&in6->sin6_addr);
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    out.bytes = {};
    if (std::memcmp(b, kMapped, 12) == 0) {
      out.v4 = true;
      std::memcpy(out.bytes.data(), b + 12, 4);
    } else {
      out.v4 = false;
      std::memcpy(out.bytes.data(), b, 16);
    }
    return true;
  }
  return false;
}

bool contains(const IpPrefix& prefix, const IpAddress& addr) {
  return prefix.v4 == addr.v4 && matches(addr.bytes.data(), prefix.bytes.data(), prefix.length);
}

bool isPublicUnicast(const IpAddress& addr) {
  if (addr.v4) {
    for (const auto& r : kV4NotPublic) {
      if (matches(addr.bytes.data(), r.bytes.data(), r.bits)) return false;
    }
    return true;
  }
  for (const auto& r : kV6NotPublic) {
    if (matches(addr.bytes.data(), r.bytes.data(), r.bits)) return false;
  }
  // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address: judge it.
  static constexpr uint8_t kNat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
  IpAddress inner;
  inner.v4 = true;
  if (std::memcmp(addr.bytes.data(), kNat64, 12) == 0) {
    std::memcpy(inner.bytes.data(), addr.bytes.data() + 12, 4);
    return isPublicUnicast(inner);
  }
  if (addr.bytes[0] == 0x20 && addr.bytes[1] == 0x02) {
    std::memcpy(inner.bytes.data(), addr.bytes.data() + 2, 4);
    return isPublicUnicast(inner);
  }
  return true;
}

bool registryAddressAllowed(const IpAddress& addr, const std::vector<IpPrefix>& allowed) {
  if (isPublicUnicast(addr)) return true;
  for (const auto& p : allowed) {
    if (contains(p, addr)) return true;
  }
  return false;
}

}  // namespace plfm::image
