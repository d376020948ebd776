// TLS for http::Server and http::Client, with certificates made at test time
// (writeLocalPki) in a temp dir.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "plfm/http/http.h"
#include "plfm/http/pki.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::http {
namespace {

using namespace std::chrono_literals;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = writeLocalPki(dir_.path(), {"localhost", "::1", "127.0.0.1"});
    ASSERT_TRUE(pki) << pki.error().toString();
    pki_ = *pki;
    ServerOptions options{.listen = {"[::1]:0"}};
    options.tls = ServerTlsOptions{pki_.server_cert, pki_.server_key};
    server_ = std::make_unique<Server>(std::move(options), [](Request& req) {
      return Response::text(200, "secure " + req.target);
    });
    auto started = server_->start();
    ASSERT_TRUE(started) << started.error().toString();
    port_ = server_->endpoints().front().substr(server_->endpoints().front().rfind(':') + 1);
  }

  std::string url(const std::string& host, const std::string& target = "/x") const {
    return "https://" + host + ":" + port_ + target;
  }

  plfm::testing::TempDir dir_{"plfm-tls"};
  LocalPki pki_;
  std::unique_ptr<Server> server_;
  std::string port_;
};

TEST_F(TlsTest, RoundTripVerifiesAgainstTheCa) {
  ClientRequest req;
  req.url = url("[::1]");
  req.tls.ca_file = pki_.ca_cert;
  auto resp = request(req);
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->status, 200);
  EXPECT_EQ(resp->body, "secure /x");

  // By DNS name (SNI and a DNS subjectAltName).
  ServerOptions options{.listen = {"127.0.0.1:0"}};
  options.tls = ServerTlsOptions{pki_.server_cert, pki_.server_key};
  Server v4(std::move(options), [](Request&) { return Response::text(200, "v4"); });
  ASSERT_TRUE(v4.start());
  const std::string ep = v4.endpoints().front();
  req.url = "https://localhost" + ep.substr(ep.rfind(':')) + "/x";
  auto named = request(req);
  ASSERT_TRUE(named) << named.error().toString();
  EXPECT_EQ(named->body, "v4");

  // A kept-alive client reuses its TLS connection.
  Client client(url("[::1]", ""), {.ca_file = pki_.ca_cert});
  for (int i = 0; i < 3; ++i) {
    auto sent = client.send("POST", "/y", {}, std::string(100'000, 'b'));
    ASSERT_TRUE(sent) << sent.error().toString();
    EXPECT_EQ(sent->body, "secure /y");
  }
  EXPECT_EQ(server_->activeConnections(), 1U);
}

TEST_F(TlsTest, PinnedCertificate) {
  Client pinned(url("[::1]", ""), {.pinned_cert_file = pki_.server_cert});
  auto resp = pinned.send("GET", "/p");
  ASSERT_TRUE(resp) << resp.error().toString();
  EXPECT_EQ(resp->body, "secure /p");

  Client wrong(url("[::1]", ""), {.pinned_cert_file = pki_.ca_cert});
  auto refused = wrong.send("GET", "/p");
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("pinned"), std::string::npos)
      << refused.error().toString();
}

TEST_F(TlsTest, PinnedCertificateBySha256) {
  auto fp = certificateSha256(pki_.server_cert);
  ASSERT_TRUE(fp) << fp.error().toString();
  EXPECT_EQ(fp->size(), 64U);
  // The pin replaces the name check: any host of the URL works.
  Client pinned(url("[::1]", ""), {.pinned_cert_sha256 = *fp});
  auto resp = pinned.send("GET", "/p");
  ASSERT_TRUE(resp) << resp.error().toString();
  auto ca_fp = certificateSha256(pki_.ca_cert);
  ASSERT_TRUE(ca_fp);
  Client wrong(url("[::1]", ""), {.pinned_cert_sha256 = *ca_fp});
  auto refused = wrong.send("GET", "/p");
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(errc::kFailedPrecondition)) << refused.error().toString();
  EXPECT_NE(refused.error().message().find("pinned"), std::string::npos);
  Client junk(url("[::1]", ""), {.pinned_cert_sha256 = "ABC"});
  EXPECT_FALSE(junk.send("GET", "/p"));
}

TEST_F(TlsTest, WrongCaIsRefused) {
  plfm::testing::TempDir other("plfm-tls2");
  auto other_pki = writeLocalPki(other.path(), {"localhost"});
  ASSERT_TRUE(other_pki) << other_pki.error().toString();
  ClientRequest req;
  req.url = url("[::1]");
  req.tls.ca_file = other_pki->ca_cert;
  auto resp = request(req);
  ASSERT_FALSE(resp);
  EXPECT_TRUE(resp.error().is(errc::kFailedPrecondition)) << resp.error().toString();
  EXPECT_NE(resp.error().message().find("not trusted"), std::string::npos)
      << resp.error().toString();

  // No CA file: the system store does not know our local CA either.
  req.tls.ca_file.clear();
  EXPECT_FALSE(request(req));
}

