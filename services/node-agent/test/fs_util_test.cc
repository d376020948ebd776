// copySparseFile: the copy has the same bytes and keeps the holes.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "image/fs_util.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::image {
namespace {

using plfm::testing::TempDir;

constexpr off_t kMiB = off_t{1} << 20;

void writeAt(const std::string& path, off_t at, const std::string& bytes) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  ASSERT_GE(fd.get(), 0);
  ASSERT_EQ(::pwrite(fd.get(), bytes.data(), bytes.size(), at), static_cast<ssize_t>(bytes.size()));
}

struct stat statOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st;
}

TEST(CopySparseFile, SameBytesAndHolesStayHoles) {
  TempDir dir("plfm-sparse");
  const std::string src = dir.file("src.img");
  ASSERT_TRUE(writeFileAtomic(src, "", 0644));
  ASSERT_EQ(::truncate(src.c_str(), 64 * kMiB), 0);
  writeAt(src, 0, std::string(4096, 'a'));
  writeAt(src, 10 * kMiB, std::string(8192, 'b'));
  writeAt(src, 64 * kMiB - 1, "z");
  const std::string dst = dir.file("dst.img");
  ASSERT_TRUE(writeFileAtomic(dst, "an older file, replaced", 0644));

  auto r = copySparseFile(src, dst, 0600);
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(readFile(dst).value(), readFile(src).value());
  const struct stat s = statOf(src);
  const struct stat d = statOf(dst);
  EXPECT_EQ(d.st_size, 64 * kMiB);
  EXPECT_EQ(d.st_mode & 0777, 0600U);
  // 512-byte blocks: a few data extents, not 64 MiB of zeros.
  EXPECT_LE(d.st_blocks, s.st_blocks + 64) << "the copy filled the holes";
  EXPECT_LT(d.st_blocks * 512, kMiB);
}

TEST(CopySparseFile, MissingSourceNamesIt) {
  TempDir dir("plfm-sparse");
  auto r = copySparseFile(dir.file("nope.img"), dir.file("out.img"), 0600);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("nope.img"), std::string::npos) << r.error().toString();
}

}  // namespace
}  // namespace plfm::image

namespace plfm::image {
namespace {

// Staging parents on a shared tmpfs (issue 14, "Staging"): a name any local
// user could create first is used only while it is our own private directory.
class PrivateDir : public ::testing::Test {
 protected:
  plfm::testing::TempDir dir_{"priv"};
  std::string parent_ = dir_.file("stage");
};

TEST_F(PrivateDir, IsCreated0700AndOurs) {
  ASSERT_TRUE(ensurePrivateDir(parent_));
  struct stat st {};
  ASSERT_EQ(::lstat(parent_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0700U);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_TRUE(ensurePrivateDir(parent_));  // idempotent
}

TEST_F(PrivateDir, APlantedSymlinkIsRefusedNotFollowed) {
  const std::string victim = dir_.file("victim");
  ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
  ASSERT_EQ(::symlink(victim.c_str(), parent_.c_str()), 0);
  auto r = ensurePrivateDir(parent_);
  ASSERT_FALSE(r);
  EXPECT_TRUE(r.error().is("image.unsafe_dir")) << r.error().toString();
  struct stat st {};
  ASSERT_EQ(::stat(victim.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755U) << "the symlink's target was touched";
}

TEST_F(PrivateDir, AGroupOrWorldWritableDirIsRefused) {
  ASSERT_EQ(::mkdir(parent_.c_str(), 0700), 0);
  ASSERT_EQ(::chmod(parent_.c_str(), 0777), 0);
  auto r = ensurePrivateDir(parent_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("writable by group or others"), std::string::npos);
  ASSERT_EQ(::chmod(parent_.c_str(), 0720), 0);
  EXPECT_FALSE(ensurePrivateDir(parent_));
}

TEST_F(PrivateDir, ADirOfAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  ASSERT_EQ(::mkdir(parent_.c_str(), 0700), 0);
  ASSERT_EQ(::chown(parent_.c_str(), 65534, 65534), 0);
  auto r = ensurePrivateDir(parent_);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("belongs to uid 65534"), std::string::npos);
}

TEST_F(PrivateDir, AFileAtTheNameIsRefused) {
  ASSERT_TRUE(writeFileAtomic(parent_, "x"));
  EXPECT_FALSE(ensurePrivateDir(parent_));
}

TEST_F(PrivateDir, TempDirsAreFresh0700AndUnpredictable) {
  ASSERT_TRUE(ensurePrivateDir(parent_));
  auto a = makeTempDir(parent_, "plfm-stage-1-");
  auto b = makeTempDir(parent_, "plfm-stage-1-");
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a, *b);
  EXPECT_EQ(a->rfind(parent_ + "/plfm-stage-1-", 0), 0U) << *a;
  EXPECT_EQ(a->size(), parent_.size() + 1 + std::string("plfm-stage-1-XXXXXX").size());
  struct stat st {};
  ASSERT_EQ(::lstat(a->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700U);
}

}  // namespace
}  // namespace plfm::image
