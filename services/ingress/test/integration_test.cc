// plfm-ingress as a process, with real peers: openssl s_server backends on
// [::1] and 127.0.0.1, curl and openssl s_client as clients, haproxy and
// nginx as PROXY v2 receivers, raw clients sending OpenSSL-made ClientHellos, and an
// HTTP edge feed server standing in for the control plane.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <thread>

#include "integration_support.h"
#include "peers.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::ingress::testing {
namespace {

using std::chrono::milliseconds;

struct Env {
  plfm::testing::TempDir dir{"ingit"};
  int port = 0;    // the ingress listener port, on [::1] and 127.0.0.1
  int port_a = 0;  // s_server A on [::1]
  int port_b = 0;  // s_server B on 127.0.0.1
  int port_h = 0;  // haproxy (accept-proxy) on [::1]
  int port_n = 0;  // nginx (listen ... proxy_protocol) on [::1]
  int dead = 0;    // nothing listens here
  Process server_a, server_b, haproxy, nginx;
  std::unique_ptr<TagBackend> t1, t2;
  IngressProcess ingress;

  std::string routes(bool swapped) const {
    auto be = [](const std::string& addr, int p) {
      return R"({"address":")" + addr + R"(","port":)" + std::to_string(p) + "}";
    };
    auto route = [this](const std::string& id, const std::string& host, const std::string& backends,
                        const std::string& extra = "") {
      return R"({"id":")" + id + R"(","hostname":")" + host + R"(","listener_port":)" +
             std::to_string(port) + extra + R"(,"backends":[)" + backends + "]}";
    };
    const std::string t1be = be("::1", t1->port());
    const std::string t2be = be("127.0.0.1", t2->port());
    return R"({"cursor":)" + std::string(swapped ? "2" : "1") + R"(,"routes":[)" +
           route("a", "A.Example.com.", swapped ? be("127.0.0.1", port_b) : be("::1", port_a)) +
           "," + route("wild", "*.example.com", be("127.0.0.1", port_b)) + "," +
           route("pp", "pp.example.com", be("::1", port_h), R"(,"proxy_protocol":"v2")") + "," +
           route("ppn", "ppn.example.com", be("::1", port_n), R"(,"proxy_protocol":"v2")") + "," +
           route("tag", "tag.test", t1be) + "," +
           route("retry", "retry.test", be("::1", dead) + "," + t2be) + "," +
           route("swap", "swap.test", swapped ? t2be : t1be) + "]}";
  }

