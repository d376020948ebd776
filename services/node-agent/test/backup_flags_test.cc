// The agent's backup settings: flags, PLFM_AGENT_* variables and the TOML
// [backup] section (flags win), durations, and the password file refused at
// start with the reason.
#include "backup_flags.h"
#include "config_file.h"

#include <gtest/gtest.h>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <fstream>

#include "plfm/core/process.h"
#include "plfm/testing/temp_dir.h"
#include "support/run_flags.h"

namespace plfm::agent {
namespace {

// Parses `plfm-node-agent run <args>` into options as run_command.cc does;
// false on a usage error.
bool parse(const std::string& args, AgentOptions& o) {
  return testing::parseRun(args, [&o](CLI::App& run) {
    run.add_option("--listen", o.listen);
    addBackupOptions(run, o);
  });
}

TEST(BackupFlags, TheTomlBackupSectionFillsTheOptionsAndFlagsWin) {
  plfm::testing::TempDir dir("bkf");
  const std::string toml = dir.file("agent.toml");
  std::ofstream(toml) << "listen = \"[::1]:9102\"\n[backup]\nrepository = \"sftp:b@host:/srv/r\"\n"
                         "password-file = \"/etc/plfm/backup.pw\"\n"
                         "sftp-command = \"ssh -i /k b@host -s sftp\"\n"
                         "restic-binary = \"/usr/local/bin/restic\"\nverify-every = \"7d\"\n";
  AgentOptions o;
  ASSERT_TRUE(parse("--config " + toml, o));
  EXPECT_EQ(o.backup.repository, "sftp:b@host:/srv/r");
  EXPECT_EQ(o.backup.password_file, "/etc/plfm/backup.pw");
  EXPECT_EQ(o.backup.sftp_command, "ssh -i /k b@host -s sftp");
  EXPECT_EQ(o.backup.restic_binary, "/usr/local/bin/restic");
  EXPECT_EQ(o.verify_every, std::chrono::hours(24 * 7));
  EXPECT_EQ(o.listen, "[::1]:9102");

  AgentOptions flagged;
  ASSERT_TRUE(
      parse("--config " + toml + " --backup-repository /srv/local --verify-every 90m", flagged));
  EXPECT_EQ(flagged.backup.repository, "/srv/local");
  EXPECT_EQ(flagged.backup.password_file, "/etc/plfm/backup.pw");
  EXPECT_EQ(flagged.verify_every, std::chrono::minutes(90));
}

TEST(BackupFlags, UnknownSettingsAndBadValuesInTheFileAreRefused) {
  plfm::testing::TempDir dir("bku");
  for (const char* text :
       {"no-such-flag = 1\n", "[backup]\nlisten = \"x\"\n", "[other]\nrepository = \"x\"\n",
        "[backup]\nverify-every = \"5s\"\n", "backup-repository = \"/srv/r\"\nconfig = \"/x\"\n"}) {
    const std::string toml = dir.file("bad.toml");
    std::ofstream(toml) << text;
    AgentOptions o;
    EXPECT_FALSE(parse("--config " + toml, o)) << text;
  }
  AgentOptions o;
  EXPECT_FALSE(parse("--config " + dir.file("missing.toml"), o));
  const std::string top = dir.file("top.toml");
  std::ofstream(top) << "backup-repository = \"/srv/top\"\n";
  ASSERT_TRUE(parse("--config " + top, o));
  EXPECT_EQ(o.backup.repository, "/srv/top");
}

// The file goes through plfm::config::ConfigTable, like the control plane's
// and the ingress's: an error names the file, the line and the key.
TEST(BackupFlags, AFileErrorNamesTheLineAndTheKey) {
  plfm::testing::TempDir dir("bkl");
  const std::string toml = dir.file("agent.toml");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"listen = \"[::1]:9102\"\n[backup]\nrepositry = \"/srv/r\"\n",
       toml + ":3:1: 'backup.repositry' is not a known setting; did you mean "
              "'backup.repository'?"},
      {"\n[backup]\nverify-every = \"5s\"\n", toml + ":3:16: 'backup.verify-every' is refused: "},
      {"listen = [\n", toml + ":"},
  };
  for (const auto& [text, want] : cases) {
    std::ofstream(toml) << text;
    CLI::App app;
    auto* run = app.add_subcommand("run");
    AgentOptions o;
    run->add_option("--listen", o.listen);
    addBackupOptions(*run, o);
    run->callback([run, &toml] { applyConfigFile(*run, toml); });
    std::string message;
    try {
      app.parse("run", false);
    } catch (const CLI::ParseError& e) {
      message = e.what();
    }
    EXPECT_EQ(message.rfind(want, 0), 0u) << text << " -> " << message;
  }
}

TEST(BackupFlags, DefaultsEnvironmentAndBadDurations) {
  AgentOptions o;
  ASSERT_TRUE(parse("", o));
  EXPECT_EQ(o.backup.repository, "");
  EXPECT_EQ(o.backup.restic_binary, "restic");
  EXPECT_EQ(o.verify_every, std::chrono::hours(24));

  ::setenv("PLFM_AGENT_BACKUP_REPOSITORY", "/srv/from-env", 1);
  AgentOptions env;
  const bool parsed = parse("", env);
  ::unsetenv("PLFM_AGENT_BACKUP_REPOSITORY");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(env.backup.repository, "/srv/from-env");

  for (const char* bad : {"10s", "abc", "-1h", "31d"}) {
    AgentOptions b;
    EXPECT_FALSE(parse(std::string("--verify-every ") + bad, b)) << bad;
  }
}

TEST(BackupFlags, ARepositoryNeedsAPrivatePasswordFileAtStart) {
  plfm::testing::TempDir dir("bkp");
  AgentOptions o;
  o.state_dir = dir.path();
  ASSERT_TRUE(finishBackupOptions(o));  // no repository: nothing to check
  EXPECT_EQ(o.backup.cache_dir, dir.file("restic-cache"));

  o.backup.repository = "/srv/restic";
  auto none = finishBackupOptions(o);
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("needs --backup-password-file"), std::string::npos);

  o.backup.password_file = dir.file("pw");
  ASSERT_TRUE(writeFileAtomic(o.backup.password_file, "pw", 0640));
  auto loose = finishBackupOptions(o);
  ASSERT_FALSE(loose);
  EXPECT_NE(loose.error().message().find("has mode 0640"), std::string::npos);
  ASSERT_TRUE(writeFileAtomic(o.backup.password_file, "pw", 0600));
  EXPECT_TRUE(finishBackupOptions(o));
}

}  // namespace
}  // namespace plfm::agent
