// Clients ride through the loss of a control-plane replica
// (docs/specs/control-plane/ha.md, "Clients"; docs/operations/ha.md).
//
// Two real plfm-control-plane replicas on one real PostgreSQL database, each
// over TLS with its own certificate from one CA: replica A on [::1] with a
// certificate naming only ::1, replica B on 127.0.0.1 with one naming only
// 127.0.0.1, so each URL is verified against its own host. Given both URLs
// (A first):
//   - a real plfm-ingress on the edge feed,
//   - the node agent's control-plane client (agent::ControlPlaneClient, the
//     layer `plfm-node-agent run` talks through: the agent itself needs
//     microVMs, so it is not run here),
//   - the real `vt` binary.
// A is killed with SIGKILL while the ingress's and the agent's long-polls are
// held on it. Then, without restarting anything: a route made on B reaches
// the ingress, the held plan poll resumes on B from its cursor and sees the
// new plan, status reports and heartbeats go to B, and `vt` (A still first in
// its list) works.
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/cp_client.h"
#include "integration_support.h"
#include "plfm/core/id.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/failover.h"
#include "plfm/http/http.h"
#include "plfm/http/pki.h"
#include "plfm/testing/pg_cluster.h"
#include "plfm/testing/temp_dir.h"
#include "vt_harness.h"

