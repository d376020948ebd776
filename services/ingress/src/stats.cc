#include "stats.h"

#include <string_view>

#include "plfm/core/strings.h"
#include "plfm/net/client_hello.h"

namespace plfm::ingress {

namespace {

std::string_view closeReasonName(CloseReason r) {
  switch (r) {
    case CloseReason::kHelloTimeout:
      return "client_hello_timeout";
    case CloseReason::kConnectTimeout:
      return "connect_timeout";
    case CloseReason::kIdleTimeout:
      return "idle_timeout";
    case CloseReason::kConnectionCap:
      return "connection_limit";
    case CloseReason::kResources:
      return "resources";
    case CloseReason::kCount:
      break;
  }
  return "unknown";
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void sample(std::string& out, std::string_view name, std::string_view label, std::string_view value,
            double v) {
  out.append(name);
  if (!label.empty()) {
    out.append("{").append(label).append("=\"");
    appendJsonEscaped(out, value);  // the escapes Prometheus needs are a subset
    out.append("\"}");
  }
  out.append(" ").append(std::to_string(static_cast<int64_t>(v))).append("\n");
}

}  // namespace

std::shared_ptr<RouteStats> IngressStats::route(const std::string& id) {
  std::lock_guard lock(mu_);
  auto& slot = routes_[id];
  if (!slot) slot = std::make_shared<RouteStats>();
  return slot;
}

void IngressStats::noRoute(uint16_t port) {
  std::lock_guard lock(mu_);
  ++no_route_[port];
}

uint64_t IngressStats::noRouteCount(uint16_t port) const {
  std::lock_guard lock(mu_);
  auto it = no_route_.find(port);
  return it == no_route_.end() ? 0 : it->second;
}

std::string IngressStats::render() const {
  std::string out;
  constexpr auto kRelaxed = std::memory_order_relaxed;
  std::lock_guard lock(mu_);
  struct PerRoute {
    std::string_view name, type, help;
    double (*get)(const RouteStats&);
  };
  static const PerRoute kPerRoute[] = {
      {"plfm_ingress_connections_total", "counter", "Connections routed to a route.",
       [](const RouteStats& s) { return static_cast<double>(s.connections.load(kRelaxed)); }},
      {"plfm_ingress_connection_failures_total", "counter",
       "Routed connections closed because no backend could be connected.",
       [](const RouteStats& s) { return static_cast<double>(s.failures.load(kRelaxed)); }},
      {"plfm_ingress_backend_retries_total", "counter",
       "Backend connect attempts that failed and moved on to another backend.",
       [](const RouteStats& s) { return static_cast<double>(s.retries.load(kRelaxed)); }},
      {"plfm_ingress_bytes_in_total", "counter", "Bytes from clients to backends.",
       [](const RouteStats& s) { return static_cast<double>(s.bytes_in.load(kRelaxed)); }},
      {"plfm_ingress_bytes_out_total", "counter", "Bytes from backends to clients.",
       [](const RouteStats& s) { return static_cast<double>(s.bytes_out.load(kRelaxed)); }},
      {"plfm_ingress_route_active_connections", "gauge", "Open connections per route.",
       [](const RouteStats& s) { return static_cast<double>(s.active.load(kRelaxed)); }},
  };
  for (const PerRoute& m : kPerRoute) {
    header(out, m.name, m.type, m.help);
    for (const auto& [id, s] : routes_) sample(out, m.name, "route", id, m.get(*s));
  }
  header(out, "plfm_ingress_no_route_total", "counter",
         "Connections closed because their SNI matched no route, per listener port.");
  for (const auto& [port, n] : no_route_) {
    sample(out, "plfm_ingress_no_route_total", "port", std::to_string(port),
           static_cast<double>(n));
  }
  header(out, "plfm_ingress_client_hello_errors_total", "counter",
         "Connections closed because their ClientHello was malformed, per parser error.");
  for (size_t k = 1; k < kHelloErrorKinds; ++k) {
    const uint64_t n = hello_errors_.at(k).load(kRelaxed);
    if (n == 0) continue;
    sample(out, "plfm_ingress_client_hello_errors_total", "reason",
           net::helloErrorName(static_cast<net::HelloError>(k)), static_cast<double>(n));
  }
  header(out, "plfm_ingress_closed_total", "counter",
         "Connections closed by a timeout or a limit, per reason.");
  for (size_t r = 0; r < closes_.size(); ++r) {
    sample(out, "plfm_ingress_closed_total", "reason", closeReasonName(static_cast<CloseReason>(r)),
           static_cast<double>(closes_.at(r).load(kRelaxed)));
  }
  header(out, "plfm_ingress_accepted_total", "counter", "Connections accepted.");
  sample(out, "plfm_ingress_accepted_total", "", "", static_cast<double>(accepted.load(kRelaxed)));
  header(out, "plfm_ingress_active_connections", "gauge", "Open client connections.");
  sample(out, "plfm_ingress_active_connections", "", "",
         static_cast<double>(active.load(kRelaxed)));
  header(out, "plfm_ingress_config_reloads_total", "counter", "Route updates, per result.");
  sample(out, "plfm_ingress_config_reloads_total", "result", "ok",
         static_cast<double>(reloads_ok.load(kRelaxed)));
  sample(out, "plfm_ingress_config_reloads_total", "result", "error",
         static_cast<double>(reloads_failed.load(kRelaxed)));
  header(out, "plfm_ingress_config_cursor", "gauge", "Cursor of the route table in use.");
  sample(out, "plfm_ingress_config_cursor", "", "", static_cast<double>(cursor.load(kRelaxed)));
  header(out, "plfm_ingress_routes", "gauge", "Routes in the table in use.");
  sample(out, "plfm_ingress_routes", "", "", static_cast<double>(routes.load(kRelaxed)));
  header(out, "plfm_ingress_health_check_failures_total", "counter",
         "Backend connect checks that were refused or timed out.");
  sample(out, "plfm_ingress_health_check_failures_total", "", "",
         static_cast<double>(health_check_failures.load(kRelaxed)));
  header(out, "plfm_ingress_backends_down", "gauge",
         "Backends that failed their last connect check (passed over while others are left).");
  sample(out, "plfm_ingress_backends_down", "", "",
         static_cast<double>(backends_down.load(kRelaxed)));
  return out;
}

}  // namespace plfm::ingress
