// The ingress learns a route and its backend from a real control plane.
//
// A real plfm-control-plane (on a real PostgreSQL) and a real plfm-ingress
// with `source.kind = "edge-feed"` and an edge token minted by
// `plfm-control-plane edge-token`. A node agent is played by plain HTTP calls
// (enrollment, plan, status reports), and the instance it "runs" is an
// openssl s_server reachable at the instance's own IPv6 address: the test
// runs in a private network namespace where the cluster prefix is local.
// Then: create a route, report the instance healthy, and a real TLS client
// (curl) reaches the backend through the ingress by SNI; report it unhealthy
// and the ingress stops using it.
#include <gtest/gtest.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <thread>

#include "integration_support.h"
#include "peers.h"
#include "plfm/core/id.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/testing/pg_cluster.h"
#include "plfm/testing/temp_dir.h"
#include "vt_harness.h"

namespace plfm {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

// The control plane's default cluster prefix, whose node /64s hold the
// instance addresses.
constexpr const char* kClusterPrefix = "fd7a:5c00::/48";

// Moves this thread (and every process it spawns) into a fresh network
// namespace with loopback up and the cluster prefix routed locally, so a
// server on [::] answers at any instance address. False when not permitted.
bool enterPrivateNetwork(std::string& why) {
  if (::unshare(CLONE_NEWNET) != 0) {
    why = std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno);
    return false;
  }
  for (const auto& cmd : std::vector<std::vector<std::string>>{
           {"ip", "link", "set", "lo", "up"},
           {"ip", "-6", "route", "add", "local", kClusterPrefix, "dev", "lo", "table", "local"}}) {
    if (auto r = runChecked(cmd, SpawnOptions{}); !r) {
      why = r.error().toString();
      return false;
    }
  }
  return true;
}

class Api {
 public:
  Api(std::string url, std::string token) : url_(std::move(url)), token_(std::move(token)) {}

  json call(const std::string& method, const std::string& path, const json& body = nullptr,
            const std::string& token = "", int want = 0) {
    http::ClientRequest req;
    req.method = method;
    req.url = url_ + path;
    req.headers.set("Authorization", "Bearer " + (token.empty() ? token_ : token));
    if (!body.is_null()) {
      req.headers.set("Content-Type", "application/json");
      req.body = body.dump();
    }
    if (method != "GET") req.headers.set("Idempotency-Key", RequestId::generate().str());
    auto resp = http::request(req);
    EXPECT_TRUE(resp.has_value()) << method << " " << path;
    if (!resp) return json();
    if (want != 0) {
      EXPECT_EQ(resp->status, want) << method << " " << path << ": " << resp->body;
    }
    return json::parse(resp->body, nullptr, false);
  }

 private:
  std::string url_;
  std::string token_;
};

json webManifest(int port) {
  return {{"schema_version", 1},
          {"app", "shop"},
          {"image", "registry.local/shop:1"},
          {"processes",
           {{{"name", "web"},
             {"command", {"/shop", "--port", std::to_string(port)}},
             {"args", json::array()},
             {"resources", {{"vcpus", 1}, {"memory_mb", 128}}}}}},
          {"services", json::array()},
          {"volumes", json::array()},
          {"checks", json::array()},
          {"env", json::object()}};
}

