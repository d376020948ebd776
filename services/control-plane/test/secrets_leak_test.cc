// The leak test (issue 9): canary secrets with distinctive random values go
// through every flow the control plane has (set, list, versions, import, a
// deploy, the node fetch, an idempotent replay, master key rotation, and bad
// requests that carry a secret), then every place a value could leak is
// searched: each response body received, each log line of the control plane,
// its state dir on disk, the events table and every other table except the
// sealed material (secret_versions), and the PostgreSQL cluster's directory
// (data files, WAL and server log). No canary may appear anywhere. The node
// fetch's body is the one place the values belong; it is checked to hold
// them (which also proves the scanner finds what is there).
#include <gtest/gtest.h>

#include "plfm/core/log.h"
#include "plfm/core/process.h"
#include "plfm/secrets/format.h"
#include "plfm/testing/leak_scan.h"
#include "secrets_admin.h"
#include "secrets_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::Reply;

class SecretsLeakTest : public testsupport::SecretsApiTest {
 protected:
  // Every response the test receives is scanned at the end.
  Reply keep(const std::string& what, Reply r) {
    responses_.emplace_back(what, r.raw);
    return r;
  }
  std::vector<std::pair<std::string, std::string>> responses_;
  plfm::testing::LeakScanner scan_;
};

