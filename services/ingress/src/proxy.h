// The data plane: worker threads, each an epoll loop watching the shared
// listeners (EPOLLEXCLUSIVE), that read the ClientHello, route it by SNI, connect
// a backend and then splice bytes both ways (docs/specs/ingress/proxy.md).
//
//   SharedTable table;                 // the control side swaps routes in
//   Proxy proxy(options, table, stats);
//   PLFM_TRY(proxy.start());           // binds every listener in every worker
//   table.store(RoutingTable::build(...));  // reload: new connections only
//   proxy.stop(grace);                 // stop accepting, drain, close
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/net/proxy_protocol.h"
#include "routing_table.h"
#include "stats.h"

namespace plfm::ingress {

class Worker;

struct ProxyOptions {
  std::vector<net::IpEndpoint> listen;
  int workers = 1;
  std::chrono::milliseconds client_hello_timeout{5000};
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds idle_timeout{300'000};
  size_t max_connections = 20'000;
  int connect_attempts = 3;
  std::chrono::milliseconds backend_holdoff{2000};
  int backlog = 4096;
  bool defer_accept = true;
};

// The routing table in use. Workers check a version number per connection
// and take the lock only when it changed, so a reload costs the data path
// one relaxed load.
class SharedTable {
 public:
  SharedTable();
  void store(std::shared_ptr<const RoutingTable> table);
  [[nodiscard]] std::shared_ptr<const RoutingTable> load() const;
  [[nodiscard]] uint64_t version() const { return version_.load(std::memory_order_acquire); }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const RoutingTable> table_;
  std::atomic<uint64_t> version_{0};
};

class Proxy {
 public:
  Proxy(ProxyOptions options, SharedTable& table, IngressStats& stats);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  // Binds every listener (fails, binding nothing, if one cannot be bound) and
  // starts the worker threads. A port 0 listener gets one port, shared by
  // all workers.
  [[nodiscard]] Result<void> start();
  // The bound listener endpoints, in `listen` order.
  [[nodiscard]] std::vector<net::IpEndpoint> endpoints() const { return bound_; }
  // Refuses new connections from now on (the listeners are shut down; their
  // descriptors stay open until stop()). Open connections go on. Idempotent.
  void stopAccepting();
  // Stops accepting, lets open connections finish for up to `grace`, then
  // closes the rest and joins the workers.
  void stop(std::chrono::milliseconds grace);

 private:
  ProxyOptions options_;
  SharedTable& table_;
  IngressStats& stats_;
  void closeListeners();

  std::vector<int> listen_fds_;  // one per address, shared by the workers
  std::vector<net::IpEndpoint> bound_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
};

}  // namespace plfm::ingress
