// Image staging on /dev/shm (issue 14, "Staging"): layers are unpacked in a
// fresh mkdtemp directory (0700) inside a private parent, so a local user who
// plants symlinks at the names earlier versions used (plfm-stage-PID-N, made
// with create_directories, which follows them) cannot redirect the unpack.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <linux/magic.h>
#include <filesystem>
#include <string>
#include <vector>

#include "image/fs_util.h"
#include "image/image_cache.h"
#include "image/image_ref.h"
#include "plfm/testing/temp_dir.h"
#include "support/test_image.h"

namespace plfm::image {
namespace {

namespace it = image::testing;
namespace fs = std::filesystem;

bool shmIsTmpfs() {
  struct statfs st {};
  return ::statfs("/dev/shm", &st) == 0 && st.f_type == TMPFS_MAGIC;
}

class Staging : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!shmIsTmpfs()) GTEST_SKIP() << "/dev/shm is not a tmpfs here";
    const std::string layer = dir_.file("layer.tar");
    ASSERT_TRUE(it::writeLayer(layer,
                               {it::dir("bin"), it::file("bin/app", "payload\n", 0755),
                                it::dir("etc"), it::file("etc/marker", "from the image\n")},
                               it::Compression::kGzip));
    it::ImageSpec spec;
    spec.layer_files = {layer};
    spec.compressions = {it::Compression::kGzip};
    ASSERT_TRUE(it::writeOciImage(dir_.file("layout"), "v1", spec));
  }

  Result<PulledImage> pull(const ProgressFn& progress = {}) {
    CacheOptions o;
    o.fetch.fsync = false;
    auto cache = ImageCache::open(dir_.file("cache"), o);
    if (!cache) return cache.error();
    PLFM_ASSIGN_OR_RETURN(auto ref, parseImageRef("oci:" + dir_.file("layout") + ":v1"));
    return cache->pull(ref, {}, progress);
  }

  plfm::testing::TempDir dir_{"stg"};
};

TEST_F(Staging, SymlinksPlantedAtTheOldPredictableNamesAreNotFollowed) {
  // Earlier versions staged in /dev/shm/plfm-stage-<pid>-<counter> with
  // create_directories: a symlink there sent the unpacked image (as root)
  // wherever it pointed.
  const std::string victim = dir_.file("victim");
  ASSERT_EQ(::mkdir(victim.c_str(), 0755), 0);
  std::vector<std::string> planted;
  for (int n = 0; n < 2000; ++n) {
    std::string name =
        "/dev/shm/plfm-stage-" + std::to_string(::getpid()) + "-" + std::to_string(n);
    if (::symlink(victim.c_str(), name.c_str()) == 0) planted.push_back(name);
  }
  ASSERT_FALSE(planted.empty());
  auto pulled = pull();
  for (const auto& p : planted) ::unlink(p.c_str());
  ASSERT_TRUE(pulled) << pulled.error().toString();
  EXPECT_TRUE(fs::is_empty(victim)) << "the unpack followed a planted symlink into " << victim;
}

TEST_F(Staging, TheStagingDirIs0700InAPrivateParent) {
  std::vector<std::string> seen;
  std::vector<mode_t> modes;
  auto pulled = pull([&](const PullEvent& ev) {
    if (ev.kind != PullEvent::Kind::kLayerApplied) return;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(shmStagingParent(), ec)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("plfm-stage-" + std::to_string(::getpid()) + "-", 0) != 0) continue;
      struct stat st {};
      if (::lstat(e.path().c_str(), &st) == 0) {
        seen.push_back(e.path().string());
        modes.push_back(st.st_mode);
      }
    }
  });
  ASSERT_TRUE(pulled) << pulled.error().toString();
  ASSERT_FALSE(seen.empty()) << "the layer was not staged in " << shmStagingParent();
  for (size_t i = 0; i < seen.size(); ++i) {
    EXPECT_TRUE(S_ISDIR(modes[i])) << seen[i];
    EXPECT_EQ(modes[i] & 07777, 0700U) << seen[i];
  }
  struct stat parent {};
  ASSERT_EQ(::lstat(shmStagingParent().c_str(), &parent), 0);
  EXPECT_TRUE(S_ISDIR(parent.st_mode));
  EXPECT_EQ(parent.st_mode & 07777, 0700U);
  EXPECT_EQ(parent.st_uid, ::geteuid());
  // Gone after the pull.
  for (const auto& s : seen) EXPECT_FALSE(fs::exists(s)) << s;
}

}  // namespace
}  // namespace plfm::image
