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
