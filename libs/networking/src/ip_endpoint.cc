#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "plfm/net/proxy_protocol.h"

namespace plfm::net {

IpEndpoint IpEndpoint::ipv4(const std::array<uint8_t, 4>& a, uint16_t port) {
  IpEndpoint e;
  std::copy(a.begin(), a.end(), e.address.begin());
  e.port = port;
  return e;
}

IpEndpoint IpEndpoint::ipv6(const std::array<uint8_t, 16>& a, uint16_t port) {
  IpEndpoint e;
  e.v6 = true;
  e.address = a;
  e.port = port;
  return e;
}

std::optional<IpEndpoint> IpEndpoint::parse(std::string_view text) {
  std::string host;
  std::string_view port_text;
  bool v6 = false;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
    v6 = true;
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  unsigned port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port_text.empty() ||
      port > 65535) {
    return std::nullopt;
  }
  IpEndpoint e;
  e.v6 = v6;
  e.port = static_cast<uint16_t>(port);
  if (::inet_pton(v6 ? AF_INET6 : AF_INET, host.c_str(), e.address.data()) != 1) {
    return std::nullopt;
  }
  return e;
}

std::string IpEndpoint::ip() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, address.data(), buf, sizeof buf);
  return buf;
}

std::string IpEndpoint::toString() const {
  const std::string p = std::to_string(port);
  return v6 ? "[" + ip() + "]:" + p : ip() + ":" + p;
}

IpEndpoint IpEndpoint::toV6() const {
  if (v6) return *this;
  std::array<uint8_t, 16> mapped{};
  mapped[10] = 0xFF;
  mapped[11] = 0xFF;
  std::copy(address.begin(), address.begin() + 4, mapped.begin() + 12);
  return ipv6(mapped, port);
}

}  // namespace plfm::net
