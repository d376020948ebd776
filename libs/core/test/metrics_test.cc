#include "plfm/core/metrics.h"

#include <gtest/gtest.h>

namespace plfm::metrics {
namespace {

TEST(MetricsTest, RendersSortedPrometheusText) {
  Registry r;
  auto& c = r.counter("plfm_requests_total", "Requests.");
  c.inc({{"route", "/b"}, {"status", "200"}});
  c.inc({{"route", "/a"}, {"status", "200"}}, 2);
  r.gauge("plfm_checkpoint", "Checkpoint.").set(42);
  auto& h = r.histogram("plfm_latency_seconds", "Latency.", {0.01, 0.1});
  h.observe(0.005);
  h.observe(0.05);
  h.observe(3);
  EXPECT_EQ(r.render(),
            "# HELP plfm_checkpoint Checkpoint.\n# TYPE plfm_checkpoint gauge\n"
            "plfm_checkpoint 42\n"
            "# HELP plfm_latency_seconds Latency.\n# TYPE plfm_latency_seconds histogram\n"
            "plfm_latency_seconds_bucket{le=\"0.01\"} 1\n"
            "plfm_latency_seconds_bucket{le=\"0.1\"} 2\n"
            "plfm_latency_seconds_bucket{le=\"+Inf\"} 3\n"
            "plfm_latency_seconds_sum 3.055\nplfm_latency_seconds_count 3\n"
            "# HELP plfm_requests_total Requests.\n# TYPE plfm_requests_total counter\n"
            "plfm_requests_total{route=\"/a\",status=\"200\"} 2\n"
            "plfm_requests_total{route=\"/b\",status=\"200\"} 1\n");
  EXPECT_EQ(c.value({{"route", "/a"}, {"status", "200"}}), 2);
  EXPECT_EQ(h.count(), 3U);
  EXPECT_EQ(h.quantile(0.5), 0.1);
}

TEST(MetricsTest, EscapesLabelValues) {
  Registry r;
  r.counter("x_total", "X.").inc({{"reason", "bad \"quote\"\n"}});
  EXPECT_NE(r.render().find(R"(x_total{reason="bad \"quote\"\n"} 1)"), std::string::npos);
}

}  // namespace
}  // namespace plfm::metrics
