// BlobStore against an in-memory source (a fake is fine in unit tests; the
// integration test uses a real registry).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <thread>

#include "image/blob_store.h"
#include "image/fs_util.h"
#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace plfm::image {
namespace {

class MemorySource final : public ImageSource {
 public:
  explicit MemorySource(std::string content) : content_(std::move(content)) {}
  Result<FetchedManifest> fetchManifest(std::string_view) override {
    return Error(errc::kNotFound, "no manifests here");
  }
  Result<void> fetchBlob(const Descriptor&, BlobWriter& w) override {
    offsets_.push_back(w.offset());
    ++calls_;
    if (gate_ != nullptr) {
      while (!gate_->load()) std::this_thread::yield();
    }
    if (ignore_range_ && w.offset() > 0) PLFM_TRY(w.restart());
    auto off = static_cast<size_t>(w.offset());
    while (off < content_.size()) {
      if (fail_at_ > 0 && off >= fail_at_) {
        fail_at_ = 0;  // fail once
        return Error(errc::kUnavailable, "connection reset");
      }
      const size_t n = std::min<size_t>(100, content_.size() - off);
      PLFM_TRY(w.write(content_.data() + off, n));
      off += n;
    }
    return ok();
  }
  Result<void> checkBlob(const Descriptor&) override { return ok(); }
  std::string describe() const override { return "memory"; }

  std::string content_;
  size_t fail_at_ = 0;
  bool ignore_range_ = false;
  std::atomic<bool>* gate_ = nullptr;
  std::atomic<int> calls_{0};
  std::vector<uint64_t> offsets_;
};

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* d : {"/blobs/sha256", "/tmp", "/locks"}) ASSERT_TRUE(mkdirs(dir_.path() + d));
  }
  Descriptor describe(const std::string& content) {
    Descriptor d;
    d.digest = Digest::of(content);
    d.size = static_cast<int64_t>(content.size());
    return d;
  }
  FetchPolicy fast() {
    FetchPolicy p;
    p.backoff = std::chrono::milliseconds(0);
    p.fsync = false;
    return p;
  }
  plfm::testing::TempDir dir_{"plfm-blobs"};
  BlobStore store_{dir_.path()};
  std::string content_ = std::string(5000, 'a') + std::string(5000, 'b');
};

TEST_F(BlobStoreTest, FetchesVerifiesAndCaches) {
  MemorySource src(content_);
  const Descriptor d = describe(content_);
  auto r = store_.ensure(d, src, fast());
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_FALSE(r->cached);
  EXPECT_EQ(r->bytes_fetched, content_.size());
  EXPECT_EQ(*readFile(store_.path(d.digest)), content_);
  EXPECT_FALSE(pathExists(store_.partialPath(d.digest)));
  auto again = store_.ensure(d, src, fast());
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->cached);
  EXPECT_EQ(src.calls_, 1);
}

TEST_F(BlobStoreTest, RetriesResumeWhereTheyStopped) {
  MemorySource src(content_);
  src.fail_at_ = 3000;
  const Descriptor d = describe(content_);
  auto r = store_.ensure(d, src, fast());
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->attempts, 2);
  ASSERT_EQ(src.offsets_.size(), 2U);
  EXPECT_EQ(src.offsets_[1], 3000U);
  EXPECT_EQ(r->bytes_fetched, content_.size());
}

TEST_F(BlobStoreTest, ResumesAPartialFileLeftByACrash) {
  const Descriptor d = describe(content_);
  ASSERT_TRUE(writeFileAtomic(store_.partialPath(d.digest), content_.substr(0, 4200)));
  MemorySource src(content_);
  auto r = store_.ensure(d, src, fast());
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(r->resumed_from, 4200U);
  EXPECT_EQ(r->bytes_fetched, content_.size() - 4200);
  EXPECT_EQ(src.offsets_.front(), 4200U);
  EXPECT_EQ(*readFile(store_.path(d.digest)), content_);
}

TEST_F(BlobStoreTest, RestartsWhenTheSourceCannotResume) {
  const Descriptor d = describe(content_);
  ASSERT_TRUE(writeFileAtomic(store_.partialPath(d.digest), content_.substr(0, 4200)));
  MemorySource src(content_);
  src.ignore_range_ = true;
  auto r = store_.ensure(d, src, fast());
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(*readFile(store_.path(d.digest)), content_);
}

TEST_F(BlobStoreTest, MismatchDeletesThePartialAndNamesTheDigest) {
  const Descriptor d = describe(content_);
  std::string tampered = content_;
  tampered[7000] = 'X';
  MemorySource src(tampered);
  auto r = store_.ensure(d, src, fast());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "image.digest_mismatch");
  EXPECT_NE(r.error().message().find(d.digest.str()), std::string::npos);
  EXPECT_EQ(r.error().detail("digest"), d.digest.str());
  EXPECT_FALSE(pathExists(store_.partialPath(d.digest)));
  EXPECT_FALSE(store_.has(d.digest));
}

TEST_F(BlobStoreTest, OversizeIsRejected) {
  Descriptor d = describe(content_);
  d.size = 10;  // the source sends more than declared
  MemorySource src(content_);
  auto r = store_.ensure(d, src, fast());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), "image.size_mismatch");
  FetchPolicy small = fast();
  small.max_blob_bytes = 100;
  auto limited = store_.ensure(describe(content_), src, small);
  ASSERT_FALSE(limited);
  EXPECT_EQ(limited.error().code(), "image.limit_exceeded");
}

TEST_F(BlobStoreTest, ConcurrentEnsuresShareOneDownload) {
  std::atomic<bool> gate{false};
  MemorySource src(content_);
  src.gate_ = &gate;
  const Descriptor d = describe(content_);
  Result<BlobFetchStats> a = BlobFetchStats{}, b = BlobFetchStats{};
  std::thread t1([&] { a = store_.ensure(d, src, fast()); });
  std::thread t2([&] { b = store_.ensure(d, src, fast()); });
  while (src.calls_ == 0) std::this_thread::yield();
  gate = true;
  t1.join();
  t2.join();
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  EXPECT_EQ(src.calls_, 1);
  EXPECT_NE(a->cached, b->cached);  // one fetched, the other found it stored
}

}  // namespace
}  // namespace plfm::image