TEST(EdgeFeedSyncTest, IngressPicksUpARouteAndItsHealthyBackendFromTheControlPlane) {
  std::string why;
  if (!enterPrivateNetwork(why)) GTEST_SKIP() << "needs a private network namespace: " << why;
  auto cluster = testing::PgCluster::shared();
  ASSERT_TRUE(cluster) << cluster.error().toString();
  auto db = (*cluster)->createDatabase();
  ASSERT_TRUE(db) << db.error().toString();
  const std::string conninfo = (*cluster)->conninfo(*db);
  plfm::testing::TempDir dir("edge-e2e");
  const std::string& d = dir.path();
  for (const char* sub : {"/cert", "/www", "/ingress", "/ingress/state"}) {
    std::filesystem::create_directories(d + sub);
  }
  plfm::testing::TempDir cp_dir("edge-e2e-cp");
  const auto cp = vt::testing::startControlPlane(conninfo, cp_dir);
  Api api(cp.url, cp.admin_token);

  // The edge credential, as an operator mints it on the control plane's host.
  const std::string token_file = d + "/ingress/edge.token";
  ASSERT_TRUE(runChecked({PLFM_CONTROL_PLANE_BIN, "edge-token", "--name", "edge-e2e", "--out",
                          token_file, "--database", conninfo, "--state-dir", cp_dir.path()},
                         SpawnOptions{}));

  // An app with one web instance, placed on a node the test enrolls.
  const int backend_port = testing::freeTcpPort();
  const std::string org = api.call("POST", "/v1/orgs", {{"name", "acme"}}, "", 201)["id"];
  const std::string app =
      api.call("POST", "/v1/orgs/" + org + "/apps", {{"name", "shop"}}, "", 201)["id"];
  const std::string env =
      api.call("POST", "/v1/apps/" + app + "/envs", {{"name", "prod"}}, "", 201)["id"];
  const std::string rel = api.call("POST", "/v1/apps/" + app + "/releases",
                                   {{"image_ref", "registry.local/shop:1"},
                                    {"image_digest", "sha256:" + std::string(64, 'c')},
                                    {"manifest", webManifest(backend_port)}},
                                   "", 201)["id"];
  api.call("POST", "/v1/envs/" + env + "/deploys", {{"release_id", rel}}, "", 201);
  api.call("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 1}}}}, "", 200);
  const std::string enrollment =
      api.call("POST", "/v1/nodes/enrollments", json::object(), "", 201)["token"];
  const json node = api.call("POST", "/v1/nodes/enroll",
                             {{"hostname", "n1.e2e"},
                              {"cores", 4},
                              {"memory_mb", 4096},
                              {"disk_mb", 0},
                              {"wireguard_public_key", std::string(43, 'k') + "="},
                              {"underlay_address", "2001:db8::10"},
                              {"runtimes", {"qemu"}}},
                             enrollment, 201);
  const std::string node_id = node["node_id"];
  const std::string node_token = node["token"];
  const json plan =
      api.call("GET", "/v1/nodes/" + node_id + "/plan?after=0&wait=5", nullptr, node_token, 200);
  ASSERT_EQ(plan["instances"].size(), 1U) << plan.dump();
  const std::string inst = plan["instances"][0]["instance_id"];
  const std::string address = plan["instances"][0]["network"]["address"];

  // The instance's workload: a TLS server answering at its IPv6 address.
  ASSERT_TRUE(ingress::testing::makeCertificate(d + "/cert", {"shop.example.test"}));
  auto server = ingress::testing::startTlsServer(
      d + "/www", d + "/cert", "[::]:" + std::to_string(backend_port), "served by " + inst);
  ASSERT_TRUE(server) << server.error().toString();

  // The route (on the ingress's listener port), then the ingress on the edge feed.
  const int port = testing::freeTcpPort();
  api.call("POST", "/v1/envs/" + env + "/routes",
           {{"hostname", "Shop.Example.TEST"},
            {"process_type", "web"},
            {"backend_port", backend_port},
            {"listener_port", port}},
           "", 201);
  ingress::testing::IngressProcess ingress;
  ASSERT_TRUE(ingress.start(d + "/ingress",
                            "listen = [\"[::1]:" + std::to_string(port) +
                                "\"]\nmetrics_listen = [\"[::1]:0\"]\nstate_dir = \"" + d +
                                "/ingress/state\"\n[source]\nkind = \"edge-feed\"\nedge_url = \"" +
                                cp.url + "\"\nedge_token_file = \"" + token_file +
                                "\"\nedge_wait_seconds = 5\n"));
  auto get = [&] {
    return ingress::testing::curlGet("shop.example.test", port, "[::1]", "/id.txt",
                                     d + "/curl.out");
  };
  auto eventually = [&](const std::function<bool()>& ok) {
    for (int i = 0; i < 100; ++i) {
      if (ok()) return true;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return false;
  };
  const std::string edge_token(trim(readFile(token_file).value_or("")));

  // Allocated, not running: the route is known, with no backend to use.
  ASSERT_TRUE(eventually([&] { return ingress.metric("plfm_ingress_config_cursor") > 0; }))
      << ingress.log();
  EXPECT_EQ(get().rfind("<curl exit", 0), 0U);

  auto report = [&](int seq, const std::string& phase) {
    api.call("POST", "/v1/nodes/" + node_id + "/instances/" + inst + "/status",
             {{"generation", 1}, {"seq", seq}, {"phase", phase}}, node_token, 200);
  };
  report(1, "booting");
  report(2, "healthy");
  EXPECT_TRUE(eventually([&] { return get() == "served by " + inst; })) << get() << "\n"
                                                                        << ingress.log();
  // The ingress serves exactly the control plane's current config.
  const json config = api.call("GET", "/v1/edge/config?after=0&wait=0", nullptr, edge_token, 200);
  ASSERT_EQ(config["routes"].size(), 1U);
  EXPECT_EQ(config["routes"][0]["backends"], json::array({{{"address", address},
                                                           {"port", backend_port},
                                                           {"healthy", true},
                                                           {"draining", false}}}));
  EXPECT_TRUE(eventually([&] {
    return ingress.metric("plfm_ingress_config_cursor") == config["cursor"].get<double>();
  }));

  // Unhealthy: the ingress stops picking it.
  report(3, "unhealthy");
  EXPECT_TRUE(eventually([&] { return get().rfind("<curl exit", 0) == 0; })) << get();

  // The drain gate (docs/specs/scheduler/drain.md). The scheduler restarted
  // the instance in place; it serves again. A connection held open through
  // the ingress keeps it running after a scale to 0: the ingress reports the
  // connection, and the node is told to drain only once it has closed.
  auto desired = [&]() -> std::pair<int64_t, std::string> {
    const json p =
        api.call("GET", "/v1/nodes/" + node_id + "/plan?after=0&wait=0", nullptr, node_token, 200);
    for (const auto& i : p["instances"]) {
      if (i["instance_id"] == inst) return {i["generation"].get<int64_t>(), i["desired"]};
    }
    return {0, "absent"};
  };
  ASSERT_TRUE(eventually([&] { return desired().first == 2; })) << desired().second;
  api.call("POST", "/v1/nodes/" + node_id + "/instances/" + inst + "/status",
           {{"generation", 2}, {"seq", 1}, {"phase", "healthy"}}, node_token, 200);
  EXPECT_TRUE(eventually([&] { return get() == "served by " + inst; })) << get();
  const int held = ingress::testing::connectTo("[::1]:" + std::to_string(port));
  ASSERT_GE(held, 0);
  ASSERT_TRUE(ingress::testing::sendAll(held, ingress::testing::clientHello("shop.example.test")));
  EXPECT_FALSE(ingress::testing::waitClosed(held, 500));  // spliced to the instance, and open
  api.call("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 0}}}}, "", 200);
  EXPECT_TRUE(eventually([&] {
    const json c = api.call("GET", "/v1/edge/config?after=0&wait=0", nullptr, edge_token, 200);
    return c["routes"][0]["backends"].size() == 1 &&
           c["routes"][0]["backends"][0]["draining"] == true;
  }));
  std::this_thread::sleep_for(std::chrono::seconds(3));  // past the grace and the ack
  EXPECT_EQ(desired().second, "run") << "the drain did not wait for the open connection";
  ::close(held);
  EXPECT_TRUE(eventually([&] { return desired().second == "drain"; })) << desired().second;

  EXPECT_EQ(ingress.log().find(edge_token), std::string::npos);  // the token never logged
  ingress.stop();
}

}  // namespace
}  // namespace plfm
