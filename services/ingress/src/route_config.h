// The routes and backends the ingress serves, in the shape of the control
// plane's edge feed (docs/specs/ingress/edge-feed.md). Both config sources
// (a JSON file, and GET /v1/edge/config) produce this document, and the
// ingress persists the last good one in the same shape:
//
//   {"cursor": 7, "routes": [{"id": "rt_1", "hostname": "app.example.com",
//     "listener_port": 443, "protocol": "tls-passthrough", "proxy_protocol": "v2",
//     "backends": [{"address": "2001:db8::5", "port": 8443, "healthy": true}]}]}
//
// parseRouteSet validates the whole document, so a bad update is refused as
// a unit and the ingress keeps serving the previous table.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/net/hostname.h"
#include "plfm/net/proxy_protocol.h"

namespace plfm::ingress {

enum class Protocol { kTlsPassthrough, kTcp };
enum class ProxyProtocol { kNone, kV2 };

[[nodiscard]] std::string_view protocolName(Protocol p);
[[nodiscard]] std::string_view proxyProtocolName(ProxyProtocol p);

struct BackendSpec {
  net::IpEndpoint endpoint;  // an IPv6 or IPv4 address and its port
  bool healthy = true;       // as reported by the control plane
  // Leaving service (docs/specs/scheduler/drain.md): never picked for a new
  // connection, whatever `healthy` says; its open connections are kept and
  // counted in the ingress's status reports.
  bool draining = false;
};

struct RouteSpec {
  std::string id;
  // Normalized (lower case, no trailing dot): "app.example.com", a
  // one-label wildcard "*.example.com", or "*" (the port's default route).
  // Empty for tcp routes, which own their whole port.
  std::string hostname;
  uint16_t listener_port = 0;
  Protocol protocol = Protocol::kTlsPassthrough;
  ProxyProtocol proxy_protocol = ProxyProtocol::kNone;
  std::vector<BackendSpec> backends;
};

struct RouteSet {
  int64_t cursor = 0;
  std::vector<RouteSpec> routes;
};

// Lower-cases and strips one trailing dot, then checks the result is a DNS
// name, "*.<name>" or "*" (libs/networking, shared with the control plane).
using net::normalizeHostname;

// Parses and validates a route document: unique non-empty ids, ports
// 1..65535, valid hostnames, no two routes with the same port and hostname, a
// tcp route alone on its port, backend addresses that are IP literals.
[[nodiscard]] Result<RouteSet> parseRouteSet(std::string_view json_text);

// The canonical JSON text of a route set (parseRouteSet reads it back).
[[nodiscard]] std::string serializeRouteSet(const RouteSet& set);

}  // namespace plfm::ingress
