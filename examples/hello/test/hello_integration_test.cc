// hello on the host, with real clients: curl over IPv6 and IPv4, plain HTTP
// health checks, PROXY v2 headers from libs/networking's encoder followed by
// TLS on the same socket, and a graceful SIGTERM. The certificate is made at
// test time; ports are 0, read back from hello's "listening" line.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/net/proxy_protocol.h"
#include "plfm/testing/temp_dir.h"
#include "support/hello_process.h"

namespace plfm::hello {
namespace {

using namespace std::chrono_literals;
using testing::HelloProcess;
using testing::Output;
using testing::runCapture;

constexpr const char* kSecretValue = "cnry-hello-3f9a0c1e5b7d2468-not-for-logs";

int connectTo(const std::string& ip, int port) {
  const bool v6 = ip.find(':') != std::string::npos;
  int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rc = -1;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET6, ip.c_str(), &a.sin6_addr);
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  if (rc != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool sendAll(int fd, std::string_view data) {
  return ::send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

// A TLS client that verifies hello's certificate for `sni`, on a connected fd.
class TlsClient {
 public:
  TlsClient(const std::string& ca_file, int fd, const std::string& sni)
      : ctx_(SSL_CTX_new(TLS_client_method())), fd_(fd) {
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_load_verify_locations(ctx_, ca_file.c_str(), nullptr);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd);
    // SSL_set_tlsext_host_name, without its C cast.
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(sni.c_str()));
    SSL_set1_host(ssl_, sni.c_str());
  }
  ~TlsClient() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ::close(fd_);
  }
  TlsClient(const TlsClient&) = delete;
  TlsClient& operator=(const TlsClient&) = delete;

