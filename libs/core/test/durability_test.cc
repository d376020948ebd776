// writeFileAtomic must survive a power loss: the file's data is fsynced
// before the rename, and the directory holding the new name after it. A
// power cut cannot be simulated in a test, so this binary interposes fsync
// (the definition below wins over libc's at link time) and records which
// inodes were synced, in which order.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace {

struct Synced {
  dev_t dev;
  ino_t ino;
  bool dir;
};

std::mutex g_mu;
std::vector<Synced> g_synced;

}  // namespace

extern "C" int fsync(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    std::lock_guard lock(g_mu);
    g_synced.push_back({st.st_dev, st.st_ino, S_ISDIR(st.st_mode)});
  }
  return static_cast<int>(::syscall(SYS_fsync, fd));
}

namespace plfm {
namespace {

std::vector<Synced> takeSynced() {
  std::lock_guard lock(g_mu);
  return std::exchange(g_synced, {});
}

TEST(Durability, WriteFileAtomicSyncsTheFileThenItsDirectory) {
  plfm::testing::TempDir dir("dur");
  (void)takeSynced();
  const std::string path = dir.file("record.json");
  ASSERT_TRUE(writeFileAtomic(path, "{\"v\":1}", 0600));
  ASSERT_TRUE(writeFileAtomic(path, "{\"v\":2}", 0600));  // a replace, too
  auto synced = takeSynced();
  struct stat file {};
  struct stat parent {};
  ASSERT_EQ(::stat(path.c_str(), &file), 0);
  ASSERT_EQ(::stat(dir.path().c_str(), &parent), 0);
  // The last write: its file first, then the directory that names it.
  ASSERT_GE(synced.size(), 2U);
  const Synced& data = synced[synced.size() - 2];
  const Synced& name = synced.back();
  EXPECT_FALSE(data.dir);
  EXPECT_EQ(data.ino, file.st_ino);
  EXPECT_TRUE(name.dir) << "the directory was not fsynced after the rename";
  EXPECT_EQ(name.ino, parent.st_ino);
  EXPECT_EQ(name.dev, parent.st_dev);
  EXPECT_EQ(*readFile(path), "{\"v\":2}");
}

TEST(Durability, FsyncParentDirNamesTheRightDirectory) {
  plfm::testing::TempDir dir("dur");
  (void)takeSynced();
  ASSERT_TRUE(fsyncParentDir(dir.file("not-yet")));
  auto synced = takeSynced();
  struct stat parent {};
  ASSERT_EQ(::stat(dir.path().c_str(), &parent), 0);
  ASSERT_EQ(synced.size(), 1U);
  EXPECT_TRUE(synced[0].dir);
  EXPECT_EQ(synced[0].ino, parent.st_ino);
  EXPECT_FALSE(fsyncParentDir(dir.file("missing/x")));
}

TEST(Durability, ConcurrentWritersOfOnePathLeaveAWholeFile) {
  plfm::testing::TempDir dir("dur");
  const std::string path = dir.file("shared");
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const std::string body(4096, static_cast<char>('a' + t));
      for (int i = 0; i < 20; ++i) EXPECT_TRUE(writeFileAtomic(path, body));
    });
  }
  for (auto& th : threads) th.join();
  const std::string got = *readFile(path);
  ASSERT_EQ(got.size(), 4096U);
  EXPECT_EQ(got.find_first_not_of(got[0]), std::string::npos);
  // No temp file is left behind.
  size_t entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1U);
}

}  // namespace
}  // namespace plfm
