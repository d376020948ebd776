// Secret bundles through the real API: versions, list and versions without
// values, idempotency with a keyed MAC, deploy pinning (and --stage), the
// node fetch under the node's credential with its audit event, master key
// rotation under a running server, and bad input. See
// docs/specs/secrets/bundles.md and docs/specs/secrets/delivery.md.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <set>
#include <thread>

#include "plfm/core/process.h"
#include "plfm/secrets/format.h"
#include "projections.h"
#include "secrets_admin.h"
#include "secrets_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::Reply;
using testsupport::SecretsApiTest;

class SecretsTest : public SecretsApiTest {
 protected:
  std::string scalar(const std::string& sql) {
    auto conn = connect();
    auto rs = conn.exec(sql);
    EXPECT_TRUE(rs.has_value()) << rs.error().toString();
    return rs && rs->rows() > 0 ? std::string(rs->text(0, 0)) : std::string();
  }
};

TEST_F(SecretsTest, EveryChangeIsANewVersionAndNoRouteReturnsValues) {
  const std::string org = makeOrg("sec");
  const std::string env = makeEnv(makeApp(org, "web"), "prod");
  auto a =
      setSecrets(env, {{"DATABASE_URL", "postgres://u:pw-one@db/app"}, {"API_TOKEN", "tok-1"}});
  ASSERT_EQ(a.status, 201) << a.raw;
  EXPECT_EQ(a.body["version"]["number"], 1);
  EXPECT_EQ(a.body["version"]["operation"], "set");
  EXPECT_EQ(a.body["version"]["keys"], json::Json({"API_TOKEN", "DATABASE_URL"}));
  EXPECT_EQ(a.body["deploy"], json::Json());  // never deployed: nothing to redeploy
  EXPECT_EQ(a.body["staged"], true);
  auto b = setSecrets(env, {{"API_TOKEN", "tok-2"}});
  ASSERT_EQ(b.status, 201) << b.raw;
  EXPECT_EQ(b.body["version"]["number"], 2);
  EXPECT_EQ(b.body["version"]["set_keys"], json::Json({"API_TOKEN"}));
  auto c = callJson("POST", "/v1/envs/" + env + "/secrets/unset", {{"keys", {"DATABASE_URL"}}});
  ASSERT_EQ(c.status, 201) << c.raw;
  EXPECT_EQ(c.body["version"]["keys"], json::Json({"API_TOKEN"}));
  EXPECT_EQ(c.body["version"]["unset_keys"], json::Json({"DATABASE_URL"}));
  auto d = callJson("POST", "/v1/envs/" + env + "/secrets/import",
                    {{"dotenv", "# app\nexport B_KEY=two\nA_KEY='one'\n"}});
  ASSERT_EQ(d.status, 201) << d.raw;
  EXPECT_EQ(d.body["version"]["number"], 4);
  EXPECT_EQ(d.body["version"]["operation"], "import");
  EXPECT_EQ(d.body["version"]["keys"], json::Json({"API_TOKEN", "A_KEY", "B_KEY"}));

  auto list = call("GET", "/v1/envs/" + env + "/secrets");
  ASSERT_EQ(list.status, 200) << list.raw;
  EXPECT_EQ(list.body["version"]["number"], 4);
  ASSERT_EQ(list.body["items"].size(), 3U);
  EXPECT_EQ(list.body["items"][0]["key"], "API_TOKEN");
  EXPECT_EQ(list.body["items"][0]["version"], 2);
  EXPECT_EQ(list.body["items"][1]["key"], "A_KEY");
  EXPECT_EQ(list.body["items"][1]["version"], 4);
  EXPECT_TRUE(list.body["items"][0]["updated_by"].get<std::string>().starts_with("usr_"));
  auto versions = call("GET", "/v1/envs/" + env + "/secrets/versions");
  ASSERT_EQ(versions.status, 200) << versions.raw;
  ASSERT_EQ(versions.body["items"].size(), 4U);
  EXPECT_EQ(versions.body["items"][0]["number"], 1);
  EXPECT_EQ(versions.body["items"][3]["number"], 4);
  for (const auto* raw : {&a.raw, &b.raw, &c.raw, &d.raw, &list.raw, &versions.raw}) {
    for (const char* value : {"pw-one", "tok-1", "tok-2", "one", "two"}) {
      EXPECT_EQ(raw->find(std::string("\"") + value), std::string::npos) << value << " in " << *raw;
    }
  }
  EXPECT_EQ(countEvents("secrets.version_created"), 4);
  auto metrics = call("GET", "/metrics", "", "");
  EXPECT_NE(metrics.raw.find("plfm_secrets_versions_total{operation=\"set\"} 2"), std::string::npos)
      << metrics.raw.substr(0, 2000);
  // The material is sealed: the stored ciphertext holds no value.
  EXPECT_EQ(scalar("SELECT count(*) FROM secret_versions WHERE env_id = '" + env + "'"), "4");
  EXPECT_EQ(scalar("SELECT count(*) FROM secret_versions WHERE ciphertext LIKE '%tok-%'"), "0");
}

