// The release, deploy and scale commands parsed from requests alone, without
// a database (api_releases.h): what each command holds, and which field each
// refusal names. The API tests run the same requests against PostgreSQL.
#include <gtest/gtest.h>

#include "api_releases.h"
#include "commands_test_support.h"

namespace plfm::cp::releases {
namespace {

const std::string kApp = AppId::generate().str();
const std::string kEnv = EnvId::generate().str();
const std::string kRel = ReleaseId::generate().str();
const std::string kDigest = "sha256:" + std::string(64, 'b');

using command_test::refusedField;

http::Request request(const std::string& param, const std::string& id, const std::string& body) {
  return command_test::commandRequest(param, id, body);
}

std::string releaseBody(const std::string& ref, const std::string& digest,
                        const std::string& manifest = R"({"app":"hello","image":"r/h:1",)"
                                                      R"("processes":[{"name":"web"}]})") {
  return R"({"image_ref":")" + ref + R"(","image_digest":")" + digest + R"(","manifest":)" +
         manifest + "}";
}

TEST(ReleaseCommandsTest, CreateReleaseHoldsTheCanonicalManifest) {
  auto c = parseCreateRelease(request("app_id", kApp, releaseBody("registry.local/h:1", kDigest)));
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->app.str(), kApp);
  EXPECT_EQ(c->image_ref, "registry.local/h:1");
  EXPECT_EQ(c->image_digest, kDigest);
  // Canonical: defaults filled in, so a stored manifest reads back the same.
  ASSERT_TRUE(c->manifest.contains("processes"));
  EXPECT_EQ(c->manifest["processes"][0]["name"], "web");
  auto again = parseCreateRelease(
      request("app_id", kApp, releaseBody("registry.local/h:1", kDigest, json::dump(c->manifest))));
  ASSERT_TRUE(again) << again.error().toString();
  EXPECT_EQ(again->manifest, c->manifest);
}

TEST(ReleaseCommandsTest, CreateReleaseRefusalsNameTheirField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"image_digest":")" + kDigest + R"(","manifest":{}})", "image_ref"},
      {releaseBody("", kDigest), "image_ref"},
      {releaseBody(std::string(513, 'r'), kDigest), "image_ref"},
      {releaseBody("oci:/var/lib/images/x", kDigest), "image_ref"},
      {releaseBody("registry.local/h:1 --x", kDigest), "image_ref"},
      {releaseBody("registry.local/h:1\\u0007", kDigest), "image_ref"},
      {releaseBody("registry.local/h:1", "sha256:" + std::string(64, 'B')), "image_digest"},
      {releaseBody("registry.local/h:1", "sha512:" + std::string(64, 'b')), "image_digest"},
      {releaseBody("registry.local/h:1", kDigest, "[]"), "manifest"},
      {releaseBody("registry.local/h:1", kDigest,
                   R"({"app":"hello","image":"r/h:1","processes":"web"})"),
       "manifest.processes"},
  };
  for (const auto& [body, field] : cases) {
    auto c = parseCreateRelease(request("app_id", kApp, body));
    ASSERT_FALSE(c) << body;
    EXPECT_TRUE(refusedField(c).starts_with(field)) << body << " -> " << refusedField(c);
  }
  auto unknown = parseCreateRelease(request(
      "app_id", kApp, R"({"image_ref":"r/h:1","image_digest":")" + kDigest + R"(","tag":"x"})"));
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), apierr::kUnknownField);
  EXPECT_EQ(refusedField(parseCreateRelease(
                request("app_id", kEnv, releaseBody("registry.local/h:1", kDigest)))),
            "app_id");
}

TEST(ReleaseCommandsTest, CreateDeployDefaultsToRolling) {
  auto c = parseCreateDeploy(request("env_id", kEnv, R"({"release_id":")" + kRel + R"("})"));
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->env.str(), kEnv);
  EXPECT_EQ(c->release.str(), kRel);
  EXPECT_EQ(c->strategy, "rolling");
  EXPECT_FALSE(c->secrets_version);
  auto pinned = parseCreateDeploy(request(
      "env_id", kEnv,
      R"({"release_id":")" + kRel + R"(","strategy":"immediate","secrets_version":"sv_x"})"));
  ASSERT_TRUE(pinned) << pinned.error().toString();
  EXPECT_EQ(pinned->strategy, "immediate");
  EXPECT_EQ(pinned->secrets_version, "sv_x");
}

TEST(ReleaseCommandsTest, CreateDeployRefusalsNameTheirField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "release_id"},
      {R"({"release_id":")" + kEnv + R"("})", "release_id"},
      {R"({"release_id":")" + kRel + R"(","strategy":"canary"})", "strategy"},
      {R"({"release_id":")" + kRel + R"(","strategy":1})", "strategy"},
      {R"({"release_id":")" + kRel + R"(","secrets_version":7})", "secrets_version"},
  };
  for (const auto& [body, field] : cases) {
    auto c = parseCreateDeploy(request("env_id", kEnv, body));
    ASSERT_FALSE(c) << body;
    EXPECT_EQ(refusedField(c), field) << body;
  }
  EXPECT_EQ(refusedField(
                parseCreateDeploy(request("env_id", kApp, R"({"release_id":")" + kRel + R"("})"))),
            "env_id");
}

TEST(ReleaseCommandsTest, SetScaleHoldsCountsByProcessType) {
  auto c = parseSetScale(request("env_id", kEnv, R"({"processes":{"worker":0,"web":3}})"));
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->env.str(), kEnv);
  const std::map<std::string, int64_t> want = {{"web", 3}, {"worker", 0}};
  EXPECT_EQ(c->processes, want);
}

TEST(ReleaseCommandsTest, SetScaleRefusalsNameTheirField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "processes"},
      {R"({"processes":{}})", "processes"},
      {R"({"processes":[1]})", "processes"},
      {R"({"processes":{"Web":1}})", "processes.Web"},
      {R"({"processes":{"web":-1}})", "processes.web"},
      {R"({"processes":{"web":1001}})", "processes.web"},
      {R"({"processes":{"web":1.5}})", "processes.web"},
      {R"({"processes":{"web":"2"}})", "processes.web"},
  };
  for (const auto& [body, field] : cases) {
    auto c = parseSetScale(request("env_id", kEnv, body));
    ASSERT_FALSE(c) << body;
    EXPECT_EQ(refusedField(c), field) << body;
  }
  auto extra = parseSetScale(request("env_id", kEnv, R"({"processes":{"web":1},"x":1})"));
  ASSERT_FALSE(extra);
  EXPECT_EQ(extra.error().code(), apierr::kUnknownField);
}

}  // namespace
}  // namespace plfm::cp::releases
