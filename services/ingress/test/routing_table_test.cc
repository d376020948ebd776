#include "routing_table.h"

#include <gtest/gtest.h>

namespace plfm::ingress {
namespace {

RouteSet parse(const std::string& text) {
  auto set = parseRouteSet(text);
  EXPECT_TRUE(set) << (set ? "" : set.error().toString());
  return set ? *set : RouteSet{};
}

class RoutingTableTest : public ::testing::Test {
 protected:
  std::shared_ptr<const RoutingTable> build(const std::string& text) {
    return RoutingTable::build(parse(text), stats_, loads_);
  }
  IngressStats stats_;
  BackendLoads loads_;
};

constexpr const char* kRoutes = R"({"cursor": 3, "routes": [
  {"id": "exact", "hostname": "App.Example.com.", "listener_port": 443,
   "backends": [{"address": "2001:db8::1", "port": 8443}]},
  {"id": "wild", "hostname": "*.example.com", "listener_port": 443,
   "backends": [{"address": "2001:db8::2", "port": 8443}]},
  {"id": "other-port", "hostname": "app.example.com", "listener_port": 8443,
   "backends": [{"address": "192.0.2.1", "port": 8443}]},
  {"id": "tcp", "listener_port": 5432, "protocol": "tcp",
   "backends": [{"address": "2001:db8::3", "port": 5432}]}
]})";

std::string idOf(const Route* r) { return r == nullptr ? "<none>" : r->id; }

TEST_F(RoutingTableTest, ExactBeforeWildcardCaseInsensitiveTrailingDot) {
  auto t = build(kRoutes);
  EXPECT_EQ(t->cursor(), 3);
  EXPECT_EQ(t->size(), 4u);
  EXPECT_EQ(idOf(t->lookup(443, "app.example.com")), "exact");
  EXPECT_EQ(idOf(t->lookup(443, "APP.EXAMPLE.COM")), "exact");
  EXPECT_EQ(idOf(t->lookup(443, "app.example.com.")), "exact");
  EXPECT_EQ(idOf(t->lookup(443, "api.Example.com")), "wild");
  EXPECT_EQ(idOf(t->lookup(443, "api.example.com.")), "wild");
}

TEST_F(RoutingTableTest, WildcardMatchesOneLabelOnly) {
  auto t = build(kRoutes);
  EXPECT_EQ(idOf(t->lookup(443, "example.com")), "<none>");
  EXPECT_EQ(idOf(t->lookup(443, "a.b.example.com")), "<none>");
  EXPECT_EQ(idOf(t->lookup(443, "example.org")), "<none>");
  EXPECT_EQ(idOf(t->lookup(443, std::nullopt)), "<none>");
}

TEST_F(RoutingTableTest, PortsAreSeparate) {
  auto t = build(kRoutes);
  EXPECT_EQ(idOf(t->lookup(8443, "app.example.com")), "other-port");
  EXPECT_EQ(idOf(t->lookup(8443, "x.example.com")), "<none>");
  EXPECT_EQ(idOf(t->lookup(9999, "app.example.com")), "<none>");
}

TEST_F(RoutingTableTest, TcpRouteOwnsItsPort) {
  auto t = build(kRoutes);
  EXPECT_EQ(idOf(t->tcpRoute(5432)), "tcp");
  EXPECT_EQ(idOf(t->lookup(5432, std::nullopt)), "tcp");
  EXPECT_EQ(t->tcpRoute(443), nullptr);
}

TEST_F(RoutingTableTest, DefaultRouteTakesTheRestAndNoSni) {
  auto t = build(R"({"routes": [
    {"id": "a", "hostname": "a.example.com", "listener_port": 443},
    {"id": "default", "hostname": "*", "listener_port": 443}]})");
  EXPECT_EQ(idOf(t->lookup(443, "a.example.com")), "a");
  EXPECT_EQ(idOf(t->lookup(443, "zzz.test")), "default");
  EXPECT_EQ(idOf(t->lookup(443, std::nullopt)), "default");
}

TEST_F(RoutingTableTest, PicksLeastConnectionsAmongHealthy) {
  auto t = build(R"({"routes": [{"id": "r", "hostname": "a.test", "listener_port": 443,
    "backends": [{"address": "::1", "port": 1, "healthy": false},
                 {"address": "::1", "port": 2}, {"address": "127.0.0.1", "port": 3}]}]})");
  const Route* r = t->lookup(443, "a.test");
  ASSERT_NE(r, nullptr);
  r->backends[1].load->active = 5;
  for (int i = 0; i < 5; ++i) EXPECT_EQ(RoutingTable::pickBackend(*r, 0, 0), 2);
  // Tried backends are skipped; the unhealthy one never comes back.
  EXPECT_EQ(RoutingTable::pickBackend(*r, 0b100, 0), 1);
  EXPECT_EQ(RoutingTable::pickBackend(*r, 0b110, 0), -1);
}

TEST_F(RoutingTableTest, EqualLoadRotatesAndRecentFailuresGoLast) {
  auto t = build(R"({"routes": [{"id": "r", "hostname": "a.test", "listener_port": 443,
    "backends": [{"address": "::1", "port": 1}, {"address": "::1", "port": 2}]}]})");
  const Route* r = t->lookup(443, "a.test");
  ASSERT_NE(r, nullptr);
  const int first = RoutingTable::pickBackend(*r, 0, 0);
  const int second = RoutingTable::pickBackend(*r, 0, 0);
  EXPECT_NE(first, second);
  r->backends[0].load->failed_until_ms = 1000;
  EXPECT_EQ(RoutingTable::pickBackend(*r, 0, 500), 1);
  EXPECT_EQ(RoutingTable::pickBackend(*r, 0, 500), 1);
  // Only the failed one left: it is still tried rather than refusing.
  EXPECT_EQ(RoutingTable::pickBackend(*r, 0b10, 500), 0);
  EXPECT_EQ(RoutingTable::pickBackend(*r, 0b10, 1500), 0);
}

TEST_F(RoutingTableTest, StatsAndLoadsSurviveRebuilds) {
  auto t1 = build(kRoutes);
  auto t2 = build(kRoutes);
  const Route* a = t1->lookup(443, "app.example.com");
  const Route* b = t2->lookup(443, "app.example.com");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_EQ(a->stats, b->stats);
  EXPECT_EQ(a->backends[0].load, b->backends[0].load);
}

}  // namespace
}  // namespace plfm::ingress
