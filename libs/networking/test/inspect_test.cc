#include "plfm/net/inspect.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "hello_builder.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::net {
namespace {

namespace fs = std::filesystem;
using testing::Bytes;

const fs::path kCaptures = fs::path(PLFM_TEST_DIR) / "test" / "corpus" / "clienthello";

Bytes readCapture(const fs::path& path) {
  auto text = plfm::readFile(path.string());
  EXPECT_TRUE(text) << text.error().toString();
  return text ? Bytes(text->begin(), text->end()) : Bytes{};
}

// Every capture's inspect output is pinned in golden/inspect/<name>.json, so
// a change in the command's output shows up in review.
TEST(InspectTest, CapturesMatchGoldenJson) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(kCaptures)) {
    if (entry.path().extension() == ".bin") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 17U);
  for (const auto& file : files) {
    SCOPED_TRACE(file.filename().string());
    const std::string name = file.stem().string();
    const bool proxied = name.rfind("haproxy_", 0) == 0;
    const auto out = inspectClientHello(readCapture(file), proxied);
    EXPECT_FALSE(out.contains("error")) << out.dump();
    PLFM_EXPECT_GOLDEN("golden/inspect/" + name + ".json", out.dump(2) + "\n");
  }
}

TEST(InspectTest, ShapeOfTheOutput) {
  const auto out = inspectClientHello(readCapture(kCaptures / "curl_h2.bin"), false);
  EXPECT_EQ(out, nlohmann::json::parse(R"({"sni": "a.example.com", "alpn": ["h2", "http/1.1"],
      "tls_versions": ["TLSv1.3", "TLSv1.2", "TLSv1.1", "TLSv1.0"], "records": 1})"));
  const auto nosni = inspectClientHello(readCapture(kCaptures / "openssl_nosni.bin"), false);
  EXPECT_TRUE(nosni.at("sni").is_null());
}

TEST(InspectTest, ProxyHeaderAddresses) {
  const auto out = inspectClientHello(readCapture(kCaptures / "haproxy_v2_ipv6_tlvs.bin"), true);
  ASSERT_FALSE(out.contains("error")) << out.dump();
  EXPECT_EQ(out.at("sni"), "lb.example.com");
  EXPECT_EQ(out.at("proxy").at("version"), 2);
  EXPECT_EQ(out.at("proxy").at("command"), "PROXY");
  EXPECT_EQ(out.at("proxy").at("source").get<std::string>().rfind("[::1]:", 0), 0U);
  EXPECT_EQ(out.at("proxy").at("tlvs").size(), 2U);
}

TEST(InspectTest, Errors) {
  const Bytes hello = testing::simpleHello();
  auto out = inspectClientHello(Bytes(hello.begin(), hello.end() - 1), false);
  EXPECT_EQ(out, nlohmann::json::parse(
                     R"({"error": "truncated ClientHello: the capture ends before it does"})"));
  out = inspectClientHello(Bytes{'G', 'E', 'T'}, false);
  EXPECT_EQ(out.at("error"), "not_tls: not a TLS handshake record");
  out = inspectClientHello(testing::simpleHello("bad host"), false);
  EXPECT_EQ(out.at("error"), "bad_server_name: invalid host name");
  // --proxy-protocol on a capture without a PROXY header.
  out = inspectClientHello(hello, true);
  EXPECT_EQ(out.at("error"), "proxy protocol: not_proxy: not a PROXY protocol header");
  out = inspectClientHello(Bytes{0x0D, 0x0A, 0x0D}, true);
  EXPECT_EQ(out.at("error"), "proxy protocol: truncated header");
  // A proxied capture without --proxy-protocol is not TLS.
  out = inspectClientHello(readCapture(kCaptures / "haproxy_v2_ipv4.bin"), false);
  EXPECT_EQ(out.at("error"), "not_tls: not a TLS handshake record");
}

TEST(InspectTest, NonPrintableAlpnIsHex) {
  testing::HelloSpec spec;
  spec.extensions = {testing::alpnExtension({"h2", std::string("\x00\xff", 2)})};
  const auto out = inspectClientHello(testing::records(testing::handshake(spec)), false);
  EXPECT_EQ(out.at("alpn"), nlohmann::json::parse(R"(["h2", "0x00ff"])"));
  EXPECT_NO_THROW((void)out.dump());
}

}  // namespace
}  // namespace plfm::net
