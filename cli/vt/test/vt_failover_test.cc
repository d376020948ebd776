// vt with several control-plane URLs (docs/specs/cli/vt.md, "Contexts"): a
// context stores one URL or a list, old single-URL files stay readable, and
// ApiClient moves past a replica that cannot be reached with the same
// Idempotency-Key. The replicas here are in-process servers on loopback; the
// test against two real control-plane processes is
// services/control-plane/test/ha_clients_test.cc.
#include <gtest/gtest.h>

#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>

#include "client.h"
#include "config.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::vt {
namespace {

TEST(VtContextUrlsTest, AnOldSingleUrlFileIsReadAndAListRoundTrips) {
  plfm::testing::TempDir dir("vt-urls");
  const std::string path = dir.file("config.toml");
  std::ofstream(path) << "current = \"a\"\n[contexts.a]\nurl = \"https://cp.example:8443\"\n"
                         "token = \"vt_x\"\n";
  auto old = loadConfig(path);
  ASSERT_TRUE(old) << old.error().toString();
  EXPECT_EQ(old->contexts["a"].urls, std::vector<std::string>{"https://cp.example:8443"});

  old->contexts["a"].urls = {"https://cp1.example:8443", "https://cp2.example:8443"};
  ASSERT_TRUE(saveConfig(path, *old));
  auto again = loadConfig(path);
  ASSERT_TRUE(again) << again.error().toString();
  EXPECT_EQ(again->contexts["a"].urls,
            (std::vector<std::string>{"https://cp1.example:8443", "https://cp2.example:8443"}));

  std::ofstream(path) << "[contexts.a]\nurl = [\"https://cp1\", 3]\n";
  auto bad = loadConfig(path);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message().find("contexts.a.url must be a string or an array"),
            std::string::npos)
      << bad.error().message();
}

// A replica that records the Idempotency-Key of each request.
class Replica {
 public:
  explicit Replica(int status) : status_(status) {
    server_ = std::make_unique<http::Server>(
        http::ServerOptions{.listen = {"[::1]:0"}}, [this](http::Request& r) {
          std::lock_guard lock(mu_);
          keys_.emplace_back(r.header("Idempotency-Key").value_or(""));
          return http::Response::json(status_, R"({"id":"org_1"})");
        });
    EXPECT_TRUE(server_->start());
    url_ = "http://" + server_->endpoints()[0];
  }
  ~Replica() { server_->stop(std::chrono::milliseconds(0)); }
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;

  void kill() { server_->stop(std::chrono::milliseconds(0)); }
  [[nodiscard]] const std::string& url() const { return url_; }
  [[nodiscard]] std::vector<std::string> keys() {
    std::lock_guard lock(mu_);
    return keys_;
  }

 private:
  int status_;
  std::string url_;
  std::mutex mu_;
  std::vector<std::string> keys_;
  std::unique_ptr<http::Server> server_;
};

TEST(VtFailoverTest, ADeadFirstUrlIsPassedOverAtOnce) {
  Replica dead(200);
  dead.kill();
  Replica live(200);
  int retries = 0;
  ApiClient client({dead.url(), live.url()}, "vt_x",
                   {.attempts = 1, .on_retry = [&](const std::string&) { ++retries; }});
  auto r = client.get("/v1/orgs/org_1");
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(client.baseUrl(), live.url());
  EXPECT_EQ(retries, 0);  // moving to the next replica is not a retry round
}

TEST(VtFailoverTest, AMutationKeepsItsKeyOnTheNextReplica) {
  Replica busy(503);
  Replica live(201);
  ApiClient client({busy.url(), live.url()}, "vt_x", {.attempts = 1});
  auto r = client.mutate("POST", "/v1/orgs", nlohmann::json{{"name", "acme"}}, "vt-key-1");
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(busy.keys(), std::vector<std::string>{"vt-key-1"});
  EXPECT_EQ(live.keys(), std::vector<std::string>{"vt-key-1"});
}

TEST(VtFailoverTest, EveryUrlDeadSaysHowManyWereTried) {
  Replica a(200);
  a.kill();
  Replica b(200);
  b.kill();
  ApiClient client({a.url(), b.url()}, "vt_x", {.attempts = 1});
  auto r = client.get("/v1/whoami");
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is(errc::kUnavailable));
  EXPECT_NE(r.error().message().find("any of the control plane's 2 URLs"), std::string::npos)
      << r.error().message();
}

}  // namespace
}  // namespace plfm::vt
