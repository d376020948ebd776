#include "backup_flags.h"

#include <CLI/CLI.hpp>
#include <map>

namespace plfm::agent {
namespace {

constexpr int64_t kMinVerifyEvery = 60;
constexpr int64_t kMaxVerifyEvery = int64_t{30} * 86400;

// "90s", "15m", "24h", "7d" or plain seconds.
CLI::AsNumberWithUnit durationUnits() {
  return CLI::AsNumberWithUnit(
      std::map<std::string, int64_t>{{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}},
      CLI::AsNumberWithUnit::CASE_SENSITIVE, "DURATION");
}

}  // namespace

void addBackupOptions(CLI::App& run, AgentOptions& o) {
  BackupOptions& b = o.backup;
  const auto add = [&run](const char* flag, std::string& target, const char* env,
                          const char* help) {
    return run.add_option(flag, target, help)->envname(env);
  };
  add("--backup-repository", b.repository, "PLFM_AGENT_BACKUP_REPOSITORY",
      "A restic repository for volume backups (\"/srv/restic\", "
      "\"sftp:user@host:/srv/restic\"); it reaches restic only through its environment, and "
      "only its scheme is logged");
  add("--backup-password-file", b.password_file, "PLFM_AGENT_BACKUP_PASSWORD_FILE",
      "The repository's password: a regular file, mode 0600 or stricter, owned by the agent's "
      "user (refused at start otherwise)");
  add("--backup-sftp-command", b.sftp_command, "PLFM_AGENT_BACKUP_SFTP_COMMAND",
      "For an sftp repository: the ssh command restic runs (restic -o sftp.command=...), e.g. "
      "\"ssh -i /etc/plfm/backup_key backup@host -s sftp\"");
  add("--restic-binary", b.restic_binary, "PLFM_AGENT_RESTIC_BINARY", "The restic binary")
      ->capture_default_str();
  run.add_option_function<int64_t>(
         "--verify-every", [&o](int64_t s) { o.verify_every = std::chrono::seconds(s); },
         "How often each volume's newest backup is restored and checked (a duration: 90m, "
         "24h, 7d)")
      ->envname("PLFM_AGENT_VERIFY_EVERY")
      ->default_str("24h")
      ->transform(durationUnits())
      ->check(CLI::Range(kMinVerifyEvery, kMaxVerifyEvery));
}

Result<void> finishBackupOptions(AgentOptions& o) {
  if (o.backup.cache_dir.empty()) o.backup.cache_dir = o.state_dir + "/restic-cache";
  if (o.backup.repository.empty()) return ok();
  if (o.backup.password_file.empty()) {
    return Error(errc::kInvalidArgument, "--backup-repository needs --backup-password-file");
  }
  return checkPasswordFile(o.backup.password_file);
}

}  // namespace plfm::agent
