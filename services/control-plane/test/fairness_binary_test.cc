// Connections and fairness against the real `plfm-control-plane` binary
// (docs/security.md, "Control plane: connections and fairness"): one client
// holding 512 idle sockets on the user listener must not starve heartbeats
// and plan polls, which the node listener (--node-listen) serves with
// connection slots and database connections of its own; the per-source cap
// refuses the flooding address while another address is still served.
//
// PLFM_FAIRNESS_OLD_BEHAVIOUR=1 runs the same test the way the control plane
// ran before (one listener for everything, no per-source cap): it fails,
// which shows the flood does reach the limits.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "cp_tls_test_support.h"
#include "plfm/core/id.h"
#include "plfm/core/json.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/http/pki.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::cp {
namespace {

using namespace std::chrono_literals;

constexpr int kFlood = 512;

bool oldBehaviour() {
  const char* v = std::getenv("PLFM_FAIRNESS_OLD_BEHAVIOUR");
  return v != nullptr && std::string_view(v) == "1";
}

// A TCP connection that never sends a byte (for a TLS listener: a
// handshake that never starts).
class IdleSocket {
 public:
  explicit IdleSocket(const std::string& endpoint) {
    const size_t colon = endpoint.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(endpoint.substr(colon + 1))));
    ::inet_pton(AF_INET, endpoint.substr(0, colon).c_str(), &addr.sin_addr);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }
  IdleSocket(const IdleSocket&) = delete;
  IdleSocket& operator=(const IdleSocket&) = delete;
  ~IdleSocket() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] bool connected() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

class FairnessBinaryTest : public testsupport::CpTlsTest {
 protected:
  FairnessBinaryTest() : CpTlsTest("cp-fair") {}

  void TearDown() override {
    if (proc_.pid() > 0 && !proc_.poll().has_value()) {
      proc_.signal(SIGTERM);
      (void)proc_.waitFor(20s);
    }
    CpTest::TearDown();
  }

