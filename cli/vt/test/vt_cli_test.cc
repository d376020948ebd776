// End-to-end tests of the real `vt` binary against a real control plane on
// a real PostgreSQL: one scripted session whose every command's table and
// JSON output is a golden transcript, the idempotent retry through a proxy
// that drops a response, and bad input.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "plfm/testing/pg_cluster.h"
#include "vt_harness.h"

namespace plfm::vt {
namespace {

using plfm::testing::TempDir;
using testing::runVt;
using testing::VtResult;

const std::string kTestData = std::string(PLFM_TEST_DIR) + "/test/testdata";

class VtCliTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto cluster = plfm::testing::PgCluster::shared();
    ASSERT_TRUE(cluster) << cluster.error().toString();
    auto db = (*cluster)->createDatabase();
    ASSERT_TRUE(db) << db.error().toString();
    state_ = new TempDir("vt-cp");
    cp_ = new testing::ControlPlaneProcess(
        testing::startControlPlane((*cluster)->conninfo(*db), *state_));
  }
  static void TearDownTestSuite() {
    delete cp_;
    delete state_;
  }

  static TempDir* state_;
  static testing::ControlPlaneProcess* cp_;
};

TempDir* VtCliTest::state_ = nullptr;
testing::ControlPlaneProcess* VtCliTest::cp_ = nullptr;

// Records commands and their output as a transcript.
class Session {
 public:
  Session(std::string config_dir, testing::Normalizer& norm)
      : config_dir_(std::move(config_dir)), norm_(norm) {}

  VtResult run(const std::vector<std::string>& args, const std::string& stdin_text = "",
               const std::vector<std::string>& env = {}) {
    VtResult r = runVt(args, config_dir_, env, stdin_text);
    std::string cmd = "vt";
    for (const auto& a : args) cmd += " " + a;
    transcript_ += "$ " + norm_.apply(cmd) + "\n";
    if (!r.out.empty()) transcript_ += norm_.apply(r.out);
    if (!r.err.empty()) {
      for (const auto& line : splitErr(norm_.apply(r.err))) transcript_ += "stderr| " + line + "\n";
    }
    transcript_ += "[exit " + std::to_string(r.code) + "]\n\n";
    return r;
  }
  [[nodiscard]] const std::string& transcript() const { return transcript_; }

 private:
  static std::vector<std::string> splitErr(const std::string& s) {
    std::vector<std::string> lines;
    size_t start = 0;
    while (start < s.size()) {
      size_t end = s.find('\n', start);
      if (end == std::string::npos) end = s.size();
      lines.push_back(s.substr(start, end - start));
      start = end + 1;
    }
    return lines;
  }

  std::string config_dir_;
  testing::Normalizer& norm_;
  std::string transcript_;
};

