#include "plfm/testing/failure_summary.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

namespace plfm::testing {
namespace {

class FailureSummary final : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo& info) override {
    test_ = std::string(info.test_suite_name()) + "." + info.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::string msg = r.message();
    constexpr size_t kMax = 2000;  // one assertion's message, not a whole log
    if (msg.size() > kMax) msg = msg.substr(0, kMax) + "\n  [... cut]";
    const std::string where = r.file_name() != nullptr ? std::string(r.file_name()) + ":" +
                                                             std::to_string(r.line_number())
                                                       : std::string("(no source line)");
    failures_.push_back(test_ + " at " + where + "\n  " + msg);
  }
  void OnTestProgramEnd(const ::testing::UnitTest&) override {
    if (failures_.empty()) return;
    std::printf("\n==== %zu failed assertion(s), repeated from above ====\n", failures_.size());
    for (const auto& f : failures_) std::printf("%s\n", f.c_str());
    std::fflush(stdout);
  }

 private:
  std::string test_;
  std::vector<std::string> failures_;
};

}  // namespace

const void* installFailureSummary() {
  static auto* const listener = [] {
    auto* l = new FailureSummary;  // owned by gtest's listener list
    ::testing::UnitTest::GetInstance()->listeners().Append(l);
    return l;
  }();
  return listener;
}

}  // namespace plfm::testing
