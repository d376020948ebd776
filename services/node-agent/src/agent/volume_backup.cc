#include "agent/volume_backup.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <utility>

#include "agent/restic_output.h"
#include "agent/volume_snapshot.h"
#include "plfm/core/hex.h"
#include "plfm/core/id.h"
#include "plfm/core/process.h"
#include "plfm/core/sha256.h"
#include "plfm/core/unique_fd.h"

namespace plfm::agent {
namespace {

constexpr size_t kMaxReason = 512;
constexpr size_t kMaxCapture = size_t{16} << 20;  // restic's JSON on stdout
constexpr std::string_view kScrubbed = "<repository>";

void replaceAll(std::string& text, std::string_view what, std::string_view with) {
  if (what.empty()) return;
  for (size_t at = text.find(what); at != std::string::npos;
       at = text.find(what, at + with.size())) {
    text.replace(at, what.size(), with);
  }
}

// The pieces of a repository string that restic or ssh may echo in an error:
// the whole string, what follows its scheme ("user@host:/srv/restic"), the
// path and its parents, and the host. Pieces shorter than 3 bytes are left alone (scrubbing
// "/" would garble every message).
std::vector<std::string> secretPieces(const BackupOptions& o) {
  std::vector<std::string> pieces = {o.repository, o.sftp_command, o.password_file};
  std::string_view rest = o.repository;
  if (const auto colon = rest.find(':'); colon != std::string_view::npos) {
    rest = rest.substr(colon + 1);
    pieces.emplace_back(rest);
  }
  // rest:https://user:password@host:8000/path: the authority is the host.
  if (const auto url = rest.find("://"); url != std::string_view::npos) {
    rest = rest.substr(url + 3);
    if (rest.find('/') == std::string_view::npos) pieces.emplace_back(rest);
  }
  if (const auto slash = rest.find('/'); slash != std::string_view::npos) {
    // The path and its ancestors two components deep or more: restic names
    // the first missing one ("mkdir /srv/backups: permission denied").
    const std::string_view path = rest.substr(slash);
    for (size_t end = path.size(); end != std::string_view::npos && end > 0;
         end = path.rfind('/', end - 1)) {
      const std::string_view prefix = path.substr(0, end);
      if (std::count(prefix.begin(), prefix.end(), '/') >= 2) pieces.emplace_back(prefix);
    }
    std::string_view host = rest.substr(0, slash);
    while (!host.empty() && host.back() == ':') host.remove_suffix(1);
    pieces.emplace_back(host);
    if (const auto at = host.rfind('@'); at != std::string_view::npos) {
      pieces.emplace_back(host.substr(0, at));  // the user (and a password)
      host = host.substr(at + 1);
      pieces.emplace_back(host);
    }
    if (const auto port = host.rfind(':'); port != std::string_view::npos) {
      pieces.emplace_back(host.substr(0, port));
    }
  }
  std::erase_if(pieces, [](const std::string& p) { return p.size() < 3; });
  std::sort(pieces.begin(), pieces.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return pieces;
}

// stdout or stderr of a child, in memory.
Result<UniqueFd> memFile(const char* name) {
  const int fd = ::memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) return errnoError("memfd_create", errno);
  return UniqueFd(fd);
}

std::string readBack(int fd, size_t limit) {
  std::string out;
  if (::lseek(fd, 0, SEEK_SET) != 0) return out;
  char buf[65536];
  ssize_t n;
  while (out.size() < limit && (n = ::read(fd, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  if (out.size() > limit) out.resize(limit);
  return out;
}

struct Captured {
  std::string out;  // empty when stdout went to a caller's fd
  std::string err;
};

// Runs argv with stdout and stderr captured (or stdout into `stdout_fd`),
// killing it past `timeout`. The error carries the last of stderr.
// `close_after_spawn`: our copy of a pipe's write end the child writes to,
// closed once it has its own so the reader sees the end.
Result<Captured> runCaptured(const std::vector<std::string>& argv, SpawnOptions so,
                             std::chrono::seconds timeout, const std::string& what,
                             UniqueFd* close_after_spawn = nullptr) {
  PLFM_ASSIGN_OR_RETURN(UniqueFd out, memFile("plfm-out"));
  PLFM_ASSIGN_OR_RETURN(UniqueFd err, memFile("plfm-err"));
  if (so.stdout_fd < 0) so.stdout_fd = out.get();
  so.stderr_fd = err.get();
  auto spawned = spawn(argv, so);
  if (close_after_spawn != nullptr) close_after_spawn->reset();
  PLFM_ASSIGN_OR_RETURN(Process p, std::move(spawned));
  const auto st =
      p.waitOrKill(std::chrono::duration_cast<std::chrono::milliseconds>(timeout), so.new_session);
  Captured c;
  c.err = readBack(err.get(), kMaxCapture);
  if (!st) {
    return Error(
        errc::kDeadlineExceeded,
        what + " ran longer than " + std::to_string(timeout.count()) + " s and was killed");
  }
  if (exitCodeOf(*st) != 0) {
    // The end of stderr says why (e2fsck writes to stdout); keep its tail
    // within the reason's limit.
    std::string tail = c.err;
    if (tail.empty() && so.stdout_fd == out.get()) tail = readBack(out.get(), kMaxCapture);
    if (tail.size() > kMaxReason) tail = tail.substr(tail.size() - kMaxReason);
    return Error(errc::kIo, what + " failed (" + describeWaitStatus(*st) + ")" +
                                (tail.empty() ? "" : ": " + tail));
  }
  if (so.stdout_fd == out.get()) c.out = readBack(out.get(), kMaxCapture);
  return c;
}

bool shortHex(std::string_view s) {
  return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
  });
}

// Copies `in` (a pipe) to `out`, seeking over 64 KiB blocks of zeros so the
// file stays as sparse as the volume was, then sets its size.
Result<void> copySparse(int in, int out) {
  constexpr size_t kBlock = size_t{64} << 10;
  std::vector<char> buf(size_t{1} << 20);
  uint64_t total = 0;
  for (;;) {
    size_t have = 0;
    while (have < buf.size()) {
      const ssize_t n = ::read(in, buf.data() + have, buf.size() - have);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errnoError("read restic's output", errno);
      if (n == 0) break;
      have += static_cast<size_t>(n);
    }
    for (size_t at = 0; at < have; at += kBlock) {
      const size_t len = std::min(kBlock, have - at);
      const char* p = buf.data() + at;
      const bool zeros = p[0] == 0 && std::memcmp(p, p + 1, len - 1) == 0;
      if (zeros) {
        if (::lseek(out, static_cast<off_t>(len), SEEK_CUR) < 0) {
          return errnoError("seek the restore target", errno);
        }
        continue;
      }
      for (size_t done = 0; done < len;) {
        const ssize_t n = ::write(out, p + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return errnoError("write the restore target", errno);
        done += static_cast<size_t>(n);
      }
    }
    total += have;
    if (have < buf.size()) break;  // the end of the stream
  }
  if (::ftruncate(out, static_cast<off_t>(total)) != 0) {
    return errnoError("size the restore target", errno);
  }
  return ok();
}

Error notA(const char* what) { return Error(errc::kInvalidArgument, std::string("not a ") + what); }

}  // namespace

std::string scrubReason(std::string_view text, const BackupOptions& options) {
  std::string out(text);
  for (const auto& piece : secretPieces(options)) replaceAll(out, piece, kScrubbed);
  // Printable ASCII only: line breaks become "; ", anything else '?'.
  std::string clean;
  clean.reserve(out.size());
  for (const char c : out) {
    if (c == '\n') {
      if (!clean.empty() && clean.back() != ' ') clean += "; ";
    } else if (c >= 0x20 && c < 0x7f) {
      clean += c;
    } else if (c != '\r') {
      clean += '?';
    }
  }
  while (!clean.empty() && (clean.back() == ' ' || clean.back() == ';')) clean.pop_back();
  if (clean.size() > kMaxReason) clean.resize(kMaxReason);
  return clean;
}

Result<void> checkPasswordFile(const std::string& path) {
  if (path.empty()) return Error(errc::kInvalidArgument, "no backup password file is configured");
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return errnoError("backup password file " + path, errno);
  }
  auto refuse = [&](const std::string& why) {
    return Error(errc::kInvalidArgument, "backup password file " + path + " " + why);
  };
  if (S_ISLNK(st.st_mode)) return refuse("is a symlink");
  if (!S_ISREG(st.st_mode)) return refuse("is not a regular file");
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(std::string("has mode ") + mode + " (0600 or stricter needed)");
  }
  if (st.st_uid != ::geteuid()) {
    return refuse("is owned by uid " + std::to_string(st.st_uid) + ", not by the agent's uid " +
                  std::to_string(::geteuid()));
  }
  if (st.st_size == 0) return refuse("is empty");
  return ok();
}

std::string repositoryScheme(std::string_view repository) {
  if (repository.empty()) return "none";
  const auto colon = repository.find(':');
  if (colon == std::string_view::npos || repository.front() == '/' || repository.front() == '.') {
    return "local";
  }
  const std::string_view scheme = repository.substr(0, colon);
  for (const std::string_view known :
       {"local", "sftp", "rest", "s3", "b2", "azure", "gs", "swift", "rclone"}) {
    if (scheme == known) return std::string(known);
  }
  return "unknown";
}

BackupRepository::BackupRepository(BackupOptions options) : options_(std::move(options)) {}

Result<std::string> BackupRepository::run(const std::vector<std::string>& args, int stdin_fd,
                                          int stdout_fd, UniqueFd* stdout_pipe) {
  if (!configured()) {
    return Error(errc::kFailedPrecondition, "no backup repository is configured on this node");
  }
  if (options_.password_file.empty()) {
    // Without one restic reads the password from stdin: a backup's stdin is
    // the volume.
    return Error(errc::kFailedPrecondition, "no backup password file is configured on this node");
  }
  std::vector<std::string> argv = {options_.restic_binary};
  if (!options_.sftp_command.empty()) {
    argv.emplace_back("-o");
    argv.push_back("sftp.command=" + options_.sftp_command);
  }
  argv.insert(argv.end(), args.begin(), args.end());
  SpawnOptions so;
  so.stdin_fd = stdin_fd;
  so.stdout_fd = stdout_fd;
  // Nothing of the agent's environment but PATH and HOME (ssh reads ~/.ssh):
  // the repository and the password file's path reach restic here, never on
  // argv, and no RESTIC_* or cloud credential the operator's shell held does.
  so.inherit_env = false;
  const char* path = std::getenv("PATH");
  const char* home = std::getenv("HOME");
  so.env = {"PATH=" + std::string(path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME=" + std::string(home != nullptr ? home : "/root"),
            "RESTIC_REPOSITORY=" + options_.repository,
            "RESTIC_PASSWORD_FILE=" + options_.password_file};
  if (!options_.cache_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options_.cache_dir, ec);
    so.env.push_back("RESTIC_CACHE_DIR=" + options_.cache_dir);
  } else {
    argv.insert(argv.begin() + 1, "--no-cache");
  }
  auto c = runCaptured(argv, so, options_.timeout, "restic " + args.front(), stdout_pipe);
  if (!c && args.front() != "unlock" && stdout_pipe == nullptr &&
      c.error().message().find("repository is already locked") != std::string::npos) {
    // A restic killed at its timeout (or with the agent) leaves its lock
    // behind. `restic unlock` removes only stale locks (their process gone
    // from this host, or 30 min old), never a live run's; then try once more
    // from the start of stdin and of a fresh stdout.
    std::vector<std::string> unlock(argv.begin(), argv.end() - static_cast<long>(args.size()));
    unlock.emplace_back("unlock");
    SpawnOptions quiet = so;
    quiet.stdin_fd = -1;
    quiet.stdout_fd = -1;
    (void)runCaptured(unlock, quiet, options_.timeout, "restic unlock");
    if (stdin_fd >= 0) ::lseek(stdin_fd, 0, SEEK_SET);
    if (stdout_fd >= 0 && ::ftruncate(stdout_fd, 0) == 0) ::lseek(stdout_fd, 0, SEEK_SET);
    c = runCaptured(argv, so, options_.timeout, "restic " + args.front());
  }
  if (!c) return Error(c.error().code(), scrubReason(c.error().message(), options_));
  return std::move(c->out);
}

Result<void> BackupRepository::ensureInitialized() {
  auto opened = run({"cat", "config"});
  if (opened) return ok();
  // restic says "unable to open config file" when nothing is there yet; any
  // other failure (a wrong password, an unreachable host) is not ours to
  // paper over with an init.
  if (opened.error().message().find("unable to open config file") == std::string::npos) {
    return opened.error();
  }
  PLFM_TRY(run({"init"}));
  return ok();
}

Result<BackupRecord> BackupRepository::backup(const std::string& file, const std::string& volume_id,
                                              const std::string& snapshot_id) {
  if (!VolumeId::parse(volume_id)) return notA("volume id");
  if (!validSnapshotId(snapshot_id)) return notA("snapshot id");
  const auto t0 = std::chrono::steady_clock::now();
  UniqueFd in(::open(file.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) return errnoError("open snapshot file", errno);
  PLFM_ASSIGN_OR_RETURN(std::string out,
                        run({"backup", "--json", "--quiet", "--stdin", "--stdin-filename",
                             snapshot_id + ".ext4", "--tag", "plfm-volume=" + volume_id, "--tag",
                             "plfm-snapshot=" + snapshot_id, "--host", "plfm"},
                            in.get()));
  // restic 0.14's summary carries data_added and the short (8 hex) id of
  // the new snapshot, which `snapshots` turns into the full one.
  const auto summary = parseBackupSummary(out);
  if (!summary || !shortHex(summary->short_id)) {
    return Error(errc::kIo, "restic backup printed no snapshot id");
  }
  BackupRecord rec;
  rec.bytes_added = summary->data_added;
  PLFM_ASSIGN_OR_RETURN(std::string listed, run({"snapshots", "--json", summary->short_id}));
  rec.backup_id = fullSnapshotId(listed, summary->short_id);
  if (!isLowerHex64(rec.backup_id)) {
    return Error(errc::kIo, "restic did not list the snapshot it just made");
  }
  rec.duration_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  return rec;
}

Result<void> BackupRepository::restore(const std::string& backup_id, const std::string& snapshot_id,
                                       const std::string& target) {
  if (!isLowerHex64(backup_id)) return notA("backup id");
  if (!validSnapshotId(snapshot_id)) return notA("snapshot id");
  UniqueFd out(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return errnoError("create the restore target", errno);
  auto dumped = dumpInto(backup_id, snapshot_id, out.get());
  if (dumped && ::fsync(out.get()) != 0) dumped = errnoError("fsync the restore target", errno);
  if (!dumped) {
    ::unlink(target.c_str());
    return dumped.error();
  }
  return ok();
}

Result<void> BackupRepository::dumpInto(const std::string& backup_id,
                                        const std::string& snapshot_id, int out) {
  for (int attempt = 0;; ++attempt) {
    // restic writes every byte, zeros too; a pipe and copySparse keep the
    // holes of a volume that is mostly empty.
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return errnoError("pipe2", errno);
    UniqueFd read_end(fds[0]);
    UniqueFd write_end(fds[1]);
    Result<void> copied = ok();
    std::thread writer([&] {
      copied = copySparse(read_end.get(), out);
      read_end.reset();  // a failed write ends restic's too (EPIPE)
    });
    auto dumped =
        run({"dump", backup_id, "/" + snapshot_id + ".ext4"}, -1, write_end.get(), &write_end);
    write_end.reset();
    writer.join();
    if (!dumped && attempt == 0 &&
        dumped.error().message().find("repository is already locked") != std::string::npos) {
      (void)run({"unlock"});  // stale locks only, as in run()
      if (::ftruncate(out, 0) != 0 || ::lseek(out, 0, SEEK_SET) != 0) {
        return errnoError("reset the restore target", errno);
      }
      continue;
    }
    if (!copied) return copied.error();  // restic then died of the broken pipe
    if (!dumped) return dumped.error();
    return ok();
  }
}

Result<std::vector<std::string>> BackupRepository::forget(const std::string& volume_id, int keep) {
  if (!VolumeId::parse(volume_id)) return notA("volume id");
  if (keep < 1 || keep > 100000) return Error(errc::kInvalidArgument, "keep must be at least 1");
  // One group per volume: by default restic groups by host and paths, and
  // every snapshot here has a path of its own.
  PLFM_ASSIGN_OR_RETURN(std::string out,
                        run({"forget", "--json", "--tag", "plfm-volume=" + volume_id, "--host",
                             "plfm", "--group-by", "", "--keep-last", std::to_string(keep)}));
  PLFM_ASSIGN_OR_RETURN(const auto tag_lists, removedSnapshotTags(out));
  std::vector<std::string> removed;
  constexpr std::string_view kTag = "plfm-snapshot=";
  for (const auto& tags : tag_lists) {
    for (const auto& tag : tags) {
      if (tag.starts_with(kTag) && validSnapshotId(tag.substr(kTag.size()))) {
        removed.push_back(tag.substr(kTag.size()));
      }
    }
  }
  return removed;
}

Result<void> BackupRepository::prune() {
  PLFM_TRY(run({"prune"}));
  return ok();
}

Result<std::string> sha256OfFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errnoError("open " + path, errno);
  Sha256 h;
  std::vector<char> buf(size_t{1} << 20);
  for (;;) {
    const ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError("read " + path, errno);
    }
    h.update(buf.data(), static_cast<size_t>(n));
  }
  return h.hexDigest();
}

Result<void> checkVolumeImage(const std::string& file, const std::string& expected_sha256,
                              const std::string& e2fsck_binary) {
  if (!isLowerHex64(expected_sha256)) {
    return Error(errc::kInvalidArgument, "the expected sha256 is not 64 lowercase hex");
  }
  PLFM_ASSIGN_OR_RETURN(const std::string got, sha256OfFile(file));
  if (got != expected_sha256) {
    return Error(errc::kIo, "sha256 check failed: the restored image has " + got +
                                ", the snapshot had " + expected_sha256);
  }
  auto fsck = runCaptured({e2fsck_binary, "-fn", file}, {}, std::chrono::seconds(3600), "e2fsck");
  if (!fsck) {
    return Error(errc::kIo, scrubReason("e2fsck -fn check failed: " + fsck.error().message(), {}));
  }
  return ok();
}

}  // namespace plfm::agent