TEST_F(SecretsTest, IdempotentReplayAndTheRecordHoldsAMacNotAHash) {
  const std::string env = makeEnv(makeApp(makeOrg("idem"), "web"), "prod");
  const std::string body = json::dump({{"values", {{"API_TOKEN", "replay-me"}}}});
  http::Headers h;
  h.set("Idempotency-Key", "secrets-key-1");
  auto first = call("POST", "/v1/envs/" + env + "/secrets/set", body, std::nullopt, h);
  ASSERT_EQ(first.status, 201) << first.raw;
  auto again = call("POST", "/v1/envs/" + env + "/secrets/set", body, std::nullopt, h);
  ASSERT_EQ(again.status, 201) << again.raw;
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(again.body["version"]["id"], first.body["version"]["id"]);
  auto other = call("POST", "/v1/envs/" + env + "/secrets/set",
                    json::dump({{"values", {{"API_TOKEN", "different"}}}}), std::nullopt, h);
  EXPECT_EQ(other.status, 422) << other.raw;
  EXPECT_EQ(countEvents("secrets.version_created"), 1);
  const std::string hash =
      scalar("SELECT request_hash FROM idempotency_keys WHERE key = 'secrets-key-1'");
  EXPECT_TRUE(hash.starts_with("mac:")) << hash;
}

TEST_F(SecretsTest, ChangesRedeployTheCurrentReleaseUnlessStaged) {
  const Deployed d = deployedEnv("pin");
  ASSERT_FALSE(d.instance.empty());
  auto staged = setSecrets(d.env, {{"API_TOKEN", "staged-1"}}, true);
  ASSERT_EQ(staged.status, 201) << staged.raw;
  EXPECT_EQ(staged.body["staged"], true);
  EXPECT_EQ(staged.body["deploy"], json::Json());
  const std::string v1 = staged.body["version"]["id"];

  auto live = setSecrets(d.env, {{"API_TOKEN", "live-2"}});
  ASSERT_EQ(live.status, 201) << live.raw;
  EXPECT_EQ(live.body["staged"], false);
  const std::string v2 = live.body["version"]["id"];
  ASSERT_TRUE(live.body["deploy"].is_object()) << live.raw;
  EXPECT_EQ(live.body["deploy"]["release_id"], d.release);
  EXPECT_EQ(live.body["deploy"]["secrets_version"], v2);
  EXPECT_EQ(live.body["version"]["deploy_id"], live.body["deploy"]["id"]);
  auto dep = call("GET", "/v1/deploys/" + live.body["deploy"]["id"].get<std::string>());
  EXPECT_EQ(dep.body["secrets_version"], v2);

  // The scheduler rolls the instance onto the new version: the plan carries it.
  const std::string inst = waitInstance(d.env, v2, &d);
  ASSERT_FALSE(inst.empty());
  EXPECT_NE(inst, d.instance);

  // A plain deploy pins the env's newest version; an explicit one pins that.
  auto plain = callJson("POST", "/v1/envs/" + d.env + "/deploys", {{"release_id", d.release}});
  EXPECT_EQ(plain.body["secrets_version"], v2);
  auto pinned = callJson("POST", "/v1/envs/" + d.env + "/deploys",
                         {{"release_id", d.release}, {"secrets_version", v1}});
  EXPECT_EQ(pinned.body["secrets_version"], v1);
  auto foreign = callJson("POST", "/v1/envs/" + d.env + "/deploys",
                          {{"release_id", d.release}, {"secrets_version", "sv_nope"}});
  EXPECT_EQ(foreign.status, 404) << foreign.raw;
}