namespace plfm {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

struct Replica {
  Process proc;
  std::string url;  // "https://[::1]:PORT" or "https://127.0.0.1:PORT"
  std::string dir;
};

bool eventually(const std::function<bool()>& ok, std::chrono::milliseconds limit = 20s) {
  const auto deadline = Steady::now() + limit;
  while (!ok()) {
    if (Steady::now() > deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

class HaClientsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto cluster = testing::PgCluster::shared();
    ASSERT_TRUE(cluster) << cluster.error().toString();
    auto db = (*cluster)->createDatabase();
    ASSERT_TRUE(db) << db.error().toString();
    conninfo_ = (*cluster)->conninfo(*db);
    const std::string pki_dir = dir_.file("pki");
    std::filesystem::create_directories(pki_dir);
    auto a = http::writeLocalPki(pki_dir, {"::1"});
    ASSERT_TRUE(a) << a.error().toString();
    auto b = http::writeServerCert(*a, pki_dir + "/replica-b", {"127.0.0.1"});
    ASSERT_TRUE(b) << b.error().toString();
    ca_ = a->ca_cert;
    start(a_, "a", "[::1]:0", "https://[", "]", *a);
    start(b_, "b", "127.0.0.1:0", "https://", "", *b);
    token_ = std::string(trim(readFile(a_.dir + "/admin-token").value_or("")));
    ASSERT_FALSE(token_.empty());
  }

  void TearDown() override {
    for (Replica* r : {&a_, &b_}) {
      if (r->proc.valid() && !r->proc.poll().has_value()) {
        r->proc.signal(SIGTERM);
        (void)r->proc.waitFor(20s);
      }
    }
  }

  // Starts a replica over TLS with `pki`'s server certificate and the
  // replicas' one relay signing key, and waits until it listens.
  void start(Replica& r, const std::string& name, const std::string& listen,
             const std::string& scheme_open, const std::string& host_close,
             const http::LocalPki& pki) {
    r.dir = dir_.file(name);
    std::filesystem::create_directories(r.dir);
    SpawnOptions o;
    o.stdout_path = r.dir + "/cp.out";
    o.stderr_path = r.dir + "/cp.log";
    auto p = spawn({PLFM_CONTROL_PLANE_BIN, "serve", "--listen", listen, "--tls-cert",
                    pki.server_cert, "--tls-key", pki.server_key, "--database", conninfo_,
                    "--state-dir", r.dir, "--relay-signing-key", dir_.file("relay-signing.key")},
                   o);
    ASSERT_TRUE(p.has_value()) << p.error().toString();
    r.proc = std::move(*p);
    for (int i = 0; i < 1000 && r.url.empty(); ++i) {
      auto out = readFile(r.dir + "/cp.out");
      if (out && out->find("listening ") != std::string::npos && out->back() == '\n') {
        std::string ep(trim(out->substr(out->find("listening ") + 10)));
        ep = ep.substr(0, ep.find(','));
        // "[::1]:443" or "127.0.0.1:443": the host and port, re-bracketed.
        const size_t colon = ep.rfind(':');
        std::string host = ep.substr(0, colon);
        if (host.starts_with("[")) host = host.substr(1, host.size() - 2);
        r.url = scheme_open;
        r.url += host;
        r.url += host_close;
        r.url += ep.substr(colon);
      }
      ASSERT_FALSE(r.proc.poll().has_value()) << "exited at start:\n"
                                              << tailFile(r.dir + "/cp.log", 30);
      std::this_thread::sleep_for(10ms);
    }
    ASSERT_FALSE(r.url.empty()) << "did not start:\n" << tailFile(r.dir + "/cp.log", 30);
  }

  // One API call on replica `r` (an admin token unless `token`).
  json call(const Replica& r, const std::string& method, const std::string& path,
            const json& body = nullptr, int want = 0, const std::string& token = "") {
    http::ClientRequest req;
    req.method = method;
    req.url = r.url + path;
    req.tls.ca_file = ca_;
    req.headers.set("Authorization", "Bearer " + (token.empty() ? token_ : token));
    if (!body.is_null()) {
      req.headers.set("Content-Type", "application/json");
      req.body = body.dump();
    }
    if (method != "GET") req.headers.set("Idempotency-Key", RequestId::generate().str());
    auto resp = http::request(req);
    EXPECT_TRUE(resp.has_value()) << method << " " << path << ": " << resp.error().toString();
    if (!resp) return json();
    if (want != 0) {
      EXPECT_EQ(resp->status, want) << method << " " << path << ": " << resp->body;
    }
    return json::parse(resp->body, nullptr, false);
  }

  std::vector<std::string> both() const { return {a_.url, b_.url}; }

  plfm::testing::TempDir dir_{"ha-clients"};
  std::string conninfo_;
  std::string ca_;
  std::string token_;
  Replica a_;
  Replica b_;
};

TEST_F(HaClientsTest, IngressAgentAndVtRideThroughTheLossOfTheirReplica) {
  // Each replica is verified against its own host (A's certificate names
  // only ::1, B's only 127.0.0.1), through one CA file; a CA that signed
  // neither is refused by both.
  {
    http::FailoverClient trusted(both(), {.tls = {.ca_file = ca_}});
    auto ok = trusted.send("GET", "/healthz");
    ASSERT_TRUE(ok) << ok.error().toString();
    const std::string other_dir = dir_.file("other-pki");
    std::filesystem::create_directories(other_dir);
    auto other = http::writeLocalPki(other_dir, {"::1", "127.0.0.1"});
    ASSERT_TRUE(other) << other.error().toString();
    http::FailoverClient untrusted(both(), {.tls = {.ca_file = other->ca_cert}});
    auto refused = untrusted.send("GET", "/healthz");
    ASSERT_FALSE(refused);
    EXPECT_TRUE(refused.error().is(errc::kFailedPrecondition)) << refused.error().toString();
  }

  // An app with one web instance, on a node enrolled through the agent's
  // client with both URLs.
  const std::string org = call(a_, "POST", "/v1/orgs", {{"name", "acme"}}, 201)["id"];
  const std::string app =
      call(a_, "POST", "/v1/orgs/" + org + "/apps", {{"name", "shop"}}, 201)["id"];
  const std::string env =
      call(a_, "POST", "/v1/apps/" + app + "/envs", {{"name", "prod"}}, 201)["id"];
  const json manifest = {
      {"app", "shop"},
      {"image", "registry.local/shop:1"},
      {"processes", {{{"name", "web"}, {"resources", {{"vcpus", 1}, {"memory_mb", 128}}}}}}};
  const std::string rel = call(a_, "POST", "/v1/apps/" + app + "/releases",
                               {{"image_ref", "registry.local/shop:1"},
                                {"image_digest", "sha256:" + std::string(64, 'c')},
                                {"manifest", manifest}},
                               201)["id"];
  call(a_, "POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}}, 201);
  call(a_, "PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 1}}}}, 200);
  const std::string enrollment =
      call(a_, "POST", "/v1/nodes/enrollments", json::object(), 201)["token"];
  agent::NodeFacts facts;
  facts.hostname = "n1.ha";
  facts.cores = 8;
  facts.memory_mb = 16384;
  facts.wireguard_public_key = std::string(43, 'k') + "=";
  facts.underlay_address = "2001:db8::10";
  auto cred = agent::ControlPlaneClient::enroll(both(), enrollment, facts, {.ca_file = ca_});
  ASSERT_TRUE(cred) << cred.error().toString();
  EXPECT_EQ(cred->control_planes, both());  // node.json keeps every replica
  agent::ControlPlaneClient plan_client(cred->control_planes, cred->token, {.ca_file = ca_});
  agent::ControlPlaneClient report_client(cred->control_planes, cred->token, {.ca_file = ca_});
  // The plan with the instance, as the agent's loop follows it.
  agent::NodePlan first;
  ASSERT_TRUE(eventually([&] {
    auto p = plan_client.plan(cred->node_id, first.version, 5s);
    if (p) first = *p;
    return p && first.instances.size() == 1;
  })) << first.instances.dump();
  const std::string inst = first.instances[0]["instance_id"];
  agent::StatusReport booting;
  booting.phase = "booting";
  ASSERT_TRUE(report_client.report(cred->node_id, inst, booting));
  ASSERT_TRUE(report_client.heartbeat(cred->node_id, "test"));
  EXPECT_EQ(plan_client.currentUrl(), a_.url);

  // The ingress on the edge feed with both URLs, A first.
  const std::string token_file = dir_.file("edge.token");
  ASSERT_TRUE(runChecked({PLFM_CONTROL_PLANE_BIN, "edge-token", "--name", "edge-ha", "--out",
                          token_file, "--database", conninfo_, "--state-dir", a_.dir},
                         SpawnOptions{}));
  const std::string edge_token(trim(readFile(token_file).value_or("")));
  const int port = testing::freeTcpPort();
  auto route = [&](const Replica& r, const std::string& host) {
    call(r, "POST", "/v1/envs/" + env + "/routes",
         {{"hostname", host},
          {"process_type", "web"},
          {"backend_port", 8080},
          {"listener_port", port}},
         201);
    return call(r, "GET", "/v1/edge/config?after=0&wait=0", nullptr, 200, edge_token)["cursor"]
        .get<double>();
  };
  const double cursor_before = route(a_, "one.example.test");
  std::filesystem::create_directories(dir_.file("ingress/state"));
  ingress::testing::IngressProcess ingress;
  ASSERT_TRUE(ingress.start(dir_.file("ingress"),
                            "listen = [\"[::1]:" + std::to_string(port) +
                                "\"]\nmetrics_listen = [\"[::1]:0\"]\nstate_dir = \"" +
                                dir_.file("ingress/state") +
                                "\"\n[source]\nkind = \"edge-feed\"\nedge_url = [\"" + a_.url +
                                "\", \"" + b_.url + "\"]\nedge_token_file = \"" + token_file +
                                "\"\nedge_ca_file = \"" + ca_ + "\"\nedge_wait_seconds = 30\n"));
  ASSERT_TRUE(eventually([&] {
    return ingress.metric("plfm_ingress_config_cursor") >= cursor_before;
  })) << ingress.log();

  // The agent's plan loop: a poll held on A (nothing new for it), resumed
  // with its cursor wherever the client goes, until the plan has the second
  // instance.
  std::future<Result<agent::NodePlan>> held = std::async(std::launch::async, [&] {
    agent::NodePlan last = first;
    const auto deadline = Steady::now() + 40s;
    while (Steady::now() < deadline) {
      auto p = plan_client.plan(cred->node_id, last.version, std::chrono::seconds(30));
      if (!p) return p;
      last = *p;
      if (last.instances.size() == 2) break;
    }
    return Result<agent::NodePlan>(last);
  });
  std::this_thread::sleep_for(500ms);  // the poll and the ingress's feed wait on A

  // kill -9 the replica both talk to.
  const auto killed_at = Steady::now();
  a_.proc.signal(SIGKILL);
  (void)a_.proc.waitFor(10s);

  // A change made on the survivor reaches the held plan poll, which resumed
  // on B from its cursor.
  call(b_, "PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 2}}}}, 200);
  ASSERT_EQ(held.wait_for(45s), std::future_status::ready);
  auto moved = held.get();
  ASSERT_TRUE(moved) << moved.error().toString();
  EXPECT_GT(moved->version, first.version);
  EXPECT_EQ(moved->instances.size(), 2U) << moved->instances.dump();
  EXPECT_EQ(plan_client.currentUrl(), b_.url);
  const auto plan_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - killed_at).count();

  // Reports and heartbeats go to B; a report already sent to A is a
  // duplicate there (one database).
  auto again = report_client.report(cred->node_id, inst, booting);
  ASSERT_TRUE(again) << again.error().toString();
  EXPECT_FALSE(*again);
  agent::StatusReport up;
  up.seq = 2;
  up.phase = "healthy";
  auto healthy = report_client.report(cred->node_id, inst, up);
  ASSERT_TRUE(healthy) << healthy.error().toString();
  EXPECT_TRUE(*healthy);
  EXPECT_EQ(report_client.currentUrl(), b_.url);
  auto beat = report_client.heartbeat(cred->node_id, "test");
  ASSERT_TRUE(beat) << beat.error().toString();

  // A route made on B reaches the same ingress process.
  const double cursor_after = route(b_, "two.example.test");
  ASSERT_GT(cursor_after, cursor_before);
  EXPECT_TRUE(
      eventually([&] { return ingress.metric("plfm_ingress_config_cursor") >= cursor_after; }, 30s))
      << ingress.log();
  const auto feed_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - killed_at).count();
  EXPECT_NE(ingress.log().find("following the edge feed of a control-plane replica"),
            std::string::npos);
  EXPECT_EQ(ingress.log().find(edge_token), std::string::npos);

  // vt with A (dead) still first in its list.
  plfm::testing::TempDir vt_config("ha-clients-vt");
  const std::vector<std::string> vt_env = {"VT_URL=" + a_.url + "," + b_.url, "VT_TOKEN=" + token_,
                                           "VT_CA_FILE=" + ca_};
  auto who = vt::testing::runVt({"whoami", "--format", "json"}, vt_config.path(), vt_env);
  EXPECT_EQ(who.code, 0) << who.err;
  auto made = vt::testing::runVt({"orgs", "create", "globex", "--format", "json"}, vt_config.path(),
                                 vt_env);
  EXPECT_EQ(made.code, 0) << made.err;
  EXPECT_NE(call(b_, "GET", "/v1/orgs", nullptr, 200).dump().find("\"globex\""), std::string::npos);
  // A bad URL in the list is refused with its name.
  auto bad = vt::testing::runVt({"whoami"}, vt_config.path(),
                                {"VT_URL=" + b_.url + ",cp2:8443", "VT_TOKEN=" + token_});
  EXPECT_NE(bad.code, 0);
  EXPECT_NE(bad.err.find("VT_URL"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("cp2:8443"), std::string::npos) << bad.err;

  std::printf(
      "replica killed: the held plan poll saw the next plan after %lld ms; the ingress "
      "had the route made on the survivor after %lld ms\n",
      static_cast<long long>(plan_ms), static_cast<long long>(feed_ms));
  ingress.stop();
}

}  // namespace
}  // namespace plfm
