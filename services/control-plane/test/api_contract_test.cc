// Contract tests: the OpenAPI document and the server agree on which routes
// exist, and every route refuses missing or wrong credentials. (Every
// response in the API tests is also validated against its OpenAPI schema by
// ApiTest::call.)
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "api_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;

std::set<std::pair<std::string, std::string>> servedRoutes() {
  // Build the router exactly as the server does, without serving.
  static RealClock clock;
  static metrics::Registry registry;
  pg::Pool pool("", 1);
  EventStore store(clock);
  ProjectionWorker worker("", {});
  Api api(ApiDeps{pool, store, worker, clock, registry, {}, nullptr, nullptr});
  http::Router router;
  api.registerRoutes(router);
  std::set<std::pair<std::string, std::string>> out;
  for (const auto& r : router.routes()) out.insert({r.method, r.pattern});
  return out;
}

TEST_F(ApiTest, EveryOpenApiRouteIsServedAndViceVersa) {
  const auto served = servedRoutes();
  std::set<std::pair<std::string, std::string>> documented(routes_.begin(), routes_.end());
  for (const auto& r : documented) {
    EXPECT_TRUE(served.contains(r)) << r.first << " " << r.second << " is in the OpenAPI only";
  }
  for (const auto& r : served) {
    EXPECT_TRUE(documented.contains(r))
        << r.first << " " << r.second << " is served but not documented";
  }
}

TEST_F(ApiTest, EveryRouteRejectsMissingAndWrongCredentials) {
  const std::string fakeId = "01jdq3v7k2m9x4c8r6t0w5y1zb";
  int checked = 0;
  for (const auto& [method, tmpl] : routes_) {
    if (tmpl == "/healthz" || tmpl == "/metrics") continue;
    // Fill {x_id} placeholders with well-formed ids of the right prefix.
    std::string path = tmpl;
    std::smatch m;
    while (std::regex_search(path, m, std::regex(R"(\{([a-z]+)_id\})"))) {
      std::string prefix = m[1].str();
      if (prefix == "release") prefix = "rel";
      if (prefix == "deploy") prefix = "dep";
      if (prefix == "user") prefix = "usr";
      if (prefix == "instance") prefix = "inst";
      path.replace(static_cast<size_t>(m.position(0)), static_cast<size_t>(m.length(0)),
                   prefix.append("_").append(fakeId));
    }
    const std::string body = method == "GET" ? "" : "{}";
    for (const std::string& token : {std::string(), "vt_" + std::string(52, 'z')}) {
      auto r = call(method, path, body, token);
      EXPECT_EQ(r.status, 401) << method << " " << path << " token='" << token << "': " << r.raw;
      EXPECT_EQ(r.body["error"]["code"], "unauthenticated");
      ++checked;
    }
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
}  // namespace plfm::cp
