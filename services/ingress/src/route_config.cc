#include "route_config.h"

#include <arpa/inet.h>

#include <map>
#include <set>
#include <utility>

#include "plfm/core/json.h"

namespace plfm::ingress {

namespace {

using json::Json;

Error invalid(std::string message, std::string field) {
  return Error(errc::kInvalidArgument, std::move(message)).with("field", std::move(field));
}

Result<net::IpEndpoint> parseBackendAddress(const std::string& address, int64_t port,
                                            const std::string& path) {
  if (port < 1 || port > 65535) return invalid(path + ".port must be 1..65535", path + ".port");
  net::IpEndpoint e;
  e.port = static_cast<uint16_t>(port);
  if (::inet_pton(AF_INET6, address.c_str(), e.address.data()) == 1) {
    e.v6 = true;
    return e;
  }
  if (::inet_pton(AF_INET, address.c_str(), e.address.data()) == 1) return e;
  return invalid(path + ".address must be an IPv6 or IPv4 address literal, got '" + address + "'",
                 path + ".address");
}

Result<BackendSpec> parseBackend(const Json& j, const std::string& path) {
  if (!j.is_object()) return invalid(path + " must be an object", path);
  PLFM_TRY(json::rejectUnknownFields(j, {"address", "port", "healthy", "draining"}, path));
  PLFM_ASSIGN_OR_RETURN(std::string address, json::getString(j, "address", path));
  PLFM_ASSIGN_OR_RETURN(int64_t port, json::getInt(j, "port", path));
  BackendSpec b;
  PLFM_ASSIGN_OR_RETURN(b.endpoint, parseBackendAddress(address, port, path));
  if (j.contains("healthy")) {
    PLFM_ASSIGN_OR_RETURN(b.healthy, json::getBool(j, "healthy", path));
  }
  if (j.contains("draining")) {
    PLFM_ASSIGN_OR_RETURN(b.draining, json::getBool(j, "draining", path));
  }
  return b;
}

Result<RouteSpec> parseRoute(const Json& j, const std::string& path) {
  if (!j.is_object()) return invalid(path + " must be an object", path);
  PLFM_TRY(json::rejectUnknownFields(
      j, {"id", "hostname", "listener_port", "protocol", "proxy_protocol", "backends"}, path));
  RouteSpec r;
  PLFM_ASSIGN_OR_RETURN(r.id, json::getString(j, "id", path));
  if (r.id.empty()) return invalid(path + ".id must not be empty", path + ".id");
  PLFM_ASSIGN_OR_RETURN(int64_t port, json::getInt(j, "listener_port", path));
  if (port < 1 || port > 65535) {
    return invalid(path + ".listener_port must be 1..65535", path + ".listener_port");
  }
  r.listener_port = static_cast<uint16_t>(port);
  std::string protocol = "tls-passthrough";
  if (j.contains("protocol")) {
    PLFM_ASSIGN_OR_RETURN(protocol, json::getString(j, "protocol", path));
  }
  if (protocol == "tcp") {
    r.protocol = Protocol::kTcp;
  } else if (protocol != "tls-passthrough") {
    return invalid(path + R"(.protocol must be "tls-passthrough" or "tcp")", path + ".protocol");
  }
  std::string pp = "none";
  if (j.contains("proxy_protocol")) {
    PLFM_ASSIGN_OR_RETURN(pp, json::getString(j, "proxy_protocol", path));
  }
  if (pp == "v2") {
    r.proxy_protocol = ProxyProtocol::kV2;
  } else if (pp != "none") {
    return invalid(path + R"(.proxy_protocol must be "none" or "v2")", path + ".proxy_protocol");
  }
  std::string hostname;
  if (j.contains("hostname")) {
    PLFM_ASSIGN_OR_RETURN(hostname, json::getString(j, "hostname", path));
  }
  if (r.protocol == Protocol::kTcp) {
    // A plain TCP stream carries no name: the route owns its port.
    if (!hostname.empty() && hostname != "*") {
      return invalid(path + ".hostname must be empty for a tcp route", path + ".hostname");
    }
  } else {
    auto norm = normalizeHostname(hostname);
    if (!norm) return std::move(norm).error().with("field", path + ".hostname");
    r.hostname = std::move(*norm);
  }
  if (j.contains("backends")) {
    const Json& list = j["backends"];
    if (!list.is_array()) return invalid(path + ".backends must be an array", path + ".backends");
    for (size_t i = 0; i < list.size(); ++i) {
      PLFM_ASSIGN_OR_RETURN(BackendSpec b,
                            parseBackend(list[i], path + ".backends[" + std::to_string(i) + "]"));
      r.backends.push_back(b);
    }
  }
  return r;
}

Result<void> checkConflicts(const RouteSet& set) {
  std::set<std::string> ids;
  std::map<uint16_t, Protocol> port_protocol;
  std::set<std::pair<uint16_t, std::string>> names;
  for (size_t i = 0; i < set.routes.size(); ++i) {
    const RouteSpec& r = set.routes[i];
    const std::string path = "routes[" + std::to_string(i) + "]";
    if (!ids.insert(r.id).second) {
      return invalid(path + ".id '" + r.id + "' is used twice", path + ".id");
    }
    auto [it, fresh] = port_protocol.emplace(r.listener_port, r.protocol);
    if (!fresh && (it->second == Protocol::kTcp || r.protocol == Protocol::kTcp)) {
      return invalid(
          path + ": a tcp route must be alone on listener_port " + std::to_string(r.listener_port),
          path + ".listener_port");
    }
    if (!names.emplace(r.listener_port, r.hostname).second) {
      return invalid(path + ": hostname '" + r.hostname + "' on port " +
                         std::to_string(r.listener_port) + " is routed twice",
                     path + ".hostname");
    }
  }
  return ok();
}

}  // namespace

std::string_view protocolName(Protocol p) {
  return p == Protocol::kTcp ? "tcp" : "tls-passthrough";
}

std::string_view proxyProtocolName(ProxyProtocol p) {
  return p == ProxyProtocol::kV2 ? "v2" : "none";
}

Result<RouteSet> parseRouteSet(std::string_view json_text) {
  PLFM_ASSIGN_OR_RETURN(Json doc, json::parse(json_text));
  if (!doc.is_object()) return invalid("the route document must be a JSON object", "body");
  PLFM_TRY(json::rejectUnknownFields(doc, {"cursor", "routes"}));
  RouteSet set;
  if (doc.contains("cursor")) {
    PLFM_ASSIGN_OR_RETURN(set.cursor, json::getInt(doc, "cursor"));
    if (set.cursor < 0) return invalid("cursor must not be negative", "cursor");
  }
  if (!doc.contains("routes") || !doc["routes"].is_array()) {
    return invalid("field 'routes' must be an array", "routes");
  }
  const Json& routes = doc["routes"];
  for (size_t i = 0; i < routes.size(); ++i) {
    PLFM_ASSIGN_OR_RETURN(RouteSpec r, parseRoute(routes[i], "routes[" + std::to_string(i) + "]"));
    set.routes.push_back(std::move(r));
  }
  PLFM_TRY(checkConflicts(set));
  return set;
}

std::string serializeRouteSet(const RouteSet& set) {
  Json routes = Json::array();
  for (const RouteSpec& r : set.routes) {
    Json backends = Json::array();
    for (const BackendSpec& b : r.backends) {
      Json backend = {
          {"address", b.endpoint.ip()}, {"port", b.endpoint.port}, {"healthy", b.healthy}};
      if (b.draining) backend["draining"] = true;
      backends.push_back(std::move(backend));
    }
    routes.push_back({{"id", r.id},
                      {"hostname", r.hostname},
                      {"listener_port", r.listener_port},
                      {"protocol", std::string(protocolName(r.protocol))},
                      {"proxy_protocol", std::string(proxyProtocolName(r.proxy_protocol))},
                      {"backends", std::move(backends)}});
  }
  Json doc = {{"cursor", set.cursor}, {"routes", std::move(routes)}};
  return json::dump(doc);
}

}  // namespace plfm::ingress
