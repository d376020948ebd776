#include "plfm/reconcile/ipv6.h"

#include <algorithm>
#include <array>
#include <charconv>

namespace plfm::reconcile {
namespace {

Error badAddress(std::string_view text, std::string_view why) {
  return Error(errc::kInvalidArgument, "invalid IPv6 address: " + std::string(why))
      .with("address", std::string(text.substr(0, 64)));
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Ipv6 fromGroups(const std::array<std::uint16_t, 8>& g) {
  Ipv6 a;
  for (size_t i = 0; i < 4; ++i) a.hi = (a.hi << 16) | g[i];
  for (size_t i = 4; i < 8; ++i) a.lo = (a.lo << 16) | g[i];
  return a;
}

// Bits [0, len) of the 128-bit address set, the rest clear.
Ipv6 mask(int len) {
  auto ones = [](int n) -> std::uint64_t {
    if (n <= 0) return 0;
    if (n >= 64) return ~std::uint64_t{0};
    return ~std::uint64_t{0} << (64 - n);
  };
  return Ipv6{ones(len), ones(len - 64)};
}

}  // namespace

Result<Ipv6> parseIpv6(std::string_view s) {
  // Longest valid text form without embedded IPv4 is 39 characters.
  if (s.empty() || s.size() > 39) return badAddress(s, "wrong length");
  std::array<std::uint16_t, 8> head{};
  std::array<std::uint16_t, 8> tail{};
  size_t nhead = 0;
  size_t ntail = 0;
  bool compressed = false;
  size_t i = 0;
  if (s.starts_with("::")) {
    compressed = true;
    i = 2;
  } else if (s[0] == ':') {
    return badAddress(s, "leading single colon");
  }
  while (i < s.size()) {
    std::uint32_t v = 0;
    size_t digits = 0;
    while (i < s.size() && hexValue(s[i]) >= 0) {
      if (++digits > 4) return badAddress(s, "group longer than 4 hex digits");
      v = (v << 4) | static_cast<std::uint32_t>(hexValue(s[i]));
      ++i;
    }
    if (digits == 0) return badAddress(s, "empty or non-hex group");
    if (nhead + ntail >= (compressed ? 7U : 8U)) return badAddress(s, "too many groups");
    (compressed ? tail[ntail++] : head[nhead++]) = static_cast<std::uint16_t>(v);
    if (i == s.size()) break;
    if (s[i] != ':') return badAddress(s, "unexpected character");
    ++i;
    if (i < s.size() && s[i] == ':') {
      if (compressed) return badAddress(s, "more than one '::'");
      compressed = true;
      ++i;
    } else if (i == s.size()) {
      return badAddress(s, "trailing single colon");
    }
  }
  if (!compressed && nhead != 8) return badAddress(s, "too few groups");
  if (compressed && nhead + ntail > 7) return badAddress(s, "'::' stands for no group");
  std::array<std::uint16_t, 8> groups{};
  std::copy_n(head.begin(), nhead, groups.begin());
  std::copy_n(tail.begin(), ntail, groups.end() - static_cast<std::ptrdiff_t>(ntail));
  return fromGroups(groups);
}

Result<Ipv6Prefix> parseIpv6Prefix(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return Error(errc::kInvalidArgument, "invalid IPv6 prefix: missing '/length'")
        .with("prefix", std::string(text.substr(0, 64)));
  }
  const std::string_view len_text = text.substr(slash + 1);
  int len = -1;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), len);
  if (ec != std::errc() || end != len_text.data() + len_text.size() || len < 0 || len > 128 ||
      len_text.empty() || len_text.size() > 3) {
    return Error(errc::kInvalidArgument, "invalid IPv6 prefix: length must be 0 to 128")
        .with("prefix", std::string(text.substr(0, 64)));
  }
  PLFM_ASSIGN_OR_RETURN(Ipv6 a, parseIpv6(text.substr(0, slash)));
  const Ipv6 m = mask(len);
  if ((a.hi & ~m.hi) != 0 || (a.lo & ~m.lo) != 0) {
    return Error(errc::kInvalidArgument, "invalid IPv6 prefix: host bits are set")
        .with("prefix", std::string(text.substr(0, 64)));
  }
  return Ipv6Prefix{a, len};
}

