// Envelope encryption and master key files (src/secrets_crypto.h): seal and
// open round-trip, associated data binds a ciphertext to its env and
// version, rewrap keeps the data, and bad key files are refused with the
// reason.
#include "secrets_crypto.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "plfm/testing/temp_dir.h"

namespace plfm::cp::crypto {
namespace {

class SecretsCryptoTest : public ::testing::Test {
 protected:
  std::string keyFile(const std::string& name) {
    std::string path = dir_.file(name);
    auto id = generateMasterKeyFile(path);
    EXPECT_TRUE(id.has_value()) << id.error().toString();
    return path;
  }
  static void writeBytes(const std::string& path, const std::string& bytes, mode_t mode) {
    std::ofstream(path, std::ios::binary) << bytes;
    ::chmod(path.c_str(), mode);
  }
  plfm::testing::TempDir dir_{"plfm-keys"};
  const VersionRef ref_{"env_01jdq3v7k2m9x4c8r6t0w5y1zb", "sv_01jdq3v7k2m9x4c8r6t0w5y1zb", 3};
};

TEST_F(SecretsCryptoTest, SealOpenRoundTripAndCiphertextHidesThePlaintext) {
  auto ring = Keyring::load(keyFile("master.key"));
  ASSERT_TRUE(ring.has_value()) << ring.error().toString();
  const std::string plain = "# plfm-secrets v1\nAPI_TOKEN=\"hunter2-very-secret\"\n";
  auto sealed = (*ring)->seal(plain, ref_);
  ASSERT_TRUE(sealed.has_value());
  EXPECT_EQ(sealed->key_id, (*ring)->primaryId());
  EXPECT_EQ(sealed->ciphertext.find("hunter2"), std::string::npos);
  auto opened = (*ring)->open(*sealed, ref_);
  ASSERT_TRUE(opened.has_value()) << opened.error().toString();
  EXPECT_EQ(*opened, plain);
  // A fresh data key and nonce each time.
  auto again = (*ring)->seal(plain, ref_);
  ASSERT_TRUE(again.has_value());
  EXPECT_NE(again->ciphertext, sealed->ciphertext);
  EXPECT_NE(again->wrapped_key, sealed->wrapped_key);
}

TEST_F(SecretsCryptoTest, AssociatedDataBindsEnvVersionAndNumber) {
  auto ring = Keyring::load(keyFile("master.key"));
  ASSERT_TRUE(ring.has_value());
  auto sealed = (*ring)->seal("# plfm-secrets v1\n", ref_);
  ASSERT_TRUE(sealed.has_value());
  for (const VersionRef& other : {VersionRef{"env_01jdq3v7k2m9x4c8r6t0w5y1zc", ref_.version_id, 3},
                                  VersionRef{ref_.env_id, "sv_01jdq3v7k2m9x4c8r6t0w5y1zc", 3},
                                  VersionRef{ref_.env_id, ref_.version_id, 4}}) {
    auto opened = (*ring)->open(*sealed, other);
    ASSERT_FALSE(opened.has_value());
    EXPECT_NE(opened.error().message().find("failed authentication"), std::string::npos);
  }
  Sealed tampered = *sealed;
  tampered.ciphertext.back() ^= 1;
  EXPECT_FALSE((*ring)->open(tampered, ref_).has_value());
}

TEST_F(SecretsCryptoTest, RewrapMovesTheDataKeyToTheNewMasterKey) {
  const std::string path = keyFile("master.key");
  auto ring = Keyring::load(path);
  ASSERT_TRUE(ring.has_value());
  auto sealed = (*ring)->seal("# plfm-secrets v1\nA=\"1\"\n", ref_);
  ASSERT_TRUE(sealed.has_value());
  auto next = loadMasterKey(keyFile("next.key"));
  ASSERT_TRUE(next.has_value());
  auto moved = (*ring)->rewrap(*sealed, ref_, *next);
  ASSERT_TRUE(moved.has_value()) << moved.error().toString();
  EXPECT_EQ(moved->key_id, next->id);
  EXPECT_EQ(moved->ciphertext, sealed->ciphertext);
  // A keyring whose primary is the new key (and the old as .previous) opens both.
  ASSERT_TRUE(installKeyFile(path, path + ".previous").has_value());
  ASSERT_TRUE(installKeyFile(dir_.file("next.key"), path).has_value());
  auto opened = (*ring)->open(*moved, ref_);  // unknown id: the ring reloads
  ASSERT_TRUE(opened.has_value()) << opened.error().toString();
  EXPECT_EQ(*opened, "# plfm-secrets v1\nA=\"1\"\n");
  EXPECT_EQ((*ring)->primaryId(), next->id);
  EXPECT_TRUE((*ring)->open(*sealed, ref_).has_value());
}

TEST_F(SecretsCryptoTest, BadKeyFilesAreRefusedWithTheReason) {
  auto expectRefused = [](const std::string& path, const std::string& why) {
    auto k = loadMasterKey(path);
    ASSERT_FALSE(k.has_value()) << path;
    EXPECT_NE(k.error().message().find(why), std::string::npos) << k.error().message();
    EXPECT_NE(k.error().message().find(path), std::string::npos) << k.error().message();
  };
  expectRefused(dir_.file("missing.key"), "does not exist");
  writeBytes(dir_.file("short.key"), std::string(31, 'k'), 0600);
  expectRefused(dir_.file("short.key"), "holds 31 bytes");
  writeBytes(dir_.file("long.key"), std::string(33, 'k'), 0600);
  expectRefused(dir_.file("long.key"), "holds 33 bytes");
  writeBytes(dir_.file("lax.key"), std::string(32, 'k'), 0644);
  expectRefused(dir_.file("lax.key"), "has mode 0644");
  writeBytes(dir_.file("group.key"), std::string(32, 'k'), 0640);
  expectRefused(dir_.file("group.key"), "chmod 600");
  ::mkdir(dir_.file("dir.key").c_str(), 0700);
  expectRefused(dir_.file("dir.key"), "not a regular file");
  ::symlink(dir_.file("short.key").c_str(), dir_.file("link.key").c_str());
  expectRefused(dir_.file("link.key"), "symbolic link");
  writeBytes(dir_.file("good.key"), std::string(32, 'k'), 0400);
  EXPECT_TRUE(loadMasterKey(dir_.file("good.key")).has_value());
}

TEST_F(SecretsCryptoTest, GenerateRefusesToOverwriteAndIdsAreStable) {
  const std::string path = keyFile("master.key");
  EXPECT_FALSE(generateMasterKeyFile(path).has_value());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  auto a = loadMasterKey(path);
  auto b = loadMasterKey(path);
  ASSERT_TRUE(a.has_value() && b.has_value());
  EXPECT_EQ(a->id, b->id);
  EXPECT_EQ(a->id.size(), 3U + 16U);
  auto ring = Keyring::load(path);
  ASSERT_TRUE(ring.has_value());
  EXPECT_EQ((*ring)->fingerprint("x"), (*ring)->fingerprint("x"));
  EXPECT_NE((*ring)->fingerprint("x"), (*ring)->fingerprint("y"));
  EXPECT_TRUE((*ring)->fingerprint("x").starts_with("mac:"));
}

}  // namespace
}  // namespace plfm::cp::crypto
