// hello behind the real plfm-ingress, as in a deploy but without the
// microVM: a plain TLS-passthrough route and a PROXY v2 route to the same
// port, reached by curl over the ingress's IPv6 and IPv4 listeners. The v2
// route must deliver curl's own address and port to hello; the plain one
// shows the ingress's.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "integration_support.h"
#include "plfm/testing/temp_dir.h"
#include "support/hello_process.h"

namespace plfm::hello {
namespace {

namespace it = plfm::ingress::testing;

std::string route(const std::string& id, const std::string& host, int listener, int backend,
                  const std::string& proxy) {
  return R"({"id":")" + id + R"(","hostname":")" + host + R"(","listener_port":)" +
         std::to_string(listener) + R"(,"protocol":"tls-passthrough","proxy_protocol":")" + proxy +
         R"(","backends":[{"address":"::1","port":)" + std::to_string(backend) +
         R"(,"healthy":true}]})";
}

std::string valueOf(const std::string& body, const std::string& key) {
  const std::string k = "\n" + key + ": ";
  auto p = ("\n" + body).find(k);
  if (p == std::string::npos) return "<no " + key + ">";
  p += k.size() - 1;  // in body, which lacks the leading "\n"
  return body.substr(p, body.find('\n', p) - p);
}

TEST(HelloIngressTest, PassthroughAndProxyV2RoutesOverBothFamilies) {
  plfm::testing::TempDir dir("hello-ing");
  ASSERT_TRUE(testing::makeCertificate(dir.path(), {"hello.localhost", "hello-pp.localhost"}));
  auto hello = testing::HelloProcess::start({.bin = PLFM_HELLO_BIN,
                                             .cert = dir.file("cert.pem"),
                                             .key = dir.file("key.pem"),
                                             .log = dir.file("hello.log"),
                                             .env = {"PLFM_INSTANCE_ID=inst_ingress"}});
  ASSERT_TRUE(hello) << hello.error().toString();

  const int port = plfm::testing::freeTcpPort();
  std::ofstream(dir.file("routes.json"))
      << R"({"cursor":1,"routes":[)"
      << route("plain", "hello.localhost", port, hello->port(), "none") << ","
      << route("pp", "hello-pp.localhost", port, hello->port(), "v2") << "]}";
  it::IngressProcess ingress;
  const std::string p = std::to_string(port);
  auto started =
      ingress.start(dir.path(), "listen = [\"[::1]:" + p + "\", \"127.0.0.1:" + p +
                                    "\"]\nmetrics_listen = [\"[::1]:0\"]\n"
                                    "state_dir = \"" +
                                    dir.file("state") + "\"\n[source]\nroutes_file = \"" +
                                    dir.file("routes.json") + "\"\n");
  ASSERT_TRUE(started) << started.error().toString();

  for (const std::string addr : {"::1", "127.0.0.1"}) {
    SCOPED_TRACE(addr);
    it::CurlResult plain =
        it::curlGetWithLocal("hello.localhost", port, addr, "/", dir.file("curl.out"));
    EXPECT_EQ(valueOf(plain.body, "instance"), "inst_ingress") << plain.body;
    EXPECT_EQ(valueOf(plain.body, "proxy"), "none");
    EXPECT_EQ(valueOf(plain.body, "sni"), "hello.localhost");
    // The ingress connects to the backend from ::1.
    EXPECT_EQ(valueOf(plain.body, "client").rfind("[::1]:", 0), 0U) << plain.body;

    it::CurlResult pp =
        it::curlGetWithLocal("hello-pp.localhost", port, addr, "/", dir.file("curl.out"));
    const std::string curl_side =
        addr == "::1" ? "[::1]:" + pp.local_port : "127.0.0.1:" + pp.local_port;
    EXPECT_EQ(valueOf(pp.body, "client"), curl_side) << pp.body;
    EXPECT_EQ(valueOf(pp.body, "proxy"), "v2");
    EXPECT_EQ(valueOf(pp.body, "sni"), "hello-pp.localhost");
    EXPECT_NE(hello->log().find("request method=GET path=/ status=200 client=" + curl_side +
                                " listener=https proxy=v2 sni=hello-pp.localhost"),
              std::string::npos)
        << hello->log();
  }
  ingress.stop();
  EXPECT_EQ(hello->stop(), 0);
}

}  // namespace
}  // namespace plfm::hello
