// The org event feed (cursor and long-poll), graceful shutdown with a
// request in flight, and the rebuild-views command of the real binary.
#include <gtest/gtest.h>

#include <thread>

#include "api_test_support.h"
#include "plfm/core/process.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;
using testsupport::Reply;

TEST_F(ApiTest, EventFeedPagesByCursorAndCarriesTheEnvelope) {
  const std::string org = makeOrg("feed");
  const std::string app = makeApp(org, "web");
  makeEnv(app, "prod");
  auto all = call("GET", "/v1/orgs/" + org + "/events");
  ASSERT_EQ(all.status, 200) << all.raw;
  ASSERT_EQ(all.body["items"].size(), 4U);  // org.created, member_added, app, env
  EXPECT_EQ(all.body["items"][0]["event_type"], "org.created");
  EXPECT_EQ(all.body["items"][3]["event_type"], "env.created");
  EXPECT_EQ(all.body["items"][2]["payload"]["app_id"], app);
  EXPECT_EQ(all.body["items"][2]["actor"], call("GET", "/v1/whoami").body["user_id"]);
  const int64_t second = all.body["items"][1]["seq"];
  auto page = call("GET", "/v1/orgs/" + org + "/events?limit=2&after=" + std::to_string(second));
  ASSERT_EQ(page.body["items"].size(), 2U);
  EXPECT_EQ(page.body["items"][0]["event_type"], "app.created");
  EXPECT_EQ(page.body["next_after"], page.body["items"][1]["seq"]);
  // Every event validates against the envelope schema and its payload schema.
  for (const auto& e : all.body["items"]) {
    auto env = testsupport::validateAgainstSchemaFile("event-envelope.json", e);
    EXPECT_FALSE(env.has_value()) << env.value_or("");
    auto pay = testsupport::validateAgainstSchemaFile(
        "events/" + e["event_type"].get<std::string>() + ".json", e["payload"]);
    EXPECT_FALSE(pay.has_value()) << e["event_type"] << ": " << pay.value_or("");
  }
}

TEST_F(ApiTest, EventFeedLongPollWakesOnANewEvent) {
  const std::string org = makeOrg("poll");
  auto head = call("GET", "/v1/orgs/" + org + "/events");
  const int64_t after = head.body["next_after"];
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    makeApp(org, "late");
  });
  const auto start = std::chrono::steady_clock::now();
  auto r = call("GET", "/v1/orgs/" + org + "/events?wait=20&after=" + std::to_string(after));
  const auto waited = std::chrono::steady_clock::now() - start;
  writer.join();
  ASSERT_EQ(r.status, 200) << r.raw;
  ASSERT_EQ(r.body["items"].size(), 1U);
  EXPECT_EQ(r.body["items"][0]["event_type"], "app.created");
  EXPECT_LT(waited, std::chrono::seconds(15));  // woke on the event, not the timeout
  // With nothing new, the poll ends empty after its wait.
  auto empty = call("GET", "/v1/orgs/" + org + "/events?wait=1&after=" +
                               std::to_string(r.body["next_after"].get<int64_t>()));
  EXPECT_EQ(empty.body["items"].size(), 0U);
}

TEST_F(ApiTest, GracefulShutdownFinishesInFlightRequests) {
  const std::string org = makeOrg("shutdown");
  auto head = call("GET", "/v1/orgs/" + org + "/events");
  Reply inflight;
  std::thread poller([&] {
    inflight = call("GET", "/v1/orgs/" + org + "/events?wait=2&after=" +
                               std::to_string(head.body["next_after"].get<int64_t>()));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  cp_->stop();  // must let the long-poll finish within the grace period
  poller.join();
  EXPECT_EQ(inflight.status, 200) << inflight.raw;
  auto after = http::request({"GET", base_ + "/healthz", {}, "", std::chrono::seconds(2)});
  EXPECT_FALSE(after.has_value());  // no longer accepting
}

TEST_F(ApiTest, RebuildViewsCommandReproducesViewsByteForByte) {
  const std::string org = makeOrg("rebuild");
  const std::string app = makeApp(org, "web");
  const std::string env = makeEnv(app, "prod");
  const std::string rel = makeRelease(app);
  callJson("POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}});
  callJson("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 3}}}});
  auto conn = connect();
  const std::string before = dumpViews(conn);
  cp_->stop();
  SpawnOptions o;
  o.stdout_path = state_->file("rebuild.log");
  auto p = spawn({PLFM_CONTROL_PLANE_BIN, "rebuild-views", "--database", conninfo(), "--state-dir",
                  state_->path()},
                 o);
  ASSERT_TRUE(p.has_value()) << p.error().toString();
  EXPECT_EQ(exitCodeOf(p->wait()), 0) << tailFile(state_->file("rebuild.log"), 20);
  EXPECT_NE(readFile(state_->file("rebuild.log"))->find("views rebuilt from seq 0"),
            std::string::npos);
  EXPECT_EQ(dumpViews(conn), before);
}

}  // namespace
}  // namespace plfm::cp
