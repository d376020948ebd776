// An immutable snapshot of the routes, built from a RouteSet and swapped
// whole on reload (Ingress holds it in an atomic shared_ptr). A connection
// keeps the snapshot it was routed with, so a reload never changes the
// backend of a connection that already has one.
//
//   auto table = RoutingTable::build(set, stats, loads);
//   const Route* r = table->lookup(443, "App.Example.COM.");  // exact, then wildcard, then "*"
//   int b = table->pickBackend(*r, tried_mask, now_ms);      // least connections among healthy
//
// Matching (DESIGN §6): names compare case-insensitively with a trailing dot
// stripped; an exact name wins over "*.<parent>", which matches exactly one
// extra label (as a certificate wildcard does); "*" is the port's default
// route and also takes connections without SNI. A tcp route owns its port.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "route_config.h"
#include "stats.h"

namespace plfm::ingress {

// Live load of one backend endpoint, shared by every route and every table
// snapshot that names it, so least-connections sees all of its connections.
struct BackendLoad {
  std::atomic<int64_t> active{0};
  // After a failed connect the backend is passed over until this time
  // (steady ms), unless no other healthy backend is left.
  std::atomic<int64_t> failed_until_ms{0};
  // The last connect check failed (HealthChecker): passed over the same way
  // until a check connects again.
  std::atomic<bool> check_down{false};
};

// The BackendLoad of each endpoint, reused across table builds.
class BackendLoads {
 public:
  std::shared_ptr<BackendLoad> get(const net::IpEndpoint& endpoint);
  // Forgets endpoints that no table or connection references any more.
  void prune();

 private:
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<BackendLoad>> loads_;
};

struct Backend {
  net::IpEndpoint endpoint;
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  bool healthy = true;  // false for a draining backend: never picked
  bool draining = false;
  std::shared_ptr<BackendLoad> load;
};

struct Route {
  std::string id;
  std::string hostname;
  uint16_t listener_port = 0;
  Protocol protocol = Protocol::kTlsPassthrough;
  ProxyProtocol proxy_protocol = ProxyProtocol::kNone;
  std::vector<Backend> backends;
  std::shared_ptr<RouteStats> stats;
  mutable std::atomic<uint32_t> next{0};  // round-robin start among equally loaded backends
};

class RoutingTable {
 public:
  [[nodiscard]] static std::shared_ptr<const RoutingTable> build(const RouteSet& set,
                                                                 IngressStats& stats,
                                                                 BackendLoads& loads);

  // The route for a TLS connection on `port` with this SNI (nullopt: no SNI),
  // or for any connection on a tcp port. nullptr when nothing matches.
  [[nodiscard]] const Route* lookup(uint16_t port, std::optional<std::string_view> sni) const;
  // The tcp route that owns `port`, if any: such a port skips the ClientHello.
  [[nodiscard]] const Route* tcpRoute(uint16_t port) const;

  // Index of the backend to try next, skipping unhealthy ones and those in
  // `tried` (bit i = backend i was tried); -1 when none is left. Among the
  // rest it takes the fewest active connections, preferring backends without
  // a recent connect failure or a failed connect check, rotating the start so
  // ties spread round-robin.
  [[nodiscard]] static int pickBackend(const Route& route, uint64_t tried, int64_t now_ms);

  // Every route, for the health checker.
  [[nodiscard]] std::vector<const Route*> routes() const;

  // The open connections of each draining backend endpoint, once each
  // (endpoints shared by routes share their load), ordered by endpoint.
  struct Draining {
    net::IpEndpoint endpoint;
    int64_t active = 0;
  };
  [[nodiscard]] std::vector<Draining> draining() const;

  [[nodiscard]] int64_t cursor() const { return cursor_; }
  [[nodiscard]] size_t size() const { return routes_.size(); }

 private:
  struct Port {
    std::unordered_map<std::string, const Route*> exact;
    std::unordered_map<std::string, const Route*> wildcard;  // keyed by the parent name
    const Route* fallback = nullptr;                         // "*"
    const Route* tcp = nullptr;
  };
  int64_t cursor_ = 0;
  std::vector<std::unique_ptr<Route>> routes_;
  std::unordered_map<uint16_t, Port> ports_;
};

}  // namespace plfm::ingress
