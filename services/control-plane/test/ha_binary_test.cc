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
// Every replica signs log and exec relays with the one key the agents pinned
// at enrollment: a replica with a key of its own refuses to start, and a log
// follow through the non-leader reaches an agent enrolled on the leader.
//
// PLFM_HA_FAILOVERS sets the number of kills and PLFM_HA_TERMINATIONS the
// number of terminations (20 each by default, as in make test; the
// control_plane_ha_soak_test entry, label soak, runs 500 terminations).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <future>
#include <thread>

#include "agent/instance_log.h"
#include "agent/log_endpoint.h"
#include "ha_fixture.h"
#include "plfm/http/pki.h"
#include "plfm/relay_auth/relay_auth.h"

namespace plfm::cp {
namespace {

using namespace std::chrono_literals;
using json::Json;
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

// A replica started with a relay signing key of its own (its own state dir,
// as a second host would have) refuses to start and says which file to
// replace; the recorded key stays the first replica's. Only public keys
// appear in what it says.
TEST_F(HaBinaryTest, AReplicaWithAnotherRelaySigningKeyRefusesToStart) {
  auto conn = connect();
  const std::string recorded = query(conn, "SELECT public_key FROM relay_signing_key");
  ASSERT_EQ(recorded.rfind(relay::kPublicKeyPrefix, 0), 0U) << recorded;
  EXPECT_NE(readFile(replicas_[0].dir + "/cp.log").value_or("").find(recorded), std::string::npos);

  const std::string dir = dir_->file("c");
  std::filesystem::create_directories(dir);
  SpawnOptions o;
  o.stdout_path = dir + "/cp.out";
  o.stderr_path = dir + "/cp.log";
  auto p = spawn({PLFM_CONTROL_PLANE_BIN, "serve", "--listen", "[::1]:0", "--database",
                  replicaDatabase(), "--state-dir", dir, "--config", dir_->file("cp.toml")},
                 o);
  ASSERT_TRUE(p.has_value()) << p.error().toString();
  auto status = p->waitFor(20s);
  ASSERT_TRUE(status.has_value()) << "it started anyway";
  EXPECT_NE(exitCodeOf(*status), 0);
  const std::string out = readFile(dir + "/cp.log").value_or("");
  const std::string key_file = dir + "/relay-signing.key";
  EXPECT_NE(out.find("copy the key file of an existing replica to " + key_file), std::string::npos)
      << out;
  EXPECT_NE(out.find(recorded), std::string::npos) << out;
  EXPECT_EQ(readFile(dir + "/cp.out").value_or("").find("listening"), std::string::npos);
  auto seed = readFile(key_file);
  ASSERT_TRUE(seed.has_value());
  EXPECT_EQ(out.find(hexEncode(*seed)), std::string::npos);
  EXPECT_EQ(query(conn, "SELECT public_key FROM relay_signing_key"), recorded);
  // With the replicas' key it starts.
  Replica c;
  start(c, "c");
  EXPECT_EQ(call(c, "GET", "/v1/system/status").status, 200);
  c.proc.signal(SIGTERM);
  (void)c.proc.waitFor(20s);
}

// An agent enrolled through the leader pins its relay key; the non-leader
// reports the same key in its heartbeat answers and relays a log follow to
// the agent's real log endpoint, which checks each signature against the
// pinned key.
TEST_F(HaBinaryTest, TheNonLeaderFollowsLogsFromAnAgentEnrolledOnTheLeader) {
  auto conn = connect();
  Replica* lead = leader(conn);
  ASSERT_NE(lead, nullptr);
  Replica& follower = lead == &replicas_[0] ? replicas_[1] : replicas_[0];

  // The node enrolls through the leader and pins the key it answers with.
  auto enrollment = call(*lead, "POST", "/v1/nodes/enrollments", Json::object());
  ASSERT_EQ(enrollment.status, 201) << enrollment.body.dump();
  auto enrolled =
      call(*lead, "POST", "/v1/nodes/enroll", testsupport::nodeEnrollBody("logs.test", "::1"), 20s,
           "", enrollment.body.value("token", ""));
  ASSERT_EQ(enrolled.status, 201) << enrolled.body.dump();
  const std::string node = enrolled.body.value("node_id", "");
  const std::string node_token = enrolled.body.value("token", "");
  auto pinned = relay::PublicKey::parse(enrolled.body.value("relay_public_key", ""));
  ASSERT_TRUE(pinned.has_value()) << enrolled.body.dump();

  // Its log endpoint, over TLS on [::1] (the node's address), as the agent
  // serves it.
  testing::TempDir agent_dir("cp-ha-agent");
  std::filesystem::create_directories(agent_dir.file("logs"));
  auto pki = http::writeLocalPki(agent_dir.path(), {"localhost"});
  ASSERT_TRUE(pki.has_value()) << pki.error().toString();
  auto cert = http::certificateSha256(pki->server_cert);
  ASSERT_TRUE(cert.has_value());
  std::atomic<bool> stopping{false};
  const agent::LogEndpoint endpoint{
      agent_dir.file("logs"), std::make_shared<agent::RelayVerifier>(node, *pinned), &stopping};
  http::ServerOptions so;
  so.listen = {"[::1]:0"};
  so.tls = http::ServerTlsOptions{pki->server_cert, pki->server_key};
  http::Server agent_http(so, [&](http::Request& req) {
    if (agent::LogEndpoint::matches(req)) return endpoint.serve(req);
    return http::Response::text(404, "no");
  });
  ASSERT_TRUE(agent_http.start().has_value());

  // Its heartbeats go to the non-leader, which reports the pinned key.
  auto beat = call(follower, "POST", "/v1/nodes/" + node + "/heartbeat",
                   {{"agent_version", "0.1.0"},
                    {"agent_url", "https://" + agent_http.endpoints().at(0)},
                    {"agent_cert_sha256", *cert}},
                   20s, "", node_token);
  ASSERT_EQ(beat.status, 200) << beat.body.dump();
  EXPECT_EQ(beat.body.value("relay_public_key", ""), pinned->text());

  // One instance, on this node: the seeded ones are cordoned.
  auto others = conn.exec("SELECT node_id FROM nodes_view WHERE node_id <> $1", {node});
  ASSERT_TRUE(others.has_value()) << others.error().toString();
  for (int i = 0; i < others->rows(); ++i) {
    const std::string id(others->text(i, 0));
    ASSERT_EQ(call(*lead, "PUT", "/v1/nodes/" + id + "/scheduling", {{"cordoned", true}}).status,
              200);
  }
  const auto [env, rel] = makeEnv(follower, "acme");
  ASSERT_EQ(call(follower, "POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}}).status,
            201);
  ASSERT_EQ(
      call(follower, "PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 1}}}}).status,
      200);
  auto plan = call(follower, "GET", "/v1/nodes/" + node + "/plan?after=0&wait=0", nullptr, 20s, "",
                   node_token);
  ASSERT_EQ(plan.status, 200) << plan.body.dump();
  ASSERT_EQ(plan.body["instances"].size(), 1U) << plan.body.dump();
  const std::string inst = plan.body["instances"][0].value("instance_id", "");

  // A read, then a follow held on the non-leader that a new line wakes.
  constexpr uint64_t kT0 = uint64_t{1'796'000'000} * 1'000'000'000;
  agent::InstanceLog log(agent_dir.file("logs/" + inst + ".log"), inst, 1 << 20);
  log.append("stdout", kT0, "first\n");
  auto read = call(follower, "GET", "/v1/envs/" + env + "/logs");
  ASSERT_EQ(read.status, 200) << read.body.dump();
  ASSERT_EQ(read.body["items"].size(), 1U) << read.body.dump();
  EXPECT_EQ(read.body["items"][0]["line"], "first");
  EXPECT_TRUE(read.body["unavailable"].empty()) << read.body.dump();
  std::thread writer([&] {
    std::this_thread::sleep_for(700ms);
    log.append("stdout", kT0 + 1'000'000'000, "second\n");
  });
  auto held =
      call(follower, "GET",
           "/v1/envs/" + env + "/logs?follow=true&wait=10&cursor=" + read.body.value("cursor", ""));
  writer.join();
  ASSERT_EQ(held.status, 200) << held.body.dump();
  ASSERT_EQ(held.body["items"].size(), 1U) << held.body.dump();
  EXPECT_EQ(held.body["items"][0]["line"], "second");
  EXPECT_EQ(held.body["items"][0]["instance_id"], inst);
  stopping = true;
  agent_http.stop(200ms);
}

}  // namespace
}  // namespace plfm::cp
