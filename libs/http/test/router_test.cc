#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "plfm/http/http.h"

namespace plfm::http {
namespace {

Request makeRequest(std::string method, std::string target) {
  Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  return r;
}

Handler reply(std::string body) {
  return [body = std::move(body)](Request&) { return Response::text(200, body); };
}

std::string codeOf(const Response& r) {
  return nlohmann::json::parse(r.body).at("error").at("code").get<std::string>();
}

class RouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    router.add("GET", "/v1/orgs", reply("list orgs"));
    router.add("POST", "/v1/orgs", reply("create org"));
    router.add("GET", "/v1/orgs/{org_id}", [](Request& r) {
      return Response::text(200, "org " + std::string(r.param("org_id")));
    });
    router.add("DELETE", "/v1/orgs/{org_id}", reply("delete org"));
    router.add("GET", "/v1/orgs/{org_id}/apps/{app_id}", [](Request& r) {
      return Response::text(200,
                            std::string(r.param("org_id")) + "|" + std::string(r.param("app_id")));
    });
    router.add("GET", "/v1/orgs/new", reply("new org form"));
    router.add("GET", "/", reply("root"));
  }
  Router router;
};

TEST_F(RouterTest, MatchesLiteralPathsByMethod) {
  auto req = makeRequest("GET", "/v1/orgs");
  EXPECT_EQ(router.dispatch(req).body, "list orgs");
  req = makeRequest("POST", "/v1/orgs?dry_run=1");
  EXPECT_EQ(router.dispatch(req).body, "create org");
  req = makeRequest("GET", "/");
  EXPECT_EQ(router.dispatch(req).body, "root");
}

TEST_F(RouterTest, PlaceholdersFillParams) {
  auto req = makeRequest("GET", "/v1/orgs/org_1/apps/app_2");
  auto resp = router.dispatch(req);
  EXPECT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, "org_1|app_2");
  EXPECT_EQ(req.param("org_id"), "org_1");
  EXPECT_EQ(req.param("app_id"), "app_2");
}

TEST_F(RouterTest, LiteralSegmentBeatsPlaceholder) {
  auto req = makeRequest("GET", "/v1/orgs/new");
  EXPECT_EQ(router.dispatch(req).body, "new org form");
}

TEST_F(RouterTest, PlaceholderValuesArePercentDecoded) {
  auto req = makeRequest("GET", "/v1/orgs/a%2Fb%20c");
  EXPECT_EQ(router.dispatch(req).body, "org a/b c");
}

TEST_F(RouterTest, UnknownPathIs404WithEnvelope) {
  auto req = makeRequest("GET", "/v2/orgs");
  auto resp = router.dispatch(req);
  EXPECT_EQ(resp.status, 404);
  EXPECT_EQ(resp.headers.get("Content-Type"), "application/json");
  EXPECT_EQ(codeOf(resp), "not_found");
}

TEST_F(RouterTest, WrongMethodIs405WithSortedAllow) {
  auto req = makeRequest("PUT", "/v1/orgs/org_1");
  auto resp = router.dispatch(req);
  EXPECT_EQ(resp.status, 405);
  EXPECT_EQ(codeOf(resp), "method_not_allowed");
  EXPECT_EQ(resp.headers.get("Allow"), "DELETE, GET");
  req = makeRequest("PATCH", "/v1/orgs");
  EXPECT_EQ(router.dispatch(req).headers.get("Allow"), "GET, POST");
}

TEST_F(RouterTest, TrailingSlashDoesNotMatch) {
  auto req = makeRequest("GET", "/v1/orgs/");
  EXPECT_EQ(router.dispatch(req).status, 404);
}

TEST_F(RouterTest, EmptySegmentDoesNotMatchPlaceholder) {
  auto req = makeRequest("GET", "/v1/orgs//apps/x");
  EXPECT_EQ(router.dispatch(req).status, 404);
}

TEST_F(RouterTest, InvalidPercentEncodingIs400) {
  auto req = makeRequest("GET", "/v1/orgs/%zz");
  auto resp = router.dispatch(req);
  EXPECT_EQ(resp.status, 400);
  EXPECT_EQ(codeOf(resp), "bad_request");
}

TEST_F(RouterTest, RequestWithoutTargetUsesDecodedPath) {
  Request req;
  req.method = "GET";
  req.path = "/v1/orgs/a%2F";  // already decoded: "%2F" is literal text here
  EXPECT_EQ(router.dispatch(req).body, "org a%2F");
}

TEST_F(RouterTest, RoutesListsRegistrationOrder) {
  auto routes = router.routes();
  ASSERT_EQ(routes.size(), 7U);
  EXPECT_EQ(routes[0].method, "GET");
  EXPECT_EQ(routes[0].pattern, "/v1/orgs");
  EXPECT_EQ(routes[4].pattern, "/v1/orgs/{org_id}/apps/{app_id}");
}

}  // namespace
}  // namespace plfm::http
