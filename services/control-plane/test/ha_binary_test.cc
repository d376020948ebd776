// Control-plane replicas against the real `plfm-control-plane` binary
// (docs/specs/control-plane/ha.md): two processes on one database; the
// leader is killed with SIGKILL while deploys and scale changes run through
// the API, and scheduling resumes on the other within 5 s every time (a
// round of the new leader has seen the next change: its `settled` reached
// it), with no slot placed twice; the non-leader answers with read-your-writes (views
// and the scheduler's reaction) and serves long-polls.
//
// Failovers are also injected cheaply, by terminating the leader's lock
// session (pg_terminate_backend) under a load of scale changes: 0 double
// placements and every acknowledged change in the log.
//
// PLFM_HA_FAILOVERS sets the number of kills and PLFM_HA_TERMINATIONS the
// number of terminations (20 each by default, as in make test; the soak in
// docs/benchmarks.md runs 500).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <thread>

#include "ha_fixture.h"

namespace plfm::cp {
namespace {

using namespace std::chrono_literals;
using testsupport::fromEnv;
using testsupport::kLockHolder;
using testsupport::Replica;

class HaBinaryTest : public testsupport::HaFixture {};

TEST_F(HaBinaryTest, KillingTheLeaderMovesSchedulingToTheOtherReplicaWithin5s) {
  auto conn = connect();
  Replica* first = leader(conn);
  ASSERT_NE(first, nullptr) << query(conn, "SELECT holder FROM leadership");
  EXPECT_EQ(query(conn, "SELECT epoch FROM leadership"), "1");
  // Desired state made through both replicas.
  const auto [env_a, rel_a] = makeEnv(replicas_[0], "acme");
  const auto [env_b, rel_b] = makeEnv(replicas_[1], "globex");
  ASSERT_FALSE(env_a.empty());
  ASSERT_FALSE(env_b.empty());
  for (const auto& [env, rel] : {std::pair{env_a, rel_a}, std::pair{env_b, rel_b}}) {
    ASSERT_EQ(
        call(replicas_[0], "POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}}).status,
        201);
  }

  const int tries = fromEnv("PLFM_HA_FAILOVERS", 20);
  std::vector<double> resumed_ms;
  for (int t = 0; t < tries; ++t) {
    SCOPED_TRACE("failover " + std::to_string(t + 1));
    Replica* old = leader(conn);
    ASSERT_NE(old, nullptr);
    Replica& other = old == &replicas_[0] ? replicas_[1] : replicas_[0];
    const std::string env = t % 2 == 0 ? env_a : env_b;
    // A scale change in flight on the leader while it dies. Each env goes
    // up and down between 1 and 31, and the survivor's change always
    // differs from the env's count before it.
    const int scale = 1 + (2 * t) % 30;
    auto racing = std::async(std::launch::async, [&, env, scale] {
      return call(*old, "PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", scale}}}}, 5s)
          .status;
    });
    const auto killed_at = std::chrono::steady_clock::now();
    old->proc.signal(SIGKILL);
    ASSERT_TRUE(old->proc.waitFor(10s).has_value());
    (void)racing.get();
    // The next change goes to the survivor. Scheduling has resumed once a
    // round of the new leader saw it: its settled (written only under its
    // epoch) reaches the change's seq.
    const int want = scale + 1;
    auto put = call(other, "PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", want}}}});
    ASSERT_EQ(put.status, 200) << put.body.dump();
    const std::string seq = query(conn, "SELECT max(seq) FROM events");
    bool resumed = false;
    while (std::chrono::steady_clock::now() - killed_at < 10s) {
      if (query(conn, "SELECT settled >= " + seq + " FROM leadership") == "t") {
        resumed = true;
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - killed_at)
            .count();
    ASSERT_TRUE(resumed) << tailFile(other.dir + "/cp.log", 30);
    EXPECT_LT(ms, 5000) << "scheduling resumed only after " << ms << " ms";
    resumed_ms.push_back(ms);
    EXPECT_EQ(leader(conn), &other);
    EXPECT_EQ(doublePlacements(conn), "0");
    // A new deploy now and then, through the survivor.
    if (t % 5 == 4) {
      const std::string app = call(other, "GET", "/v1/envs/" + env).body.value("app_id", "");
      const std::string rel = release(other, app);
      EXPECT_EQ(call(other, "POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}}).status,
                201);
    }
    start(*old, old == &replicas_[0] ? "a" : "b");
  }
  EXPECT_EQ(query(conn, "SELECT epoch FROM leadership"), std::to_string(tries + 1));
  EXPECT_EQ(doublePlacements(conn), "0");
  std::sort(resumed_ms.begin(), resumed_ms.end());
  if (!resumed_ms.empty()) {
    std::printf("failovers %zu: scheduling resumed after median %.0f ms, max %.0f ms\n",
                resumed_ms.size(), resumed_ms[resumed_ms.size() / 2], resumed_ms.back());
  }
}

