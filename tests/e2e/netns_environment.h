// The e2e tests that drive `vt dev` run in a private network namespace of
// their own: a gtest Environment that enters it before any test (and before
// any thread starts), failing with `what` when not root.
//
//   const auto* const kEnv = plfm::e2e::addPrivateNetworkEnvironment("vt dev e2e");
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <utility>

#include "vt_dev_driver.h"

namespace plfm::e2e {

class PrivateNetworkEnvironment : public ::testing::Environment {
 public:
  explicit PrivateNetworkEnvironment(std::string what) : what_(std::move(what)) {}
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0) << what_ << " needs root (taps, network namespaces)";
    auto r = enterPrivateNetwork();
    ASSERT_TRUE(r) << r.error().toString();
  }

 private:
  std::string what_;
};

inline ::testing::Environment* addPrivateNetworkEnvironment(std::string what) {
  return ::testing::AddGlobalTestEnvironment(new PrivateNetworkEnvironment(std::move(what)));
}

}  // namespace plfm::e2e
