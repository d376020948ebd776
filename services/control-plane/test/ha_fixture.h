// The fixture of the control-plane replica tests against the real
// `plfm-control-plane` binary (docs/specs/control-plane/ha.md): two
// replicas on one test database with three seeded nodes, an admin token,
// API calls, the leader as the leadership row names it, and double
// placements counted from the events. ha_binary_test.cc (kill -9,
// terminated lock sessions) and ha_partition_test.cc (a leader cut off from
// PostgreSQL) share it.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cp_test_support.h"
#include "plfm/core/id.h"
#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::cp::testsupport {

using json::Json;
using namespace std::chrono_literals;

inline const std::string kDigest = "sha256:" + std::string(64, 'd');

inline int fromEnv(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::atoi(v) : fallback;
}

// The backend holding the leadership lock (key 0x706c666d73636864 as
// pg_locks shows a bigint key: classid, objid, objsubid 1).
inline constexpr std::string_view kLockHolder =
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
  std::vector<std::string> wrap;   // argv before the binary (e.g. nsenter into a namespace)
  std::string listen = "[::1]:0";  // the API listener
  std::vector<std::string> flags;  // more flags of `serve`
};

class HaFixture : public testsupport::CpTest {
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
    if (HasFatalFailure()) return;
    start(replicas_[1], "b");
    if (HasFatalFailure()) return;
    token_ = std::string(trim(readFile(dir_->file("a/admin-token")).value_or("")));
  }

  void TearDown() override {
    load_done_ = true;
    if (load_.joinable()) load_.join();
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

  // The replicas' database setting: the test database over its Unix socket.
  virtual std::string replicaDatabase() { return conninfo(); }

  // Starts replica `r` with its own state dir and the replicas' one relay
  // signing key (docs/operations/ha.md), and waits until it listens.
  void start(Replica& r, const std::string& name) {
    r.dir = dir_->file(name);
    std::filesystem::create_directories(r.dir);
    std::filesystem::remove(r.dir + "/cp.out");
    SpawnOptions o;
    o.stdout_path = r.dir + "/cp.out";
    o.stderr_path = r.dir + "/cp.log";
    std::vector<std::string> argv = r.wrap;
    argv.insert(argv.end(),
                {PLFM_CONTROL_PLANE_BIN, "serve", "--listen", r.listen, "--database",
                 replicaDatabase(), "--state-dir", r.dir, "--config", dir_->file("cp.toml"),
                 "--relay-signing-key", dir_->file("relay-signing.key")});
    argv.insert(argv.end(), r.flags.begin(), r.flags.end());
    auto p = spawn(argv, o);
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

  // One API call as the admin (or as `bearer`); a mutation carries `key` as
  // its Idempotency-Key, a fresh one when empty.
  Reply call(const Replica& r, const std::string& method, const std::string& path,
             const Json& body = nullptr, std::chrono::milliseconds timeout = 20s,
             const std::string& key = "", const std::string& bearer = "") {
    http::ClientRequest req;
    req.method = method;
    req.url = r.url + path;
    if (!body.is_null()) {
      req.body = json::dump(body);
      req.headers.set("Content-Type", "application/json");
    }
    req.timeout = timeout;
    // A replica told to serve plain HTTP off loopback (on a test veth) is called so.
    req.tls.unsafe_allow_plain_http =
        std::find(r.flags.begin(), r.flags.end(), "--unsafe-plain-http") != r.flags.end();
    req.headers.set("Authorization", "Bearer " + (bearer.empty() ? token_ : bearer));
    if (method != "GET") {
      req.headers.set("Idempotency-Key", key.empty() ? RequestId::generate().str() : key);
    }
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

  // Scale changes of `env` (1 to 7 instances, up and down) through the
  // replicas `through` in turn, without pause, until stopLoad(). Each
  // acknowledged one is kept with its Idempotency-Key.
  void startLoad(const std::string& env, std::vector<const Replica*> through) {
    load_ = std::thread([this, env, through = std::move(through)] {
      for (size_t i = 0; !load_done_.load(); ++i) {
        const int want = 1 + static_cast<int>(i % 7);
        const std::string key = RequestId::generate().str();
        if (call(*through[i % through.size()], "PUT", "/v1/envs/" + env + "/scale",
                 {{"processes", {{"web", want}}}}, 20s, key)
                .status == 200) {
          acked_.emplace_back(key, want);
        }
      }
    });
  }

  // Stops the load and checks that every acknowledged change is in the log:
  // its key's idempotency record (200) names the seq of an env.scale_set
  // event with the count it asked for. Returns how many there were.
  int stopLoad(pg::Connection& conn) {
    load_done_ = true;
    if (load_.joinable()) load_.join();
    EXPECT_FALSE(acked_.empty());
    std::string keys = "{";
    std::string wants = "{";
    for (const auto& [key, want] : acked_) {
      keys += (keys.size() > 1 ? "," : "") + key;
      wants += (wants.size() > 1 ? "," : "") + std::to_string(want);
    }
    auto found = conn.exec(
        "SELECT count(DISTINCT a.key) FROM unnest($1::text[], $2::int[]) AS a(key, want) "
        "JOIN idempotency_keys k ON k.key = a.key AND k.status = 200 "
        "JOIN events e ON e.seq = k.seq AND e.event_type = 'env.scale_set' "
        "AND (e.payload->'processes'->>'web')::int = a.want",
        {keys + "}", wants + "}"});
    EXPECT_TRUE(found.has_value()) << found.error().toString();
    if (found) {
      EXPECT_EQ(found->int64(0, 0).value_or(-1), static_cast<int64_t>(acked_.size()))
          << "acknowledged scale changes missing from the idempotency records or the log";
    }
    return static_cast<int>(acked_.size());
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
  std::thread load_;
  std::atomic<bool> load_done_{false};
  // Written by the load thread only, read after it is joined.
  std::vector<std::pair<std::string, int>> acked_;
};

}  // namespace plfm::cp::testsupport
