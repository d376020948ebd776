#include "exec_spawn.h"

#include <gtest/gtest.h>

namespace plfm::init {
namespace {

constexpr std::string_view kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# a comment line\n"
    "broken line\n"
    "app:x:1000:1001::/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/:/usr/sbin/nologin";

TEST(ExecSpawnTest, ParsesUsers) {
  EXPECT_EQ(parseExecUser("app", kPasswd), (ExecCredentials{1000, 1001, {}}));
  EXPECT_EQ(parseExecUser("nobody", kPasswd), (ExecCredentials{65534, 65534, {}}));
  EXPECT_EQ(parseExecUser("1000", kPasswd), (ExecCredentials{1000, 1001, {}}));
  EXPECT_EQ(parseExecUser("4242", kPasswd), (ExecCredentials{4242, 0, {}}));
  EXPECT_EQ(parseExecUser("5:6", ""), (ExecCredentials{5, 6, {}}));
  EXPECT_FALSE(parseExecUser("ghost", kPasswd).has_value());
  EXPECT_FALSE(parseExecUser("5:", kPasswd).has_value());
  EXPECT_FALSE(parseExecUser(":5", kPasswd).has_value());
  EXPECT_FALSE(parseExecUser("1:2:3", kPasswd).has_value());
  EXPECT_FALSE(parseExecUser("99999999999", "").has_value() &&
               parseExecUser("99999999999", "")->uid == 0);
}

TEST(ExecSpawnTest, MergesEnvOverrides) {
  EXPECT_EQ(mergeEnv({"A=1", "AB=2", "PATH=/bin"}, {"A=9", "C=3", "PATH="}),
            (std::vector<std::string>{"A=9", "AB=2", "PATH=", "C=3"}));
}

}  // namespace
}  // namespace plfm::init