  // The user listener on 127.0.0.1 (the flooded address) and [::1] (another
  // source); the node listener on 127.0.0.1. `toml`: settings for --config.
  void start(std::string toml = {}) {
    std::vector<std::string> argv = {PLFM_CONTROL_PLANE_BIN,
                                     "serve",
                                     "--database",
                                     conninfo(),
                                     "--state-dir",
                                     dir_.path(),
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--listen",
                                     "[::1]:0",
                                     "--tls-cert",
                                     pki_.server_cert,
                                     "--tls-key",
                                     pki_.server_key};
    if (oldBehaviour()) {
      toml += "max_connections_per_source = 0\n";
    } else {
      argv.insert(argv.end(), {"--node-listen", "127.0.0.1:0"});
    }
    if (!toml.empty()) {
      ASSERT_TRUE(writeFileAtomic(dir_.file("cp.toml"), toml).has_value());
      argv.insert(argv.end(), {"--config", dir_.file("cp.toml")});
    }
    SpawnOptions o;
    o.stdout_path = dir_.file("cp.out");
    o.stderr_path = dir_.file("cp.log");
    auto p = spawn(argv, o);
    ASSERT_TRUE(p.has_value()) << p.error().toString();
    proc_ = std::move(*p);
    for (int i = 0; i < 500; ++i) {
      auto out = readFile(dir_.file("cp.out")).value_or("");
      const size_t at = out.find("listening ");
      const bool node_line = oldBehaviour() || out.find("node-listener ") != std::string::npos;
      if (at != std::string::npos && node_line && out.back() == '\n') {
        const std::string users(trim(out.substr(at + 10, out.find('\n', at) - at - 10)));
        ASSERT_NE(users.find(','), std::string::npos) << out;
        user_v4_ = users.substr(0, users.find(','));
        user_v6_ = users.substr(users.find(',') + 1);
        node_ = user_v4_;
        if (const size_t n = out.find("node-listener "); n != std::string::npos) {
          node_ = std::string(trim(out.substr(n + 14, out.find('\n', n) - n - 14)));
        }
        break;
      }
      ASSERT_FALSE(proc_.poll().has_value()) << "exited at start:\n" << log();
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(user_v4_.empty()) << "did not start:\n" << log();
    admin_ = std::string(trim(readFile(dir_.file("admin-token")).value_or("")));
  }

  std::string log() const { return tailFile(dir_.file("cp.log"), 30); }

  Result<http::Response> call(const std::string& endpoint, const std::string& method,
                              const std::string& path, const std::string& token,
                              const json::Json& body = nullptr,
                              std::chrono::milliseconds timeout = 10s,
                              const std::string& idempotency_key = {}) const {
    http::ClientRequest req;
    req.method = method;
    req.url = "https://" + endpoint + path;
    req.timeout = timeout;
    req.tls.ca_file = pki_.ca_cert;
    if (!token.empty()) req.headers.set("Authorization", "Bearer " + token);
    if (method != "GET") {
      req.headers.set("Idempotency-Key",
                      idempotency_key.empty() ? RequestId::generate().str() : idempotency_key);
    }
    if (!body.is_null()) {
      req.body = json::dump(body);
      req.headers.set("Content-Type", "application/json");
    }
    return http::request(req);
  }

  // Enrolls a node through the node listener; its id and token.
  std::pair<std::string, std::string> enroll() {
    auto e = call(user_v4_, "POST", "/v1/nodes/enrollments", admin_, {{"ttl_seconds", 600}});
    EXPECT_TRUE(e.has_value() && e->status == 201) << (e ? e->body : e.error().toString());
    const std::string token =
        e ? json::parse(e->body).value_or(json::Json()).value("token", "") : "";
    auto r = call(node_, "POST", "/v1/nodes/enroll", token,
                  {{"hostname", "n1"},
                   {"cores", 4},
                   {"memory_mb", 4096},
                   {"disk_mb", 100'000},
                   {"wireguard_public_key", std::string(43, 'k') + "="},
                   {"underlay_address", "2001:db8::10"},
                   {"runtimes", {"qemu"}}});
    EXPECT_TRUE(r.has_value() && r->status == 201) << (r ? r->body : r.error().toString());
    const json::Json j = r ? json::parse(r->body).value_or(json::Json()) : json::Json();
    return {j.value("node_id", ""), j.value("token", "")};
  }

  Process proc_;
  std::string user_v4_, user_v6_, node_, admin_;
};

TEST_F(FairnessBinaryTest, IdleSocketsOnTheUserListenerDoNotStarveNodeTraffic) {
  start();
  if (HasFatalFailure()) return;
  const auto [node_id, node_token] = enroll();
  ASSERT_FALSE(node_token.empty());

  // Node and edge routes live only on the node listener, user routes only
  // on the user listener.
  if (!oldBehaviour()) {
    auto wrong = call(user_v4_, "POST", "/v1/nodes/" + node_id + "/heartbeat", node_token,
                      json::Json::object());
    ASSERT_TRUE(wrong.has_value()) << wrong.error().toString();
    EXPECT_EQ(wrong->status, 404) << wrong->body;
    auto users = call(node_, "GET", "/v1/orgs", admin_);
    ASSERT_TRUE(users.has_value()) << users.error().toString();
    EXPECT_EQ(users->status, 404) << users->body;
    auto health = call(node_, "GET", "/healthz", "");
    ASSERT_TRUE(health.has_value()) << health.error().toString();
    EXPECT_EQ(health->status, 200);
  }

  // The flood from 127.0.0.1: 64 TLS connections that finished their
  // handshake and a request and now sit idle (keep-alive), then idle TCP
  // connections that never start a handshake, 512 in all.
  std::vector<http::Client> tls_idle;
  tls_idle.reserve(64);
  for (int i = 0; i < 64; ++i) {
    tls_idle.emplace_back("https://" + user_v4_, http::ClientTlsOptions{.ca_file = pki_.ca_cert});
    auto r = tls_idle.back().send("GET", "/healthz", {}, {}, 10s);
    ASSERT_TRUE(r.has_value()) << i << ": " << r.error().toString() << "\n" << log();
  }
  std::vector<std::unique_ptr<IdleSocket>> tcp_idle;
  tcp_idle.reserve(kFlood - 64);
  for (int i = 0; i < kFlood - 64; ++i) {
    tcp_idle.push_back(std::make_unique<IdleSocket>(user_v4_));
    ASSERT_TRUE(tcp_idle.back()->connected()) << i;
  }
  std::this_thread::sleep_for(500ms);  // let the acceptor take (or refuse) them all

  // Node traffic is served at once: a heartbeat and a plan poll.
  const auto before = std::chrono::steady_clock::now();
  auto beat = call(node_, "POST", "/v1/nodes/" + node_id + "/heartbeat", node_token,
                   {{"agent_version", "test"}}, 5s);
  ASSERT_TRUE(beat.has_value()) << "heartbeat: " << beat.error().toString() << "\n" << log();
  EXPECT_EQ(beat->status, 200) << beat->body;
  auto plan =
      call(node_, "GET", "/v1/nodes/" + node_id + "/plan?after=0&wait=0", node_token, nullptr, 5s);
  ASSERT_TRUE(plan.has_value()) << "plan: " << plan.error().toString() << "\n" << log();
  EXPECT_EQ(plan->status, 200) << plan->body;
  EXPECT_LT(std::chrono::steady_clock::now() - before, 3s);

  // The flooding address is at its cap: a new connection of it is closed
  // (a TLS listener cannot answer 503 before a handshake).
  auto same = call(user_v4_, "GET", "/v1/orgs", admin_, nullptr, 3s);
  EXPECT_FALSE(same.has_value() && same->status == 200)
      << "a connection over the per-source cap was served";
  // Another address is served.
  auto other = call(user_v6_, "GET", "/v1/orgs", admin_, nullptr, 5s);
  ASSERT_TRUE(other.has_value()) << other.error().toString() << "\n" << log();
  EXPECT_EQ(other->status, 200) << other->body;
  // The refusals are in the log, once, with the address.
  const std::string logged = readFile(dir_.file("cp.log")).value_or("");
  EXPECT_NE(logged.find("connection refused at a limit"), std::string::npos) << log();
  EXPECT_NE(logged.find("\"source\":\"127.0.0.1\""), std::string::npos) << log();

  // The flood ends; the address is served again.
  tcp_idle.clear();
  tls_idle.clear();
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    auto again = call(user_v4_, "GET", "/v1/orgs", admin_, nullptr, 3s);
    served = again.has_value() && again->status == 200;
    if (!served) std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(served) << log();
  EXPECT_FALSE(proc_.poll().has_value()) << log();
}

// The only database connection of user handlers (db_pool_size = 1) is held
// by a user's slow request (a mutation waiting on an Idempotency-Key that
// another transaction holds). A request with a bad token is still answered 401 at once (it is
// authenticated on a pool of its own, before any handler connection), and
// a heartbeat and a plan poll are served (node routes have their own pool).
TEST_F(FairnessBinaryTest, SlowUserRequestsHoldingEveryConnectionStarveNeitherAuthNorNodes) {
  start("db_pool_size = 1\n");
  if (HasFatalFailure()) return;
  const auto [node_id, node_token] = enroll();
  ASSERT_FALSE(node_token.empty());

  pg::Connection db = connect();
  auto admin = db.exec("SELECT user_id FROM users WHERE name = 'admin'");
  ASSERT_TRUE(admin.has_value() && admin->rows() == 1);
  const std::string admin_id(admin->text(0, 0));
  ASSERT_TRUE(db.exec("BEGIN").has_value());
  ASSERT_TRUE(db.exec("INSERT INTO idempotency_keys (scope, key, request_hash, status, "
                      "response_body, seq) VALUES ($1, 'held', 'x', 0, '', 0)",
                      {admin_id})
                  .has_value());
  std::thread slow([&] {
    (void)call(user_v6_, "POST", "/v1/orgs", admin_, {{"name", "slow"}}, 30s, "held");
  });
  bool held = false;
  for (int i = 0; i < 200 && !held; ++i) {
    auto waiting = db.exec(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
        "datname = current_database()");
    held = waiting.has_value() && waiting->int64(0, 0).value_or(0) >= 1;
    if (!held) std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(held) << "the slow requests never waited on the key\n" << log();

  const auto before = std::chrono::steady_clock::now();
  auto bad = call(user_v6_, "GET", "/v1/orgs", "vt_" + std::string(52, 'a'), nullptr, 10s);
  ASSERT_TRUE(bad.has_value()) << bad.error().toString();
  EXPECT_EQ(bad->status, 401) << bad->body;
  auto beat = call(node_, "POST", "/v1/nodes/" + node_id + "/heartbeat", node_token,
                   {{"agent_version", "test"}}, 10s);
  ASSERT_TRUE(beat.has_value()) << beat.error().toString();
  EXPECT_EQ(beat->status, 200) << beat->body;
  auto plan =
      call(node_, "GET", "/v1/nodes/" + node_id + "/plan?after=0&wait=0", node_token, nullptr, 10s);
  ASSERT_TRUE(plan.has_value()) << plan.error().toString();
  EXPECT_EQ(plan->status, 200) << plan->body;
  EXPECT_LT(std::chrono::steady_clock::now() - before, 2s);

  ASSERT_TRUE(db.exec("ROLLBACK").has_value());
  slow.join();
  EXPECT_FALSE(proc_.poll().has_value()) << log();
}

}  // namespace
}  // namespace plfm::cp