// A secrets change whose instances crash fails its deploy; the scheduler
// falls back to the last successful deploy's release and secrets version.
TEST_F(SecretsTest, AFailedSecretsDeployFallsBackToTheLastGoodVersion) {
  const Deployed d = deployedEnv("fallback");
  auto good = setSecrets(d.env, {{"API_TOKEN", "good"}});
  ASSERT_EQ(good.status, 201) << good.raw;
  const std::string v1 = good.body["version"]["id"];
  const std::string good_deploy = good.body["deploy"]["id"];
  for (int i = 0; i < 100; ++i) {
    agentTick(d);
    if (call("GET", "/v1/deploys/" + good_deploy).body["status"] == "succeeded") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(call("GET", "/v1/deploys/" + good_deploy).body["status"], "succeeded");

  auto bad = setSecrets(d.env, {{"API_TOKEN", "bad"}});
  ASSERT_EQ(bad.status, 201) << bad.raw;
  const std::string v2 = bad.body["version"]["id"];
  const std::string bad_deploy = bad.body["deploy"]["id"];
  json::Json status;
  for (int i = 0; i < 150; ++i) {
    agentTick(d, v2);
    status = call("GET", "/v1/deploys/" + bad_deploy).body["status"];
    if (status == "failed") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(status, "failed");
  // What runs is the good revision: every instance meant to run has v1.
  agentTick(d, v2);
  auto plan = call("GET", "/v1/nodes/" + d.node + "/plan?after=0&wait=0", "", d.node_token);
  int running = 0;
  for (const auto& spec : plan.body["instances"]) {
    if (spec["desired"] != "run") continue;
    ++running;
    EXPECT_EQ(spec["secrets"]["version"], v1) << plan.raw;
  }
  EXPECT_EQ(running, 1) << plan.raw;
}

TEST_F(SecretsTest, NodesFetchOnlyTheirInstancesMaterialAndEachFetchIsAudited) {
  const Deployed d = deployedEnv("fetch");
  auto none = fetch(d, d.instance);
  EXPECT_EQ(none.status, 404) << none.raw;  // the instance has no secrets
  auto set = setSecrets(d.env, {{"PEM", "line1\nline2\n"}, {"API_TOKEN", "fetch-me"}});
  ASSERT_EQ(set.status, 201) << set.raw;
  const std::string v = set.body["version"]["id"];
  const std::string inst = waitInstance(d.env, v, &d);
  ASSERT_FALSE(inst.empty());

  const int64_t before = countEvents("secrets.fetched");
  auto got = fetch(d, inst, "?version=" + v);
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.header("X-Secrets-Version"), v);
  EXPECT_EQ(got.header("Cache-Control"), "no-store");
  auto decoded = plfm::secrets::decode(got.raw);
  ASSERT_TRUE(decoded.has_value()) << decoded.error().toString();
  EXPECT_EQ(*decoded,
            (plfm::secrets::SecretMap{{"API_TOKEN", "fetch-me"}, {"PEM", "line1\nline2\n"}}));
  EXPECT_EQ(countEvents("secrets.fetched"), before + 1);
  const std::string payload = scalar(
      "SELECT payload::text FROM events WHERE event_type = 'secrets.fetched' ORDER BY seq DESC");
  EXPECT_NE(payload.find(inst), std::string::npos);
  EXPECT_EQ(payload.find("fetch-me"), std::string::npos);
  EXPECT_EQ(scalar("SELECT actor FROM events WHERE event_type = 'secrets.fetched' ORDER BY seq "
                   "DESC"),
            d.node);

  // Another version than the pinned one, another node, a user: refused.
  auto stale = fetch(d, inst, "?version=sv_01jdq3v7k2m9x4c8r6t0w5y1zb");
  EXPECT_EQ(stale.status, 409) << stale.raw;
  auto malformed = fetch(d, inst, "?version=nope");
  EXPECT_EQ(malformed.status, 400) << malformed.raw;
  auto [other, other_token] = enrollNode("other.node", 4, 4096);
  auto cross =
      call("GET", "/v1/nodes/" + other + "/instances/" + inst + "/secrets", "", other_token);
  EXPECT_EQ(cross.status, 404) << cross.raw;
  auto impersonate =
      call("GET", "/v1/nodes/" + d.node + "/instances/" + inst + "/secrets", "", other_token);
  EXPECT_EQ(impersonate.status, 404) << impersonate.raw;
  auto user = call("GET", "/v1/nodes/" + d.node + "/instances/" + inst + "/secrets");
  EXPECT_EQ(user.status, 403) << user.raw;
  EXPECT_EQ(countEvents("secrets.fetched"), before + 1);
}

TEST_F(SecretsTest, RotateMasterKeyRewrapsEveryDataKeyWhileServing) {
  const Deployed d = deployedEnv("rot");
  ASSERT_EQ(setSecrets(d.env, {{"API_TOKEN", "before-rotation"}}, true).status, 201);
  const std::string old_key = scalar("SELECT key_id FROM secret_versions LIMIT 1");
  const std::string next = keys_.file("next.key");
  ASSERT_TRUE(crypto::generateMasterKeyFile(next).has_value());
  ASSERT_EQ(secretsRotateMasterKey(config_, next), 0);
  const std::string new_key = scalar("SELECT DISTINCT key_id FROM secret_versions");
  EXPECT_NE(new_key, old_key);
  EXPECT_EQ(scalar("SELECT count(DISTINCT key_id) FROM secret_versions"), "1");
  // The running server reads the rewrapped versions and writes under the new key.
  auto live = setSecrets(d.env, {{"SECOND", "after-rotation"}});
  ASSERT_EQ(live.status, 201) << live.raw;
  EXPECT_EQ(scalar("SELECT count(*) FROM secret_versions WHERE key_id = '" + new_key + "'"), "2");
  const std::string inst = waitInstance(d.env, live.body["version"]["id"], &d);
  auto got = fetch(d, inst);
  ASSERT_EQ(got.status, 200) << got.raw;
  auto decoded = plfm::secrets::decode(got.raw);
  ASSERT_TRUE(decoded.has_value());
  EXPECT_EQ(decoded->at("API_TOKEN"), "before-rotation");
  // Rotating again to the same key changes nothing.
  ASSERT_EQ(secretsRotateMasterKey(config_, next), 0);
}

TEST_F(SecretsTest, BadInputIsAClearErrorThatNeverEchoesAValue) {
  const std::string env = makeEnv(makeApp(makeOrg("bad"), "web"), "prod");
  auto expectError = [](const Reply& r, int status, const std::string& field,
                        const std::string& words) {
    EXPECT_EQ(r.status, status) << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << r.raw;
    EXPECT_NE(r.body["error"]["message"].get<std::string>().find(words), std::string::npos)
        << r.raw;
    EXPECT_EQ(r.raw.find("leaky"), std::string::npos) << r.raw;
  };
  auto unknown = setSecrets("env_01jdq3v7k2m9x4c8r6t0w5y1zb", {{"API_TOKEN", "leaky-1"}});
  EXPECT_EQ(unknown.status, 404) << unknown.raw;
  EXPECT_EQ(unknown.raw.find("leaky"), std::string::npos);
  expectError(setSecrets(env, {{"bad-key", "leaky-2"}}), 400, "values", "invalid key");
  expectError(setSecrets(env, {{"leaky-3", "x"}}), 400, "values", "invalid key");
  expectError(setSecrets(env, {{"BIG", std::string(size_t{64} * 1024 + 1, 'L') + "leaky"}}), 400,
              "values.BIG", "limited to 65536 bytes");
  json::Json many = json::Json::object();
  for (int i = 0; i < 257; ++i) many["K" + std::to_string(i)] = "leaky";
  expectError(setSecrets(env, many), 400, "values", "at most 256");
  expectError(callJson("POST", "/v1/envs/" + env + "/secrets/import",
                       {{"dotenv", "A=1\nB=\"leaky-4\nC=3"}}),
              400, "dotenv", "dotenv line");
  auto syntax = callJson("POST", "/v1/envs/" + env + "/secrets/import",
                         {{"dotenv", "GOOD=1\nthis is leaky-5 not dotenv\n"}});
  expectError(syntax, 400, "dotenv", "line 2");
  EXPECT_EQ(syntax.body["error"]["details"]["line"], "2");
  expectError(callJson("POST", "/v1/envs/" + env + "/secrets/unset", {{"keys", {"NOT_SET"}}}), 404,
              "keys", "NOT_SET is not set");
  expectError(setSecrets(env, json::Json::object()), 400, "values", "non-empty");
  auto typed = callJson("POST", "/v1/envs/" + env + "/secrets/set",
                        {{"values", {{"A", 1}}}, {"stage", "yes"}});
  EXPECT_EQ(typed.status, 400) << typed.raw;
  // Over the server's body limit: the HTTP layer refuses it, without the body.
  auto huge = setSecrets(env, {{"HUGE", std::string(size_t{1100} * 1024, 'L') + "leaky-6"}});
  EXPECT_EQ(huge.status, 413) << huge.raw.substr(0, 300);
  EXPECT_EQ(huge.raw.find("leaky"), std::string::npos);
  EXPECT_EQ(countEvents("secrets.version_created"), 0);
}

// Concurrent writers of one env (even its first ones) queue on the bundle's
// row lock: every change lands, numbered 1..N without gaps, and the views
// rebuild from the log to the same rows.
TEST_F(SecretsTest, ConcurrentChangesGetGaplessNumbersAndViewsRebuild) {
  const std::string env = makeEnv(makeApp(makeOrg("race"), "web"), "prod");
  constexpr int kWriters = 8;
  std::vector<std::future<Reply>> replies;
  replies.reserve(kWriters);
  for (int i = 0; i < kWriters; ++i) {
    replies.push_back(std::async(std::launch::async, [this, &env, i] {
      return setSecrets(env, {{"K" + std::to_string(i), "v" + std::to_string(i)}}, true);
    }));
  }
  std::set<int64_t> numbers;
  for (auto& f : replies) {
    Reply r = f.get();
    EXPECT_EQ(r.status, 201) << r.raw;
    numbers.insert(r.body["version"]["number"].get<int64_t>());
  }
  EXPECT_EQ(numbers.size(), static_cast<size_t>(kWriters));
  EXPECT_EQ(*numbers.begin(), 1);
  EXPECT_EQ(*numbers.rbegin(), kWriters);
  auto list = call("GET", "/v1/envs/" + env + "/secrets");
  EXPECT_EQ(list.body["items"].size(), static_cast<size_t>(kWriters));
  EXPECT_EQ(list.body["version"]["number"], kWriters);

  cp_->stop();  // nothing projects while the views are rebuilt
  auto conn = connect();
  const std::string before = dumpViews(conn);
  EXPECT_NE(before.find("K7"), std::string::npos);
  auto rebuilt = rebuildViews(conn);
  ASSERT_TRUE(rebuilt.has_value()) << rebuilt.error().toString();
  EXPECT_EQ(dumpViews(conn), before);
}

// Too many keys across versions: the merge is checked, not just the request.
TEST_F(SecretsTest, TheEnvLimitCountsKeysAcrossChanges) {
  const std::string env = makeEnv(makeApp(makeOrg("lim"), "web"), "prod");
  json::Json half = json::Json::object();
  for (int i = 0; i < 200; ++i) half["A" + std::to_string(i)] = "v";
  ASSERT_EQ(setSecrets(env, half).status, 201);
  json::Json more = json::Json::object();
  for (int i = 0; i < 100; ++i) more["B" + std::to_string(i)] = "v";
  auto r = setSecrets(env, more);
  EXPECT_EQ(r.status, 400) << r.raw;
  EXPECT_NE(r.raw.find("would hold 300 secrets"), std::string::npos) << r.raw;
}

class SecretsDisabledTest : public testsupport::ApiTest {};

TEST_F(SecretsDisabledTest, WithoutAMasterKeySecretRoutesAnswer503) {
  const std::string env = makeEnv(makeApp(makeOrg("nokey"), "web"), "prod");
  auto r = callJson("POST", "/v1/envs/" + env + "/secrets/set", {{"values", {{"A", "b"}}}});
  EXPECT_EQ(r.status, 503) << r.raw;
  EXPECT_NE(r.raw.find("secrets_master_key_file"), std::string::npos) << r.raw;
  // Reads of names still work (there are none).
  auto list = call("GET", "/v1/envs/" + env + "/secrets");
  EXPECT_EQ(list.status, 200) << list.raw;
}

// The real binary refuses to start on a bad master key file and says why.
class SecretsStartupTest : public testsupport::ApiTest {
 protected:
  // Runs `plfm-control-plane <args>`; returns {exit code, output}.
  std::pair<int, std::string> run(std::vector<std::string> args) {
    const std::string out = state_->file("run-" + std::to_string(++runs_) + ".log");
    SpawnOptions o;
    o.stdout_path = out;
    args.insert(args.begin(), PLFM_CONTROL_PLANE_BIN);
    auto p = spawn(args, o);
    EXPECT_TRUE(p.has_value()) << p.error().toString();
    if (!p) return {-1, ""};
    auto status = p->waitFor(std::chrono::seconds(20));
    EXPECT_TRUE(status.has_value()) << "still running: " << readFile(out).value_or("");
    if (!status) return {-1, ""};
    return {exitCodeOf(*status), readFile(out).value_or("")};
  }
  std::vector<std::string> serveWithKey() {
    return {"serve",    "--database", conninfo(), "--state-dir", state_->file("cp2"),
            "--listen", "[::1]:0"};
  }
  int runs_ = 0;
};

TEST_F(SecretsStartupTest, BadMasterKeyFilesRefuseTheStartAndSayWhy) {
  plfm::testing::TempDir keys("plfm-keys");
  auto write = [&](const std::string& name, const std::string& bytes, mode_t mode) {
    std::string path = keys.file(name);
    std::ofstream(path, std::ios::binary) << bytes;
    ::chmod(path.c_str(), mode);
    return path;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {keys.file("missing.key"), "does not exist"},
      {write("short.key", std::string(16, 'k'), 0600), "holds 16 bytes"},
      {write("lax.key", std::string(32, 'k'), 0644), "has mode 0644"},
  };
  for (const auto& [path, why] : cases) {
    auto args = serveWithKey();
    SCOPED_TRACE(path);
    const std::string env = "PLFM_CP_SECRETS_MASTER_KEY_FILE=" + path;
    const std::string out = state_->file("refused.log");
    SpawnOptions o;
    o.stdout_path = out;
    o.env = {env};
    args.insert(args.begin(), PLFM_CONTROL_PLANE_BIN);
    auto p = spawn(args, o);
    ASSERT_TRUE(p.has_value());
    auto status = p->waitFor(std::chrono::seconds(20));
    ASSERT_TRUE(status.has_value()) << "it started anyway";
    EXPECT_NE(exitCodeOf(*status), 0);
    const std::string text = readFile(out).value_or("");
    EXPECT_NE(text.find(why), std::string::npos) << text;
    EXPECT_NE(text.find(path), std::string::npos) << text;
    EXPECT_EQ(text.find("listening"), std::string::npos) << text;
    ::unlink(out.c_str());
  }
  // generate-key writes a usable key once and refuses to overwrite it.
  const std::string good = keys.file("good.key");
  auto [code, out] = run({"secrets", "generate-key", good});
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("mode 0600"), std::string::npos) << out;
  EXPECT_NE(run({"secrets", "generate-key", good}).first, 0);
  // rotate-master-key without a configured key says so.
  auto [rc, rout] = run({"secrets", "rotate-master-key", "--new-key-file", good, "--database",
                         conninfo(), "--state-dir", state_->file("cp2")});
  EXPECT_NE(rc, 0);
  EXPECT_NE(rout.find("no secrets_master_key_file"), std::string::npos) << rout;
}
}  // namespace
}  // namespace plfm::cp
