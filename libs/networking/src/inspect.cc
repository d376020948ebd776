#include "plfm/net/inspect.h"

#include <string>

#include "plfm/core/strings.h"
#include "plfm/net/client_hello.h"
#include "plfm/net/proxy_protocol.h"

namespace plfm::net {
namespace {

using nlohmann::json;

json errorJson(std::string_view stage, std::string_view name, std::string_view message) {
  std::string text(stage);
  text += name;
  text += ": ";
  text += message;
  return json{{"error", text}};
}

// JSON strings must be UTF-8; ALPN names are arbitrary bytes.
std::string printable(const std::string& s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7E) return "0x" + hexEncode(s);
  }
  return s;
}

std::string_view commandName(ProxyCommand c) {
  return c == ProxyCommand::kLocal ? "LOCAL" : "PROXY";
}

json proxyJson(const ProxyHeader& h) {
  json out = {{"version", h.version}, {"command", commandName(h.command)}};
  if (h.source && h.destination) {
    out["source"] = h.source->toString();
    out["destination"] = h.destination->toString();
  } else if (h.family == ProxyFamily::kUnix) {
    out["source"] = printable(h.unix_source);
    out["destination"] = printable(h.unix_destination);
  } else {
    out["source"] = nullptr;
    out["destination"] = nullptr;
  }
  json tlvs = json::array();
  for (const auto& tlv : h.tlvs)
    tlvs.push_back({{"type", tlv.type}, {"hex", hexEncode(tlv.value)}});
  out["tlvs"] = std::move(tlvs);
  return out;
}

}  // namespace

json inspectClientHello(std::span<const uint8_t> bytes, bool proxy_protocol) {
  json proxy;
  if (proxy_protocol) {
    ProxyHeaderParser parser;
    const FeedResult r = parser.feed(bytes);
    if (r.status == ParseStatus::kError) {
      return errorJson("proxy protocol: ", parser.errorName(), parser.errorMessage());
    }
    if (r.status == ParseStatus::kNeedMore) {
      return json{{"error", "proxy protocol: truncated header"}};
    }
    proxy = proxyJson(parser.header());
    bytes = bytes.subspan(r.consumed);
  }
  ClientHelloParser parser;
  const FeedResult r = parser.feed(bytes);
  if (r.status == ParseStatus::kError) {
    return errorJson("", parser.errorName(), parser.errorMessage());
  }
  if (r.status == ParseStatus::kNeedMore) {
    return json{{"error", "truncated ClientHello: the capture ends before it does"}};
  }
  const ClientHello& hello = parser.hello();
  json alpn = json::array();
  for (const auto& name : hello.alpn) alpn.push_back(printable(name));
  json versions = json::array();
  for (uint16_t v : hello.offeredVersions()) versions.push_back(tlsVersionName(v));
  json out = {{"sni", hello.sni ? json(*hello.sni) : json(nullptr)},
              {"alpn", std::move(alpn)},
              {"tls_versions", std::move(versions)},
              {"records", hello.records}};
  if (proxy_protocol) out["proxy"] = std::move(proxy);
  return out;
}

}  // namespace plfm::net
