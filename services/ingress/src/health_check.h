// The ingress's own look at its backends, on top of the control plane's
// `healthy` flag (issue 8, "health gating"; docs/specs/ingress/proxy.md).
//
// Every `interval`, HealthChecker opens a TCP connection to each backend
// endpoint of the table in use (each endpoint once, all in parallel) and
// closes it again. One that refuses or does not accept within `timeout` is
// marked down in its BackendLoad, which every route and table snapshot that
// names the endpoint shares, so pickBackend passes it over while another
// backend is left; the next check that connects marks it up again. A
// backend the control plane calls unhealthy is never checked (never used).
//
//   HealthChecker checker(table, stats, {interval, timeout});
//   checker.start();  ...  checker.stop();
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "proxy.h"
#include "stats.h"

namespace plfm::ingress {

struct HealthCheckOptions {
  std::chrono::milliseconds interval{2000};  // 0: no checks
  std::chrono::milliseconds timeout{1000};
};

class HealthChecker {
 public:
  HealthChecker(SharedTable& table, IngressStats& stats, HealthCheckOptions options);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void start();
  void stop();
  // One round now, on the calling thread (also what each tick runs).
  void checkOnce();

 private:
  void run();

  SharedTable& table_;
  IngressStats& stats_;
  HealthCheckOptions options_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
};

}  // namespace plfm::ingress
