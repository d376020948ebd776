// drain::decide (docs/specs/scheduler/drain.md) with made-up reports and
// times: when a draining instance may stop, and the reason it gives.
#include "drain_gate.h"

#include <gtest/gtest.h>

namespace plfm::cp::drain {
namespace {

constexpr int64_t kT0 = 1'000'000;

Gated gated(int64_t drain_seq = 50, int64_t timeout_ms = 30'000) {
  Gated g;
  g.instance_id = "inst_a";
  g.org_id = "org_a";
  g.address = "fd00::5";
  g.drain_seq = drain_seq;
  g.requested_ms = kT0;
  g.timeout_ms = timeout_ms;
  return g;
}

EdgeReport report(std::string name, int64_t cursor, int64_t at, int64_t active = 0) {
  EdgeReport r;
  r.name = std::move(name);
  r.cursor = cursor;
  r.reported_ms = at;
  if (active > 0) r.active["fd00::5"] = active;
  return r;
}

TEST(DrainGateTest, WaitsForTheGraceThenForEveryLiveIngressToApply) {
  const Options o;  // grace 1 s, ack timeout 10 s, live window 30 s
  const std::vector<Gated> g = {gated()};
  // Within the grace: waits even though everything is acknowledged.
  EXPECT_EQ(decide(kT0 + 500, 60, g, {report("e1", 60, kT0 + 400)}, o).waiting, 1U);
  // e2 serves an older config: waits for it.
  auto d =
      decide(kT0 + 2000, 60, g, {report("e1", 60, kT0 + 1900), report("e2", 49, kT0 + 1900)}, o);
  EXPECT_EQ(d.waiting, 1U);
  EXPECT_TRUE(d.releases.empty());
  // Both applied: released.
  d = decide(kT0 + 2000, 60, g, {report("e1", 60, kT0 + 1900), report("e2", 50, kT0 + 1900)}, o);
  ASSERT_EQ(d.releases.size(), 1U);
  EXPECT_EQ(d.releases[0].reason,
            "drained after 2.0 s: 2 ingresses stopped sending it connections and none are open");
  EXPECT_TRUE(d.releases[0].unacknowledged.empty());
  // An ingress that stopped reporting long ago is not waited for.
  d = decide(kT0 + 2000, 60, g, {report("e1", 60, kT0 + 1900), report("old", 1, kT0 - 60'000)}, o);
  EXPECT_EQ(d.releases.size(), 1U);
}

TEST(DrainGateTest, ADrainNoRouteTouchesNeedsOnlyTheCurrentCursor) {
  // The drain event did not move the edge cursor (40 < 50): every ingress
  // already serving 40 has a config without the instance.
  auto d = decide(kT0 + 1500, 40, {gated(50)}, {report("e1", 40, kT0 + 1400)}, Options{});
  EXPECT_EQ(d.releases.size(), 1U);
}

TEST(DrainGateTest, OpenConnectionsHoldTheDrainUntilTheTimeout) {
  const std::vector<Gated> g = {gated(50, 5'000)};
  auto d = decide(kT0 + 3000, 60, g, {report("e1", 60, kT0 + 2900, 2)}, Options{});
  EXPECT_EQ(d.waiting, 1U);
  d = decide(kT0 + 5000, 60, g, {report("e1", 60, kT0 + 4900, 2)}, Options{});
  ASSERT_EQ(d.releases.size(), 1U);
  EXPECT_EQ(d.releases[0].open_connections, 2);
  EXPECT_EQ(d.releases[0].reason, "drain_timeout of 5.0 s reached with 2 connections still open");
}

TEST(DrainGateTest, ASilentIngressIsNamedAndWaitedForOnlyUntilTheAckTimeout) {
  const std::vector<Gated> g = {gated()};
  const std::vector<EdgeReport> reports = {report("e1", 60, kT0 + 9000),
                                           report("e2", 10, kT0 + 9000)};
  EXPECT_EQ(decide(kT0 + 9500, 60, g, reports, Options{}).waiting, 1U);
  auto d = decide(kT0 + 10'000, 60, g, reports, Options{});
  ASSERT_EQ(d.releases.size(), 1U);
  EXPECT_EQ(d.releases[0].unacknowledged, std::vector<std::string>{"e2"});
  EXPECT_EQ(d.releases[0].reason,
            "drained after 10.0 s: 1 ingress stopped sending it connections and none are open; "
            "ingress e2 did not apply the edge config within 10.0 s, stopping anyway");
}

TEST(DrainGateTest, WithoutIngressesOrWhenNotServingItGoes) {
  auto d = decide(kT0 + 1000, 60, {gated()}, {}, Options{});
  ASSERT_EQ(d.releases.size(), 1U);
  EXPECT_EQ(d.releases[0].reason, "drained after 1.0 s: no ingress is connected");
  Gated crashed = gated();
  crashed.serving = false;
  d = decide(kT0, 60, {crashed}, {report("e1", 1, kT0)}, Options{});
  ASSERT_EQ(d.releases.size(), 1U);
  EXPECT_EQ(d.releases[0].reason, "it was not serving; stopped at once");
}

}  // namespace
}  // namespace plfm::cp::drain
