// Shared fixture of the image integration tests: one real docker-registry
// for the whole binary, and the test images built once and pushed to it.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "image/image_cache.h"
#include "plfm/testing/temp_dir.h"
#include "support/registry_fixture.h"
#include "support/test_image.h"

namespace plfm::image {

// The rich image's /etc/long-link points here: too long for a fast symlink.
inline constexpr const char* kLongTarget =
    "/usr/share/plfm/a-symlink-target-that-is-too-long-for-the-inode/so-ext4-puts-it-in-a-block";

class ImageEnv {
 public:
  static ImageEnv& get();  // starts the registry and builds the images on first use

  plfm::testing::TempDir dir{"plfm-imgenv"};
  std::unique_ptr<testing::Registry> registry;
  std::string layout;  // OCI layout with tags "rich", "big", "index", "small"
  testing::ImageSpec rich_spec;
  testing::BuiltImage rich, big, index, small;
  std::string error;  // set when setup failed

  [[nodiscard]] ImageRef ref(const std::string& repo_tag) const;
};

// Opens a cache in a fresh subdirectory of `dir`.
ImageCache openCache(const plfm::testing::TempDir& dir, CacheOptions options = {});

#define PLFM_REQUIRE_ENV()                                     \
  do {                                                         \
    if (!ImageEnv::get().error.empty()) {                      \
      FAIL() << "image test setup: " << ImageEnv::get().error; \
    }                                                          \
  } while (false)

}  // namespace plfm::image
