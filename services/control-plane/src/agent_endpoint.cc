#include "agent_endpoint.h"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <charconv>

#include "api.h"

namespace plfm::cp {
namespace {

Error bad(std::string_view field, const std::string& why) {
  return Error(apierr::kInvalidField, "field '" + std::string(field) + "' " + why)
      .with("field", std::string(field));
}

// An IP literal's bytes (16 for v6, 4 for v4), or nullopt for a name.
std::optional<std::string> ipBytes(std::string_view host) {
  std::string h(host);
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  std::array<unsigned char, 16> buf{};
  if (inet_pton(AF_INET6, h.c_str(), buf.data()) == 1) {
    return std::string(reinterpret_cast<const char*>(buf.data()), 16);
  }
  if (inet_pton(AF_INET, h.c_str(), buf.data()) == 1) {
    return std::string(reinterpret_cast<const char*>(buf.data()), 4);
  }
  return std::nullopt;
}

bool isLoopback(std::string_view host) {
  std::string lower(host);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "localhost") return true;
  auto ip = ipBytes(host);
  if (!ip) return false;
  if (ip->size() == 4) return static_cast<unsigned char>((*ip)[0]) == 127;
  return *ip == std::string(15, '\0') + '\1';
}

bool sameHost(std::string_view a, std::string_view b) {
  auto ia = ipBytes(a);
  auto ib = ipBytes(b);
  if (ia || ib) return ia && ib && *ia == *ib;
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

bool validName(std::string_view host) {
  return !host.empty() && host.size() <= 253 && std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
  });
}

}  // namespace

Result<AgentEndpoint> checkAgentEndpoint(std::string_view url,
                                         const std::optional<std::string>& cert,
                                         std::string_view underlay_address) {
  constexpr std::string_view kField = "agent_url";
  if (url.size() > 255) return bad(kField, "is longer than 255 characters");
  bool https = false;
  std::string_view rest;
  if (url.starts_with("https://")) {
    https = true;
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return bad(kField, "must be https://HOST:PORT (or http:// to a loopback agent)");
  }
  std::string_view host;
  std::string_view port;
  if (rest.starts_with("[")) {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return bad(kField, "must be https://HOST:PORT with the port");
    }
    host = rest.substr(0, close + 1);
    port = rest.substr(close + 2);
    if (!ipBytes(host)) return bad(kField, "has an invalid [IPv6 address]");
  } else {
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos)
      return bad(kField, "must be https://HOST:PORT with the port");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (!ipBytes(host) && !validName(host)) return bad(kField, "has an invalid host");
  }
  int port_num = 0;
  const auto [end, err] = std::from_chars(port.data(), port.data() + port.size(), port_num);
  if (err != std::errc() || end != port.data() + port.size() || port_num < 1 || port_num > 65535) {
    return bad(kField, "must end with a port 1..65535 and nothing after it (no path or query)");
  }
  const bool loopback = isLoopback(host);
  if (loopback ? !isLoopback(underlay_address) : !sameHost(host, underlay_address)) {
    return bad(kField, "must name the node's registered underlay address '" +
                           std::string(underlay_address) +
                           "' (a loopback address only when that is loopback)");
  }
  AgentEndpoint out;
  out.url = std::string(url);
  if (!https) {
    if (!loopback) return bad(kField, "must be https:// unless the agent is on loopback");
    if (cert) return bad("agent_cert_sha256", "is only for an https:// agent_url");
    return out;
  }
  if (!cert) return bad("agent_cert_sha256", "is required with an https:// agent_url");
  if (cert->size() != 64 || cert->find_first_not_of("0123456789abcdef") != std::string::npos) {
    return bad("agent_cert_sha256", "must be 64 lowercase hex digits (SHA-256 of the DER)");
  }
  out.cert_sha256 = *cert;
  return out;
}

}  // namespace plfm::cp
