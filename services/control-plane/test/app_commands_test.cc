// The app and env commands parsed from requests alone, without a database
// (api_apps.h): what each command holds, and which field each refusal names.
#include <gtest/gtest.h>

#include "api_apps.h"
#include "commands_test_support.h"

namespace plfm::cp::apps {
namespace {

const std::string kOrg = OrgId::generate().str();
const std::string kApp = AppId::generate().str();
const std::string kEnv = EnvId::generate().str();

using command_test::refusedField;

http::Request request(const std::string& param, const std::string& id, const std::string& body) {
  return command_test::commandRequest(param, id, body);
}

TEST(AppCommandsTest, CreateAppHoldsTheOrgNameAndDescription) {
  auto c = parseCreateApp(request("org_id", kOrg, R"({"name":"shop","description":"the shop"})"));
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->org.str(), kOrg);
  EXPECT_EQ(c->name, "shop");
  EXPECT_EQ(c->description, "the shop");
  auto bare = parseCreateApp(request("org_id", kOrg, R"({"name":"shop"})"));
  ASSERT_TRUE(bare) << bare.error().toString();
  EXPECT_EQ(bare->description, "");
}

TEST(AppCommandsTest, CreateAppRefusalsNameTheirField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "name"},
      {R"({"name":7})", "name"},
      {R"({"name":"Shop"})", "name"},
      {R"({"name":"shop-"})", "name"},
      {R"({"name":")" + std::string(64, 'a') + R"("})", "name"},
      {R"({"name":"shop","description":")" + std::string(501, 'd') + R"("})", "description"},
  };
  for (const auto& [body, field] : cases) {
    auto c = parseCreateApp(request("org_id", kOrg, body));
    ASSERT_FALSE(c) << body;
    EXPECT_EQ(refusedField(c), field) << body;
  }
  auto unknown = parseCreateApp(request("org_id", kOrg, R"({"name":"shop","owner":"x"})"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), apierr::kUnknownField);
  auto bad_org = parseCreateApp(request("org_id", kApp, "{"));
  ASSERT_FALSE(bad_org);
  EXPECT_EQ(bad_org.error().code(), apierr::kInvalidId);
  EXPECT_EQ(refusedField(bad_org), "org_id");
}

TEST(AppCommandsTest, CreateEnvHoldsTheAppAndName) {
  auto c = parseCreateEnv(request("app_id", kApp, R"({"name":"prod"})"));
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->app.str(), kApp);
  EXPECT_EQ(c->name, "prod");
  EXPECT_EQ(refusedField(parseCreateEnv(request("app_id", kApp, R"({"name":"9prod"})"))), "name");
  auto extra = parseCreateEnv(request("app_id", kApp, R"({"name":"prod","description":"x"})"));
  ASSERT_FALSE(extra);
  EXPECT_EQ(extra.error().code(), apierr::kUnknownField);
  EXPECT_EQ(refusedField(parseCreateEnv(request("app_id", kEnv, R"({"name":"prod"})"))), "app_id");
}

TEST(AppCommandsTest, DeletesParseTheirIds) {
  auto app = parseDeleteApp(request("app_id", kApp, ""));
  ASSERT_TRUE(app) << app.error().toString();
  EXPECT_EQ(app->app.str(), kApp);
  auto env = parseDeleteEnv(request("env_id", kEnv, ""));
  ASSERT_TRUE(env) << env.error().toString();
  EXPECT_EQ(env->env.str(), kEnv);
  EXPECT_EQ(refusedField(parseDeleteApp(request("app_id", kEnv, ""))), "app_id");
  EXPECT_EQ(refusedField(parseDeleteEnv(request("env_id", "env_", ""))), "env_id");
}

}  // namespace
}  // namespace plfm::cp::apps
