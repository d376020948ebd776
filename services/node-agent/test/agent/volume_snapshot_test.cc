// The snapshot copy (volume-mounts.md §Snapshots): a reflink where the
// volumes directory supports it (an XFS loop mount with reflink=1 here), a
// sparse copy elsewhere (this machine's ext4), the same bytes either way, and
// never over an existing snapshot. Needs root and a loop device for the XFS
// part; skips with the reason otherwise.
#include "agent/volume_snapshot.h"

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "volume_test_ids.h"

namespace plfm::agent {
namespace {
using testing::kMiB;

// A sparse 32 MiB file with data at 0 and at 20 MiB.
void makeVolumeLike(const std::string& path) {
  std::ofstream out(path, std::ios::binary);
  out << "head of the volume";
  out.seekp(20 * kMiB);
  out << "middle of the volume";
  out.close();
  ASSERT_EQ(::truncate(path.c_str(), 32 * kMiB), 0);
}

std::string contents(const std::string& path) { return readFile(path).value_or("<unreadable>"); }

TEST(VolumeSnapshot, SnapshotIdsAreFileNamesAndNothingElse) {
  EXPECT_TRUE(validSnapshotId("snap_01jd0000000000000000000001"));
  EXPECT_TRUE(validSnapshotId("nightly-3"));
  for (const char* bad : {"", "../x", "a/b", ".", "..", "-rf", "A", "a b", "snap.ext4"}) {
    EXPECT_FALSE(validSnapshotId(bad)) << bad;
  }
  EXPECT_FALSE(validSnapshotId(std::string(65, 'a')));
}

TEST(VolumeSnapshot, WithoutReflinksTheCopyIsSparseAndEqual) {
  plfm::testing::TempDir tmp;
  const std::string from = tmp.file("vol.ext4");
  const std::string to = tmp.file("snap.ext4");
  makeVolumeLike(from);
  auto method = cloneOrCopy(from, to);
  ASSERT_TRUE(method) << method.error().toString();
  // /tmp here is ext4 or tmpfs: no reflinks.
  EXPECT_EQ(*method, "copy");
  EXPECT_EQ(contents(to), contents(from));
  struct stat st {};
  ASSERT_EQ(::stat(to.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 4 * kMiB) << "not sparse";
  auto again = cloneOrCopy(from, to);
  EXPECT_FALSE(again) << "an existing snapshot is never overwritten";
}

TEST(VolumeSnapshot, OnXfsWithReflinksTheCopyIsAClone) {
  plfm::testing::TempDir tmp;
  const std::string image = tmp.file("xfs.img");
  const std::string mnt = tmp.file("mnt");
  ASSERT_EQ(::mkdir(mnt.c_str(), 0700), 0);
  {
    std::ofstream(image).close();
    ASSERT_EQ(::truncate(image.c_str(), 320 * kMiB), 0);  // XFS wants 300 MiB at least
  }
  if (!runChecked({"mkfs.xfs", "-q", "-m", "reflink=1", image}, {})) {
    GTEST_SKIP() << "mkfs.xfs is missing or failed (xfsprogs, scripts/install-deps)";
  }
  if (!runChecked({"mount", "-o", "loop", image, mnt}, {})) {
    GTEST_SKIP() << "cannot loop-mount an XFS image here (needs root and a loop device)";
  }
  const std::string from = mnt + "/vol.ext4";
  const std::string to = mnt + "/snap.ext4";
  makeVolumeLike(from);
  auto method = cloneOrCopy(from, to);
  ASSERT_TRUE(method) << method.error().toString();
  EXPECT_EQ(*method, "reflink");
  EXPECT_EQ(contents(to), contents(from));
  // Copy-on-write: writing the volume afterwards leaves the snapshot as it was.
  const std::string before = contents(to);
  {
    std::fstream f(from, std::ios::in | std::ios::out | std::ios::binary);
    f << "changed";
  }
  EXPECT_EQ(contents(to), before);
  EXPECT_NE(contents(from), before);
  EXPECT_EQ(::umount2(mnt.c_str(), MNT_DETACH), 0);
}

}  // namespace
}  // namespace plfm::agent
