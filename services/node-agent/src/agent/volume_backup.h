// Off-node backups of volume snapshots with restic (docs/specs/runtime/
// volume-mounts.md §Backups and "Contracts for snapshots, backups, restore
// and verify"): encrypted, deduplicating and incremental.
//
// restic runs by argv only. The repository string reaches it as
// RESTIC_REPOSITORY and the password as RESTIC_PASSWORD_FILE (a path) in its
// environment, never on argv, so /proc/PID/cmdline shows neither; errors keep
// restic's stderr with the repository string scrubbed.
//
//   BackupRepository repo(options);
//   PLFM_TRY(repo.ensureInitialized());
//   PLFM_ASSIGN_OR_RETURN(auto rec, repo.backup(snapshot_file, volume_id, snapshot_id));
//   PLFM_TRY(repo.restore(rec.backup_id, snapshot_id, "/state/volumes/.restore-vop_1"));
//   PLFM_TRY(checkVolumeImage("/state/volumes/.restore-vop_1", expected_sha256));
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "plfm/core/result.h"
#include "plfm/core/unique_fd.h"

namespace plfm::agent {

struct BackupOptions {
  std::string restic_binary = "restic";
  // A restic repository string ("/srv/restic", "sftp:user@host:/srv/restic");
  // empty: no repository (configured() is false).
  std::string repository;
  std::string password_file;  // regular file, 0600 or stricter, owned by us
  std::string sftp_command;   // optional: restic -o sftp.command=...
  std::string cache_dir;      // RESTIC_CACHE_DIR (STATE/restic-cache)
  std::string e2fsck_binary = "e2fsck";
  std::chrono::seconds timeout{3600};  // per restic run
};

// Checks the password file (regular, not a symlink, mode 0600 or stricter,
// owned by this process's uid); the error names the file and the reason.
[[nodiscard]] Result<void> checkPasswordFile(const std::string& path);

// `text` made fit for a reason (events, errors, logs): the repository
// string and the parts restic or ssh echo of it (path, host), the sftp
// command and the password file's path replaced by "<repository>", line
// breaks as "; ", other unprintable bytes as '?', at most 512 bytes.
[[nodiscard]] std::string scrubReason(std::string_view text, const BackupOptions& options);

// The scheme of a repository string for logs ("local", "sftp", "rest",
// "s3", ...): never the string itself.
[[nodiscard]] std::string repositoryScheme(std::string_view repository);

struct BackupRecord {
  std::string backup_id;  // restic's snapshot id, 64 hex
  uint64_t bytes_added = 0;
  int64_t duration_ms = 0;
};

class BackupRepository {
 public:
  explicit BackupRepository(BackupOptions options);

  [[nodiscard]] bool configured() const { return !options_.repository.empty(); }
  [[nodiscard]] const BackupOptions& options() const { return options_; }

  // Opens the repository, or initializes it when it does not exist yet.
  [[nodiscard]] Result<void> ensureInitialized();

  // `restic backup --stdin` of `file` as /<snapshot_id>.ext4, tagged
  // plfm-volume=<volume_id> and plfm-snapshot=<snapshot_id>.
  [[nodiscard]] Result<BackupRecord> backup(const std::string& file, const std::string& volume_id,
                                            const std::string& snapshot_id);

  // `restic dump <backup_id> /<snapshot_id>.ext4` into `target`, created
  // O_EXCL 0600 (removed again on any error); runs of zeros become holes.
  [[nodiscard]] Result<void> restore(const std::string& backup_id, const std::string& snapshot_id,
                                     const std::string& target);

  // `restic forget --keep-last keep` over the volume's tag; the snapshot ids
  // (ours, from the plfm-snapshot tags) whose backups it removed.
  [[nodiscard]] Result<std::vector<std::string>> forget(const std::string& volume_id, int keep);

  // `restic prune`: frees the data forgotten backups held.
  [[nodiscard]] Result<void> prune();

 private:
  // restic with `args` (the sftp command and the cache in front), the
  // repository and password file in its environment; returns its stdout
  // (empty when `stdout_fd` took it). Errors are scrubbed.
  // `stdout_pipe`: the write end of a pipe behind `stdout_fd`, closed once
  // restic holds it (no retry after a stale lock then: the caller's).
  [[nodiscard]] Result<std::string> run(const std::vector<std::string>& args, int stdin_fd = -1,
                                        int stdout_fd = -1, UniqueFd* stdout_pipe = nullptr);
  // `restic dump` into `out`, sparse.
  [[nodiscard]] Result<void> dumpInto(const std::string& backup_id, const std::string& snapshot_id,
                                      int out);

  BackupOptions options_;
};

// The lowercase hex SHA-256 of a file's bytes.
[[nodiscard]] Result<std::string> sha256OfFile(const std::string& path);

// The restore drill's checks of a restored image: its SHA-256 equals
// `expected_sha256` and `e2fsck -fn` finds nothing. The error says which
// failed (a corrupted backup is never restored silently).
[[nodiscard]] Result<void> checkVolumeImage(const std::string& file,
                                            const std::string& expected_sha256,
                                            const std::string& e2fsck_binary = "e2fsck");

}  // namespace plfm::agent
