#include "netdev/wg_dump.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>

#include "plfm/core/clock.h"
#include "plfm/core/strings.h"

namespace plfm::netdev {
namespace {

Error dumpError(size_t line, std::string_view field, std::string_view why) {
  // Names the line and field only: the input holds a private key.
  return Error(errc::kInvalidArgument, "wg show dump, line " + std::to_string(line) + ", " +
                                           std::string(field) + ": " + std::string(why))
      .with("line", std::to_string(line))
      .with("field", std::string(field));
}

std::vector<std::string_view> splitTabs(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    out.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) return out;
    start = tab + 1;
  }
}

template <class T>
std::optional<T> number(std::string_view s) {
  T v{};
  if (s.empty()) return std::nullopt;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return v;
}

Result<WgDumpPeer> parsePeerLine(const std::vector<std::string_view>& f, size_t line) {
  if (f.size() != 8) return dumpError(line, "peer", "expected 8 fields");
  WgDumpPeer p;
  auto key = WgKey::parse(f[0]);
  if (!key) return dumpError(line, "public-key", "not a key");
  p.public_key = *key;
  if (f[2] != "(none)") {
    auto e = parseWgEndpoint(f[2]);
    if (!e || e->kind == WgEndpoint::Kind::kHostname) {
      return dumpError(line, "endpoint", "not an address and port");
    }
    p.endpoint = *e;
  }
  if (f[3] != "(none)") {
    std::string_view rest = f[3];
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      const std::string_view item = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (item.find(':') == std::string_view::npos) {
        ++p.ipv4_allowed_ips;
        continue;
      }
      auto prefix = parseIpv6Prefix(item);
      if (!prefix) return dumpError(line, "allowed-ips", "not an IPv6 prefix");
      p.allowed_ips.push_back(*prefix);
    }
  }
  auto handshake = number<int64_t>(f[4]);
  auto rx = number<uint64_t>(f[5]);
  auto tx = number<uint64_t>(f[6]);
  if (!handshake || *handshake < 0) return dumpError(line, "latest-handshake", "not a number");
  if (!rx || !tx) return dumpError(line, "transfer", "not a number");
  p.latest_handshake = *handshake;
  p.rx_bytes = *rx;
  p.tx_bytes = *tx;
  return p;
}

}  // namespace

Result<WgDump> parseWgDump(std::string_view text) {
  WgDump d;
  size_t line_no = 0;
  for (std::string_view line : splitLines(text)) {
    ++line_no;
    if (line.empty()) continue;
    const auto f = splitTabs(line);
    if (line_no == 1) {
      // f[0], the private key, is never looked at.
      if (f.size() != 4) return dumpError(1, "interface", "expected 4 fields");
      if (f[1] != "(none)") {
        auto key = WgKey::parse(f[1]);
        if (!key) return dumpError(1, "public-key", "not a key");
        d.public_key = *key;
      }
      auto port = number<uint16_t>(f[2]);
      if (!port) return dumpError(1, "listen-port", "not a port");
      d.listen_port = *port;
      continue;
    }
    PLFM_ASSIGN_OR_RETURN(auto peer, parsePeerLine(f, line_no));
    d.peers.push_back(std::move(peer));
  }
  if (line_no == 0) return dumpError(1, "interface", "empty output");
  return d;
}

MeshTotals meshTotals(const WgDump& dump, int64_t now_unix) {
  MeshTotals t;
  for (const auto& p : dump.peers) {
    ++t.peers;
    // A handshake "from the future" (a clock step) counts as recent.
    if (p.latest_handshake > 0 && now_unix - p.latest_handshake <= kPeerUpWithinSeconds) {
      ++t.peers_up;
    }
    t.latest_handshake = std::max(t.latest_handshake, p.latest_handshake);
    t.rx_bytes += p.rx_bytes;
    t.tx_bytes += p.tx_bytes;
  }
  return t;
}

nlohmann::json toHeartbeatJson(const MeshTotals& t) {
  nlohmann::json latest = nullptr;
  if (t.latest_handshake > 0) {
    latest = toRfc3339(Clock::WallTime(std::chrono::seconds(t.latest_handshake)));
  }
  return {{"peers", t.peers},
          {"peers_up", t.peers_up},
          {"latest_handshake_at", latest},
          {"rx_bytes", t.rx_bytes},
          {"tx_bytes", t.tx_bytes}};
}

}  // namespace plfm::netdev
