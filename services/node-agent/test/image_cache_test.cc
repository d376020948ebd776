// The cache under stress, against the real registry: kill -9 of a pulling
// process, concurrent pulls (threads and processes) sharing downloads, and
// garbage collection with on-disk reference counts.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "image/fs_util.h"
#include "image/image_cache.h"
#include "image_test_env.h"
#include "plfm/core/clock.h"
#include "plfm/core/json.h"
#include "plfm/core/process.h"

namespace plfm::image {
namespace {

using plfm::testing::TempDir;

class ImageCacheTest : public ::testing::Test {
 protected:
  void SetUp() override { PLFM_REQUIRE_ENV(); }
  ImageEnv& env_ = ImageEnv::get();
  TempDir dir_{"plfm-cache"};

  Result<Process> spawnPull(const std::string& cache, const std::string& repo_tag,
                            const std::string& out, const std::vector<std::string>& extra = {},
                            const std::vector<std::string>& env = {}) {
    SpawnOptions so;
    so.stdout_path = out;
    so.stderr_path = out + ".err";
    so.env = env;
    std::vector<std::string> argv = {
        PLFM_NODE_AGENT_BIN, "image", "pull",     env_.registry->host() + "/" + repo_tag,
        "--cache",           cache,   "--format", "json",
        "--parallel",        "1",     "-q"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return spawn(argv, so);
  }
  // What a pull by `pid` leaves when killed: staging trees (plfm-stage-PID-X)
  // in /dev/shm's private parent, CACHE/tmp or `staging`, and scratch directories and
  // half-built images (scratch-PID-N, rootfs-PID-N.ext4) in CACHE/tmp.
  static std::vector<std::string> leftoversOf(pid_t pid, const std::string& cache,
                                              const std::string& staging = "") {
    std::vector<std::string> out;
    const std::string tag = "-" + std::to_string(pid) + "-";
    for (const std::string& d : {shmStagingParent(), cache + "/tmp", staging}) {
      std::error_code ec;
      if (d.empty()) continue;
      for (const auto& e : std::filesystem::directory_iterator(d, ec)) {
        if (e.path().filename().string().find(tag) != std::string::npos) {
          out.push_back(e.path().string());
        }
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  static bool anyContains(const std::vector<std::string>& paths, std::string_view what) {
    return std::any_of(paths.begin(), paths.end(),
                       [&](const std::string& p) { return p.find(what) != std::string::npos; });
  }
  // The real `tool` (mkfs.ext4, debugfs), not a wrapper of ours.
  static std::string realBinary(const std::string& tool) {
    const char* env_path = std::getenv("PATH");
    const std::string dirs = std::string(env_path != nullptr ? env_path : "") + ":/usr/sbin:/sbin";
    for (size_t start = 0; start < dirs.size();) {
      size_t end = dirs.find(':', start);
      if (end == std::string::npos) end = dirs.size();
      std::string p = dirs.substr(start, end - start) + "/" + tool;
      if (end > start && ::access(p.c_str(), X_OK) == 0) return p;
      start = end + 1;
    }
    return tool;
  }
  // A directory for the front of a pull's PATH, holding a `tool` that runs
  // the real one, then writes its pid to `marker` and sleeps: the pull is
  // stuck inside that step until it is killed. No hook in the agent needed.
  std::string stallAfter(const std::string& tool, const std::string& marker) {
    std::string dir = dir_.file("wrap-" + tool);
    std::filesystem::create_directories(dir);
    const std::string script = "#!/bin/sh\n" + realBinary(tool) + " \"$@\" || exit $?\n" +
                               "echo $$ > " + marker + ".tmp && mv " + marker + ".tmp " + marker +
                               "\nexec sleep 120\n";
    EXPECT_TRUE(writeFileAtomic(dir + "/" + tool, script));
    ::chmod((dir + "/" + tool).c_str(), 0755);
    return dir;
  }
  // After a kill: open() sweeps the dead pull's leftovers, and the next pull
  // (another process) reuses the downloaded blobs and builds a good rootfs.
  void expectSweptAndPullSucceeds(pid_t dead, const std::string& cache_dir,
                                  const std::string& staging = "") {
    const Digest md = *Digest::parse(env_.big.manifest_digest);
    auto reopened = ImageCache::open(cache_dir);
    ASSERT_TRUE(reopened);
    if (!staging.empty()) {
      CacheOptions o;
      o.staging_dir = staging;
      ASSERT_TRUE(ImageCache::open(cache_dir, o));
    }
    EXPECT_EQ(leftoversOf(dead, cache_dir, staging), std::vector<std::string>{});
    EXPECT_FALSE(pathExists(reopened->rootfsPath(md)));
    EXPECT_FALSE(pathExists(reopened->recordPath(md)));
    const json::Json j = pullAgain(cache_dir);
    ASSERT_FALSE(j.is_null());
    EXPECT_EQ(j["stats"]["blobs_fetched"], 0);  // all were in place before the kill
    EXPECT_TRUE(testing::run({"e2fsck", "-fn", reopened->rootfsPath(md)}, dir_.file("fsck.log")))
        << tailFile(dir_.file("fsck.log"), 20);
    EXPECT_TRUE(std::filesystem::is_empty(cache_dir + "/tmp"));
  }
  // Pulls the big image in a new process, like a restarted agent: its JSON
  // summary, or null after reporting why not.
  json::Json pullAgain(const std::string& cache_dir) {
    auto again = spawnPull(cache_dir, "plfm/big:v1", dir_.file("again.out"));
    if (!again) {
      ADD_FAILURE() << again.error().toString();
      return nullptr;
    }
    if (exitCodeOf(again->wait()) != 0) {
      ADD_FAILURE() << tailFile(dir_.file("again.out.err"), 20);
      return nullptr;
    }
    auto j = json::parse(*readFile(dir_.file("again.out")));
    if (!j) ADD_FAILURE() << "not JSON: " << *readFile(dir_.file("again.out"));
    return j ? *j : nullptr;
  }
  // Kills a pull that sits inside `tool` (see stallAfter), then checks.
  void killInside(const std::string& tool, const std::vector<std::string>& extra,
                  const std::string& staging) {
    const std::string cache_dir = dir_.file("c");
    const std::string marker = dir_.file(tool + ".pid");
    const std::string wrap = stallAfter(tool, marker);
    const char* path = std::getenv("PATH");
    auto child = spawnPull(cache_dir, "plfm/big:v1", dir_.file("kill.out"), extra,
                           {"PATH=" + wrap + ":" + (path != nullptr ? path : "/usr/bin:/bin")});
    ASSERT_TRUE(child) << child.error().toString();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!pathExists(marker) && std::chrono::steady_clock::now() < deadline && !child->poll()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(pathExists(marker))
        << "the pull never ran " << tool << ": " << tailFile(dir_.file("kill.out.err"), 20);
    const std::vector<std::string> left = leftoversOf(child->pid(), cache_dir, staging);
    child->signal(SIGKILL);
    const int status = child->wait();
    const pid_t dead = child->pid();
    ASSERT_TRUE(WIFSIGNALED(status)) << describeWaitStatus(status);
    const auto stalled = static_cast<pid_t>(std::stoi(*readFile(marker)));
    ::kill(stalled, SIGKILL);  // the orphaned wrapper; a real mkfs would just finish
    // Killed with everything in flight: a staging tree, the scratch dir and
    // the half-built image.
    EXPECT_TRUE(anyContains(left, "plfm-stage-")) << ::testing::PrintToString(left);
    EXPECT_TRUE(anyContains(left, "/tmp/scratch-")) << ::testing::PrintToString(left);
    EXPECT_TRUE(anyContains(left, "/tmp/rootfs-")) << ::testing::PrintToString(left);
    expectSweptAndPullSucceeds(dead, cache_dir, staging);
  }
  static uint64_t fileSize(const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  }
};

TEST_F(ImageCacheTest, KillNineMidDownloadThenPullResumes) {
  const std::string cache_dir = dir_.file("c");
  auto manifest = readFile(env_.layout + "/blobs/sha256/" + env_.big.manifest_digest.substr(7));
  auto doc = parseManifestDocument(*manifest);
  ASSERT_TRUE(doc && doc->manifest);
  const Descriptor big = doc->manifest->layers[1];
  const std::string partial = cache_dir + "/tmp/" + big.digest.hex() + ".partial";

  auto child = spawnPull(cache_dir, "plfm/big:v1", dir_.file("kill.out"));
  ASSERT_TRUE(child) << child.error().toString();
  // Kill it once the big layer is partly down, not before, not after.
  uint64_t at = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline && !child->poll()) {
    at = fileSize(partial);
    if (at > 0 && at < static_cast<uint64_t>(big.size) / 2) {
      child->signal(SIGKILL);
      break;
    }
  }
  const int status = child->wait();
  ASSERT_TRUE(WIFSIGNALED(status))
      << "the pull finished before it could be killed: " << describeWaitStatus(status);
  // Consistent: the half blob is only a partial file, nothing half-built is
  // in place, and the lock died with the process.
  auto reopened = ImageCache::open(cache_dir);
  ASSERT_TRUE(reopened);
  EXPECT_FALSE(reopened->blobs().has(big.digest));
  EXPECT_TRUE(pathExists(partial));
  const uint64_t left = fileSize(partial);
  EXPECT_GT(left, 0U);
  const Digest md = *Digest::parse(env_.big.manifest_digest);
  EXPECT_FALSE(pathExists(reopened->rootfsPath(md)));
  EXPECT_FALSE(pathExists(reopened->recordPath(md)));

  // The next pull (another process, like a restarted agent) resumes.
  const json::Json j = pullAgain(cache_dir);
  ASSERT_FALSE(j.is_null());
  EXPECT_EQ(j["manifest_digest"], env_.big.manifest_digest);
  EXPECT_GE(j["stats"]["resumed_bytes"].get<uint64_t>(), left);
  EXPECT_LE(j["stats"]["bytes_fetched"].get<uint64_t>(),
            static_cast<uint64_t>(big.size) - left + uint64_t{64} * 1024);
  EXPECT_TRUE(reopened->blobs().has(big.digest));
  EXPECT_FALSE(pathExists(partial));
  EXPECT_TRUE(testing::run({"e2fsck", "-fn", reopened->rootfsPath(md)}, dir_.file("fsck.log")));
  // Nothing left behind in tmp/.
  EXPECT_TRUE(std::filesystem::is_empty(cache_dir + "/tmp"));
}

TEST_F(ImageCacheTest, KillNineDuringLayerApplyThenStagingIsSwept) {
  // Staging in a directory of our choosing (--staging-dir), which open()
  // sweeps as well. The blobs are cached first, so the pull goes straight
  // to applying the 160 MiB layer; it is killed while that file is half
  // written into the staging tree.
  const std::string cache_dir = dir_.file("c");
  const std::string staging = dir_.file("staging");
  const Digest md = *Digest::parse(env_.big.manifest_digest);
  {
    auto first = spawnPull(cache_dir, "plfm/big:v1", dir_.file("first.out"));
    ASSERT_TRUE(first);
    ASSERT_EQ(exitCodeOf(first->wait()), 0) << tailFile(dir_.file("first.out.err"), 20);
    auto c = ImageCache::open(cache_dir);
    ASSERT_TRUE(c);
    ASSERT_EQ(::unlink(c->recordPath(md).c_str()), 0);
    ASSERT_EQ(::unlink(c->rootfsPath(md).c_str()), 0);
  }
  auto child =
      spawnPull(cache_dir, "plfm/big:v1", dir_.file("kill.out"), {"--staging-dir", staging});
  ASSERT_TRUE(child) << child.error().toString();
  constexpr uint64_t kBig = uint64_t{160} << 20;
  uint64_t at = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline && !child->poll()) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(staging, ec)) {
      std::error_code ec2;
      const auto size = std::filesystem::file_size(e.path() / "big.bin", ec2);
      if (!ec2 && size > 0 && size < kBig) at = size;
    }
    if (at > 0) {
      child->signal(SIGKILL);
      break;
    }
  }
  const int status = child->wait();
  ASSERT_TRUE(WIFSIGNALED(status))
      << "the pull was not caught applying the layer: " << describeWaitStatus(status);
  EXPECT_GT(at, 0U);
  const std::vector<std::string> left = leftoversOf(child->pid(), cache_dir, staging);
  EXPECT_TRUE(anyContains(left, staging + "/plfm-stage-")) << ::testing::PrintToString(left);
  expectSweptAndPullSucceeds(child->pid(), cache_dir, staging);
}

TEST_F(ImageCacheTest, KillNineDuringMkfsThenLeftoversAreSwept) {
  // Default staging (/dev/shm, a tmpfs here), killed once mkfs.ext4 has
  // written the image into CACHE/tmp and before it is renamed into place.
  killInside("mkfs.ext4", {}, "");
}

TEST_F(ImageCacheTest, KillNineDuringMkfsWithStagingInTheCacheThenLeftoversAreSwept) {
  // Staging in CACHE/tmp this time (the fixups are written in-process with
  // libext2fs right after mkfs, so mkfs is the last child to kill inside).
  killInside("mkfs.ext4", {"--staging-dir", dir_.file("c") + "/tmp"}, "");
}

TEST_F(ImageCacheTest, ConcurrentThreadPullsShareOneDownload) {
  const std::string cache_dir = dir_.file("c");
  auto c1 = ImageCache::open(cache_dir);
  auto c2 = ImageCache::open(cache_dir);
  ASSERT_TRUE(c1 && c2);
  Result<PulledImage> a = Error(errc::kInternal, "not run");
  Result<PulledImage> b = Error(errc::kInternal, "not run");
  std::thread t1([&] { a = c1->pull(env_.ref("plfm/rich:v1")); });
  std::thread t2([&] { b = c2->pull(env_.ref("plfm/rich:v1")); });
  t1.join();
  t2.join();
  ASSERT_TRUE(a) << a.error().toString();
  ASSERT_TRUE(b) << b.error().toString();
  EXPECT_EQ(a->rootfs, b->rootfs);
  // 4 blobs (config and 3 layers) crossed the wire once between the two.
  EXPECT_EQ(a->stats.blobs_fetched + b->stats.blobs_fetched, 4);
  EXPECT_EQ(a->stats.blobs_fetched + a->stats.blobs_cached, 4);
  EXPECT_TRUE(a->stats.rootfs_cached || b->stats.rootfs_cached);
}

TEST_F(ImageCacheTest, ConcurrentProcessPullsShareOneDownload) {
  const std::string cache_dir = dir_.file("c");
  auto p1 = spawnPull(cache_dir, "plfm/rich:v1", dir_.file("p1.out"));
  auto p2 = spawnPull(cache_dir, "plfm/rich:v1", dir_.file("p2.out"));
  ASSERT_TRUE(p1 && p2);
  ASSERT_EQ(exitCodeOf(p1->wait()), 0) << tailFile(dir_.file("p1.out.err"), 20);
  ASSERT_EQ(exitCodeOf(p2->wait()), 0) << tailFile(dir_.file("p2.out.err"), 20);
  auto j1 = json::parse(*readFile(dir_.file("p1.out")));
  auto j2 = json::parse(*readFile(dir_.file("p2.out")));
  ASSERT_TRUE(j1 && j2);
  EXPECT_EQ((*j1)["rootfs"], (*j2)["rootfs"]);
  const int fetched =
      (*j1)["stats"]["blobs_fetched"].get<int>() + (*j2)["stats"]["blobs_fetched"].get<int>();
  EXPECT_EQ(fetched, 4);
}

TEST_F(ImageCacheTest, GcEvictsLeastRecentlyUsedAndKeepsImagesInUse) {
  FakeClock clock;
  CacheOptions o;
  o.clock = &clock;
  o.fetch.fsync = false;
  auto cache = ImageCache::open(dir_.file("c"), o);
  ASSERT_TRUE(cache);
  auto rich = cache->pull(env_.ref("plfm/rich:v1"));
  ASSERT_TRUE(rich) << rich.error().toString();
  clock.advance(std::chrono::minutes(1));
  auto small = cache->pull(env_.ref("plfm/small:v1"));
  ASSERT_TRUE(small);
  clock.advance(std::chrono::minutes(1));
  auto index = cache->pull(env_.ref("plfm/index:v1"));
  ASSERT_TRUE(index);
  clock.advance(std::chrono::minutes(1));
  // Using `small` makes it the most recent; `rich` is now the oldest.
  ASSERT_TRUE(cache->acquire(small->manifest_digest, "inst_a"));
  ASSERT_TRUE(cache->acquire(small->manifest_digest, "inst_a"));  // idempotent
  ASSERT_TRUE(cache->acquire(small->manifest_digest, "inst_b"));
  EXPECT_EQ(*cache->refCount(small->manifest_digest), 2);
  EXPECT_FALSE(cache->acquire(small->manifest_digest, "../evil"));
  EXPECT_FALSE(cache->acquire(*Digest::parse("sha256:" + std::string(64, '1')), "inst_c"));

  // A budget just under the current use: evicting the LRU image suffices.
  auto reopen = [&](uint64_t budget) {
    CacheOptions b = o;
    b.size_budget_bytes = budget;
    return ImageCache::open(dir_.file("c"), b);
  };
  auto tight = reopen(cache->usageBytes() - 1);
  ASSERT_TRUE(tight);
  auto r1 = tight->gc();
  ASSERT_TRUE(r1) << r1.error().toString();
  ASSERT_EQ(r1->images_removed, 1);
  EXPECT_EQ(r1->removed[0], rich->manifest_digest);
  EXPECT_FALSE(pathExists(rich->rootfs));
  EXPECT_FALSE(cache->blobs().has(rich->layers[2].digest));
  EXPECT_TRUE(pathExists(small->rootfs));
  EXPECT_TRUE(pathExists(index->rootfs));
  // The small and index images share their layer: it must survive.
  EXPECT_TRUE(cache->blobs().has(small->layers[0].digest));

  // Budget zero: everything not in use goes; `small` is held, so it stays.
  auto zero = reopen(1);
  ASSERT_TRUE(zero);
  auto r2 = zero->gc();
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->images_removed, 1);
  EXPECT_EQ(r2->images_in_use, 1);
  EXPECT_TRUE(r2->over_budget);
  EXPECT_TRUE(pathExists(small->rootfs));
  EXPECT_TRUE(cache->blobs().has(small->layers[0].digest));
  EXPECT_TRUE(cache->rootfs(small->manifest_digest));