TEST_F(TlsTest, WrongNameIsRefused) {
  // The certificate names localhost, ::1 and 127.0.0.1, not 127.0.0.2.
  ServerOptions options{.listen = {"127.0.0.2:0"}};
  options.tls = ServerTlsOptions{pki_.server_cert, pki_.server_key};
  Server server(std::move(options), [](Request&) { return Response::text(200, "x"); });
  ASSERT_TRUE(server.start());
  ClientRequest req;
  req.url = "https://" + server.endpoints().front() + "/x";
  req.tls.ca_file = pki_.ca_cert;
  auto resp = request(req);
  ASSERT_FALSE(resp);
  EXPECT_NE(resp.error().message().find("does not name 127.0.0.2"), std::string::npos)
      << resp.error().toString();
}

TEST_F(TlsTest, PlainClientGetsNoAnswerAndServerLives) {
  ClientRequest req;
  req.url = "http://[::1]:" + port_ + "/x";
  req.timeout = 2s;
  auto plain = request(req);
  ASSERT_FALSE(plain);
  ClientRequest good;
  good.url = url("[::1]");
  good.tls.ca_file = pki_.ca_cert;
  auto resp = request(good);
  EXPECT_TRUE(resp) << resp.error().toString();
}

TEST_F(TlsTest, ServerRefusesToStartWithUnusableFiles) {
  ServerOptions options{.listen = {"[::1]:0"}};
  options.tls = ServerTlsOptions{pki_.server_cert, pki_.ca_key};  // key of another cert
  Server mismatched(options, [](Request&) { return Response::text(200, "x"); });
  auto started = mismatched.start();
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message().find("mismatch"), std::string::npos)
      << started.error().toString();

  options.tls = ServerTlsOptions{dir_.file("missing.pem"), pki_.server_key};
  Server missing(options, [](Request&) { return Response::text(200, "x"); });
  started = missing.start();
  ASSERT_FALSE(started);
  EXPECT_NE(started.error().message().find("missing.pem"), std::string::npos);
}

TEST_F(TlsTest, LocalPkiKeysAreOwnerOnly) {
  for (const std::string& key : {pki_.ca_key, pki_.server_key}) {
    struct stat st {};
    ASSERT_EQ(::stat(key.c_str(), &st), 0) << key;
    EXPECT_EQ(st.st_mode & 0777, 0600U) << key;
  }
  struct stat st {};
  ASSERT_EQ(::stat(pki_.ca_cert.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0044U);  // certificates are public
}

TEST(PlainHttpTest, NonLoopbackIsRefusedUnlessUnsafe) {
  ClientRequest req;
  req.url = "http://192.0.2.1:9/x";  // TEST-NET-1: never reached
  req.timeout = 200ms;
  auto resp = request(req);
  ASSERT_FALSE(resp);
  EXPECT_TRUE(resp.error().is(errc::kFailedPrecondition)) << resp.error().toString();
  EXPECT_NE(resp.error().message().find("refusing plain http://"), std::string::npos);

  Client client("http://[2001:db8::1]:9");
  auto sent = client.send("GET", "/x", {}, {}, 200ms);
  ASSERT_FALSE(sent);
  EXPECT_TRUE(sent.error().is(errc::kFailedPrecondition)) << sent.error().toString();

  req.tls.unsafe_allow_plain_http = true;  // now it tries, and times out or fails to connect
  auto tried = request(req);
  ASSERT_FALSE(tried);
  EXPECT_FALSE(tried.error().is(errc::kFailedPrecondition));
}

TEST(PlainHttpTest, LoopbackListenAddresses) {
  EXPECT_TRUE(isLoopbackListen("[::1]:8080"));
  EXPECT_TRUE(isLoopbackListen("127.0.0.1:0"));
  EXPECT_TRUE(isLoopbackListen("127.1.2.3:80"));
  EXPECT_TRUE(isLoopbackListen("unix:/run/x.sock"));
  EXPECT_FALSE(isLoopbackListen("[::]:8080"));
  EXPECT_FALSE(isLoopbackListen("0.0.0.0:8080"));
  EXPECT_FALSE(isLoopbackListen("10.0.0.1:8080"));
  EXPECT_FALSE(isLoopbackListen("[2001:db8::1]:443"));
}

}  // namespace
}  // namespace plfm::http