  void writeRoutes(bool swapped) const {
    const std::string tmp = dir.file("routes.json.tmp");
    std::ofstream(tmp) << routes(swapped);
    std::filesystem::rename(tmp, dir.file("routes.json"));
  }
};

Env* env = nullptr;

std::string haproxyConfig(const std::string& dir, int port) {
  return "global\n  maxconn 100\n"
         "defaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n"
         "  timeout server 10s\n"
         "frontend fe\n  bind [::1]:" +
         std::to_string(port) + " accept-proxy ssl crt " + dir + "/combined.pem\n" +
         "  http-request return status 200 content-type text/plain lf-string "
         "\"src=%[src]:%[src_port] dst=%[dst]:%[dst_port]\"\n";
}

class IngressIntegrationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    env = new Env();
    Env& e = *env;
    const std::string d = e.dir.path();
    for (const char* sub :
         {"/cert-a", "/cert-b", "/www-a", "/www-b", "/state", "/edge", "/nginx"}) {
      std::filesystem::create_directories(d + sub);
    }
    ASSERT_TRUE(makeCertificate(d + "/cert-a", {"a.example.com", "pp.example.com"}));
    ASSERT_TRUE(makeCertificate(d + "/cert-b", {"wild.example.com", "x.example.com"}));
    e.port = plfm::testing::freeTcpPort();
    e.port_a = plfm::testing::freeTcpPort();
    e.port_b = plfm::testing::freeTcpPort();
    e.port_h = plfm::testing::freeTcpPort();
    e.port_n = plfm::testing::freeTcpPort();
    e.dead = plfm::testing::freeTcpPort();
    auto a = startTlsServer(d + "/www-a", d + "/cert-a", "[::1]:" + std::to_string(e.port_a),
                            "backend-a");
    ASSERT_TRUE(a) << a.error().toString();
    e.server_a = std::move(*a);
    auto b = startTlsServer(d + "/www-b", d + "/cert-b", "127.0.0.1:" + std::to_string(e.port_b),
                            "backend-b");
    ASSERT_TRUE(b) << b.error().toString();
    e.server_b = std::move(*b);
    std::ofstream(d + "/cert-a/combined.pem") << readFile(d + "/cert-a/cert.pem").value_or("")
                                              << readFile(d + "/cert-a/key.pem").value_or("");
    std::ofstream(d + "/haproxy.cfg") << haproxyConfig(d + "/cert-a", e.port_h);
    SpawnOptions ho;
    ho.stdout_path = d + "/haproxy.log";
    auto h = spawn({"haproxy", "-db", "-f", d + "/haproxy.cfg"}, ho);
    ASSERT_TRUE(h) << h.error().toString();
    e.haproxy = std::move(*h);
    ASSERT_TRUE(waitListening("[::1]:" + std::to_string(e.port_h), 10'000))
        << tailFile(d + "/haproxy.log", 20);
    auto n = startNginxProxyReceiver(d + "/nginx", d + "/cert-a", e.port_n);
    ASSERT_TRUE(n) << n.error().toString();
    e.nginx = std::move(*n);
    e.t1 = std::make_unique<TagBackend>("t1", "[::1]:0");
    e.t2 = std::make_unique<TagBackend>("t2", "127.0.0.1:0");
    ASSERT_TRUE(e.t1->start());
    ASSERT_TRUE(e.t2->start());
    e.writeRoutes(false);
    const std::string p = std::to_string(e.port);
    auto r = e.ingress.start(d, "listen = [\"[::1]:" + p + "\", \"127.0.0.1:" + p +
                                    "\"]\nmetrics_listen = [\"[::1]:0\"]\nstate_dir = \"" + d +
                                    // Two workers: every test goes through the listener
                                    // that both watch (EPOLLEXCLUSIVE).
                                    "/state\"\nworkers = 2\n[source]\nroutes_file = \"" + d +
                                    "/routes.json\"\nwatch_interval_ms = 100\n"
                                    "[timeouts]\nclient_hello_ms = 1000\nconnect_ms = 1000\n"
                                    // Passive retries only: the connect check has its own test.
                                    "[health]\ncheck_interval_ms = 0\n");
    ASSERT_TRUE(r) << r.error().toString();
  }

  static void TearDownTestSuite() {
    env->ingress.stop();
    delete env;
    env = nullptr;
  }

  void SetUp() override {
    if (env == nullptr || env->port == 0) GTEST_SKIP() << "fixture failed";
  }

  static std::string curl(const std::string& host, const std::string& addr) {
    return curlGet(host, env->port, addr, "/id.txt", env->dir.file("curl.out"));
  }
  static std::string ep(const std::string& addr) { return addr + ":" + std::to_string(env->port); }
};

TEST_F(IngressIntegrationTest, RoutesBySniOverIpv6AndIpv4) {
  EXPECT_EQ(curl("a.example.com", "[::1]"), "backend-a");
  EXPECT_EQ(curl("a.example.com", "127.0.0.1"), "backend-a");
  EXPECT_EQ(curl("x.example.com", "[::1]"), "backend-b");
  EXPECT_EQ(curl("anything.example.com", "127.0.0.1"), "backend-b");
  EXPECT_GE(env->ingress.metric(R"(plfm_ingress_connections_total{route="a"})"), 2);
  EXPECT_GE(env->ingress.metric(R"(plfm_ingress_bytes_out_total{route="wild"})"), 1000);

  // openssl s_client sees the certificate of the backend its SNI selects.
  for (const auto& [sni, cn] : std::vector<std::pair<std::string, std::string>>{
           {"a.example.com", "CN = a.example.com"}, {"y.example.com", "CN = wild.example.com"}}) {
    SpawnOptions o;
    o.stdout_path = env->dir.file("s_client.out");
    std::ofstream(o.stdout_path, std::ios::trunc).flush();
    auto p = spawn({"openssl", "s_client", "-connect", ep("[::1]"), "-servername", sni}, o);
    ASSERT_TRUE(p);
    EXPECT_EQ(exitCodeOf(p->wait()), 0);
    const std::string out = readFile(o.stdout_path).value_or("");
    EXPECT_NE(out.find("subject=" + cn), std::string::npos) << out;
  }
}

// A response far larger than the copy buffer: the flow starts by copying,
// switches to splice(2) and parks what the client does not take yet; every
// byte arrives in order.
TEST_F(IngressIntegrationTest, BulkResponseSwitchesToSpliceIntact) {
  std::string big;
  for (int i = 0; big.size() < (size_t{3} << 20); ++i) big += std::to_string(i) + "\n";
  std::ofstream(env->dir.file("www-a/big.txt")) << big;
  for (const char* addr : {"[::1]", "127.0.0.1"}) {
    const std::string got =
        curlGet("a.example.com", env->port, addr, "/big.txt", env->dir.file("curl-big.out"));
    EXPECT_EQ(got.size(), big.size()) << addr;
    EXPECT_TRUE(got == big) << addr;
  }
}

TEST_F(IngressIntegrationTest, NoRouteGetsACleanClose) {
  const double before = env->ingress.metric("plfm_ingress_no_route_total{port=\"" +
                                            std::to_string(env->port) + "\"}");
  const int fd = connectTo(ep("[::1]"));
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(sendAll(fd, clientHello("nope.other.test")));
  char c = 0;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);  // FIN, not a reset
  ::close(fd);
  SpawnOptions o;
  o.stdout_path = env->dir.file("s_client-noroute.out");
  auto p =
      spawn({"openssl", "s_client", "-connect", ep("127.0.0.1"), "-servername", "a.other.test"}, o);
  ASSERT_TRUE(p);
  EXPECT_NE(exitCodeOf(p->wait()), 0);
  EXPECT_EQ(env->ingress.metric("plfm_ingress_no_route_total{port=\"" + std::to_string(env->port) +
                                "\"}"),
            std::max(before, 0.0) + 2);
}

