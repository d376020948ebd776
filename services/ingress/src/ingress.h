// The plfm-ingress service: wires the config source, the routing table, the
// proxy workers and the /healthz + /metrics HTTP server together.
//
//   Ingress ingress(cfg);
//   PLFM_TRY(ingress.start());   // last good routes, listeners, source, HTTP
//   ingress.reload();            // SIGHUP: re-read the source now
//   ingress.stop();              // drain connections for shutdown_grace
//
// Start-up never needs the control plane: the last good route document,
// persisted under state_dir at every accepted update (write to a temp file,
// fsync, rename), is loaded before the source is asked.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config.h"
#include "config_source.h"
#include "health_check.h"
#include "plfm/core/result.h"
#include "plfm/http/http.h"
#include "proxy.h"
#include "routing_table.h"
#include "stats.h"

namespace plfm::ingress {

class Ingress {
 public:
  explicit Ingress(Config cfg);
  ~Ingress();
  Ingress(const Ingress&) = delete;
  Ingress& operator=(const Ingress&) = delete;

  [[nodiscard]] Result<void> start();
  void reload();
  void stop();

  // Validates a route document, swaps the table in, persists it. A refused
  // document changes nothing.
  [[nodiscard]] Result<void> applyRoutes(std::string_view text, std::string_view origin);

  [[nodiscard]] std::vector<std::string> proxyEndpoints() const;
  [[nodiscard]] std::vector<std::string> metricsEndpoints() const;
  [[nodiscard]] const IngressStats& stats() const { return stats_; }
  // The cursor it serves and the open connections of its draining backends.
  [[nodiscard]] EdgeStatusReport statusReport() const;

 private:
  [[nodiscard]] Result<void> install(const RouteSet& set, std::string_view origin);
  void loadLastGood();
  [[nodiscard]] http::Response handle(const http::Request& req) const;

  Config cfg_;
  IngressStats stats_;
  BackendLoads loads_;
  SharedTable table_;
  std::mutex apply_mu_;  // one update at a time (source thread, SIGHUP)
  std::atomic<bool> loaded_{false};
  std::unique_ptr<Proxy> proxy_;
  std::unique_ptr<HealthChecker> checker_;
  std::unique_ptr<ConfigSource> source_;
  std::unique_ptr<http::Server> http_;
};

}  // namespace plfm::ingress
