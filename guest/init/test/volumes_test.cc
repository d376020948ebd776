// vt-init's volume decisions (plan.h) and the no-symlink directory walk
// (volumes.h) against a temp dir.
#include "volumes.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "plan.h"

namespace plfm::init {
namespace {

TEST(VolumePlanTest, TheDiskIsFoundBySerialNeverByOrder) {
  const std::vector<BlockDisk> disks = {{"vda", "rootfs"},
                                        {"vdb", "scratch"},
                                        {"vdd", "vol-1\n"},
                                        {"vdc", std::string("vol-0\0\0", 7)}};
  EXPECT_EQ(volumeDevice("vol-0", disks).value(), "/dev/vdc");
  EXPECT_EQ(volumeDevice("vol-1", disks).value(), "/dev/vdd");
  EXPECT_EQ(volumeDevice("vol-2", disks).error(), "no disk has serial vol-2");
  EXPECT_FALSE(volumeDevice("vol-1", {{"vdc", "vol-1"}, {"vdd", "vol-1"}}));
  EXPECT_FALSE(volumeDevice("vol-1", {{"vdc", "vol-10"}}));
}

TEST(VolumePlanTest, PathComponents) {
  EXPECT_EQ(pathComponents("/var/lib/db"), (std::vector<std::string>{"var", "lib", "db"}));
  EXPECT_EQ(pathComponents("/data"), (std::vector<std::string>{"data"}));
}

std::string superblock(uint32_t blocks_lo, uint32_t log_size, bool bit64, uint32_t blocks_hi) {
  std::string b(1024, '\0');
  auto put = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
  };
  put(0x04, blocks_lo);
  put(0x18, log_size);
  b[0x38] = '\x53';
  b[0x39] = '\xef';
  put(0x60, bit64 ? 0x80 : 0);
  put(0x150, blocks_hi);
  return b;
}

TEST(VolumePlanTest, TheSuperblockSaysHowBigTheFilesystemIs) {
  auto sb = parseExt4Superblock(superblock(16384, 2, false, 7));
  ASSERT_TRUE(sb) << sb.error();
  EXPECT_EQ(sb->block_size, 4096u);
  EXPECT_EQ(sb->blocks, 16384u) << "the high half counts only with the 64bit feature";
  sb = parseExt4Superblock(superblock(5, 2, true, 1));
  ASSERT_TRUE(sb);
  EXPECT_EQ(sb->blocks, (uint64_t{1} << 32) + 5);
  std::string not_ext4 = superblock(1, 2, false, 0);
  not_ext4[0x38] = 0;
  EXPECT_FALSE(parseExt4Superblock(not_ext4));
  EXPECT_FALSE(parseExt4Superblock(superblock(1, 40, false, 0)));
  EXPECT_FALSE(parseExt4Superblock("short"));
}

TEST(VolumePlanTest, GrowsOnlyToWholeBlocksBeyondTheFilesystem) {
  const Ext4Superblock sb{16384, 4096};  // 64 MiB
  EXPECT_EQ(ext4GrowTarget(sb, uint64_t{64} << 20), 0u);
  EXPECT_EQ(ext4GrowTarget(sb, (uint64_t{64} << 20) + 4095), 0u);
  EXPECT_EQ(ext4GrowTarget(sb, uint64_t{96} << 20), 24576u);
  EXPECT_EQ(ext4GrowTarget(sb, uint64_t{32} << 20), 0u) << "never shrinks";
}

TEST(VolumePlanTest, OnlyAFreshRootGoesToTheWorkloadUser) {
  EXPECT_TRUE(chownFreshVolumeRoot(0, 0, {".", "..", "lost+found"}, 1000, 1000));
  EXPECT_TRUE(chownFreshVolumeRoot(0, 0, {".", ".."}, 1000, 1000));
  EXPECT_FALSE(chownFreshVolumeRoot(0, 0, {".", "..", "lost+found", "log"}, 1000, 1000));
  EXPECT_FALSE(chownFreshVolumeRoot(1000, 1000, {".", ".."}, 2000, 2000));
  EXPECT_FALSE(chownFreshVolumeRoot(0, 0, {".", ".."}, 0, 0));
}

class OpenDirNoFollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vt-init-vol-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(OpenDirNoFollowTest, CreatesMissingDirectories) {
  auto fd = openDirNoFollow(dir_ + "/a/b/c", true, O_PATH | O_DIRECTORY);
  ASSERT_TRUE(fd) << fd.error();
  ::close(*fd);
  EXPECT_TRUE(std::filesystem::is_directory(dir_ + "/a/b/c"));
  EXPECT_FALSE(openDirNoFollow(dir_ + "/x/y", false, O_PATH | O_DIRECTORY));
}

TEST_F(OpenDirNoFollowTest, RefusesASymlinkAnywhereOnThePath) {
  std::filesystem::create_directories(dir_ + "/real");
  std::filesystem::create_directory_symlink(dir_ + "/real", dir_ + "/link");
  // The image points the mount somewhere else: refused, nothing created there.
  auto fd = openDirNoFollow(dir_ + "/link/data", true, O_PATH | O_DIRECTORY);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error(), dir_ + "/link is a symlink");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/real/data"));
  fd = openDirNoFollow(dir_ + "/link", true, O_PATH | O_DIRECTORY);
  ASSERT_FALSE(fd);
  EXPECT_EQ(fd.error(), dir_ + "/link is a symlink");
}

}  // namespace
}  // namespace plfm::init
