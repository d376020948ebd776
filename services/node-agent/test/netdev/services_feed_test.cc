// The services feed at the agent's edge (mesh.md, "Internal names").
#include "netdev/services_feed.h"

#include <gtest/gtest.h>

namespace plfm::netdev {
namespace {

TEST(ServicesFeed, ParsesTheContractsExample) {
  auto feed = parseServicesFeed(nlohmann::json::parse(R"({"version": 42, "services": [
    {"org_tag": 7, "app": "hello", "env": "prod", "process": "web",
     "addresses": ["fd7a:5c00:0:1:0:7:0:2", "fd7a:5c00:0:2:0:7:0:2"]}]})"));
  ASSERT_TRUE(feed) << feed.error().toString();
  EXPECT_EQ(feed->version, 42);
  ASSERT_EQ(feed->services.size(), 1U);
  EXPECT_EQ(feed->services[0].org_tag, 7U);
  EXPECT_EQ(feed->services[0].process, "web");
  EXPECT_EQ(feed->services[0].addresses.size(), 2U);
  EXPECT_TRUE(feed->skipped.empty());
}

TEST(ServicesFeed, HostileEntriesAreLeftOutOneByOne) {
  nlohmann::json j = {{"version", 1}, {"services", nlohmann::json::array()}};
  const nlohmann::json good = {{"org_tag", 9},
                               {"app", "a"},
                               {"env", "prod"},
                               {"process", "web"},
                               {"addresses", {"fd7a::1"}}};
  j["services"].push_back(good);
  for (const auto& [field, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"org_tag", 0},
           {"org_tag", 4294967295},
           {"org_tag", "7"},
           {"app", "A"},
           {"app", "a.b"},
           {"env", ""},
           {"process", std::string(64, 'a')},
           {"process", "we b"},
           {"addresses", {"10.0.0.1"}},
           {"addresses", "fd7a::1"},
           {"addresses", std::vector<std::string>(65, "fd7a::1")}}) {
    nlohmann::json bad = good;
    bad[field] = value;
    j["services"].push_back(bad);
  }
  auto feed = parseServicesFeed(j);
  ASSERT_TRUE(feed);
  EXPECT_EQ(feed->services.size(), 1U);
  EXPECT_EQ(feed->skipped.size(), 11U);
  EXPECT_FALSE(parseServicesFeed(nlohmann::json::parse(R"({"version": -1, "services": []})")));
  EXPECT_FALSE(parseServicesFeed(nlohmann::json::parse(R"({"version": 1})")));
  EXPECT_FALSE(parseServicesFeed(nlohmann::json::parse("[]")));
}

}  // namespace
}  // namespace plfm::netdev
