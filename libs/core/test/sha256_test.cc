#include "plfm/core/sha256.h"

#include <gtest/gtest.h>

namespace plfm {
namespace {

TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Sha256::hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256::hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, StreamingMatchesOneShotAndResets) {
  Sha256 h;
  h.update("a");
  h.update("bc");
  EXPECT_EQ(h.hexDigest(), Sha256::hex("abc"));
  h.update("abc");
  EXPECT_EQ(h.hexDigest(), Sha256::hex("abc"));
}

}  // namespace
}  // namespace plfm
