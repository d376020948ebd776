// The crashes of issue 15, replayed against the real `plfm-control-plane`
// binary: each test sends what once killed the process (or stores it behind
// the API's back), then asserts that the same process is still alive and
// answering, and that a restart comes up too (no crash loop).
#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
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

struct Reply {
  int status = 0;
  Json body;
  // error.details.<key> of an error envelope, or "".
  [[nodiscard]] std::string detail(const std::string& key) const {
    const Json* d = body.is_object() && body.contains("error") && body["error"].is_object() &&
                            body["error"].contains("details")
                        ? &body["error"]["details"]
                        : nullptr;
    return d != nullptr && d->is_object() && d->contains(key) && (*d)[key].is_string()
               ? (*d)[key].get<std::string>()
               : std::string();
  }
};

class CrashRegressionTest : public testsupport::CpTest {
 protected:
  void SetUp() override {
    CpTest::SetUp();
    if (HasFatalFailure()) return;
    dir_ = std::make_unique<plfm::testing::TempDir>("cp-crash");
    start();
  }

  // Starts the binary and waits until it listens.
  void start() {
    std::filesystem::remove(dir_->file("cp.out"));
    SpawnOptions o;
    o.stdout_path = dir_->file("cp.out");
    o.stderr_path = dir_->file("cp.log");
    auto p = spawn({PLFM_CONTROL_PLANE_BIN, "serve", "--listen", "[::1]:0", "--database",
                    conninfo(), "--state-dir", dir_->path()},
                   o);
    ASSERT_TRUE(p.has_value()) << p.error().toString();
    proc_ = std::move(*p);
    url_.clear();
    for (int i = 0; i < 500 && url_.empty(); ++i) {
      auto out = readFile(dir_->file("cp.out"));
      if (out && out->find("listening ") != std::string::npos) {
        const std::string line(trim(out->substr(out->find("listening ") + 10)));
        url_ = "http://" + line.substr(0, line.find(','));
      }
      ASSERT_FALSE(proc_.poll().has_value()) << "exited at start:\n" << log();
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(url_.empty()) << "did not start:\n" << log();
    token_ = std::string(trim(readFile(dir_->file("admin-token")).value_or("")));
  }

  void restart() {
    proc_.signal(SIGTERM);
    ASSERT_TRUE(proc_.waitFor(20s).has_value()) << "did not stop";
    start();
  }

  std::string log() const { return tailFile(dir_->file("cp.log"), 30); }

  Reply call(const std::string& method, const std::string& path, const std::string& body = "") {
    http::ClientRequest req;
    req.method = method;
    req.url = url_ + path;
    req.body = body;
    req.timeout = 20s;
    req.headers.set("Authorization", "Bearer " + token_);
    if (method != "GET") req.headers.set("Idempotency-Key", RequestId::generate().str());
    if (!body.empty()) req.headers.set("Content-Type", "application/json");
    auto r = http::request(req);
    if (!r) return Reply{0, Json()};
    return Reply{r->status, json::parse(r->body).value_or(Json())};
  }
  Reply callJson(const std::string& method, const std::string& path, const Json& body) {
    return call(method, path, json::dump(body));
  }

  // The process has not exited and answers /healthz and an authenticated read.
  void expectAlive(const std::string& after) {
    SCOPED_TRACE("after " + after);
    ASSERT_FALSE(proc_.poll().has_value()) << "the control plane died:\n" << log();
    EXPECT_EQ(call("GET", "/healthz").status, 200) << log();
    EXPECT_EQ(call("GET", "/v1/orgs").status, 200) << log();
  }

  // Waits until `pred` holds or the process exits; false on timeout or death.
  bool eventually(const std::function<bool()>& pred, std::chrono::seconds timeout = 10s) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < until) {
      if (proc_.poll().has_value()) return false;
      if (pred()) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::unique_ptr<plfm::testing::TempDir> dir_;
  Process proc_;
  std::string url_;
  std::string token_;
};

const std::string kDigest = "sha256:" + std::string(64, 'd');

// Crash A: a manifest whose vcpus is a string was accepted, and the
// scheduler thread threw nlohmann::type_error on it after a deploy and a
// scale, on every restart.
TEST_F(CrashRegressionTest, WrongTypedResourcesNeverReachTheScheduler) {
  const std::string org = callJson("POST", "/v1/orgs", {{"name", "acme"}}).body.value("id", "");
  const std::string app =
      callJson("POST", "/v1/orgs/" + org + "/apps", {{"name", "shop"}}).body.value("id", "");
  const std::string env =
      callJson("POST", "/v1/apps/" + app + "/envs", {{"name", "prod"}}).body.value("id", "");
  ASSERT_FALSE(env.empty());
  const Json bad = {
      {"processes", {{{"name", "web"}, {"resources", {{"vcpus", "x"}, {"memory_mb", 128}}}}}}};

  // Through the API: refused, naming the field.
  auto rel = callJson(
      "POST", "/v1/apps/" + app + "/releases",
      {{"image_ref", "registry.local/shop:1"}, {"image_digest", kDigest}, {"manifest", bad}});
  EXPECT_EQ(rel.status, 400) << rel.body.dump();
  EXPECT_EQ(rel.detail("field"), "manifest.app") << rel.body.dump();
  std::string release = rel.status == 201 ? rel.body.value("id", "") : "";

  // Behind the API's back (a release stored before the rule, or by hand):
  // the same manifest costs only its own env.
  if (release.empty()) {
    Json stored = bad;
    stored["app"] = "shop";
    stored["image"] = "registry.local/shop:1";
    release = ReleaseId::generate().str();
    auto conn = connect();
    appendOk(conn, {NewEvent{"release", release, 1, "release.created", 1, org,
                             json::dump({{"release_id", release},
                                         {"app_id", app},
                                         {"org_id", org},
                                         {"image_ref", "registry.local/shop:1"},
                                         {"image_digest", kDigest},
                                         {"manifest", stored}})}});
  }
  ASSERT_TRUE(eventually([&] { return call("GET", "/v1/releases/" + release).status == 200; }));
  auto dep = callJson("POST", "/v1/envs/" + env + "/deploys", {{"release_id", release}});
  EXPECT_EQ(dep.status, 201) << dep.body.dump();
  auto scale = callJson("PUT", "/v1/envs/" + env + "/scale", {{"processes", {{"web", 1}}}});
  EXPECT_EQ(scale.status, 200) << scale.body.dump();
  // The scheduler says why the env does not run.
  std::string reason;
  EXPECT_TRUE(eventually([&] {
    auto r = call("GET", "/v1/envs/" + env + "/instances");
    if (r.status != 200 || r.body["summary"].empty()) return false;
    reason = r.body["summary"][0].value("reason", "");
    return reason.find("cannot run") != std::string::npos;
  })) << reason
      << "\n"
      << log();
  EXPECT_NE(reason.find("processes[0].resources.vcpus"), std::string::npos) << reason;
  expectAlive("a deploy and scale of the bad release");

  // Other tenants still get scheduled: a good release in another env runs
  // through the same rounds.
  const std::string env2 =
      callJson("POST", "/v1/apps/" + app + "/envs", {{"name", "staging"}}).body.value("id", "");
  auto good = callJson("POST", "/v1/apps/" + app + "/releases",
                       {{"image_ref", "registry.local/shop:1"},
                        {"image_digest", kDigest},
                        {"manifest",
                         {{"app", "shop"},
                          {"image", "registry.local/shop:1"},
                          {"processes", {{{"name", "web"}}}}}}});
  ASSERT_EQ(good.status, 201) << good.body.dump();
  EXPECT_EQ(good.body["manifest"]["processes"][0]["resources"]["memory_mb"], 256)
      << "stored in canonical form, defaults spelled out";
  EXPECT_EQ(
      callJson("POST", "/v1/envs/" + env2 + "/deploys", {{"release_id", good.body.value("id", "")}})
          .status,
      201);
  EXPECT_EQ(callJson("PUT", "/v1/envs/" + env2 + "/scale", {{"processes", {{"web", 1}}}}).status,
            200);
  EXPECT_TRUE(eventually([&] {
    auto r = call("GET", "/v1/envs/" + env2 + "/instances");
    return r.status == 200 && !r.body["summary"].empty() &&
           r.body["summary"][0].value("reason", "").find("capacity") != std::string::npos;
  })) << call("GET", "/v1/envs/" + env2 + "/instances").body.dump();
  expectAlive("scheduling another env");

  // No crash loop: a restart over the same stored state comes up and stays.
  restart();
  std::this_thread::sleep_for(1s);
  expectAlive("a restart");
}

// Crash B: an 800 KB body of nested '[' as a release manifest overflowed
// the stack of the request thread (recursive copy and dump).
TEST_F(CrashRegressionTest, HostileJsonShapesGetA4xxAndTheServerLives) {
  const std::string org = callJson("POST", "/v1/orgs", {{"name", "acme"}}).body.value("id", "");
  const std::string app =
      callJson("POST", "/v1/orgs/" + org + "/apps", {{"name", "shop"}}).body.value("id", "");
  ASSERT_FALSE(app.empty());
  const std::string head =
      R"({"image_ref":"registry.local/shop:1","image_digest":")" + kDigest + R"(","manifest":)";
  const std::string path = "/v1/apps/" + app + "/releases";

  // 800 KB of nesting, balanced, inside a manifest object (within the 1 MiB
  // body limit).
  const size_t deep = size_t{400} * 1024;
  auto r = call("POST", path,
                head + R"({"x":)" + std::string(deep, '[') + std::string(deep, ']') + "}}");
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.detail("reason"), "too_deep") << r.body.dump();
  expectAlive("800 KB of nested arrays");

  // Unbalanced: nothing but '['.
  r = call("POST", path, head + std::string(2 * deep, '['));
  EXPECT_EQ(r.status, 400) << r.body.dump();
  expectAlive("800 KB of '['");

  std::string wide = head + R"({"x":[0)";
  while (wide.size() < size_t{900} * 1024) wide += ",0";
  r = call("POST", path, wide + "]}}");
  EXPECT_EQ(r.status, 400) << r.body.dump();
  EXPECT_EQ(r.detail("reason"), "too_many_elements") << r.body.dump();
  expectAlive("450,000 elements");

  r = call("POST", path, head + R"({"x":")" + std::string(2 << 20, 'a') + "\"}}");
  EXPECT_EQ(r.status, 413) << r.body.dump();
  expectAlive("a 2 MiB body");

  auto conn = connect();
  auto rs = conn.exec("SELECT count(*) FROM events WHERE event_type = 'release.created'");
  ASSERT_TRUE(rs.has_value());
  EXPECT_EQ(rs->int64(0, 0).value_or(-1), 0) << "a refused body wrote a release";
}

}  // namespace
}  // namespace plfm::cp
