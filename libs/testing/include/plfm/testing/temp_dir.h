// Hermetic test helpers: temporary directories, free ports, golden files.
#pragma once

#include <string>
#include <string_view>

namespace plfm::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on
// destruction. Paths stay short so Unix socket paths fit in 108 bytes.
class TempDir {
 public:
  explicit TempDir(std::string_view prefix = "plfm");
  TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string file(std::string_view name) const;
  // Keeps the directory after destruction (for debugging a failure).
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

// A TCP port that was free a moment ago (bound to port 0 on loopback, then
// released). Prefer passing port 0 to servers and reading the port back.
[[nodiscard]] int freeTcpPort();

// Compares `actual` with the golden file at `path`. With PLFM_UPDATE_GOLDEN=1
// in the environment it rewrites the file instead. Reports a GoogleTest
// failure naming the first differing line.
void expectGolden(const std::string& path, std::string_view actual);

}  // namespace plfm::testing

// Golden files live beside the test: PLFM_EXPECT_GOLDEN("golden/x.txt", out).
#define PLFM_EXPECT_GOLDEN(relpath, actual) \
  ::plfm::testing::expectGolden(std::string(PLFM_TEST_DIR) + "/test/" + (relpath), (actual))
