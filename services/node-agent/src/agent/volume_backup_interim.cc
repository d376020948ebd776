// INTERIM: sha256OfFile and checkVolumeImage until branch `backup` brings
// volume_backup.cc (this file goes with that merge). BackupRepository here
// refuses everything.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "agent/volume_backup.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"

namespace plfm::agent {

Result<std::string> sha256OfFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Error(errc::kIo, "opening " + path + ": " + std::strerror(errno));
  Sha256 h;
  std::string buf(1 << 20, '\0');
  while (true) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return Error(errc::kIo, "reading " + path + ": " + std::strerror(errno));
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  ::close(fd);
  return h.hexDigest();
}

Result<void> checkVolumeImage(const std::string& file, const std::string& expected_sha256,
                              const std::string& e2fsck_binary) {
  PLFM_ASSIGN_OR_RETURN(auto sha, sha256OfFile(file));
  if (sha != expected_sha256) {
    return Error(errc::kFailedPrecondition, "the restored image's sha256 " + sha +
                                                " is not the snapshot's " + expected_sha256);
  }
  if (auto r = runChecked({e2fsck_binary, "-fn", file}, {}); !r) {
    return Error(errc::kFailedPrecondition, "e2fsck -fn found errors in the restored image");
  }
  return ok();
}

BackupRepository::BackupRepository(BackupOptions options) : options_(std::move(options)) {}
Result<void> BackupRepository::ensureInitialized() {
  return Error(errc::kFailedPrecondition, "restic backups are not built in");
}
Result<BackupRecord> BackupRepository::backup(const std::string&, const std::string&,
                                              const std::string&) {
  return Error(errc::kFailedPrecondition, "restic backups are not built in");
}
Result<void> BackupRepository::restore(const std::string&, const std::string&, const std::string&) {
  return Error(errc::kFailedPrecondition, "restic backups are not built in");
}
Result<std::vector<std::string>> BackupRepository::forget(const std::string&, int) {
  return Error(errc::kFailedPrecondition, "restic backups are not built in");
}
Result<void> BackupRepository::prune() {
  return Error(errc::kFailedPrecondition, "restic backups are not built in");
}

}  // namespace plfm::agent