  ASSERT_TRUE(cache->release(small->manifest_digest, "inst_a"));
  ASSERT_TRUE(cache->release(small->manifest_digest, "inst_b"));
  EXPECT_EQ(*cache->refCount(small->manifest_digest), 0);
  // Unheld, but the caller keeps it (the agent's previous release of an env).
  auto kept = zero->gc({small->manifest_digest});
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->images_removed, 0);
  EXPECT_EQ(kept->images_kept, 1);
  EXPECT_TRUE(kept->over_budget);
  EXPECT_TRUE(pathExists(small->rootfs));
  auto r3 = zero->gc();
  ASSERT_TRUE(r3);
  EXPECT_EQ(r3->images_removed, 1);
  EXPECT_FALSE(r3->over_budget);
  auto rest = cache->list();
  ASSERT_TRUE(rest);
  EXPECT_TRUE(rest->empty());
  EXPECT_TRUE(std::filesystem::is_empty(dir_.file("c") + "/blobs/sha256"));
  auto gone = cache->rootfs(small->manifest_digest);
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().code(), "image.not_cached");
}

TEST_F(ImageCacheTest, GcNeverDeletesAHeldImageWithAnUnreadableRecord) {
  FakeClock clock;
  CacheOptions o;
  o.clock = &clock;
  o.fetch.fsync = false;
  o.size_budget_bytes = 1;  // everything not held must go
  const std::string dir = dir_.file("c");
  auto cache = ImageCache::open(dir, o);
  ASSERT_TRUE(cache);
  auto small = cache->pull(env_.ref("plfm/small:v1"));
  ASSERT_TRUE(small) << small.error().toString();
  clock.advance(std::chrono::minutes(1));
  auto rich = cache->pull(env_.ref("plfm/rich:v1"));
  ASSERT_TRUE(rich) << rich.error().toString();
  ASSERT_TRUE(cache->acquire(small->manifest_digest, "inst_a"));
  // A torn or corrupted record (a bad disk, a hand edit): not JSON.
  const std::string record = cache->recordPath(small->manifest_digest);
  ASSERT_TRUE(writeFileAtomic(record, "{\"manifest_digest\": \"sha256:"));

  auto r1 = cache->gc();
  ASSERT_TRUE(r1) << r1.error().toString();
  EXPECT_EQ(r1->images_removed, 1);  // rich, which nobody holds
  EXPECT_EQ(r1->images_in_use, 1);
  EXPECT_EQ(r1->unreadable_records, 1);
  EXPECT_FALSE(pathExists(rich->rootfs));
  EXPECT_FALSE(cache->blobs().has(rich->layers[2].digest));
  // The held image is whole: rootfs, record and every blob its manifest names.
  EXPECT_TRUE(pathExists(small->rootfs));
  EXPECT_TRUE(pathExists(record));
  EXPECT_TRUE(cache->blobs().has(small->manifest_digest));
  EXPECT_TRUE(cache->blobs().has(small->config_digest));
  EXPECT_TRUE(cache->blobs().has(small->layers[0].digest));
  EXPECT_EQ(*cache->refCount(small->manifest_digest), 1);

  // Worse: the manifest blob is gone too, so the image's blobs cannot be
  // named. gc then deletes no blob at all, only unheld rootfs files.
  ASSERT_EQ(::unlink(cache->blobs().path(small->manifest_digest).c_str()), 0);
  auto rich2 = cache->pull(env_.ref("plfm/rich:v1"));
  ASSERT_TRUE(rich2) << rich2.error().toString();
  auto r2 = cache->gc();
  ASSERT_TRUE(r2) << r2.error().toString();
  EXPECT_EQ(r2->images_removed, 1);
  EXPECT_EQ(r2->blobs_removed, 0);
  EXPECT_FALSE(pathExists(rich2->rootfs));
  EXPECT_TRUE(pathExists(small->rootfs));
  EXPECT_TRUE(cache->blobs().has(small->config_digest));
  EXPECT_TRUE(cache->blobs().has(small->layers[0].digest));

  // Once the last holder is gone, the broken image is an orphan like any other.
  ASSERT_TRUE(cache->release(small->manifest_digest, "inst_a"));
  auto r3 = cache->gc();
  ASSERT_TRUE(r3) << r3.error().toString();
  EXPECT_EQ(r3->unreadable_records, 0);
  EXPECT_FALSE(pathExists(small->rootfs));
  EXPECT_FALSE(pathExists(record));
  EXPECT_TRUE(std::filesystem::is_empty(dir + "/blobs/sha256"));
  EXPECT_TRUE(std::filesystem::is_empty(dir + "/rootfs"));
}

