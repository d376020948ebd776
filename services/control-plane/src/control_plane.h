// ControlPlane wires the parts of the service together: the database pool,
// migrations, the projection worker, the scheduler, the NodePlan and edge feeds, the
// API router and the HTTP server, and a janitor for expired idempotency
// records. main.cc only parses the command line and calls run().
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api.h"
#include "config.h"
#include "edge_feed.h"
#include "node_plan.h"
#include "plfm/core/metrics.h"
#include "plfm/http/http.h"
#include "scheduler.h"
#include "secrets_crypto.h"
#include "services_feed.h"

namespace plfm::cp {

class ControlPlane {
 public:
  // `clock` (tests) defaults to the real clock; it must outlive this object.
  explicit ControlPlane(Config cfg, const Clock* clock = nullptr);
  ~ControlPlane();
  ControlPlane(const ControlPlane&) = delete;
  ControlPlane& operator=(const ControlPlane&) = delete;

  // Migrates, bootstraps the admin on first start, starts the projection
  // worker and the HTTP server. Returns once it is serving.
  [[nodiscard]] Result<void> start();
  // Graceful: stop accepting, finish in-flight requests (up to the grace
  // period), stop the worker.
  void stop();

  [[nodiscard]] std::vector<std::string> endpoints() const;
  // The node listener's endpoints; empty without `node_listen`.
  [[nodiscard]] std::vector<std::string> nodeEndpoints() const;
  [[nodiscard]] metrics::Registry& metricsRegistry() { return metrics_; }
  // The scheduler, or nullptr when `scheduler_enabled` is off.
  [[nodiscard]] Scheduler* scheduler() { return scheduler_.get(); }

 private:
  void janitor();

  Config cfg_;
  const Clock& clock_;
  metrics::Registry metrics_;
  std::unique_ptr<pg::Pool> pool_;  // user handlers
  std::unique_ptr<pg::Pool> auth_pool_;
  std::unique_ptr<pg::Pool> node_pool_;
  std::unique_ptr<pg::Pool> node_auth_pool_;
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<ProjectionWorker> worker_;
  std::unique_ptr<Scheduler> scheduler_;
  std::unique_ptr<PlanFeed> plans_;
  std::unique_ptr<EdgeFeed> edge_;
  std::unique_ptr<ServicesFeed> services_;
  std::unique_ptr<crypto::Keyring> keyring_;      // null: secrets disabled
  std::unique_ptr<relay::SigningKey> relay_key_;  // signs log relay requests
  std::unique_ptr<Api> api_;
  http::Router router_;
  http::Router node_router_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<http::Server> node_server_;  // null without node_listen
  std::thread janitor_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
};

// The command line: `serve` (default), `migrate`, `rebuild-views`, `edge-token`.
int runMain(int argc, char** argv);

}  // namespace plfm::cp
