// The route commands parsed from requests alone, without a database
// (api_routes.h; docs/specs/api/v1.md "Routes"): what each command holds,
// and which field each refusal names. The API test runs the same requests
// against PostgreSQL; here every case costs microseconds.
#include <gtest/gtest.h>

#include "api_routes.h"
#include "commands_test_support.h"

namespace plfm::cp::routes {
namespace {

const std::string kEnv = EnvId::generate().str();
const std::string kRoute = RouteId::generate().str();

using command_test::refusedField;

http::Request request(const std::string& param, const std::string& id, const std::string& body) {
  return command_test::commandRequest(param, id, body);
}

Result<CreateRoute> create(const std::string& body, const std::string& env = kEnv) {
  return parseCreate(request("env_id", env, body));
}

Result<UpdateRoute> update(const std::string& body, const std::string& route = kRoute) {
  return parseUpdate(request("route_id", route, body));
}

TEST(RouteCommandsTest, CreateNormalizesTheHostnameAndFillsDefaults) {
  auto c = create(R"({"hostname":"App.Example.COM.","process_type":"web","backend_port":8443})");
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->env.str(), kEnv);
  EXPECT_EQ(c->hostname, "app.example.com");
  EXPECT_EQ(c->listener_port, 443);
  EXPECT_EQ(c->protocol, "tls-passthrough");
  EXPECT_EQ(c->target.process_type, "web");
  EXPECT_EQ(c->target.backend_port, 8443);
  EXPECT_EQ(c->target.proxy_protocol, "none");
}

TEST(RouteCommandsTest, CreateTakesATcpRouteWithoutAHostname) {
  auto c =
      create(R"({"protocol":"tcp","listener_port":5432,"process_type":"db","backend_port":5432,)"
             R"("proxy_protocol":"v2"})");
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->hostname, "");
  EXPECT_EQ(c->listener_port, 5432);
  EXPECT_EQ(c->protocol, "tcp");
  EXPECT_EQ(c->target.proxy_protocol, "v2");
}

TEST(RouteCommandsTest, CreateKeepsAPortsDefaultRouteForTheHandlerToAuthorize) {
  auto c = create(R"({"hostname":"*","process_type":"web","backend_port":80})");
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->hostname, "*");
}

TEST(RouteCommandsTest, CreateRefusalsNameTheirField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"hostname":"a..b","process_type":"web","backend_port":1})", "hostname"},
      {R"({"hostname":"a.*.b","process_type":"web","backend_port":1})", "hostname"},
      {R"({"process_type":"web","backend_port":1})", "hostname"},
      {R"({"protocol":"tcp","hostname":"a.b","process_type":"web","backend_port":1})", "hostname"},
      {R"({"hostname":"a.b","backend_port":1})", "process_type"},
      {R"({"hostname":"a.b","process_type":"Web","backend_port":1})", "process_type"},
      {R"({"hostname":"a.b","process_type":"web","backend_port":0})", "backend_port"},
      {R"({"hostname":"a.b","process_type":"web","backend_port":"80"})", "backend_port"},
      {R"({"hostname":"a.b","process_type":"web"})", "backend_port"},
      {R"({"hostname":"a.b","process_type":"web","backend_port":1,"listener_port":70000})",
       "listener_port"},
      {R"({"hostname":"a.b","process_type":"web","backend_port":1,"protocol":"http"})", "protocol"},
      {R"({"hostname":"a.b","process_type":"web","backend_port":1,"proxy_protocol":"v1"})",
       "proxy_protocol"},
      // 443 is the port every org's TLS routes share.
      {R"({"protocol":"tcp","process_type":"web","backend_port":1,"listener_port":443})",
       "listener_port"},
  };
  for (const auto& [body, field] : cases) {
    auto c = create(body);
    ASSERT_FALSE(c) << body;
    EXPECT_EQ(c.error().code(), apierr::kInvalidField) << body;
    EXPECT_EQ(refusedField(c), field) << body;
  }
}

TEST(RouteCommandsTest, CreateRefusesABadEnvIdBeforeTheBody) {
  auto c = create("not json", "app_123");
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code(), apierr::kInvalidId);
  EXPECT_EQ(refusedField(c), "env_id");
}

TEST(RouteCommandsTest, CreateRefusesUnknownFieldsAndBadJson) {
  auto unknown = create(R"({"hostname":"a.b","process_type":"web","backend_port":1,"tls":true})");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), apierr::kUnknownField);
  auto bad = create("{");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), apierr::kInvalidJson);
}

TEST(RouteCommandsTest, UpdateHoldsOnlyTheFieldsGiven) {
  auto c = update(R"({"backend_port":9000})");
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->route.str(), kRoute);
  EXPECT_EQ(c->backend_port, 9000);
  EXPECT_FALSE(c->process_type);
  EXPECT_FALSE(c->proxy_protocol);
}

TEST(RouteCommandsTest, UpdateNeedsAFieldAndNeverChangesTheHostname) {
  auto none = update("{}");
  ASSERT_FALSE(none);
  EXPECT_EQ(refusedField(none), "process_type");
  auto hostname = update(R"({"hostname":"b.example.com"})");
  ASSERT_FALSE(hostname);
  EXPECT_EQ(hostname.error().code(), apierr::kUnknownField);
  EXPECT_EQ(refusedField(update(R"({"proxy_protocol":"v1"})")), "proxy_protocol");
  EXPECT_EQ(refusedField(update("{}", "env_123")), "route_id");
}

TEST(RouteCommandsTest, DeleteParsesTheRouteId) {
  auto c = parseDelete(request("route_id", kRoute, ""));
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->route.str(), kRoute);
  EXPECT_EQ(refusedField(parseDelete(request("route_id", "route_x", ""))), "route_id");
}

}  // namespace
}  // namespace plfm::cp::routes
