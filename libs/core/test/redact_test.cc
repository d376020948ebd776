#include "plfm/core/redact.h"

#include <gtest/gtest.h>

#include <thread>

namespace plfm {
namespace {

TEST(RedactTest, MasksRegisteredValuesUntilHandleDies) {
  Redactor r;
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.redact("password=hunter2!"), "password=hunter2!");
  {
    auto h = r.add("hunter2!");
    EXPECT_FALSE(r.empty());
    EXPECT_EQ(r.redact("password=hunter2! and again hunter2!"),
              "password=[REDACTED] and again [REDACTED]");
  }
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(r.redact("password=hunter2!"), "password=hunter2!");
}

TEST(RedactTest, RefCountsDuplicateRegistrations) {
  Redactor r;
  auto a = r.add("s3cr3t-value");
  auto b = r.add("s3cr3t-value");
  a.reset();
  EXPECT_EQ(r.redact("s3cr3t-value"), "[REDACTED]");
  b.reset();
  EXPECT_EQ(r.redact("s3cr3t-value"), "s3cr3t-value");
}

TEST(RedactTest, LongestMatchWinsAndEmptyIsIgnored) {
  Redactor r;
  auto a = r.add("abc");
  auto b = r.add("abcdef");
  auto e = r.add("");
  EXPECT_EQ(r.redact("xxabcdefyy abc"), "xx[REDACTED]yy [REDACTED]");
}

TEST(RedactTest, MasksJsonEscapedForm) {
  Redactor r;
  auto h = r.add("line1\n\"quoted\"");
  EXPECT_EQ(r.redact(R"({"msg":"line1\n\"quoted\""})"), R"({"msg":"[REDACTED]"})");
  EXPECT_EQ(r.redact("raw: line1\n\"quoted\""), "raw: [REDACTED]");
}

TEST(RedactTest, MovedHandleKeepsRegistration) {
  Redactor r;
  Redactor::Handle outer;
  {
    auto h = r.add("topsecretvalue");
    outer = std::move(h);
  }
  EXPECT_EQ(r.redact("topsecretvalue"), "[REDACTED]");
  outer.reset();
  EXPECT_TRUE(r.empty());
}

TEST(RedactTest, ConcurrentAddAndRedact) {
  Redactor r;
  auto keep = r.add("always-masked");
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; i < 2000; ++i) auto h = r.add("transient-" + std::to_string(i % 10));
    stop = true;
  });
  int iterations = 0;
  while (!stop || iterations < 10) {
    EXPECT_EQ(r.redact("x always-masked y"), "x [REDACTED] y");
    ++iterations;
  }
  writer.join();
}

}  // namespace
}  // namespace plfm