TEST_F(ImageCacheTest, GcKeepsTheBlobsOfAHeldImageWhoseRecordLacksThem) {
  CacheOptions o;
  o.fetch.fsync = false;
  o.size_budget_bytes = 1;
  auto cache = ImageCache::open(dir_.file("c"), o);
  ASSERT_TRUE(cache);
  auto small = cache->pull(env_.ref("plfm/small:v1"));
  ASSERT_TRUE(small) << small.error().toString();
  ASSERT_TRUE(cache->acquire(small->manifest_digest, "inst_a"));
  // Valid JSON, but the layers and config are gone from it (a hand edit).
  ASSERT_TRUE(writeFileAtomic(cache->recordPath(small->manifest_digest),
                              R"({"manifest_digest":")" + small->manifest_digest.str() + R"("})"));
  auto r = cache->gc();
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->images_in_use, 1);
  EXPECT_EQ(r->blobs_removed, 0);
  EXPECT_TRUE(cache->blobs().has(small->config_digest));
  EXPECT_TRUE(cache->blobs().has(small->layers[0].digest));
}

TEST_F(ImageCacheTest, RootfsIsRebuiltFromCachedBlobs) {
  auto cache = ImageCache::open(dir_.file("c"));
  ASSERT_TRUE(cache);
  auto img = cache->pull(env_.ref("plfm/small:v1"));
  ASSERT_TRUE(img);
  ASSERT_EQ(::unlink(img->rootfs.c_str()), 0);
  auto path = cache->rootfs(img->manifest_digest);
  ASSERT_TRUE(path) << path.error().toString();
  EXPECT_TRUE(pathExists(*path));
}

}  // namespace
}  // namespace plfm::image
