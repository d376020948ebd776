// Ingress metrics, kept as relaxed atomics so that the data path never takes
// a lock to count, and rendered as Prometheus text (format 0.0.4) on
// /metrics. Per-route counters outlive reloads: a route keeps its counters
// while its id stays, and existing connections keep counting into them.
//
//   auto stats = registry.route("rt_1");      // once per table build
//   stats->connections.fetch_add(1, std::memory_order_relaxed);
//   std::string text = registry.render();
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace plfm::ingress {

struct RouteStats {
  std::atomic<uint64_t> connections{0};  // connections routed here
  std::atomic<uint64_t> failures{0};     // routed, but no backend could be connected
  std::atomic<uint64_t> retries{0};      // backend connect attempts that failed and moved on
  std::atomic<uint64_t> bytes_in{0};     // client to backend, ClientHello included
  std::atomic<uint64_t> bytes_out{0};    // backend to client
  std::atomic<int64_t> active{0};
};

// Why a connection was closed before it reached a backend, or cut later.
enum class CloseReason : uint8_t {
  kHelloTimeout,    // no complete ClientHello within the timeout (slowloris)
  kConnectTimeout,  // the backend did not accept in time (then: next backend)
  kIdleTimeout,     // no byte in either direction for the idle timeout
  kConnectionCap,   // refused at accept: max_connections reached
  kResources,       // out of file descriptors or pipes
  kCount,
};

class IngressStats {
 public:
  static constexpr size_t kHelloErrorKinds = 16;

  // Get or create the counters of a route id (takes a lock: table builds only).
  std::shared_ptr<RouteStats> route(const std::string& id);

  void noRoute(uint16_t port);
  void helloError(size_t kind) { hello_errors_.at(kind).fetch_add(1, std::memory_order_relaxed); }
  void closed(CloseReason r) {
    closes_.at(static_cast<size_t>(r)).fetch_add(1, std::memory_order_relaxed);
  }

  std::atomic<uint64_t> accepted{0};
  std::atomic<int64_t> active{0};
  std::atomic<uint64_t> reloads_ok{0};
  std::atomic<uint64_t> reloads_failed{0};
  std::atomic<int64_t> cursor{0};
  std::atomic<int64_t> routes{0};
  std::atomic<uint64_t> health_check_failures{0};  // connect checks that failed
  std::atomic<int64_t> backends_down{0};           // failing their check after the last round

  [[nodiscard]] uint64_t noRouteCount(uint16_t port) const;
  [[nodiscard]] uint64_t closedCount(CloseReason r) const {
    return closes_.at(static_cast<size_t>(r)).load(std::memory_order_relaxed);
  }
  [[nodiscard]] std::string render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<RouteStats>> routes_;
  std::map<uint16_t, uint64_t> no_route_;
  std::array<std::atomic<uint64_t>, kHelloErrorKinds> hello_errors_{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(CloseReason::kCount)> closes_{};
};

}  // namespace plfm::ingress
