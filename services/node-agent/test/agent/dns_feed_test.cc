// The agent's poll of the services feed (mesh.md, "Internal names"): each
// new version is parsed at the edge and applied, a repeat is not, a failed
// poll is retried, and a bad entry is left out alone.
#include "agent/dns_feed.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

namespace plfm::agent {
namespace {

TEST(DnsFeed, AppliesEachNewVersionOnceAndRetriesFailedPolls) {
  std::mutex mu;
  std::vector<std::pair<int64_t, std::chrono::seconds>> polls;  // (after, wait)
  std::vector<netdev::dns::ServiceTable> applied;
  auto body = [](int64_t version) {
    return nlohmann::json{{"version", version},
                          {"services",
                           {{{"org_tag", 7},
                             {"app", "hello"},
                             {"env", "prod"},
                             {"process", "web"},
                             {"addresses", {"fd7a:5c00:0:1:0:7:0:2"}}},
                            {{"org_tag", 0},
                             {"app", "bad"},
                             {"env", "prod"},
                             {"process", "web"},
                             {"addresses", nlohmann::json::array()}}}}};
  };
  {
    DnsFeed feed(
        [&](int64_t after, std::chrono::seconds wait) -> Result<nlohmann::json> {
          std::size_t n = 0;
          {
            std::lock_guard lock(mu);
            polls.emplace_back(after, wait);
            n = polls.size();
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
          if (n == 2) return Error("test.unreachable", "the control plane is away");
          return body(n >= 3 ? 4 : 0);
        },
        [&](netdev::dns::ServiceTable t) {
          std::lock_guard lock(mu);
          applied.push_back(std::move(t));
        });
    for (int i = 0; i < 400 && feed.appliedVersion() != 4; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a few repeats of version 4
    EXPECT_EQ(feed.appliedVersion(), 4);
  }
  std::lock_guard lock(mu);
  ASSERT_EQ(applied.size(), 2U);  // version 0 (the first answer), then 4; no repeats
  EXPECT_EQ(applied[1].size(), 1U);
  EXPECT_TRUE(applied[1].lookup(7, {"web", "hello", "internal"}).has_value());
  ASSERT_GE(polls.size(), 4U);
  EXPECT_EQ(polls[0], std::make_pair(int64_t{0}, std::chrono::seconds(0)));
  EXPECT_EQ(polls[1].first, 0);  // the failed poll
  EXPECT_EQ(polls[3].first, 4);
  EXPECT_EQ(polls[3].second, std::chrono::seconds(5));
}

}  // namespace
}  // namespace plfm::agent