TEST_F(HaBinaryTest, TerminatedLockSessionsUnderScaleLoadPlaceNoSlotTwice) {
  auto conn = connect();
  const auto [env, rel] = makeEnv(replicas_[0], "acme");
  ASSERT_FALSE(env.empty());
  ASSERT_EQ(
      call(replicas_[1], "POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}}).status,
      201);
  // The load: scale changes through both replicas, up and down.
  startLoad(env, {&replicas_[0], &replicas_[1]});
  const int tries = fromEnv("PLFM_HA_TERMINATIONS", 20);
  std::vector<double> took_ms;
  for (int t = 0; t < tries; ++t) {
    const int64_t epoch = std::stoll(query(conn, "SELECT epoch FROM leadership"));
    const std::string pid = query(conn, std::string(kLockHolder));
    ASSERT_FALSE(pid.empty()) << "no leader before termination " << t + 1;
    const auto at = std::chrono::steady_clock::now();
    ASSERT_EQ(query(conn, "SELECT pg_terminate_backend(" + pid + ")"), "t");
    // A new epoch: the old leader stepped down and one of the two took over.
    while (std::stoll(query(conn, "SELECT epoch FROM leadership")) == epoch &&
           std::chrono::steady_clock::now() - at < 10s) {
      std::this_thread::sleep_for(5ms);
    }
    ASSERT_GT(std::stoll(query(conn, "SELECT epoch FROM leadership")), epoch)
        << "no takeover after termination " << t + 1;
    took_ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - at).count());
  }
  const int acked = stopLoad(conn);
  EXPECT_EQ(doublePlacements(conn), "0");
  // Both replicas still answer.
  for (const auto& r : replicas_) EXPECT_EQ(call(r, "GET", "/v1/system/status").status, 200);
  std::sort(took_ms.begin(), took_ms.end());
  if (!took_ms.empty()) {
    std::printf(
        "terminations %zu: new epoch after median %.0f ms, max %.0f ms; %d scale changes "
        "acknowledged\n",
        took_ms.size(), took_ms[took_ms.size() / 2], took_ms.back(), acked);
  }
}

TEST_F(HaBinaryTest, TheNonLeaderReadsItsWritesAndServesLongPolls) {
  auto conn = connect();
  Replica* lead = leader(conn);
  ASSERT_NE(lead, nullptr);
  Replica& follower = lead == &replicas_[0] ? replicas_[1] : replicas_[0];
  auto status = call(follower, "GET", "/v1/system/status");
  ASSERT_EQ(status.status, 200) << status.body.dump();
  EXPECT_EQ(status.body["this_replica_leads"], false);
  EXPECT_EQ(status.body["leader"]["epoch"], 1);
  EXPECT_EQ(status.body["replica_id"].get<std::string>().substr(
                status.body["replica_id"].get<std::string>().rfind(':') + 1),
            std::to_string(follower.proc.pid()));
  EXPECT_EQ(call(*lead, "GET", "/v1/system/status").body["this_replica_leads"], true);

  // Views: each write on the follower is readable there at once.
  auto org = call(follower, "POST", "/v1/orgs", {{"name", "acme"}});
  ASSERT_EQ(org.status, 201) << org.body.dump();
  const std::string org_id = org.body.value("id", "");
  EXPECT_EQ(call(follower, "GET", "/v1/orgs/" + org_id).status, 200);
  const std::string after = query(conn, "SELECT max(seq) FROM events");

  // A long-poll on the follower wakes for a write on the leader.
  auto poll = std::async(std::launch::async, [&] {
    return call(follower, "GET", "/v1/orgs/" + org_id + "/events?after=" + after + "&wait=20");
  });
  std::this_thread::sleep_for(300ms);
  const auto wrote_at = std::chrono::steady_clock::now();
  auto app = call(*lead, "POST", "/v1/orgs/" + org_id + "/apps", {{"name", "shop"}});
  ASSERT_EQ(app.status, 201) << app.body.dump();
  auto events = poll.get();
  EXPECT_LT(std::chrono::steady_clock::now() - wrote_at, 5s);
  ASSERT_EQ(events.status, 200) << events.body.dump();
  ASSERT_FALSE(events.body["items"].empty());
  EXPECT_EQ(events.body["items"][0]["event_type"], "app.created");

  // The scheduler's reaction: a scale change on the follower shows its
  // placements in the very next read there.
  const std::string app_id = app.body.value("id", "");
  const std::string env = call(follower, "POST", "/v1/apps/" + app_id + "/envs", {{"name", "prod"}})
                              .body.value("id", "");
  const std::string rel = release(follower, app_id);
  ASSERT_EQ(call(follower, "POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}}).status,
            201);
  for (int want : {3, 5}) {
    ASSERT_EQ(call(follower, "PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", want}}}})
                  .status,
              200);
    auto list = call(follower, "GET", "/v1/envs/" + env + "/instances");
    ASSERT_EQ(list.status, 200) << list.body.dump();
    EXPECT_EQ(list.body["items"].size(), static_cast<size_t>(want)) << list.body.dump();
  }
}

}  // namespace
}  // namespace plfm::cp
