// The typed read of stored manifests (stored_release.h), without a
// database: whatever the views hold, the answer is a value or an error that
// names the field, never an exception.
#include "stored_release.h"

#include <gtest/gtest.h>

#include <string>

namespace plfm::cp {
namespace {

const std::string kHead = R"({"app":"shop","image":"shop:1","processes":[)";

TEST(StoredReleaseTest, ReadsACanonicalOrMinimalManifest) {
  auto m = readStoredManifest(kHead + R"({"name":"web","resources":{"vcpus":2}}]})");
  ASSERT_TRUE(m.has_value()) << m.error().toString();
  ASSERT_EQ(m->processes.size(), 1U);
  EXPECT_EQ(m->processes[0].resources.vcpus, 2);
  EXPECT_EQ(m->processes[0].resources.memory_mb, 256);  // the vt.toml default
  EXPECT_EQ(m->deploy.max_surge, 1);
}

TEST(StoredReleaseTest, EveryBadShapeIsAnErrorNamingTheField) {
  const std::pair<std::string, std::string> cases[] = {
      // What crashed the scheduler (issue 15).
      {kHead + R"({"name":"web","resources":{"vcpus":"x","memory_mb":128}}]})",
       "processes[0].resources.vcpus"},
      {kHead + R"({"name":"web","resources":{"memory_mb":-1}}]})",
       "processes.web.resources.memory_mb"},
      {kHead + R"({"name":"web","resources":{"vcpus":100000}}]})", "processes.web.resources.vcpus"},
      {kHead + R"({"name":"web"}],"deploy":{"max_surge":"all"}})", "deploy.max_surge"},
      {kHead + R"({"name":"web"}],"checks":[{"process":"web","type":"tcp","port":"x"}]})",
       "checks[0].port"},
      {kHead + R"({"name":"web"}],"env":{"A":1}})", "env.A"},
      {kHead + R"(5]})", "processes"},
      {R"({"processes":"web"})", "app"},
  };
  for (const auto& [text, field] : cases) {
    auto m = readStoredManifest(text);
    ASSERT_FALSE(m.has_value()) << text;
    EXPECT_EQ(m.error().detail("field"), field) << text;
    EXPECT_NE(m.error().message().find("stored manifest"), std::string::npos);
  }
}

TEST(StoredReleaseTest, MalformedDeepOrEmptyTextIsAnError) {
  for (const std::string& text :
       {std::string(), std::string("null"), std::string("[]"), std::string("{\"app\":"),
        std::string(100'000, '['), std::string(100, '[') + std::string(100, ']')}) {
    auto m = readStoredManifest(text);
    EXPECT_FALSE(m.has_value()) << text.substr(0, 20);
  }
}

}  // namespace
}  // namespace plfm::cp
