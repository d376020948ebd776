#include "plfm/core/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <thread>

namespace plfm {
namespace {

std::string tempPath(const char* name) {
  return (std::filesystem::temp_directory_path() /
          (std::string("plfm-proc-") + std::to_string(::getpid()) + "-" + name))
      .string();
}

TEST(ProcessTest, RunsAndCapturesOutput) {
  const std::string out = tempPath("out");
  std::filesystem::remove(out);
  SpawnOptions o;
  o.stdout_path = out;
  auto p = spawn({"/bin/sh", "-c", "echo hello; echo oops >&2; exit 3"}, o);
  ASSERT_TRUE(p.has_value()) << p.error().toString();
  const int st = p->wait();
  EXPECT_EQ(exitCodeOf(st), 3);
  EXPECT_EQ(describeWaitStatus(st), "exited 3");
  EXPECT_EQ(*readFile(out), "hello\noops\n");
  std::filesystem::remove(out);
}

TEST(ProcessTest, MissingProgramIsAClearError) {
  auto p = spawn({"/nonexistent/prog"});
  ASSERT_FALSE(p.has_value());
  EXPECT_NE(p.error().message().find("cannot start '/nonexistent/prog': exec"), std::string::npos)
      << p.error().message();
}

TEST(ProcessTest, SearchesPathAndKillsOnDestruction) {
  pid_t pid;
  {
    auto p = spawn({"sleep", "30"});
    ASSERT_TRUE(p.has_value()) << p.error().toString();
    pid = p->pid();
    EXPECT_TRUE(processAlive(pid));
    EXPECT_FALSE(p->waitFor(std::chrono::milliseconds(10)).has_value());
  }
  EXPECT_FALSE(processAlive(pid));
}

TEST(ProcessTest, SignalDeathIsDescribed) {
  auto p = spawn({"sleep", "30"});
  ASSERT_TRUE(p.has_value());
  p->signal(SIGTERM);
  const int st = p->wait();
  EXPECT_EQ(describeWaitStatus(st), "killed by signal 15");
  EXPECT_EQ(exitCodeOf(st), 128 + 15);
}

TEST(ProcessTest, RunCheckedReportsOutputTail) {
  const std::string out = tempPath("checked");
  SpawnOptions o;
  o.stdout_path = out;
  auto r = runChecked({"/bin/sh", "-c", "echo first; echo the-reason; exit 2"}, o);
  ASSERT_FALSE(r.has_value());
  EXPECT_NE(r.error().message().find("exited 2"), std::string::npos);
  EXPECT_NE(r.error().message().find("the-reason"), std::string::npos);
  std::filesystem::remove(out);
}

TEST(ProcessTest, RunCheckedKillsTheProcessGroupPastItsTimeout) {
  const std::string out = tempPath("timeout");
  SpawnOptions o;
  o.stdout_path = out;
  o.timeout = std::chrono::milliseconds(200);
  const auto t0 = std::chrono::steady_clock::now();
  // The shell's background child goes too: the whole group is killed.
  auto r = runChecked({"/bin/sh", "-c", "sleep 30 & echo $!; sleep 30"}, o);
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().code(), errc::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(10));
  const auto background = static_cast<pid_t>(std::atol(readFile(out).value_or("0").c_str()));
  ASSERT_GT(background, 0);
  for (int i = 0; i < 100 && processRunning(background); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(processRunning(background));
  std::filesystem::remove(out);
}

TEST(ProcessTest, AChildCanGetOnlyTheEnvironmentItIsGivenAndFdsForItsOutput) {
  ::setenv("PLFM_PROCESS_TEST_SECRET", "inherited", 1);
  const std::string out = tempPath("env");
  std::filesystem::remove(out);
  const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  SpawnOptions o;
  o.inherit_env = false;
  o.env = {"ONLY=this"};
  o.stdout_fd = fd;
  auto r = runChecked({"/usr/bin/env"}, o);
  ::close(fd);
  ::unsetenv("PLFM_PROCESS_TEST_SECRET");
  ASSERT_TRUE(r.has_value()) << r.error().toString();
  EXPECT_EQ(*readFile(out), "ONLY=this\n");
  std::filesystem::remove(out);
}

TEST(ProcessTest, WriteFileAtomic) {
  const std::string path = tempPath("atomic");
  ASSERT_TRUE(writeFileAtomic(path, "one", 0600).has_value());
  ASSERT_TRUE(writeFileAtomic(path, "two", 0600).has_value());
  EXPECT_EQ(*readFile(path), "two");
  EXPECT_EQ(std::filesystem::status(path).permissions() & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::remove(path);
  EXPECT_FALSE(readFile(path).has_value());
}

}  // namespace
}  // namespace plfm
