// Prometheus-style metrics: counters, gauges and histograms with labels,
// rendered in the text exposition format (version 0.0.4) for /metrics.
//
//   auto& requests = registry.counter("plfm_http_requests_total", "HTTP requests");
//   requests.inc({{"route", "/v1/orgs"}, {"status", "201"}});
//
// Label sets are small and bounded by the caller (routes and status codes,
// never ids). Output is sorted, so it is stable between scrapes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace plfm::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(const Labels& labels = {}, double by = 1);
  [[nodiscard]] double value(const Labels& labels = {}) const;

 private:
  friend class Registry;
  mutable std::mutex mu_;
  std::map<Labels, double> values_;
};

class Gauge {
 public:
  void set(double v, const Labels& labels = {});
  void add(double v, const Labels& labels = {});
  [[nodiscard]] double value(const Labels& labels = {}) const;

 private:
  friend class Registry;
  mutable std::mutex mu_;
  std::map<Labels, double> values_;
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> buckets) : buckets_(std::move(buckets)) {}
  void observe(double v, const Labels& labels = {});
  // The q-quantile (0..1) estimated from the buckets (upper bound of the
  // bucket that contains it), for logs and benchmarks.
  [[nodiscard]] double quantile(double q, const Labels& labels = {}) const;
  [[nodiscard]] uint64_t count(const Labels& labels = {}) const;

 private:
  friend class Registry;
  struct Series {
    std::vector<uint64_t> counts;  // per bucket, not cumulative
    uint64_t total = 0;
    double sum = 0;
  };
  std::vector<double> buckets_;
  mutable std::mutex mu_;
  std::map<Labels, Series> series_;
};

class Registry {
 public:
  Counter& counter(const std::string& name, const std::string& help);
  Gauge& gauge(const std::string& name, const std::string& help);
  // Default buckets suit request latencies in seconds (1 ms .. 10 s).
  Histogram& histogram(const std::string& name, const std::string& help,
                       std::vector<double> buckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                      0.25, 0.5, 1, 2.5, 5, 10});
  [[nodiscard]] std::string render() const;

 private:
  struct Family {
    std::string help;
    std::string type;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

}  // namespace plfm::metrics