// haproxy (accept-proxy) sees curl's own address and port as the source,
// and the ingress listener as the destination.
TEST_F(IngressIntegrationTest, ProxyV2HeaderReachesHaproxy) {
  const std::string p = std::to_string(env->port);
  for (const std::string addr : {"[::1]", "127.0.0.1"}) {
    const CurlResult r =
        curlGetWithLocal("pp.example.com", env->port, addr, "/", env->dir.file("curl.out"));
    ASSERT_FALSE(r.local_port.empty()) << r.body;
    EXPECT_EQ(r.body, "src=" + r.local_ip + ":" + r.local_port + " dst=" + r.local_ip + ":" + p);
  }
}

// nginx takes the client's address and port from the PROXY v2 header the
// ingress sends first: they are curl's own, over IPv6 and IPv4 alike.
TEST_F(IngressIntegrationTest, ProxyV2HeaderReachesNginxWithTheClientsAddressAndPort) {
  std::vector<std::string> expected;
  for (const std::string addr : {"[::1]", "127.0.0.1"}) {
    const CurlResult r =
        curlGetWithLocal("ppn.example.com", env->port, addr, "/", env->dir.file("curl.out"));
    ASSERT_FALSE(r.local_port.empty()) << r.body;
    const std::string client = r.local_ip + ":" + r.local_port;
    EXPECT_EQ(r.body, "pp=" + client);
    // The connection nginx accepted came from the ingress, over IPv6.
    expected.push_back(client + " ::1");
  }
  // nginx writes its access log line after the response has gone out, so
  // curl can be done before the line is there: wait for it, briefly.
  std::string log;
  const auto has_all = [&] {
    log = readFile(env->dir.file("nginx/nginx-access.log")).value_or("");
    for (const auto& line : expected) {
      if (log.find(line + "\n") == std::string::npos) return false;
    }
    return true;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!has_all() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (const auto& line : expected) EXPECT_NE(log.find(line + "\n"), std::string::npos) << log;
}

TEST_F(IngressIntegrationTest, ForwardsTheHelloVerbatimAndHalfCloses) {
  const std::string hello = clientHello("tag.test");
  const int fd = connectTo(ep("127.0.0.1"));
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(sendAll(fd, hello));
  EXPECT_EQ(recvLine(fd), "t1");
  EXPECT_EQ(env->t1->lastFirstChunk(), hello);
  ASSERT_TRUE(sendAll(fd, "ping"));
  EXPECT_EQ(recvLine(fd), "t1:ping");
  ::shutdown(fd, SHUT_WR);  // our FIN reaches the backend; its answer still reaches us
  EXPECT_EQ(recvLine(fd), "t1:eof");
  EXPECT_EQ(recvLine(fd), "<eof>");
  ::close(fd);
}

TEST_F(IngressIntegrationTest, RetriesAnotherBackendWhenConnectFails) {
  for (int i = 0; i < 4; ++i) {
    const int fd = connectTo(ep("[::1]"));
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(sendAll(fd, clientHello("retry.test")));
    EXPECT_EQ(recvLine(fd), "t2");
    ::close(fd);
  }
  EXPECT_GE(env->ingress.metric(R"(plfm_ingress_backend_retries_total{route="retry"})"), 1);
  EXPECT_EQ(env->ingress.metric(R"(plfm_ingress_connection_failures_total{route="retry"})"), 0);
}

// The ingress's own connect check (a second ingress, checking every 100 ms):
// a backend that stops listening is passed over before any client has to
// fail on it, and comes back once it listens again.
TEST_F(IngressIntegrationTest, ConnectCheckEjectsADeadBackendAndReadmitsIt) {
  const std::string d = env->dir.file("hc");
  std::filesystem::create_directories(d + "/state");
  const int port = plfm::testing::freeTcpPort();
  const int t3port = plfm::testing::freeTcpPort();
  auto t3 = std::make_unique<TagBackend>("t3", "[::1]:" + std::to_string(t3port));
  TagBackend t4("t4", "127.0.0.1:0");
  ASSERT_TRUE(t3->start());
  ASSERT_TRUE(t4.start());
  std::ofstream(d + "/routes.json")
      << R"({"cursor":1,"routes":[{"id":"hc","hostname":"hc.test","listener_port":)" << port
      << R"(,"backends":[{"address":"::1","port":)" << t3port
      << R"(},{"address":"127.0.0.1","port":)" << t4.port() << "}]}]}";
  IngressProcess ingress;
  ASSERT_TRUE(ingress.start(d, "listen = [\"[::1]:" + std::to_string(port) +
                                   "\"]\nmetrics_listen = [\"[::1]:0\"]\nstate_dir = \"" + d +
                                   "/state\"\n[source]\nroutes_file = \"" + d +
                                   "/routes.json\"\n[health]\ncheck_interval_ms = 100\n"
                                   "check_timeout_ms = 300\n"));
  auto reached = [port] {
    const int fd = connectTo("[::1]:" + std::to_string(port));
    if (fd < 0) return std::string("<connect>");
    std::string tag = sendAll(fd, clientHello("hc.test")) ? recvLine(fd) : "<send>";
    ::close(fd);
    return tag;
  };
  auto eventually = [](const std::function<bool()>& ok) {
    for (int i = 0; i < 100; ++i) {
      if (ok()) return true;
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  };
  auto down = [&ingress] { return ingress.metric("plfm_ingress_backends_down"); };
  ASSERT_TRUE(eventually([&] { return ingress.metric("plfm_ingress_routes") == 1; }));
  ASSERT_TRUE(eventually([&] { return down() == 0; })) << ingress.log();
  t3->stop();
  ASSERT_TRUE(eventually([&] { return down() == 1; })) << ingress.log();
  EXPECT_GE(ingress.metric("plfm_ingress_health_check_failures_total"), 1);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(reached(), "t4");
  // No client connection had to try the dead one first.
  EXPECT_EQ(ingress.metric(R"(plfm_ingress_backend_retries_total{route="hc"})"), 0);

  t3 = std::make_unique<TagBackend>("t3", "[::1]:" + std::to_string(t3port));
  ASSERT_TRUE(t3->start());
  EXPECT_TRUE(eventually([&] { return down() == 0; })) << ingress.log();
  bool back = false;
  for (int i = 0; i < 10 && !back; ++i) back = reached() == "t3";
  EXPECT_TRUE(back);
  ingress.stop();
}

// SIGTERM shuts the shared listener down at once (new connections are
// refused) while both workers finish what is open.
TEST_F(IngressIntegrationTest, DrainRefusesNewConnectionsAndFinishesOpenOnes) {
  const std::string d = env->dir.file("drain");
  std::filesystem::create_directories(d + "/state");
  const std::string q = std::to_string(plfm::testing::freeTcpPort());
  std::ofstream(d + "/routes.json")
      << R"({"routes":[{"id":"t","hostname":"tag.test","listener_port":)" << q
      << R"(,"backends":[{"address":"::1","port":)" << env->t1->port() << "}]}]}";
  IngressProcess ingress;
  std::string toml = "listen = [\"[::1]:";
  toml += q;
  toml += "\"]\nmetrics_listen = [\"[::1]:0\"]\nworkers = 2\nstate_dir = \"";
  toml += d;
  toml += "/state\"\n[source]\nroutes_file = \"";
  toml += d;
  toml += "/routes.json\"\n[health]\ncheck_interval_ms = 0\n";
  auto r = ingress.start(d, toml);
  ASSERT_TRUE(r) << r.error().toString();
  const int fd = connectTo("[::1]:" + q);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(sendAll(fd, clientHello("tag.test")));
  EXPECT_EQ(recvLine(fd), "t1");
  ingress.signal(SIGTERM);
  std::this_thread::sleep_for(milliseconds(300));
  const int late = connectTo("[::1]:" + q);
  EXPECT_LT(late, 0) << "a connection was accepted while draining";
  if (late >= 0) ::close(late);
  ASSERT_TRUE(sendAll(fd, "ping"));
  EXPECT_EQ(recvLine(fd), "t1:ping");
  ::close(fd);
  ingress.stop();
}

TEST_F(IngressIntegrationTest, SlowlorisIsClosedAtTheHelloTimeout) {
  const std::string hello = clientHello("tag.test");
  const int fd = connectTo(ep("[::1]"));
  ASSERT_GE(fd, 0);
  size_t sent = 0;
  bool closed = false;
  // One byte every 200 ms against a 1 s ClientHello timeout: closed long
  // before the hello is complete, however steadily the bytes come.
  while (sent < 40 && !closed) {
    if (!sendAll(fd, std::string_view(hello).substr(sent, 1))) break;
    ++sent;
    closed = waitClosed(fd, 200);
  }
  if (!closed) closed = waitClosed(fd, 3000);
  EXPECT_TRUE(closed) << "sent " << sent << " bytes";
  EXPECT_GT(sent, 2u);
  ::close(fd);
  EXPECT_GE(env->ingress.metric(R"(plfm_ingress_closed_total{reason="client_hello_timeout"})"), 1);
}

TEST_F(IngressIntegrationTest, ReloadUnderLoadKeepsConnectionsAndServesNewRoutes) {
  const int old_conn = connectTo(ep("[::1]"));
  ASSERT_GE(old_conn, 0);
  ASSERT_TRUE(sendAll(old_conn, clientHello("swap.test")));
  ASSERT_EQ(recvLine(old_conn), "t1");

  std::atomic<bool> stop{false};
  std::atomic<int> ok_a{0}, ok_b{0}, failed{0};
  std::string last_failure;
  std::thread load([&] {
    const std::string out = env->dir.file("curl-load.out");
    while (!stop) {
      const std::string body = curlGet("a.example.com", env->port, "[::1]", "/id.txt", out);
      if (body == "backend-a") {
        ++ok_a;
      } else if (body == "backend-b") {
        ++ok_b;
      } else {
        ++failed;
        last_failure = body;
      }
    }
  });
  // Raw connections at the same time, as fast as they go: each must reach
  // one of the two backends, whichever table it met.
  std::atomic<int> raw_ok{0}, raw_failed{0};
  std::thread raw([&] {
    const std::string hello = clientHello("swap.test");
    while (!stop) {
      const int fd = connectTo(ep("127.0.0.1"));
      const std::string tag = fd >= 0 && sendAll(fd, hello) ? recvLine(fd) : "<connect>";
      if (fd >= 0) ::close(fd);
      (tag == "t1" || tag == "t2" ? raw_ok : raw_failed)++;
    }
  });
  auto waitFor = [](const std::function<bool()>& cond) {
    for (int i = 0; i < 200 && !cond(); ++i) std::this_thread::sleep_for(milliseconds(50));
    return cond();
  };
  EXPECT_TRUE(waitFor([&] { return ok_a >= 3; }));
  // Reload by SIGHUP, a few times back and forth...
  for (int round = 0; round < 3; ++round) {
    env->writeRoutes(round % 2 == 0);
    env->ingress.signal(SIGHUP);
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_TRUE(waitFor([&] { return ok_b >= 3; }));
  const int new_conn = connectTo(ep("127.0.0.1"));
  ASSERT_GE(new_conn, 0);
  ASSERT_TRUE(sendAll(new_conn, clientHello("swap.test")));
  EXPECT_EQ(recvLine(new_conn), "t2");
  ::close(new_conn);
  // ...and back by the file watch alone.
  const int before = ok_a;
  env->writeRoutes(false);
  EXPECT_TRUE(waitFor([&] { return ok_a >= before + 3; }));
  stop = true;
  load.join();
  raw.join();
  EXPECT_EQ(failed, 0) << last_failure;
  EXPECT_EQ(raw_failed, 0);
  EXPECT_GT(raw_ok, 100);
  // The connection opened before both reloads still talks to its backend.
  ASSERT_TRUE(sendAll(old_conn, "still-there"));
  EXPECT_EQ(recvLine(old_conn), "t1:still-there");
  ::close(old_conn);
  EXPECT_GE(env->ingress.metric(R"(plfm_ingress_config_reloads_total{result="ok"})"), 3);
}

TEST_F(IngressIntegrationTest, StartsFromTheLastGoodConfigWhenTheFeedIsDown) {
  const std::string d = env->dir.file("edge");
  const int port = plfm::testing::freeTcpPort();
  std::ofstream(d + "/token") << "edge-secret-token\n";
  const std::string routes = R"({"cursor":5,"routes":[{"id":"e","hostname":"edge.test",)"
                             R"("listener_port":)" +
                             std::to_string(port) +
                             R"(,"protocol":"tls-passthrough",)"
                             R"("proxy_protocol":"none","backends":[{"address":"::1","port":)" +
                             std::to_string(env->t1->port()) + R"(,"healthy":true}]}]})";
  std::mutex mu;
  std::vector<std::string> seen;     // "after=..., auth=..."
  std::vector<std::string> reports;  // status reports: method, body, auth
  http::ServerOptions so;
  so.listen = {"[::1]:0"};
  auto feed = std::make_unique<http::Server>(so, [&](const http::Request& req) {
    const std::string after(req.queryParam("after").value_or("?"));
    if (req.path == "/v1/edge/status") {
      // The ingress acknowledges each config it applies (drain gate).
      std::lock_guard lock(mu);
      reports.push_back(req.method + " " + req.body + " " +
                        std::string(req.header("Authorization").value_or("-")));
      return http::Response::json(200, R"({"name":"edge-1","cursor":0})");
    }
    {
      std::lock_guard lock(mu);
      seen.push_back(req.path + " after=" + after + " " +
                     std::string(req.header("Authorization").value_or("-")));
    }
    if (req.header("Authorization") != "Bearer edge-secret-token") {
      return http::Response::json(401, R"({"error":{"code":"unauthenticated"}})");
    }
    if (after == "0") return http::Response::json(200, routes);
    std::this_thread::sleep_for(milliseconds(300));  // a short long-poll
    return http::Response{304, {}, ""};
  });
  ASSERT_TRUE(feed->start());
  const std::string toml = "listen = [\"[::1]:" + std::to_string(port) +
                           "\"]\nmetrics_listen = [\"[::1]:0\"]\nstate_dir = \"" + d +
                           "/state\"\n[source]\nkind = \"edge-feed\"\nedge_url = \"http://" +
                           feed->endpoints().front() + "\"\nedge_token_file = \"" + d +
                           "/token\"\n";
  auto reaches = [port] {
    for (int i = 0; i < 100; ++i) {
      const int fd = connectTo("[::1]:" + std::to_string(port));
      if (fd >= 0 && sendAll(fd, clientHello("edge.test")) && recvLine(fd, 2000) == "t1") {
        ::close(fd);
        return true;
      }
      if (fd >= 0) ::close(fd);
      std::this_thread::sleep_for(milliseconds(50));
    }
    return false;
  };
  IngressProcess first;
  ASSERT_TRUE(first.start(d, toml));
  EXPECT_TRUE(reaches()) << first.log();
  // The acknowledgement of the applied config follows on its own thread.
  const std::string ack = R"(PUT {"cursor":5,"draining":[]} Bearer edge-secret-token)";
  for (int i = 0; i < 100; ++i) {
    {
      std::lock_guard lock(mu);
      if (std::find(reports.begin(), reports.end(), ack) != reports.end()) break;
    }
    std::this_thread::sleep_for(milliseconds(50));
  }
  first.stop();
  feed->stop(milliseconds(0));
  feed.reset();
  {
    std::lock_guard lock(mu);
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.front(), "/v1/edge/config after=0 Bearer edge-secret-token");
    EXPECT_NE(seen.back().find("after=5"), std::string::npos) << seen.back();
    EXPECT_NE(std::find(reports.begin(), reports.end(), ack), reports.end())
        << ::testing::PrintToString(reports);
  }
  EXPECT_TRUE(std::filesystem::exists(d + "/state/last-good-routes.json"));
  EXPECT_EQ(first.log().find("edge-secret-token"), std::string::npos);

  // The feed is gone: the second start serves the persisted routes at once.
  IngressProcess second;
  ASSERT_TRUE(second.start(d, toml));
  EXPECT_TRUE(reaches()) << second.log();
  EXPECT_EQ(second.metric("plfm_ingress_config_cursor"), 5);
  http::ClientRequest health;
  health.url = second.metricsUrl() + "/healthz";
  auto h = http::request(health);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  second.stop();
}

TEST_F(IngressIntegrationTest, InspectClientHelloPrintsOneJsonObject) {
  const std::string path = env->dir.file("hello.bin");
  std::ofstream(path, std::ios::binary) << clientHello("Inspect.Example.com");
  SpawnOptions o;
  o.stdout_path = env->dir.file("inspect.out");
  auto p = spawn({PLFM_INGRESS_BIN, "inspect-clienthello", path}, o);
  ASSERT_TRUE(p);
  EXPECT_EQ(exitCodeOf(p->wait()), 0);
  std::ifstream in(o.stdout_path);
  std::string line;
  std::getline(in, line);
  EXPECT_NE(line.find(R"("sni":"Inspect.Example.com")"), std::string::npos) << line;
  EXPECT_NE(line.find(R"("tls_versions":["TLSv1.3")"), std::string::npos) << line;

  std::ofstream(path, std::ios::binary | std::ios::trunc) << "GET / HTTP/1.1\r\n\r\n";
  o.stdout_path = env->dir.file("inspect2.out");
  auto bad = spawn({PLFM_INGRESS_BIN, "inspect-clienthello", path}, o);
  ASSERT_TRUE(bad);
  EXPECT_NE(exitCodeOf(bad->wait()), 0);
  std::ifstream in2(o.stdout_path);
  std::getline(in2, line);
  EXPECT_EQ(line.rfind(R"({"error":"not_tls)", 0), 0u) << line;
}

}  // namespace
}  // namespace plfm::ingress::testing