TEST_F(VtCliTest, ScriptedSessionMatchesGoldenTranscript) {
  TempDir config("vt-config");
  testing::Normalizer norm;
  norm.literal(cp_->url, "<url>");
  norm.literal(config.path(), "<config>");
  norm.literal(kTestData, "<testdata>");
  Session s(config.path(), norm);
  const std::string manifest = kTestData + "/hello/vt.toml";

  EXPECT_EQ(s.run({"login", "--url", cp_->url}, cp_->admin_token + "\n").code, 0);
  EXPECT_EQ(s.run({"whoami", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"whoami", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "create", "acme", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "create", "beta", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "list", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "get", "acme", "--format", "table"}).code, 0);
  // Two orgs and no default: commands that need one say so.
  EXPECT_EQ(s.run({"apps", "list", "--format", "table"}).code, 1);
  EXPECT_EQ(s.run({"context", "use", "--org", "acme", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"context", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"context", "list", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"context", "show", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"context", "show", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"apps", "create", "zeta", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"apps", "create", "alpha", "--description", "first", "--format", "json"}).code,
            0);
  EXPECT_EQ(s.run({"apps", "create", "alpha", "--format", "table"}).code, 4);
  EXPECT_EQ(s.run({"apps", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"apps", "list", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"apps", "get", "alpha", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"envs", "create", "staging", "--app", "alpha", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"envs", "list", "--app", "alpha", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"envs", "get", "staging", "--app", "alpha", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"manifest", "validate", manifest, "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"manifest", "validate", manifest, "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"deploy", "--manifest", manifest, "--detach", "--format", "table"}).code, 0);
  VtResult second = s.run({"deploy", "--manifest", manifest, "--detach", "--format", "json"});
  EXPECT_EQ(second.code, 0);
  const std::string dep = nlohmann::json::parse(second.out)["result"]["deploy"]["id"];
  EXPECT_EQ(s.run({"releases", "list", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"releases", "list", "--app", "hello", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"deploys", "get", dep, "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"deploys", "get", dep, "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"deploys", "list", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"deploys", "list", "--app", "hello", "--format", "json"}).code, 0);
  EXPECT_EQ(
      s.run({"scale", "set", "web=3", "worker=1", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"scale", "show", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"scale", "show", "--app", "hello", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"instances", "list", "--app", "hello", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"instances", "list", "--app", "hello", "--format", "json"}).code, 0);
  // Neither deploy has succeeded yet (no scheduler in this test).
  EXPECT_EQ(s.run({"rollback", "--app", "hello", "--format", "table"}).code, 4);
  EXPECT_EQ(s.run({"nodes", "list", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"nodes", "list", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"events", "tail", "-n", "5", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"events", "tail", "-n", "2", "--format", "json"}).code, 0);
  EXPECT_EQ(s.run({"envs", "delete", "staging", "--app", "alpha", "--format", "table"}).code, 0);
  EXPECT_EQ(s.run({"apps", "delete", "zeta", "--format", "json", "-q"}).code, 0);
  EXPECT_EQ(s.run({"apps", "list", "-q"}).code, 0);
  EXPECT_EQ(s.run({"orgs", "delete", "acme", "--format", "table"}).code, 4);  // has apps
  EXPECT_EQ(s.run({"orgs", "delete", "beta", "--format", "table"}).code, 0);
  PLFM_EXPECT_GOLDEN("golden/session.txt", s.transcript());
}

TEST_F(VtCliTest, BadInputGetsOneClearLineAndTheRightExitCode) {
  TempDir config("vt-config");
  testing::Normalizer norm;
  norm.literal(cp_->url, "<url>");
  norm.literal(config.path(), "<config>");
  norm.literal(kTestData, "<testdata>");
  Session s(config.path(), norm);
  EXPECT_EQ(s.run({"aps", "list"}).code, 2);
  EXPECT_EQ(s.run({"apps", "lst"}).code, 2);
  EXPECT_EQ(s.run({"apps", "list", "--fromat", "json"}).code, 2);
  EXPECT_EQ(s.run({"apps", "create"}).code, 2);
  EXPECT_EQ(s.run({"apps", "list", "--format", "yaml"}).code, 2);
  EXPECT_EQ(s.run({"apps"}).code, 2);
  EXPECT_EQ(s.run({"apps", "list"}).code, 5);  // no context
  EXPECT_EQ(s.run({"apps", "list", "--context", "nope"}).code, 1);
  EXPECT_EQ(s.run({"login", "--url", cp_->url},
                  "vt_wrongwrongwrongwrongwrongwrongwrongwrongwrongwrongwrong\n")
                .code,
            5);
  EXPECT_EQ(s.run({"whoami"}, "", {"VT_URL=" + cp_->url, "VT_TOKEN=vt_expired"}).code, 5);
  EXPECT_EQ(s.run({"whoami"}, "", {"VT_URL=http://[::1]:1", "VT_TOKEN=vt_x"}).code, 3);
  EXPECT_EQ(s.run({"manifest", "validate", kTestData + "/bad.toml"}).code, 1);
  EXPECT_EQ(s.run({"manifest", "validate", kTestData + "/missing.toml"}).code, 1);
  EXPECT_EQ(s.run({"scale", "set", "web"}, "", {"VT_URL=" + cp_->url, "VT_TOKEN=vt_x"}).code, 2);
  EXPECT_EQ(s.run({"completion", "fish"}).code, 2);
  PLFM_EXPECT_GOLDEN("golden/bad_input.txt", s.transcript());
  EXPECT_EQ(s.transcript().find("terminate called"), std::string::npos);
}