  bool handshake() { return SSL_connect(ssl_) == 1; }
  bool send(std::string_view data) {
    return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) ==
           static_cast<int>(data.size());
  }
  std::string readAll() {
    std::string out;
    char buf[4096];
    int n = 0;
    while ((n = SSL_read(ssl_, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    return out;
  }

 private:
  SSL_CTX* ctx_;
  SSL* ssl_ = nullptr;
  int fd_;
};

std::string bodyOf(const std::string& response) {
  auto p = response.find("\r\n\r\n");
  return p == std::string::npos ? "" : response.substr(p + 4);
}

class HelloTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A TLS client writing to a connection hello closed gets an error, not a signal.
    std::signal(SIGPIPE, SIG_IGN);
    auto cert = testing::makeCertificate(dir_.path(), {"hello.localhost", "hello-pp.localhost"});
    ASSERT_TRUE(cert) << cert.error().toString();
    std::ofstream(dir_.file("platform.env")) << "HELLO_TOKEN=" << kSecretValue << "\n";
    auto h = HelloProcess::start(
        {.bin = PLFM_HELLO_BIN,
         .cert = dir_.file("cert.pem"),
         .key = dir_.file("key.pem"),
         .log = log_,
         .env = {"HELLO_SECRETS_FILE=" + dir_.file("platform.env"), "PLFM_INSTANCE_ID=inst_test1",
                 "PLFM_RELEASE_ID=rel_test1", "GREETING=Hello from the test"}});
    ASSERT_TRUE(h) << h.error().toString();
    hello_ = std::move(*h);
    port_ = hello_.port();
    health_port_ = hello_.healthPort();
  }

  void TearDown() override {
    EXPECT_EQ(hello_.stop(), 0) << "hello did not exit 0 on SIGTERM";
    EXPECT_EQ(hello_.log().find(kSecretValue), std::string::npos) << "the secret value was logged";
  }

  // curl -k to https://HOST:PORT/PATH resolved to `ip`; the body, then a
  // last line with curl's own address ("ip port").
  Output curlHttps(const std::string& host, const std::string& ip, const std::string& path) {
    const std::string p = std::to_string(port_);
    return runCapture(
        {"curl", "-sS", "-k", "--max-time", "10", "--resolve", host + ":" + p + ":" + ip, "-w",
         "%{local_ip} %{local_port}", "https://" + host + ":" + p + path},
        dir_.path());
  }

  // Sends `prefix` (a PROXY header or parts of one, in pieces), then TLS
  // with SNI hello-pp.localhost and GET /; returns the response.
  std::string viaProxyHeader(const std::vector<std::string>& pieces) {
    int fd = connectTo("::1", port_);
    if (fd < 0) return "connect failed";
    for (const auto& piece : pieces) {
      if (!sendAll(fd, piece)) return "send failed";
      std::this_thread::sleep_for(30ms);
    }
    TlsClient tls(dir_.file("cert.pem"), fd, "hello-pp.localhost");
    if (!tls.handshake()) return "handshake failed";
    tls.send("GET / HTTP/1.1\r\nHost: hello-pp.localhost\r\n\r\n");
    return tls.readAll();
  }

  plfm::testing::TempDir dir_{"hello"};
  std::string log_ = dir_.file("hello.log");
  HelloProcess hello_;
  int port_ = 0;
  int health_port_ = 0;
};

std::string expectedBody(const std::string& client, const std::string& proxy,
                         const std::string& sni) {
  return "greeting: Hello from the test\ninstance: inst_test1\nrelease: rel_test1\n"
         "secrets: present\nclient: " +
         client + "\nproxy: " + proxy + "\nsni: " + sni + "\n";
}

// `hello probe` from the same binary: ping to the running hello's UDP echo
// port over both families, and a connect to its HTTPS port.
TEST_F(HelloTest, ProbesReachTheEchoPortAndTheHttpsPort) {
  const std::string echo = std::to_string(hello_.echoPort());
  for (const char* addr : {"::1", "127.0.0.1"}) {
    const std::string ip = addr;
    Output ping = runCapture({PLFM_HELLO_BIN, "probe", "ping", ip, "--port", echo, "--interval-ms",
                              "10", "--count", "5"},
                             dir_.path());
    EXPECT_EQ(ping.exit_code, 0) << ping.out << ping.err;
    std::string expected = "ping address=";
    expected += ip;
    expected += " port=";
    expected += echo;
    expected += " sent=5 received=5 lost=0\n";
    EXPECT_EQ(ping.out, expected);
  }
  Output connect =
      runCapture({PLFM_HELLO_BIN, "probe", "connect", "::1", std::to_string(port_)}, dir_.path());
  EXPECT_EQ(connect.exit_code, 0) << connect.out;
  EXPECT_NE(connect.out.find(" result=ok "), std::string::npos) << connect.out;
  Output usage = runCapture({PLFM_HELLO_BIN, "probe", "ping"}, dir_.path());
  EXPECT_EQ(usage.exit_code, 2) << usage.out;
  EXPECT_EQ(usage.out.rfind("probe: ", 0), 0U) << usage.out;
}

TEST_F(HelloTest, AnswersOverIpv6AndIpv4) {
  for (const std::string ip : {"::1", "127.0.0.1"}) {
    Output r = curlHttps("hello.localhost", ip, "/");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    auto nl = r.out.rfind('\n');
    ASSERT_NE(nl, std::string::npos) << r.out;
    std::string local = r.out.substr(nl + 1);  // "ip port"
    std::string client = ip == "::1" ? "[::1]:" + local.substr(local.find(' ') + 1)
                                     : "127.0.0.1:" + local.substr(local.find(' ') + 1);
    EXPECT_EQ(r.out.substr(0, nl + 1), expectedBody(client, "none", "hello.localhost")) << ip;
    EXPECT_NE(hello_.log().find("request method=GET path=/ status=200 client=" + client +
                                " listener=https proxy=none"),
              std::string::npos)
        << hello_.log();
  }
  EXPECT_EQ(curlHttps("hello.localhost", "::1", "/healthz").out.substr(0, 3), "ok\n");
  Output missing = runCapture({"curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--resolve",
                               "hello.localhost:" + std::to_string(port_) + ":::1",
                               "https://hello.localhost:" + std::to_string(port_) + "/nope"},
                              dir_.path());
  EXPECT_EQ(missing.out, "404");
}

TEST_F(HelloTest, HealthIsPlainHttpOnBothFamilies) {
  for (const std::string host : {"[::1]", "127.0.0.1"}) {
    Output r = runCapture({"curl", "-sS", "--max-time", "10", "-w", " %{http_code}",
                           "http://" + host + ":" + std::to_string(health_port_) + "/healthz"},
                          dir_.path());
    EXPECT_EQ(r.out, "ok\n 200") << host;
  }
  Output root = runCapture({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                            "http://[::1]:" + std::to_string(health_port_) + "/"},
                           dir_.path());
  EXPECT_EQ(root.out, "404");
  EXPECT_NE(hello_.log().find("request method=GET path=/healthz status=200 client=127.0.0.1:"),
            std::string::npos);
}

TEST_F(HelloTest, ProxyV2HeaderGivesTheClientAddress) {
  const auto v6 = *net::IpEndpoint::parse("[2001:db8::1]:54321");
  const auto v4 = *net::IpEndpoint::parse("192.0.2.10:4242");
  const auto listener6 = *net::IpEndpoint::parse("[2001:db8::443]:8443");
  const auto listener4 = *net::IpEndpoint::parse("198.51.100.1:8443");

  auto h6 = net::encodeProxyV2(net::ProxyHeader::tcp(v6, listener6));
  ASSERT_TRUE(h6);
  EXPECT_EQ(bodyOf(viaProxyHeader({*h6})),
            expectedBody("[2001:db8::1]:54321", "v2", "hello-pp.localhost"));

  // IPv4 with a CRC32C TLV, the signature split across two writes.
  auto h4 = net::encodeProxyV2(net::ProxyHeader::tcp(v4, listener4), {.crc32c = true});
  ASSERT_TRUE(h4);
  EXPECT_EQ(bodyOf(viaProxyHeader({h4->substr(0, 5), h4->substr(5)})),
            expectedBody("192.0.2.10:4242", "v2", "hello-pp.localhost"));

  // Mixed families are sent IPv4-mapped; hello reports the IPv4 address.
  auto mixed = net::encodeProxyV2(net::ProxyHeader::tcp(v4, listener6));
  ASSERT_TRUE(mixed);
  EXPECT_NE(bodyOf(viaProxyHeader({*mixed})).find("client: 192.0.2.10:4242\n"), std::string::npos);

  // LOCAL (a health check through a proxy): the real peer is the client.
  auto local = net::encodeProxyV2(net::ProxyHeader::local());
  ASSERT_TRUE(local);
  const std::string body = bodyOf(viaProxyHeader({*local}));
  EXPECT_NE(body.find("client: [::1]:"), std::string::npos) << body;
  EXPECT_NE(body.find("proxy: v2\n"), std::string::npos) << body;

  EXPECT_NE(hello_.log().find("request method=GET path=/ status=200 client=[2001:db8::1]:54321 "
                              "listener=https proxy=v2 sni=hello-pp.localhost"),
            std::string::npos)
      << hello_.log();
}

TEST_F(HelloTest, BadProxyHeaderClosesTheConnection) {
  auto h = net::encodeProxyV2(net::ProxyHeader::tcp(*net::IpEndpoint::parse("192.0.2.1:1"),
                                                    *net::IpEndpoint::parse("192.0.2.2:2")),
                              {.crc32c = true});
  ASSERT_TRUE(h);
  std::string corrupt = *h;
  corrupt.back() = static_cast<char>(corrupt.back() ^ 1);  // breaks the checksum
  EXPECT_EQ(viaProxyHeader({corrupt}), "handshake failed");
  for (auto until = std::chrono::steady_clock::now() + 5s; std::chrono::steady_clock::now() < until;
       std::this_thread::sleep_for(20ms)) {
    if (hello_.log().find("bad PROXY v2 header: bad_checksum") != std::string::npos) {
      return;
    }
  }
  ADD_FAILURE() << hello_.log();
}

TEST_F(HelloTest, SigtermLetsOpenRequestsFinish) {
  int fd = connectTo("127.0.0.1", port_);
  ASSERT_GE(fd, 0);
  TlsClient tls(dir_.file("cert.pem"), fd, "hello.localhost");
  ASSERT_TRUE(tls.handshake());
  hello_.process().signal(SIGTERM);
  std::this_thread::sleep_for(200ms);
  // The listeners are closed: new connections are refused...
  EXPECT_LT(connectTo("127.0.0.1", port_), 0);
  // ...and the open one is still answered.
  tls.send("GET / HTTP/1.1\r\nHost: hello.localhost\r\n\r\n");
  EXPECT_NE(tls.readAll().find("HTTP/1.1 200 OK\r\n"), std::string::npos);
  auto status = hello_.process().waitFor(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(exitCodeOf(*status), 0);
  const std::string log = hello_.log();
  EXPECT_NE(log.find("draining connections=1"), std::string::npos) << log;
  EXPECT_NE(log.find("stopped open_connections=0"), std::string::npos) << log;
}

}  // namespace
}  // namespace plfm::hello
