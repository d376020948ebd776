// Routes and the edge feed end to end on a real server and a real
// PostgreSQL: CRUD with idempotency and normalization, hostname conflicts
// across and within orgs, edge credentials (API and the edge-token
// subcommand), and the edge feed's long-poll waking on route and instance
// changes, with backends from the instances the node reports.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <future>
#include <map>
#include <thread>
#include <tuple>

#include "api_test_support.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "projections.h"

namespace plfm::cp {
namespace {

using testsupport::ApiTest;
using testsupport::Reply;

class RoutesApiTest : public ApiTest {
 protected:
  struct Env {
    std::string org, app, env;
  };
  Env makeEnvIn(const std::string& org_name, const std::optional<std::string>& token = {}) {
    Env e;
    e.org = makeOrg(org_name, token);
    auto app = callJson("POST", "/v1/orgs/" + e.org + "/apps", {{"name", "web"}}, token);
    e.app = app.body.value("id", "");
    auto env = callJson("POST", "/v1/apps/" + e.app + "/envs", {{"name", "prod"}}, token);
    e.env = env.body.value("id", "");
    return e;
  }
  Reply addRoute(const std::string& env, const json::Json& body,
                 const std::optional<std::string>& token = {}) {
    return callJson("POST", "/v1/envs/" + env + "/routes", body, token);
  }
  std::string edgeToken() {
    auto r = callJson("POST", "/v1/edge/tokens", {{"name", "edge-1"}});
    EXPECT_EQ(r.status, 201) << r.raw;
    return r.body.value("token", "");
  }
  // A node, and an env running `count` web instances of a release on it.
  struct Placed {
    std::string node, node_token, org, app, env;
  };
  Placed placeWeb(int count) {
    Placed p;
    std::tie(p.node, p.node_token) = enrollNode("n1.example", 4, 4096);
    p.org = makeOrg("shop");
    p.app = makeApp(p.org, "web");
    p.env = makeEnv(p.app, "prod");
    const std::string rel = makeReleaseWith(p.app, webManifest());
    EXPECT_EQ(callJson("POST", "/v1/envs/" + p.env + "/deploys", {{"release_id", rel}}).status,
              201);
    EXPECT_EQ(
        callJson("PUT", "/v1/envs/" + p.env + "/scale", {{"processes", {{"web", count}}}}).status,
        200);
    return p;
  }
  Reply edgeConfig(const std::string& token, int64_t after, int wait) {
    return call("GET",
                "/v1/edge/config?after=" + std::to_string(after) + "&wait=" + std::to_string(wait),
                "", token);
  }
};

const json::Json kWeb = {
    {"hostname", "App.Example.COM."}, {"process_type", "web"}, {"backend_port", 8443}};

TEST_F(RoutesApiTest, CreateGetListUpdateDeleteIdempotently) {
  const Env e = makeEnvIn("acme");
  http::Headers key;
  key.set("Idempotency-Key", "route-create-1");
  auto created = call("POST", "/v1/envs/" + e.env + "/routes", json::dump(kWeb), std::nullopt, key);
  ASSERT_EQ(created.status, 201) << created.raw;
  const std::string id = created.body["id"];
  EXPECT_EQ(created.body["hostname"], "app.example.com");
  EXPECT_EQ(created.body["listener_port"], 443);
  EXPECT_EQ(created.body["protocol"], "tls-passthrough");
  EXPECT_EQ(created.body["proxy_protocol"], "none");
  EXPECT_EQ(created.body["app_id"], e.app);
  // A retry with the same key answers the same route and appends nothing.
  auto replay = call("POST", "/v1/envs/" + e.env + "/routes", json::dump(kWeb), std::nullopt, key);
  EXPECT_EQ(replay.status, 201);
  EXPECT_EQ(replay.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(replay.body["id"], id);
  EXPECT_EQ(countEvents("route.created"), 1);

  auto got = call("GET", "/v1/routes/" + id);
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.body["backend_port"], 8443);
  auto list = call("GET", "/v1/envs/" + e.env + "/routes");
  ASSERT_EQ(list.status, 200) << list.raw;
  ASSERT_EQ(list.body["items"].size(), 1U);
  EXPECT_EQ(list.body["items"][0]["id"], id);

  auto up = callJson("PUT", "/v1/routes/" + id, {{"backend_port", 9443}, {"proxy_protocol", "v2"}});
  ASSERT_EQ(up.status, 200) << up.raw;
  EXPECT_EQ(up.body["backend_port"], 9443);
  EXPECT_EQ(up.body["proxy_protocol"], "v2");
  EXPECT_EQ(call("GET", "/v1/routes/" + id).body["proxy_protocol"], "v2");
  auto same = callJson("PUT", "/v1/routes/" + id, {{"backend_port", 9443}});
  EXPECT_EQ(same.status, 200);
  EXPECT_EQ(same.header("X-Event-Seq"), "0");
  EXPECT_EQ(countEvents("route.updated"), 1);
  EXPECT_EQ(callJson("PUT", "/v1/routes/" + id, json::Json::object()).body["error"]["code"],
            "invalid_field");

  // An env with routes cannot be deleted.
  auto del_env = call("DELETE", "/v1/envs/" + e.env);
  EXPECT_EQ(del_env.status, 409) << del_env.raw;
  EXPECT_EQ(del_env.body["error"]["code"], "failed_precondition");

  auto del = call("DELETE", "/v1/routes/" + id);
  ASSERT_EQ(del.status, 200) << del.raw;
  EXPECT_EQ(del.body, json::Json({{"deleted", true}, {"id", id}}));
  EXPECT_EQ(call("GET", "/v1/routes/" + id).status, 404);
  EXPECT_EQ(call("DELETE", "/v1/routes/" + id).status, 404);
  EXPECT_EQ(call("DELETE", "/v1/envs/" + e.env).status, 200);
}

TEST_F(RoutesApiTest, HostnameConflictsAcrossAndWithinOrgs) {
  const std::string bob_token = makeUser("bob").second;
  const Env a = makeEnvIn("alpha");
  const Env b = makeEnvIn("beta", bob_token);
  auto first = addRoute(a.env, kWeb);
  ASSERT_EQ(first.status, 201) << first.raw;
  const std::string id = first.body["id"];

  // Another org, another spelling of the same name: refused, without the holder's id.
  auto other = addRoute(
      b.env, {{"hostname", "app.example.com"}, {"process_type", "web"}, {"backend_port", 80}},
      bob_token);
  ASSERT_EQ(other.status, 409) << other.raw;
  EXPECT_EQ(other.body["error"]["code"], "hostname_conflict");
  EXPECT_EQ(other.body["error"]["details"]["hostname"], "app.example.com");
  EXPECT_EQ(other.body["error"]["details"]["listener_port"], "443");
  EXPECT_FALSE(other.body["error"]["details"].contains("route_id")) << other.raw;
  EXPECT_NE(other.body["error"]["message"].get<std::string>().find("another org"),
            std::string::npos);
  // The same org: the holder is named.
  const std::string a2 = makeEnv(a.app, "staging");
  auto mine = addRoute(a2, kWeb);
  ASSERT_EQ(mine.status, 409) << mine.raw;
  EXPECT_EQ(mine.body["error"]["details"]["route_id"], id);
  // Another port, or a wildcard, is another claim.
  EXPECT_EQ(addRoute(b.env,
                     {{"hostname", "app.example.com"},
                      {"listener_port", 8443},
                      {"process_type", "web"},
                      {"backend_port", 80}},
                     bob_token)
                .status,
            201);
  // (A non-admin's wildcard needs a verified domain: domains_api_test.cc.)
  EXPECT_EQ(addRoute(b.env,
                     {{"hostname", "*.example.com"}, {"process_type", "web"}, {"backend_port", 80}},
                     bob_token)
                .status,
            403);
  EXPECT_EQ(addRoute(a.env,
                     {{"hostname", "*.example.com"}, {"process_type", "web"}, {"backend_port", 80}})
                .status,
            201);
  // A tcp route owns its port: both directions conflict.
  const json::Json tcp = {
      {"protocol", "tcp"}, {"listener_port", 5432}, {"process_type", "db"}, {"backend_port", 5432}};
  ASSERT_EQ(addRoute(a.env, tcp).status, 201);
  auto on_tcp = addRoute(b.env,
                         {{"hostname", "db.example.com"},
                          {"listener_port", 5432},
                          {"process_type", "web"},
                          {"backend_port", 80}},
                         bob_token);
  EXPECT_EQ(on_tcp.body["error"]["code"], "hostname_conflict") << on_tcp.raw;
  auto tcp_named = addRoute(
      b.env,
      {{"protocol", "tcp"}, {"listener_port", 8443}, {"process_type", "web"}, {"backend_port", 80}},
      bob_token);  // bob's app.example.com is on 8443
  EXPECT_EQ(tcp_named.body["error"]["code"], "hostname_conflict") << tcp_named.raw;
  EXPECT_EQ(tcp_named.body["error"]["details"]["field"], "listener_port");

  // A port's default route is the platform's: admins only.
  auto star = addRoute(b.env, {{"hostname", "*"}, {"process_type", "web"}, {"backend_port", 80}},
                       bob_token);
  EXPECT_EQ(star.status, 403) << star.raw;
  EXPECT_EQ(addRoute(a.env, {{"hostname", "*"},
                             {"listener_port", 8443},
                             {"process_type", "web"},
                             {"backend_port", 80}})
                .status,
            201);

  // Other orgs' routes look missing.
  EXPECT_EQ(call("GET", "/v1/routes/" + id, "", bob_token).status, 404);
  EXPECT_EQ(call("DELETE", "/v1/routes/" + id, "", bob_token).status, 404);
  EXPECT_EQ(call("GET", "/v1/envs/" + a.env + "/routes", "", bob_token).status, 404);
  // Once deleted, the name is free for the other org.
  ASSERT_EQ(call("DELETE", "/v1/routes/" + id).status, 200);
  EXPECT_EQ(
      addRoute(b.env,
               {{"hostname", "APP.example.com"}, {"process_type", "web"}, {"backend_port", 80}},
               bob_token)
          .status,
      201);
}

// Claims are decided in the command transaction: of concurrent creates of
// one name (or of a tcp route and a named route on one port) exactly one wins.
TEST_F(RoutesApiTest, ConcurrentClaimsHaveOneWinner) {
  const std::string bob_token = makeUser("bob").second;
  const Env a = makeEnvIn("alpha");
  const Env b = makeEnvIn("beta", bob_token);
  for (int round = 0; round < 2; ++round) {
    const int port = 9000 + round;
    std::vector<std::future<Reply>> calls;
    for (int i = 0; i < 6; ++i) {
      const bool mine = i % 2 == 0;
      json::Json body = {{"listener_port", port}, {"process_type", "web"}, {"backend_port", 80}};
      if (round == 0 || i < 3) {
        body["hostname"] = "race.example.com";
      } else {
        body["protocol"] = "tcp";
      }
      calls.push_back(std::async(std::launch::async, [&, body, mine] {
        return mine ? addRoute(a.env, body) : addRoute(b.env, body, bob_token);
      }));
    }
    int won = 0;
    int refused = 0;
    for (auto& c : calls) {
      Reply r = c.get();
      if (r.status == 201) ++won;
      if (r.status == 409 && r.body["error"]["code"] == "hostname_conflict") ++refused;
    }
    // Round 1 mixes three named and three tcp claims of one port: whichever
    // commits first, every other one conflicts.
    EXPECT_EQ(won, 1) << "round " << round;
    EXPECT_EQ(refused, 5) << "round " << round;
  }
}

TEST_F(RoutesApiTest, RefusesBadRoutes) {
  const Env e = makeEnvIn("acme");
  std::vector<std::pair<json::Json, std::string>> bad = {
      {{{"hostname", "a..b"}, {"process_type", "web"}, {"backend_port", 1}}, "hostname"},
      {{{"hostname", "a.*.b"}, {"process_type", "web"}, {"backend_port", 1}}, "hostname"},
      {{{"process_type", "web"}, {"backend_port", 1}}, "hostname"},
      {{{"protocol", "tcp"}, {"hostname", "a.b"}, {"process_type", "web"}, {"backend_port", 1}},
       "hostname"},
      {{{"hostname", "a.b"}, {"backend_port", 1}}, "process_type"},
      {{{"hostname", "a.b"}, {"process_type", "Web"}, {"backend_port", 1}}, "process_type"},
      {{{"hostname", "a.b"}, {"process_type", "web"}, {"backend_port", 0}}, "backend_port"},
      {{{"hostname", "a.b"}, {"process_type", "web"}}, "backend_port"},
      {{{"hostname", "a.b"},
        {"process_type", "web"},
        {"backend_port", 1},
        {"listener_port", 70000}},
       "listener_port"},
      {{{"hostname", "a.b"}, {"process_type", "web"}, {"backend_port", 1}, {"protocol", "http"}},
       "protocol"},
      {{{"hostname", "a.b"},
        {"process_type", "web"},
        {"backend_port", 1},
        {"proxy_protocol", "v1"}},
       "proxy_protocol"},
  };
  bad.push_back({{{"protocol", "tcp"}, {"process_type", "web"}, {"backend_port", 1}},
                 "listener_port"});  // 443 is every org's TLS port
  for (const auto& [body, field] : bad) {
    auto r = addRoute(e.env, body);
    EXPECT_EQ(r.status, 400) << body.dump() << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << body.dump();
  }
  EXPECT_EQ(countEvents("route.created"), 0);
}

TEST_F(RoutesApiTest, EdgeTokensAreForAdminsAndOnlyReachTheFeed) {
  auto [bob, bob_token] = makeUser("bob");
  (void)bob;
  EXPECT_EQ(callJson("POST", "/v1/edge/tokens", {{"name", "edge-1"}}, bob_token).status, 403);
  http::Headers key;
  key.set("Idempotency-Key", "edge-token-1");
  auto created = call("POST", "/v1/edge/tokens", R"({"name":"edge-1"})", std::nullopt, key);
  ASSERT_EQ(created.status, 201) << created.raw;
  EXPECT_EQ(created.body["expires_at"], nullptr);
  const std::string token = created.body["token"];
  auto replay = call("POST", "/v1/edge/tokens", R"({"name":"edge-1"})", std::nullopt, key);
  EXPECT_EQ(replay.body["token"], nullptr);
  EXPECT_EQ(replay.body["token_redacted"], true);

  auto cfg = edgeConfig(token, 0, 0);
  EXPECT_EQ(cfg.status, 304) << cfg.raw;  // nothing was ever routed
  EXPECT_EQ(cfg.raw, "");
  EXPECT_EQ(edgeConfig(bob_token, 0, 0).status, 403);
  EXPECT_EQ(edgeConfig(admin_token_, 0, 0).status, 403);
  EXPECT_EQ(call("GET", "/v1/orgs", "", token).status, 403);
  EXPECT_EQ(call("GET", "/v1/edge/config", "", token).body["error"]["code"], "invalid_query");
  EXPECT_EQ(call("GET", "/v1/edge/config?after=-1", "", token).status, 400);
  EXPECT_EQ(countEvents("token.created"), 3);  // admin's, bob's, the edge's

  // Admins list edge tokens (never the token) and revoke them, once.
  const std::string id = created.body["id"];
  auto list = call("GET", "/v1/edge/tokens");
  ASSERT_EQ(list.status, 200) << list.raw;
  ASSERT_EQ(list.body["items"].size(), 1U);
  EXPECT_EQ(list.body["items"][0]["id"], id);
  EXPECT_EQ(list.body["items"][0]["name"], "edge-1");
  EXPECT_EQ(list.body["items"][0]["revoked_at"], nullptr);
  EXPECT_EQ(list.raw.find(token), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/edge/tokens", "", bob_token).status, 403);
  auto revoked = call("DELETE", "/v1/edge/tokens/" + id);
  ASSERT_EQ(revoked.status, 200) << revoked.raw;
  EXPECT_TRUE(revoked.body["revoked_at"].is_string());
  EXPECT_EQ(edgeConfig(token, 0, 0).status, 401);
  auto again = call("DELETE", "/v1/edge/tokens/" + id);
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(again.header("X-Event-Seq"), "0");
  EXPECT_EQ(countEvents("token.revoked"), 1);
  // An id that names no edge token.
  EXPECT_EQ(call("DELETE", "/v1/edge/tokens/tok_01jdq3v7k2m9x4c8r6t0w5y1zb").status, 404);
}

TEST_F(RoutesApiTest, EdgeTokenCommandWritesAPrivateFileThatAuthenticates) {
  const std::string file = state_->file("edge.token");
  SpawnOptions o;
  o.stdout_path = state_->file("edge-token.log");
  auto p = spawn({PLFM_CONTROL_PLANE_BIN, "edge-token", "--name", "edge-2", "--out", file,
                  "--database", conninfo(), "--state-dir", state_->path()},
                 o);
  ASSERT_TRUE(p.has_value()) << p.error().toString();
  EXPECT_EQ(exitCodeOf(p->wait()), 0) << tailFile(state_->file("edge-token.log"), 20);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  const std::string token(trim(readFile(file).value_or("")));
  // The token is in the file only, never on stdout.
  EXPECT_EQ(readFile(state_->file("edge-token.log"))->find(token), std::string::npos);
  EXPECT_EQ(edgeConfig(token, 0, 0).status, 304);
}

// The long-poll feeds query the views once per checkpoint advance, but not
// for events that change no view they read (watchersRead): a burst of app
// creations costs them nothing, and the route after it one query each.
TEST_F(RoutesApiTest, FeedsSkipQueriesForEventsTheyCannotSee) {
  auto queries = [this] {
    std::map<std::string, int64_t> out;
    const std::string metrics = call("GET", "/metrics", "", "").raw;
    for (const char* feed : {"plan", "edge", "services"}) {
      const std::string key = std::string("plfm_feed_queries{feed=\"") + feed + "\"} ";
      const size_t at = metrics.find(key);
      out[feed] = at == std::string::npos ? -1 : std::stoll(metrics.substr(at + key.size()));
    }
    return out;
  };
  const Env e = makeEnvIn("quiet");
  // Settled: the feeds have seen the env.
  auto before = queries();
  for (int i = 0; i < 50; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto now = queries();
    if (now == before && i >= 2) break;
    before = now;
  }
  for (const auto& [feed, n] : before) ASSERT_GE(n, 1) << feed;

  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(
        callJson("POST", "/v1/orgs/" + e.org + "/apps", {{"name", "app-" + std::to_string(i)}})
            .status,
        201);
  }
  ASSERT_EQ(addRoute(e.env, kWeb).status, 201);
  auto after = queries();
  for (int i = 0;
       i < 50 &&
       std::ranges::any_of(after, [&](const auto& kv) { return kv.second <= before[kv.first]; });
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    after = queries();
  }
  for (const auto& [feed, n] : after) {
    EXPECT_GE(n, before[feed] + 1) << feed << ": the route is a change it reads";
    EXPECT_LE(n, before[feed] + 2) << feed << ": the apps are changes it cannot see";
  }
}

TEST_F(RoutesApiTest, EdgeFeedServesRoutesAndBackendsAndWakesOnChanges) {
  const std::string edge = edgeToken();
  const Placed placed = placeWeb(2);
  const std::string& node = placed.node;
  const std::string& node_token = placed.node_token;
  const std::string& org = placed.org;
  const std::string& env = placed.env;
  auto created = addRoute(env, {{"hostname", "shop.example.com"},
                                {"process_type", "web"},
                                {"backend_port", 8443},
                                {"proxy_protocol", "v2"}});
  ASSERT_EQ(created.status, 201) << created.raw;
  const std::string route = created.body["id"];

  auto first = edgeConfig(edge, 0, 0);
  ASSERT_EQ(first.status, 200) << first.raw;
  const int64_t c0 = first.body["cursor"];
  EXPECT_GT(c0, 0);
  ASSERT_EQ(first.body["routes"].size(), 1U);
  EXPECT_EQ(first.body["routes"][0],
            json::Json({{"id", route},
                        {"hostname", "shop.example.com"},
                        {"listener_port", 443},
                        {"protocol", "tls-passthrough"},
                        {"proxy_protocol", "v2"},
                        {"backends", json::Json::array()}}));  // allocated, not running yet
  EXPECT_EQ(edgeConfig(edge, c0, 0).status, 304);

  auto plan = call("GET", "/v1/nodes/" + node + "/plan?after=0&wait=0", "", node_token);
  ASSERT_EQ(plan.body["instances"].size(), 2U) << plan.raw;
  const std::string inst = plan.body["instances"][0]["instance_id"];
  const std::string addr = plan.body["instances"][0]["network"]["address"];
  const std::string inst2 = plan.body["instances"][1]["instance_id"];
  auto report = [&](const std::string& i, int seq, const std::string& phase) {
    auto r = callJson("POST", "/v1/nodes/" + node + "/instances/" + i + "/status",
                      {{"generation", 1}, {"seq", seq}, {"phase", phase}}, node_token);
    EXPECT_EQ(r.status, 200) << r.raw;
  };

  // The edge waits; a healthy report wakes it with the backend.
  auto waiting = std::async(std::launch::async, [&] { return edgeConfig(edge, c0, 20); });
  ASSERT_EQ(waiting.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  report(inst, 1, "healthy");
  ASSERT_EQ(waiting.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  Reply woke = waiting.get();
  ASSERT_EQ(woke.status, 200) << woke.raw;
  const int64_t c1 = woke.body["cursor"];
  EXPECT_GT(c1, c0);
  EXPECT_EQ(woke.body["routes"][0]["backends"],
            json::Json::array(
                {{{"address", addr}, {"port", 8443}, {"healthy", true}, {"draining", false}}}));
  // Its org sees the same backends, with the instance and its phase.
  auto backends = call("GET", "/v1/routes/" + route + "/backends");
  ASSERT_EQ(backends.status, 200) << backends.raw;
  EXPECT_EQ(backends.body["items"], json::Json::array({{{"instance_id", inst},
                                                        {"node_id", node},
                                                        {"address", addr},
                                                        {"port", 8443},
                                                        {"phase", "healthy"},
                                                        {"healthy", true}}}));

  // Running but not healthy: listed, not picked. Unhealthy: not picked
  // either, and the scheduler restarts it in place (the next generation is
  // allocated, so it leaves the backends until it runs again).
  report(inst2, 1, "running");
  report(inst, 2, "unhealthy");
  const std::string addr2 = plan.body["instances"][1]["network"]["address"];
  Reply later;
  const auto settled = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  do {
    later = edgeConfig(edge, c1, 1);
  } while (std::chrono::steady_clock::now() < settled &&
           (later.status != 200 || later.body["routes"][0]["backends"].size() != 1));
  ASSERT_EQ(later.status, 200) << later.raw;
  EXPECT_GT(later.body["cursor"].get<int64_t>(), c1);
  EXPECT_EQ(later.body["routes"][0]["backends"],
            json::Json::array(
                {{{"address", addr2}, {"port", 8443}, {"healthy", false}, {"draining", false}}}))
      << later.raw;

  // Route changes move the cursor too; a cursor from a restored server resyncs at once.
  const int64_t c2 = later.body["cursor"];
  ASSERT_EQ(callJson("PUT", "/v1/routes/" + route, {{"backend_port", 9443}}).status, 200);
  auto updated = edgeConfig(edge, c2, 5);
  ASSERT_EQ(updated.status, 200);
  EXPECT_EQ(updated.body["routes"][0]["backends"][0]["port"], 9443);
  EXPECT_EQ(edgeConfig(edge, 1'000'000, 5).status, 200);
  // Events that touch no route leave the cursor alone.
  const int64_t c3 = updated.body["cursor"];
  makeApp(org, "other");
  EXPECT_EQ(edgeConfig(edge, c3, 0).status, 304);

  ASSERT_EQ(call("DELETE", "/v1/routes/" + route).status, 200);
  auto gone = edgeConfig(edge, c3, 5);
  ASSERT_EQ(gone.status, 200);
  EXPECT_EQ(gone.body["routes"], json::Json::array());

  // Every route event validates, and the views (cursor included) rebuild identically.
  auto conn = connect();
  auto events = EventStore::readAfter(conn, 0, 10'000);
  ASSERT_TRUE(events.has_value());
  for (const auto& ev : *events) {
    if (!ev.event_type.starts_with("route.")) continue;
    auto j = json::parse(ev.payload);
    auto err = testsupport::validateAgainstSchemaFile("events/" + ev.event_type + ".json", *j);
    EXPECT_FALSE(err.has_value()) << ev.event_type << ": " << err.value_or("");
  }
  const std::string before = dumpViews(conn);
  ASSERT_TRUE(rebuildViews(conn).has_value());
  EXPECT_EQ(dumpViews(conn), before);
  EXPECT_NE(before.find("== edge_feed_view\n(1,"), std::string::npos) << before;
}

// The drain gate (docs/specs/scheduler/drain.md) with short bounds: a
// drained instance keeps running (its node plan says "run") until every
// live ingress reported a config without it and its open connections are
// gone; an ingress that never answers is named, and waited for no longer
// than the acknowledgement timeout.
class DrainGateTest : public RoutesApiTest {
 protected:
  void configure(Config& cfg) override {
    cfg.drain_ack_timeout = std::chrono::milliseconds(1500);
    cfg.drain_grace = std::chrono::milliseconds(300);
  }
  Reply status(const std::string& token, const json::Json& body) {
    return callJson("PUT", "/v1/edge/status", body, token);
  }
};

TEST_F(DrainGateTest, ADrainWaitsForEveryIngressAndItsOpenConnections) {
  const std::string edge1 = edgeToken();
  auto t2 = callJson("POST", "/v1/edge/tokens", {{"name", "edge-2"}});
  ASSERT_EQ(t2.status, 201) << t2.raw;
  const std::string edge2 = t2.body["token"];
  const Placed placed = placeWeb(2);
  const std::string& node = placed.node;
  const std::string& node_token = placed.node_token;
  const std::string& env = placed.env;
  ASSERT_EQ(
      addRoute(env,
               {{"hostname", "shop.example.com"}, {"process_type", "web"}, {"backend_port", 8443}})
          .status,
      201);
  auto plan = call("GET", "/v1/nodes/" + node + "/plan?after=0&wait=0", "", node_token);
  ASSERT_EQ(plan.body["instances"].size(), 2U) << plan.raw;
  std::map<std::string, std::string> address_of;
  for (const auto& i : plan.body["instances"]) {
    address_of[i["instance_id"].get<std::string>()] = i["network"]["address"];
    auto r = callJson(
        "POST",
        "/v1/nodes/" + node + "/instances/" + i["instance_id"].get<std::string>() + "/status",
        {{"generation", 1}, {"seq", 1}, {"phase", "healthy"}}, node_token);
    ASSERT_EQ(r.status, 200) << r.raw;
  }
  // Both ingresses serve the config with two healthy backends.
  Reply config;
  for (int i = 0; i < 50; ++i) {
    config = edgeConfig(edge1, 0, 0);
    if (config.body["routes"][0]["backends"].size() == 2 &&
        config.body["routes"][0]["backends"][1]["healthy"] == true) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const int64_t c0 = config.body["cursor"];
  for (const auto& token : {edge1, edge2}) {
    auto r = status(token, {{"cursor", c0}, {"draining", json::Json::array()}});
    ASSERT_EQ(r.status, 200) << r.raw;
  }

  // Scale down: one instance drains. The edge feed marks it draining (never
  // picked) and its node is still told to run it.
  ASSERT_EQ(callJson("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 1}}}}).status,
            200);
  auto marked = edgeConfig(edge1, c0, 10);
  ASSERT_EQ(marked.status, 200) << marked.raw;
  std::string drained, addr;
  for (const auto& b : marked.body["routes"][0]["backends"]) {
    if (b["draining"] == true) {
      addr = b["address"];
      EXPECT_EQ(b["healthy"], false);
    }
  }
  ASSERT_FALSE(addr.empty()) << marked.raw;
  for (const auto& [id, a] : address_of) {
    if (a == addr) drained = id;
  }
  auto desired = [&] {
    auto p = call("GET", "/v1/nodes/" + node + "/plan?after=0&wait=0", "", node_token);
    for (const auto& i : p.body["instances"]) {
      if (i["instance_id"] == drained) return i["desired"].get<std::string>();
    }
    return std::string("absent");
  };
  EXPECT_EQ(desired(), "run");

  // edge-1 applied it and still splices one connection; edge-2 stays silent.
  const int64_t c1 = marked.body["cursor"];
  ASSERT_EQ(status(edge1, {{"cursor", c1},
                           {"draining", json::Json::array(
                                            {{{"address", addr}, {"port", 8443}, {"active", 1}}})}})
                .status,
            200);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // past the ack timeout
  EXPECT_EQ(desired(), "run") << "released with a connection open";

  // The connection closes: released, naming the silent ingress.
  ASSERT_EQ(status(edge1, {{"cursor", c1},
                           {"draining", json::Json::array(
                                            {{{"address", addr}, {"port", 8443}, {"active", 0}}})}})
                .status,
            200);
  std::string now;
  for (int i = 0; i < 100 && (now = desired()) == "run"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(now, "drain");
  auto conn = connect();
  auto events = EventStore::readAfter(conn, 0, 10'000);
  ASSERT_TRUE(events.has_value());
  int released = 0;
  for (const auto& ev : *events) {
    if (ev.event_type != "instance.drain_released") continue;
    ++released;
    EXPECT_EQ(ev.aggregate_id, drained);
    auto j = json::parse(ev.payload);
    ASSERT_TRUE(j.has_value());
    EXPECT_FALSE(testsupport::validateAgainstSchemaFile("events/instance.drain_released.json", *j)
                     .has_value());
    EXPECT_EQ((*j)["open_connections"], 0);
    EXPECT_EQ((*j)["unacknowledged"], json::Json::array({"edge-2"}));
    EXPECT_NE((*j)["reason"].get<std::string>().find("ingress edge-2 did not apply"),
              std::string::npos)
        << ev.payload;
  }
  EXPECT_EQ(released, 1);
}

TEST_F(DrainGateTest, StatusReportsAreValidatedAndOnlyForTheEdge) {
  const std::string edge = edgeToken();
  auto bad = status(edge, {{"cursor", -1}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body["error"]["details"]["field"], "cursor") << bad.raw;
  bad = status(
      edge,
      {{"cursor", 1},
       {"draining", json::Json::array({{{"address", "x; rm"}, {"port", 8443}, {"active", 0}}})}});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body["error"]["details"]["field"], "draining[0]") << bad.raw;
  bad = status(edge, {{"cursor", 1},
                      {"draining",
                       json::Json::array({{{"address", "::1"}, {"port", 8443}, {"active", -3}}})}});
  EXPECT_EQ(bad.body["error"]["details"]["field"], "draining[0].active") << bad.raw;
  bad = status(edge, {{"cursor", 1}, {"extra", true}});
  EXPECT_EQ(bad.status, 400) << bad.raw;
  // A user (even an admin) is not an ingress.
  EXPECT_EQ(callJson("PUT", "/v1/edge/status", {{"cursor", 1}}).status, 403);
  auto good = status(edge, {{"cursor", 7}});
  EXPECT_EQ(good.status, 200) << good.raw;
  EXPECT_EQ(good.body, json::Json({{"name", "edge-1"}, {"cursor", 7}}));
}

}  // namespace
}  // namespace plfm::cp
