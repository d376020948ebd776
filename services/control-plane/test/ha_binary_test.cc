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
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <thread>

#include "cp_test_support.h"
#include "plfm/core/id.h"
#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::cp {
namespace {

using json::Json;
using namespace std::chrono_literals;

const std::string kDigest = "sha256:" + std::string(64, 'd');

int fromEnv(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

// The backend holding the leadership lock (key 0x706c666d73636864 as
// pg_locks shows a bigint key: classid, objid, objsubid 1).
constexpr std::string_view kLockHolder =
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 1886152301 "
    "AND objid = 1935894628 AND objsubid = 1";

struct Reply {
  int status = 0;
  Json body;
};

struct Replica {
  Process proc;
  std::string url;
  std::string dir;
};

class HaBinaryTest : public testsupport::CpTest {
 protected:
  void SetUp() override {
    CpTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = std::make_unique<testing::TempDir>("cp-ha");
    // Nodes never heartbeat here: they stay active for the test's length.
    ASSERT_TRUE(writeFileAtomic(dir_->file("cp.toml"),
                                "heartbeat_timeout_seconds = 86400\n"
                                "node_down_after_seconds = 86400\n"
                                "quota_instances = 100000\n")
                    .has_value());
    seedNodes();
    start(replicas_[0], "a");
    start(replicas_[1], "b");
    token_ = std::string(trim(readFile(dir_->file("a/admin-token")).value_or("")));
  }

  void TearDown() override {
    for (auto& r : replicas_) {
      if (r.proc.valid() && !r.proc.poll().has_value()) {
        r.proc.signal(SIGTERM);
        (void)r.proc.waitFor(20s);
      }
    }
    CpTest::TearDown();
  }

  void seedNodes() {
    auto conn = connect();
    std::vector<NewEvent> nodes;
    for (int n = 0; n < 3; ++n) {
      const std::string node = NodeId::generate().str();
      nodes.push_back(
          {"node", node, 1, "node.enrolled", 1, "",
           json::dump({{"node_id", node},
                       {"enrollment_id", EnrollmentId::generate().str()},
                       {"hostname", "n" + std::to_string(n) + ".test"},
                       {"cores", 64},
                       {"memory_mb", 262'144},
                       {"disk_mb", 100'000},
                       {"labels", Json::object()},
                       {"wireguard_public_key", std::string(43, 'k') + "="},
                       {"underlay_address", "192.0.2.1"},
                       {"runtimes", {"qemu"}},
                       {"ipv6_prefix", "fd7a:5c00:0:" + std::to_string(n + 1) + "::/64"}})});
    }
    appendOk(conn, nodes, {"system:test", ""});
  }

  // Starts replica `r` with its own state dir and waits until it listens.
  void start(Replica& r, const std::string& name) {
    r.dir = dir_->file(name);
    std::filesystem::create_directories(r.dir);
    std::filesystem::remove(r.dir + "/cp.out");
    SpawnOptions o;
    o.stdout_path = r.dir + "/cp.out";
    o.stderr_path = r.dir + "/cp.log";
    auto p = spawn({PLFM_CONTROL_PLANE_BIN, "serve", "--listen", "[::1]:0", "--database",
                    conninfo(), "--state-dir", r.dir, "--config", dir_->file("cp.toml")},
                   o);
    ASSERT_TRUE(p.has_value()) << p.error().toString();
    r.proc = std::move(*p);
    r.url.clear();
    for (int i = 0; i < 1000 && r.url.empty(); ++i) {
      auto out = readFile(r.dir + "/cp.out");
      if (out && out->find("listening ") != std::string::npos && out->back() == '\n') {
        const std::string line(trim(out->substr(out->find("listening ") + 10)));
        r.url = "http://" + line.substr(0, line.find(','));
      }
      ASSERT_FALSE(r.proc.poll().has_value()) << "exited at start:\n"
                                              << tailFile(r.dir + "/cp.log", 30);
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_FALSE(r.url.empty()) << "did not start:\n" << tailFile(r.dir + "/cp.log", 30);
  }

  Reply call(const Replica& r, const std::string& method, const std::string& path,
             const Json& body = nullptr, std::chrono::milliseconds timeout = 20s) {
    http::ClientRequest req;
    req.method = method;
    req.url = r.url + path;
    if (!body.is_null()) {
      req.body = json::dump(body);
      req.headers.set("Content-Type", "application/json");
    }
    req.timeout = timeout;
    req.headers.set("Authorization", "Bearer " + token_);
    if (method != "GET") req.headers.set("Idempotency-Key", RequestId::generate().str());
    auto resp = http::request(req);
    if (!resp) return Reply{0, Json()};
    return Reply{resp->status, json::parse(resp->body).value_or(Json())};
  }

  std::string query(pg::Connection& conn, const std::string& sql) {
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  }

  // The replica whose pid the leadership row names (nullptr: none of ours).
  Replica* leader(pg::Connection& conn) {
    const std::string holder = query(conn, "SELECT holder FROM leadership");
    const std::string pid = holder.substr(holder.rfind(':') + 1);
    for (auto& r : replicas_) {
      if (r.proc.valid() && std::to_string(r.proc.pid()) == pid) return &r;
    }
    return nullptr;
  }

  // An org, app and env made through replica `r`, and a release of a web
  // process; returns {env, release}.
  std::pair<std::string, std::string> makeEnv(const Replica& r, const std::string& name) {
    const std::string org = call(r, "POST", "/v1/orgs", {{"name", name}}).body.value("id", "");
    const std::string app =
        call(r, "POST", "/v1/orgs/" + org + "/apps", {{"name", "shop"}}).body.value("id", "");
    const std::string env =
        call(r, "POST", "/v1/apps/" + app + "/envs", {{"name", "prod"}}).body.value("id", "");
    return {env, release(r, app)};
  }

  std::string release(const Replica& r, const std::string& app) {
    auto rel = call(r, "POST", "/v1/apps/" + app + "/releases",
                    {{"image_ref", "registry.local/shop:1"},
                     {"image_digest", kDigest},
                     {"manifest",
                      {{"app", "shop"},
                       {"image", "registry.local/shop:1"},
                       {"processes",
                        {{{"name", "web"}, {"resources", {{"vcpus", 1}, {"memory_mb", 128}}}}}}}}});
    EXPECT_EQ(rel.status, 201) << rel.body.dump();
    return rel.body.value("id", "");
  }

  // Double placements, counted from the events: an allocation for a slot
  // (env, process, slot, release) while an earlier instance of that slot
  // was still meant to run (no stop, drain or loss of it came first).
  std::string doublePlacements(pg::Connection& conn) {
    return query(
        conn,
        "SELECT count(*) FROM events a2 JOIN events a1 ON a1.event_type = 'instance.allocated' "
        "AND a1.seq < a2.seq AND a1.payload->>'env_id' = a2.payload->>'env_id' "
        "AND a1.payload->>'process_type' = a2.payload->>'process_type' "
        "AND a1.payload->>'slot' = a2.payload->>'slot' "
        "AND a1.payload->>'release_id' = a2.payload->>'release_id' "
        "WHERE a2.event_type = 'instance.allocated' AND NOT EXISTS (SELECT 1 FROM events e "
        "WHERE e.aggregate_id = a1.aggregate_id AND e.seq < a2.seq AND e.event_type IN "
        "('instance.stop_requested', 'instance.drain_requested', 'instance.lost'))");
  }

  std::unique_ptr<testing::TempDir> dir_;
  Replica replicas_[2];
  std::string token_;
};

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
  // The load: scale changes through both replicas, up and down, counting
  // the acknowledged ones.
  std::atomic<bool> done{false};
  std::atomic<int> acked{0};
  std::thread load([&, env_id = env] {
    for (int i = 0; !done.load(); ++i) {
      const int want = 1 + (i % 7);
      if (call(replicas_[i % 2], "PUT", "/v1/envs/" + env_id + "/scale",
               {{"processes", {{"web", want}}}})
              .status == 200) {
        acked.fetch_add(1);
      }
    }
  });
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
  done = true;
  load.join();
  EXPECT_EQ(doublePlacements(conn), "0");
  // Every acknowledged change is in the log (user-actor scale events).
  EXPECT_GE(std::stoll(query(conn,
                             "SELECT count(*) FROM events WHERE event_type = "
                             "'env.scale_set'")),
            acked.load());
  EXPECT_GT(acked.load(), 0);
  // Both replicas still answer.
  for (const auto& r : replicas_) EXPECT_EQ(call(r, "GET", "/v1/system/status").status, 200);
  std::sort(took_ms.begin(), took_ms.end());
  if (!took_ms.empty()) {
    std::printf(
        "terminations %zu: new epoch after median %.0f ms, max %.0f ms; %d scale changes "
        "acknowledged\n",
        took_ms.size(), took_ms[took_ms.size() / 2], took_ms.back(), acked.load());
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