// A TCP proxy in front of the control plane that forwards everything but
// swallows the response to the first POST whose path contains `match`,
// closing the client connection instead: the request took effect, the
// client never heard.
class DroppingProxy {
 public:
  DroppingProxy(int upstream_port, std::string match) : match_(std::move(match)) {
    listen_fd_ = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::listen(listen_fd_, 16) != 0) {
      std::abort();
    }
    socklen_t len = sizeof a;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin6_port);
    upstream_port_ = upstream_port;
    thread_ = std::thread([this] { loop(); });
  }
  ~DroppingProxy() {
    stop_ = true;
    ::shutdown(listen_fd_, SHUT_RDWR);
    ::close(listen_fd_);
    thread_.join();
  }
  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] int matched() const { return matched_; }

 private:
  void loop() {
    while (!stop_) {
      int c = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) return;
      handle(c);
      ::close(c);
    }
  }
  // One request per connection (vt opens a connection per request).
  void handle(int c) {
    std::string req;
    char buf[65536];
    for (;;) {
      ssize_t n = ::recv(c, buf, sizeof buf, 0);
      if (n <= 0) return;
      req.append(buf, static_cast<size_t>(n));
      auto head_end = req.find("\r\n\r\n");
      if (head_end == std::string::npos) continue;
      size_t body_len = 0;
      auto cl = req.find("Content-Length: ");
      if (cl == std::string::npos) cl = req.find("content-length: ");
      if (cl != std::string::npos && cl < head_end) body_len = std::stoul(req.substr(cl + 16));
      if (req.size() >= head_end + 4 + body_len) break;
    }
    int u = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    a.sin6_port = htons(static_cast<uint16_t>(upstream_port_));
    if (::connect(u, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(u);
      return;
    }
    // Ask the upstream to close after its response, so we can read to EOF.
    std::string forward = req;
    auto line_end = forward.find("\r\n");
    forward.insert(line_end + 2, "Connection: close\r\n");
    ::send(u, forward.data(), forward.size(), MSG_NOSIGNAL);
    std::string resp;
    for (;;) {
      ssize_t n = ::recv(u, buf, sizeof buf, 0);
      if (n <= 0) break;
      resp.append(buf, static_cast<size_t>(n));
    }
    ::close(u);
    bool drop =
        req.rfind("POST ", 0) == 0 && req.find(match_) < req.find("\r\n") && matched_++ == 0;
    if (!drop) ::send(c, resp.data(), resp.size(), MSG_NOSIGNAL);
  }

  std::string match_;
  int listen_fd_ = -1;
  int port_ = 0;
  int upstream_port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> matched_{0};
  std::thread thread_;
};

TEST_F(VtCliTest, RetriedDeployAfterALostResponseCreatesOneDeploy) {
  TempDir config("vt-config");
  auto port = std::stoi(cp_->url.substr(cp_->url.rfind(':') + 1));
  DroppingProxy proxy(port, "/deploys");
  std::string proxied = "http://[::1]:" + std::to_string(proxy.port());
  ASSERT_EQ(runVt({"login", "--url", cp_->url}, config.path(), {}, cp_->admin_token + "\n").code,
            0);
  ASSERT_EQ(runVt({"orgs", "create", "retry"}, config.path()).code, 0);
  ASSERT_EQ(runVt({"context", "use", "--org", "retry"}, config.path()).code, 0);
  VtResult r =
      runVt({"deploy", "--manifest", kTestData + "/hello/vt.toml", "--detach", "--format", "json"},
            config.path(), {"VT_URL=" + proxied});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.err.find("retrying POST"), std::string::npos) << r.err;
  EXPECT_EQ(proxy.matched(), 2);  // the lost attempt and the retry
  VtResult list = runVt({"deploys", "list", "--app", "hello", "--format", "json"}, config.path());
  ASSERT_EQ(list.code, 0) << list.err;
  auto j = nlohmann::json::parse(list.out);
  ASSERT_EQ(j["items"].size(), 1U) << list.out;
  auto receipt = nlohmann::json::parse(r.out);
  EXPECT_EQ(receipt["result"]["deploy"]["id"], j["items"][0]["id"]);
}

TEST_F(VtCliTest, HelpIsFast) {
  TempDir config("vt-config");
  VtResult r = runVt({"--help"}, config.path());
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("Start here"), std::string::npos);
}

}  // namespace
}  // namespace plfm::vt
