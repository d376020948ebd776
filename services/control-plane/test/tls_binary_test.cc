// The real `plfm-control-plane` binary over TLS (docs/security.md, "Control
// plane: TLS"): a round trip verified against a CA made at test time, a
// client with the wrong CA refused, and plain HTTP refused on a non-loopback
// listen address.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "cp_tls_test_support.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"
#include "plfm/http/http.h"
#include "plfm/http/pki.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::cp {
namespace {

using namespace std::chrono_literals;

class TlsBinaryTest : public testsupport::CpTlsTest {
 protected:
  TlsBinaryTest() : CpTlsTest("cp-tls") {}

  // Starts the binary with `extra` flags and waits for its "listening" line.
  void start(const std::vector<std::string>& extra) {
    SpawnOptions o;
    o.stdout_path = dir_.file("cp.out");
    o.stderr_path = dir_.file("cp.log");
    std::vector<std::string> argv = {PLFM_CONTROL_PLANE_BIN, "serve",    "--database", conninfo(),
                                     "--state-dir",          dir_.path()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = spawn(argv, o);
    ASSERT_TRUE(p.has_value()) << p.error().toString();
    proc_ = std::move(*p);
    for (int i = 0; i < 500 && endpoint_.empty(); ++i) {
      auto out = readFile(dir_.file("cp.out"));
      if (out && out->find("listening ") != std::string::npos) {
        const std::string line(trim(out->substr(out->find("listening ") + 10)));
        endpoint_ = line.substr(0, line.find(','));
      }
      ASSERT_FALSE(proc_.poll().has_value()) << "exited at start:\n" << log();
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_FALSE(endpoint_.empty()) << "did not start:\n" << log();
  }

  std::string log() const { return tailFile(dir_.file("cp.log"), 30); }

  Result<http::Response> get(const std::string& scheme, const std::string& path,
                             const http::ClientTlsOptions& tls) const {
    http::ClientRequest req;
    req.url = scheme + "://" + endpoint_ + path;
    req.timeout = 10s;
    req.tls = tls;
    return http::request(req);
  }

  Process proc_;
  std::string endpoint_;
};

TEST_F(TlsBinaryTest, ServesHttpsAndRefusesTheWrongCa) {
  start({"--listen", "[::1]:0", "--tls-cert", pki_.server_cert, "--tls-key", pki_.server_key});
  if (HasFatalFailure()) return;

  auto ok = get("https", "/healthz", {.ca_file = pki_.ca_cert});
  ASSERT_TRUE(ok.has_value()) << ok.error().toString() << "\n" << log();
  EXPECT_EQ(ok->status, 200);

  plfm::testing::TempDir other("cp-tls-other");
  auto other_pki = http::writeLocalPki(other.path(), {"localhost", "::1"});
  ASSERT_TRUE(other_pki.has_value());
  auto wrong = get("https", "/healthz", {.ca_file = other_pki->ca_cert});
  ASSERT_FALSE(wrong.has_value());
  EXPECT_NE(wrong.error().message().find("not trusted"), std::string::npos)
      << wrong.error().toString();

  // A plain HTTP client gets no answer, and the server lives on.
  http::ClientRequest plain;
  plain.url = "http://" + endpoint_ + "/healthz";
  plain.timeout = 3s;
  EXPECT_FALSE(http::request(plain).has_value());
  EXPECT_FALSE(proc_.poll().has_value()) << log();
  auto again = get("https", "/healthz", {.ca_file = pki_.ca_cert});
  ASSERT_TRUE(again.has_value()) << again.error().toString();
  EXPECT_EQ(again->status, 200);
}

TEST_F(TlsBinaryTest, RefusesPlainHttpOnANonLoopbackAddress) {
  SpawnOptions o;
  o.stderr_path = dir_.file("refused.log");
  auto p = spawn({PLFM_CONTROL_PLANE_BIN, "serve", "--listen", "[::]:0", "--database", conninfo(),
                  "--state-dir", dir_.path()},
                 o);
  ASSERT_TRUE(p.has_value()) << p.error().toString();
  const auto code = p->waitFor(20s);
  ASSERT_TRUE(code.has_value()) << "it served plain HTTP on [::]";
  EXPECT_NE(*code, 0);
  const std::string err = readFile(dir_.file("refused.log")).value_or("");
  EXPECT_NE(err.find("refusing to serve plain HTTP on [::]:0"), std::string::npos) << err;

  // The operator may force it, with a flag that says what it is.
  start({"--listen", "[::]:0", "--unsafe-plain-http"});
  if (HasFatalFailure()) return;
  http::ClientRequest req;
  req.url = "http://[::1]:" + endpoint_.substr(endpoint_.rfind(':') + 1) + "/healthz";
  auto r = http::request(req);
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(r->status, 200);
}

}  // namespace
}  // namespace plfm::cp