std::string formatIpv6(const Ipv6& a) {
  std::array<std::uint16_t, 8> g{};
  for (size_t i = 0; i < 4; ++i) {
    g[i] = static_cast<std::uint16_t>(a.hi >> (48 - 16 * i));
    g[i + 4] = static_cast<std::uint16_t>(a.lo >> (48 - 16 * i));
  }
  // RFC 5952 section 4.2: compress the longest run of two or more zero
  // groups, the first one on a tie.
  int best = -1;
  int best_len = 1;
  for (int i = 0; i < 8;) {
    if (g[static_cast<size_t>(i)] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && g[static_cast<size_t>(j)] == 0) ++j;
    if (j - i > best_len) {
      best = i;
      best_len = j - i;
    }
    i = j;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(39);
  for (int i = 0; i < 8; ++i) {
    if (i == best) {
      out += "::";
      i += best_len - 1;
      continue;
    }
    if (!out.empty() && out.back() != ':') out += ':';
    const std::uint16_t v = g[static_cast<size_t>(i)];
    bool started = false;
    for (int shift = 12; shift >= 0; shift -= 4) {
      const unsigned nibble = (v >> shift) & 0xFU;
      if (nibble != 0 || started || shift == 0) {
        out += kHex[nibble];
        started = true;
      }
    }
  }
  return out;
}

std::string formatIpv6Prefix(const Ipv6Prefix& p) {
  return formatIpv6(p.address) + "/" + std::to_string(p.length);
}

std::uint64_t lowestFreeIid(std::vector<std::uint64_t> used) {
  std::sort(used.begin(), used.end());
  std::uint64_t candidate = kFirstInstanceIid;
  for (std::uint64_t u : used) {
    if (u < candidate) continue;
    if (u > candidate) break;
    ++candidate;
  }
  return candidate;
}

Result<std::string> allocateInstanceAddress(std::string_view node_prefix,
                                            const std::vector<std::string>& used_addresses) {
  PLFM_ASSIGN_OR_RETURN(Ipv6Prefix p, parseIpv6Prefix(node_prefix));
  if (p.length != 64) {
    return Error(errc::kInvalidArgument, "a node prefix must be a /64")
        .with("prefix", std::string(node_prefix));
  }
  std::vector<std::uint64_t> used;
  used.reserve(used_addresses.size());
  for (const auto& text : used_addresses) {
    auto a = parseIpv6(text);
    if (a && a->hi == p.address.hi) used.push_back(a->lo);
  }
  return formatIpv6(Ipv6{p.address.hi, lowestFreeIid(std::move(used))});
}

Result<std::string> allocateNodePrefix(std::string_view cluster_prefix,
                                       const std::vector<std::string>& used_prefixes) {
  PLFM_ASSIGN_OR_RETURN(Ipv6Prefix cluster, parseIpv6Prefix(cluster_prefix));
  if (cluster.length < 1 || cluster.length > 63) {
    return Error(errc::kInvalidArgument, "a cluster prefix must be shorter than /64")
        .with("prefix", std::string(cluster_prefix));
  }
  const std::uint64_t cluster_mask = mask(cluster.length).hi;
  const std::uint64_t max_subnet = ~cluster_mask;  // subnets are 1..max_subnet
  std::vector<std::uint64_t> used;
  for (const auto& text : used_prefixes) {
    auto p = parseIpv6Prefix(text);
    if (p && p->length == 64 && (p->address.hi & cluster_mask) == cluster.address.hi) {
      used.push_back(p->address.hi & ~cluster_mask);
    }
  }
  std::sort(used.begin(), used.end());
  std::uint64_t subnet = 1;
  for (std::uint64_t u : used) {
    if (u < subnet) continue;
    if (u > subnet) break;
    ++subnet;
  }
  if (subnet > max_subnet || subnet == 0) {
    return Error(errc::kResourceExhausted, "every /64 of the cluster prefix is in use")
        .with("prefix", std::string(cluster_prefix));
  }
  return formatIpv6Prefix(Ipv6Prefix{Ipv6{cluster.address.hi | subnet, 0}, 64});
}

}  // namespace plfm::reconcile