TEST_F(SecretsLeakTest, NoCanaryAppearsInResponsesLogsStateDirOrTables) {
  log::setLevel(log::Level::kDebug);
  const std::string token = scan_.addCanary("API_TOKEN");
  const std::string url = scan_.addCanary("DATABASE_URL");
  const std::string imported = scan_.addCanary("IMPORTED");
  const std::string rejected = scan_.addCanary("REJECTED");  // only ever in refused requests

  const Deployed d = deployedEnv("leak");
  ASSERT_FALSE(d.instance.empty());
  const std::string base = "/v1/envs/" + d.env + "/secrets";

  // set (staged, then live), with an idempotent replay of the live one.
  ASSERT_EQ(keep("set staged", setSecrets(d.env, {{"API_TOKEN", token}}, true)).status, 201);
  http::Headers key;
  key.set("Idempotency-Key", "leak-replay");
  const std::string live_body = json::dump({{"values", {{"DATABASE_URL", url}}}});
  auto live = keep("set live", call("POST", base + "/set", live_body, std::nullopt, key));
  ASSERT_EQ(live.status, 201) << live.raw;
  auto replay = keep("set replay", call("POST", base + "/set", live_body, std::nullopt, key));
  EXPECT_EQ(replay.header("Idempotent-Replayed"), "true");
  // import, list, versions.
  ASSERT_EQ(keep("import", callJson("POST", base + "/import",
                                    {{"dotenv", "# canary\nexport IMPORTED='" + imported + "'\n"}}))
                .status,
            201);
  keep("list", call("GET", base));
  keep("versions", call("GET", base + "/versions"));
  // An explicit deploy, and what users read about it.
  auto dep = keep("deploy",
                  callJson("POST", "/v1/envs/" + d.env + "/deploys", {{"release_id", d.release}}));
  ASSERT_EQ(dep.status, 201) << dep.raw;
  const std::string version = dep.body["secrets_version"];
  keep("deploys", call("GET", "/v1/envs/" + d.env + "/deploys"));
  keep("instances", call("GET", "/v1/envs/" + d.env + "/instances"));
  keep("events", call("GET", "/v1/orgs/" + d.org + "/events?after=0&limit=500"));

  // The node: its plan, then the fetch (the one answer that holds values).
  const std::string inst = waitInstance(d.env, version, &d);
  ASSERT_FALSE(inst.empty());
  keep("plan", call("GET", "/v1/nodes/" + d.node + "/plan?after=0&wait=0", "", d.node_token));
  auto fetched = fetch(d, inst, "?version=" + version);
  ASSERT_EQ(fetched.status, 200) << fetched.raw.substr(0, 200);
  {
    auto decoded = plfm::secrets::decode(fetched.raw);
    ASSERT_TRUE(decoded.has_value()) << decoded.error().toString();
    EXPECT_EQ(decoded->at("API_TOKEN"), token);
    EXPECT_EQ(decoded->at("DATABASE_URL"), url);
    EXPECT_EQ(decoded->at("IMPORTED"), imported);
    plfm::testing::LeakScanner control;
    // The file escapes quotes and '$'; the canary's head survives any escaping.
    control.addCanaryValue("API_TOKEN", token.substr(0, token.find("-\"")));
    control.scanText("the fetch body", fetched.raw);
    EXPECT_EQ(control.findings().size(), 1U) << "the scanner must find a value where it is";
  }
  keep("other node", call("GET", "/v1/nodes/" + d.node + "/instances/" + inst + "/secrets", "",
                          enrollNode("leak2.node").second));

  // Bad requests that carry a secret.
  keep("oversized", setSecrets(d.env, {{"BIG", rejected + std::string(size_t{64} * 1024, 'x')}}));
  keep("bad key", setSecrets(d.env, {{"bad-key", rejected}}));
  keep("value as key", setSecrets(d.env, {{rejected, "x"}}));
  keep("not a string", callJson("POST", base + "/set", {{"values", {{"A", {{"v", rejected}}}}}}));
  keep("dotenv syntax", callJson("POST", base + "/import",
                                 {{"dotenv", "OK=1\nthis line " + rejected + " is broken\n"}}));
  keep("dotenv quote", callJson("POST", base + "/import", {{"dotenv", "A=\"" + rejected}}));
  keep("dotenv bad key", callJson("POST", base + "/import", {{"dotenv", rejected + "=1\n"}}));
  json::Json many = json::Json::object();
  for (int i = 0; i < 300; ++i) many["K" + std::to_string(i)] = rejected;
  keep("too many", setSecrets(d.env, many));
  keep("unknown env", setSecrets("env_01jdq3v7k2m9x4c8r6t0w5y1zb", {{"A", rejected}}));
  keep("unknown field", callJson("POST", base + "/set", {{"values", {{"A", "b"}}}, {rejected, 1}}));
  keep("bad json", call("POST", base + "/set", R"({"values": {"A": ")" + rejected + "\""));
  keep("too large",
       setSecrets(d.env, {{"HUGE", rejected + std::string(size_t{1100} * 1024, 'y')}}));
  keep("reused key",
       call("POST", base + "/set", json::dump({{"values", {{"DATABASE_URL", rejected}}}}),
            std::nullopt, key));
  for (const auto& [what, raw] : responses_) {
    if (what != "set staged" && what != "set live" && what != "set replay" && what != "import" &&
        what != "list" && what != "versions" && what != "deploy" && what != "deploys" &&
        what != "instances" && what != "events" && what != "plan") {
      EXPECT_NE(raw.find("\"error\""), std::string::npos) << what << ": " << raw.substr(0, 200);
    }
  }

  // Rotation re-wraps data keys; it never touches plaintext on disk.
  const std::string next = keys_.file("next.key");
  ASSERT_TRUE(crypto::generateMasterKeyFile(next).has_value());
  ASSERT_EQ(secretsRotateMasterKey(config_, next), 0);
  ASSERT_EQ(fetch(d, inst).status, 200);

  // Search everything.
  log::flush();
  for (const auto& [what, raw] : responses_) scan_.scanText("response to " + what, raw);
  scan_.scanDir(state_->path());  // the control plane's state dir, with its log file
  // The PostgreSQL cluster's whole directory: data files, WAL, server log.
  // Values reach the database only sealed, so none may be there in any form.
  {
    auto checkpoint = connect().exec("CHECKPOINT");
    EXPECT_TRUE(checkpoint.has_value());
    scan_.scanDir(cluster().dir());
  }
  auto conn = connect();
  const auto tables = scan_.scanDatabase(conn, {"secret_versions"});
  for (const char* t : {"events", "idempotency_keys", "secret_versions_view", "secret_keys_view",
                        "secret_bundles", "deploys_view", "instances_view"}) {
    EXPECT_NE(std::find(tables.begin(), tables.end(), t), tables.end()) << t << " not scanned";
  }
  EXPECT_GT(scan_.scanned(), 30);
  scan_.expectClean();
  // The log was written (the scan read something real).
  auto log = readFile(state_->file("control-plane.log"));
  ASSERT_TRUE(log.has_value());
  EXPECT_NE(log->find("/v1/envs/{env_id}/secrets/set"), std::string::npos);
}

}  // namespace
}  // namespace plfm::cp
