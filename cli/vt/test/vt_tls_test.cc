// `vt` against a control plane that speaks TLS (docs/security.md, "Control
// plane: TLS"): it verifies the server against the context's CA, refuses the
// wrong CA with a clear error, and refuses plain http:// off loopback.
#include <gtest/gtest.h>

#include "plfm/http/pki.h"
#include "vt_harness.h"

namespace plfm::vt::testing {
namespace {

class VtTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = http::writeLocalPki(pki_dir_.path(), {"localhost", "::1", "127.0.0.1"});
    ASSERT_TRUE(pki.has_value()) << pki.error().toString();
    pki_ = *pki;
    auto other = http::writeLocalPki(other_dir_.path(), {"localhost", "::1", "127.0.0.1"});
    ASSERT_TRUE(other.has_value()) << other.error().toString();
    wrong_ca_ = other->ca_cert;
    suite_ = startSuiteControlPlane(
        {"PLFM_CP_TLS_CERT_FILE=" + pki_.server_cert, "PLFM_CP_TLS_KEY_FILE=" + pki_.server_key});
    url_ = "https://" + suite_.cp->url.substr(std::string("http://").size());
  }

  plfm::testing::TempDir pki_dir_{"vt-tls"};
  plfm::testing::TempDir other_dir_{"vt-tls-other"};
  plfm::testing::TempDir config_{"vt-tls-cfg"};
  http::LocalPki pki_;
  std::string wrong_ca_;
  SuiteControlPlane suite_;
  std::string url_;
};

TEST_F(VtTlsTest, VerifiesTheControlPlaneWithTheContextCa) {
  auto login = runVt({"login", "--url", url_, "--ca", pki_.ca_cert}, config_.path(), {},
                     suite_.cp->admin_token + "\n");
  ASSERT_EQ(login.code, 0) << login.err;
  auto who = runVt({"whoami"}, config_.path());
  EXPECT_EQ(who.code, 0) << who.err;

  // The same context with another CA: refused at once, with the reason.
  auto wrong = runVt({"whoami"}, config_.path(), {"VT_CA_FILE=" + wrong_ca_});
  EXPECT_NE(wrong.code, 0);
  EXPECT_NE(wrong.err.find("not trusted"), std::string::npos) << wrong.err;
  EXPECT_EQ(wrong.err.find("retrying"), std::string::npos) << wrong.err;
}

TEST_F(VtTlsTest, LoginWithTheWrongCaFails) {
  plfm::testing::TempDir config("vt-tls-cfg2");
  auto login = runVt({"login", "--url", url_, "--ca", wrong_ca_}, config.path(), {},
                     suite_.cp->admin_token + "\n");
  EXPECT_NE(login.code, 0);
  EXPECT_NE(login.err.find("not trusted"), std::string::npos) << login.err;
  EXPECT_EQ(
      suite_.cp->admin_token.empty() ? std::string::npos : login.err.find(suite_.cp->admin_token),
      std::string::npos);
}

TEST_F(VtTlsTest, PlainHttpOffLoopbackIsRefused) {
  plfm::testing::TempDir config("vt-tls-cfg3");
  auto login =
      runVt({"login", "--url", "http://192.0.2.1:9"}, config.path(), {}, "vt_not_a_token\n");
  EXPECT_NE(login.code, 0);
  EXPECT_NE(login.err.find("refusing plain http://"), std::string::npos) << login.err;
}

}  // namespace
}  // namespace plfm::vt::testing
