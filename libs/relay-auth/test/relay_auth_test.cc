// Signed relay requests: what a signature covers, expiry with skew, and the
// key file's creation and refusals.
#include "plfm/relay_auth/relay_auth.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <vector>

#include "plfm/testing/temp_dir.h"

namespace plfm::relay {
namespace {

constexpr int64_t kNow = 1'796'000'000;

SigningKey testKey(char fill) {
  auto k = SigningKey::fromSeed(std::string(32, fill));
  EXPECT_TRUE(k);
  return std::move(*k);
}

SignedRequest sample() {
  return {"GET", "/v1/instances/inst_a/logs?limit=5&skip=0", "node_1", "inst_a",
          kNow + kTtlSeconds};
}

TEST(RelayAuthTest, AGoodSignatureVerifiesWithinItsLifetime) {
  const SigningKey key = testKey('k');
  const std::string sig = key.sign(sample());
  EXPECT_EQ(sig.size(), 128U);
  EXPECT_TRUE(verify(key.publicKey(), sample(), sig, kNow));
  EXPECT_TRUE(verify(key.publicKey(), sample(), sig, kNow + kTtlSeconds + kSkewSeconds));
  // A clock behind the signer's by the skew still accepts.
  EXPECT_TRUE(verify(key.publicKey(), sample(), sig, kNow - kSkewSeconds));
}

TEST(RelayAuthTest, EveryCoveredFieldChangesTheOutcome) {
  const SigningKey key = testKey('k');
  const std::string sig = key.sign(sample());
  auto refused = [&](const SignedRequest& r) {
    auto v = verify(key.publicKey(), r, sig, kNow);
    return !v && v.error().code() == errc::kUnauthenticated;
  };
  const std::vector<std::function<void(SignedRequest&)>> changes = {
      [](SignedRequest& r) { r.method = "POST"; },
      [](SignedRequest& r) { r.target = "/v1/instances/inst_a/logs?limit=5000&skip=0"; },
      [](SignedRequest& r) { r.node_id = "node_2"; },
      [](SignedRequest& r) { r.instance_id = "inst_b"; },
      [](SignedRequest& r) { r.expires_unix += 1; }};
  for (size_t i = 0; i < changes.size(); ++i) {
    SignedRequest r = sample();
    changes[i](r);
    EXPECT_TRUE(refused(r)) << "change " << i;
  }
}

TEST(RelayAuthTest, ExpiredFarFutureWrongKeyAndJunkAreRefused) {
  const SigningKey key = testKey('k');
  const std::string sig = key.sign(sample());
  auto expired = verify(key.publicKey(), sample(), sig, kNow + kTtlSeconds + kSkewSeconds + 1);
  ASSERT_FALSE(expired);
  EXPECT_NE(expired.error().message().find("expired"), std::string::npos);
  SignedRequest far = sample();
  far.expires_unix = kNow + 3600;
  auto future = verify(key.publicKey(), far, key.sign(far), kNow);
  ASSERT_FALSE(future);
  EXPECT_NE(future.error().message().find("future"), std::string::npos);
  EXPECT_FALSE(verify(testKey('o').publicKey(), sample(), sig, kNow));
  EXPECT_FALSE(verify(key.publicKey(), sample(), "", kNow));
  EXPECT_FALSE(verify(key.publicKey(), sample(), sig.substr(0, 127) + "G", kNow));
  std::string upper = sig;
  for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_FALSE(verify(key.publicKey(), sample(), upper, kNow));  // lowercase only
  SignedRequest nl = sample();
  nl.target = "/v1/instances/inst_a/logs\nX";
  EXPECT_FALSE(verify(key.publicKey(), nl, key.sign(nl), kNow));
}

TEST(RelayAuthTest, PublicKeysRoundTripAndJunkIsRefused) {
  const SigningKey key = testKey('k');
  auto parsed = PublicKey::parse(key.publicKey().text());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, key.publicKey());
  EXPECT_FALSE(PublicKey::parse(""));
  EXPECT_FALSE(PublicKey::parse("ed25519:abc"));
  EXPECT_FALSE(PublicKey::parse(std::string("rsa:") + std::string(64, 'a')));
  EXPECT_FALSE(PublicKey::parse("ed25519:" + std::string(64, 'A')));
}

TEST(RelayAuthTest, TheKeyFileIsCreated0600AndReusedAndBadFilesAreRefused) {
  plfm::testing::TempDir dir("plfm-relay-key");
  const std::string path = dir.path() + "/relay-signing.key";
  auto a = SigningKey::loadOrCreate(path);
  ASSERT_TRUE(a) << a.error().toString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  EXPECT_EQ(st.st_size, 32);
  auto b = SigningKey::loadOrCreate(path);
  ASSERT_TRUE(b);
  EXPECT_EQ(a->publicKey(), b->publicKey());

  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto wide = SigningKey::loadOrCreate(path);
  ASSERT_FALSE(wide);
  EXPECT_NE(wide.error().message().find("0644"), std::string::npos);

  const std::string shortp = dir.path() + "/short.key";
  { std::ofstream(shortp) << "abc"; }
  ASSERT_EQ(::chmod(shortp.c_str(), 0600), 0);
  auto truncated = SigningKey::loadOrCreate(shortp);
  ASSERT_FALSE(truncated);
  EXPECT_NE(truncated.error().message().find("32 random bytes"), std::string::npos);

  const std::string link = dir.path() + "/link.key";
  std::filesystem::create_symlink(shortp, link);
  EXPECT_FALSE(SigningKey::loadOrCreate(link));
}

}  // namespace
}  // namespace plfm::relay
