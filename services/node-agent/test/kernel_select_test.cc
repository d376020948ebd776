// Which guest kernel scripts/fetch-kernel answers with
// (guest-init-delivery.md "Which kernel is used"): the cached minimal kernel
// when it was built from this checkout's config fragment, unless
// PLFM_GUEST_KERNEL says cloud; PLFM_GUEST_KERNEL=minimal fails without one.
// Hermetic: a fake cache in a temp dir; no case reaches apt.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"

namespace plfm {
namespace {

namespace fs = std::filesystem;

const std::string kScript = std::string(PLFM_SOURCE_DIR) + "/scripts/fetch-kernel";
const std::string kFragment = std::string(PLFM_SOURCE_DIR) + "/guest/kernel/plfm-guest.config";

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string readAll(const std::string& path) { return readFile(path).value_or(""); }

class KernelSelectTest : public ::testing::Test {
 protected:
  // A cached minimal build whose fragment hash is `fragment_sha`.
  std::string cacheMinimal(const std::string& fragment_sha) {
    std::string release = dir_.file("plfm-6.1.0-1-abc");
    fs::create_directories(release + "/modules");
    writeFile(release + "/vmlinux",
              "\x7f"
              "ELF");
    writeFile(release + "/modules.order", "");
    writeFile(release + "/.fragment-sha256", fragment_sha + "\n");
    writeFile(release + "/.complete", "layout 1\n");
    fs::create_directory_symlink("plfm-6.1.0-1-abc", dir_.file("minimal"));
    return release;
  }

  // fetch-kernel --print-dir with PLFM_GUEST_KERNEL=choice; the exit code,
  // stdout in `out`.
  int fetch(const std::string& choice, std::string& out) {
    SpawnOptions o;
    o.stdout_path = dir_.file("out");
    o.stderr_path = dir_.file("err");
    o.env = {"PLFM_KERNEL_DIR=" + dir_.path(), "PLFM_GUEST_KERNEL=" + choice};
    fs::remove(o.stdout_path);
    auto p = spawn({"bash", kScript, "--print-dir"}, o);
    if (!p) return -1;
    const int status = p->wait();
    out = readAll(o.stdout_path);
    return exitCodeOf(status);
  }

  static std::string fragmentSha() {
    std::string out;
    plfm::testing::TempDir tmp("ksha");
    SpawnOptions o;
    o.stdout_path = tmp.file("sha");
    EXPECT_TRUE(runChecked({"sh", "-c", "sha256sum < \"$0\" | cut -c1-64", kFragment}, o));
    out = readAll(o.stdout_path);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
  }

  plfm::testing::TempDir dir_{"ksel"};
};

TEST_F(KernelSelectTest, PrefersACurrentMinimalKernel) {
  const std::string release = cacheMinimal(fragmentSha());
  std::string out;
  ASSERT_EQ(fetch("auto", out), 0) << readAll(dir_.file("err"));
  EXPECT_EQ(out, fs::canonical(release).string() + "\n");
  ASSERT_EQ(fetch("minimal", out), 0);
  EXPECT_EQ(out, fs::canonical(release).string() + "\n");
}

TEST_F(KernelSelectTest, AStaleMinimalKernelIsNotUsed) {
  // Built from another fragment: `minimal` must refuse it rather than boot
  // a kernel without what the fragment now asks for.
  cacheMinimal(std::string(64, '0'));
  std::string out;
  EXPECT_EQ(fetch("minimal", out), 1);
  EXPECT_EQ(out, "");
  EXPECT_NE(readAll(dir_.file("err")).find("make kernel"), std::string::npos);
}

TEST_F(KernelSelectTest, MinimalWithoutACachedBuildFails) {
  std::string out;
  EXPECT_EQ(fetch("minimal", out), 1);
}

TEST_F(KernelSelectTest, RejectsAnUnknownChoice) {
  cacheMinimal(fragmentSha());
  std::string out;
  EXPECT_EQ(fetch("newest", out), 2);
}

}  // namespace
}  // namespace plfm
