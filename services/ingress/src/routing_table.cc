#include "routing_table.h"

#include "sockets.h"

#include <netinet/in.h>

#include <cstring>

namespace plfm::ingress {

namespace {

// Lower case and no trailing dot, the form route hostnames are stored in.
std::string normalizeSni(std::string_view sni) {
  std::string name(sni);
  for (char& c : name) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  if (!name.empty() && name.back() == '.') name.pop_back();
  return name;
}

}  // namespace

std::shared_ptr<BackendLoad> BackendLoads::get(const net::IpEndpoint& endpoint) {
  std::lock_guard lock(mu_);
  auto& slot = loads_[endpoint.toString()];
  if (!slot) slot = std::make_shared<BackendLoad>();
  return slot;
}

void BackendLoads::prune() {
  std::lock_guard lock(mu_);
  std::erase_if(loads_, [](const auto& kv) { return kv.second.use_count() == 1; });
}

std::shared_ptr<const RoutingTable> RoutingTable::build(const RouteSet& set, IngressStats& stats,
                                                        BackendLoads& loads) {
  auto table = std::make_shared<RoutingTable>();
  table->cursor_ = set.cursor;
  for (const RouteSpec& spec : set.routes) {
    auto route = std::make_unique<Route>();
    route->id = spec.id;
    route->hostname = spec.hostname;
    route->listener_port = spec.listener_port;
    route->protocol = spec.protocol;
    route->proxy_protocol = spec.proxy_protocol;
    route->stats = stats.route(spec.id);
    for (const BackendSpec& b : spec.backends) {
      Backend backend;
      backend.endpoint = b.endpoint;
      backend.healthy = b.healthy && !b.draining;
      backend.draining = b.draining;
      backend.load = loads.get(b.endpoint);
      toSockaddr(b.endpoint, backend.addr, backend.addr_len);
      route->backends.push_back(std::move(backend));
    }
    Port& port = table->ports_[spec.listener_port];
    const Route* r = route.get();
    if (spec.protocol == Protocol::kTcp) {
      port.tcp = r;
    } else if (spec.hostname == "*") {
      port.fallback = r;
    } else if (spec.hostname.starts_with("*.")) {
      port.wildcard.emplace(spec.hostname.substr(2), r);
    } else {
      port.exact.emplace(spec.hostname, r);
    }
    table->routes_.push_back(std::move(route));
  }
  return table;
}

const Route* RoutingTable::tcpRoute(uint16_t port) const {
  auto it = ports_.find(port);
  return it == ports_.end() ? nullptr : it->second.tcp;
}

const Route* RoutingTable::lookup(uint16_t port, std::optional<std::string_view> sni) const {
  auto it = ports_.find(port);
  if (it == ports_.end()) return nullptr;
  const Port& p = it->second;
  if (p.tcp != nullptr) return p.tcp;
  if (sni) {
    const std::string name = normalizeSni(*sni);
    if (auto e = p.exact.find(name); e != p.exact.end()) return e->second;
    const size_t dot = name.find('.');
    if (dot != std::string::npos) {
      if (auto w = p.wildcard.find(name.substr(dot + 1)); w != p.wildcard.end()) return w->second;
    }
  }
  return p.fallback;
}

std::vector<const Route*> RoutingTable::routes() const {
  std::vector<const Route*> out;
  out.reserve(routes_.size());
  for (const auto& r : routes_) out.push_back(r.get());
  return out;
}

std::vector<RoutingTable::Draining> RoutingTable::draining() const {
  std::map<std::string, Draining> by_endpoint;
  for (const auto& r : routes_) {
    for (const Backend& b : r->backends) {
      if (!b.draining) continue;
      by_endpoint.try_emplace(b.endpoint.toString(),
                              Draining{b.endpoint, b.load->active.load(std::memory_order_relaxed)});
    }
  }
  std::vector<Draining> out;
  out.reserve(by_endpoint.size());
  for (auto& entry : by_endpoint) out.push_back(entry.second);
  return out;
}

int RoutingTable::pickBackend(const Route& route, uint64_t tried, int64_t now_ms) {
  const size_t n = route.backends.size();
  if (n == 0) return -1;
  const size_t start = route.next.fetch_add(1, std::memory_order_relaxed) % n;
  int best = -1;
  bool best_failed = true;
  int64_t best_active = 0;
  for (size_t k = 0; k < n && k < 64; ++k) {
    const size_t i = (start + k) % n;
    const Backend& b = route.backends[i];
    if (!b.healthy || (tried & (uint64_t{1} << i)) != 0) continue;
    const bool failed = b.load->failed_until_ms.load(std::memory_order_relaxed) > now_ms ||
                        b.load->check_down.load(std::memory_order_relaxed);
    const int64_t active = b.load->active.load(std::memory_order_relaxed);
    if (best < 0 || (best_failed && !failed) || (failed == best_failed && active < best_active)) {
      best = static_cast<int>(i);
      best_failed = failed;
      best_active = active;
    }
  }
  return best;
}

}  // namespace plfm::ingress
