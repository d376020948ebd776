// Volume backups with the real restic (volume-mounts.md §Backups): a local
// repository (incremental backups, restore, forget), an sftp repository on a
// "backup host" in a network namespace of its own running sshd, a corrupted
// repository, and the secrets that must never show: the repository string
// and the password. A fake restic (a shell script) records its argv and
// environment. The sftp test needs root; it skips otherwise.
#include "agent/volume_backup.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "plfm/core/process.h"
#include "plfm/core/unique_fd.h"
#include "plfm/testing/temp_dir.h"
#include "volume_test_ids.h"

namespace plfm::agent {
namespace {
using testing::kMiB;

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::string_view kPassword = "hunter2-very-secret-backup-password";
const std::string kVolA = "vol_01jd0000000000000000000001";
const std::string kVolB = "vol_01jd0000000000000000000002";

// `bytes` of pseudo-random data (incompressible, so restic stores it all).
void writeRandom(const std::string& path, uint64_t bytes, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  std::vector<uint64_t> block(kMiB / 8);
  for (uint64_t done = 0; done < bytes; done += kMiB) {
    for (auto& w : block) w = rng();
    out.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(kMiB));
  }
}

// Overwrites `bytes` at `offset` with other random data.
void scribble(const std::string& path, uint64_t offset, uint64_t bytes, uint32_t seed) {
  std::mt19937 rng(seed);
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
  f.seekp(static_cast<std::streamoff>(offset));
  std::string data(bytes, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

void expectClean(const std::string& message, const BackupOptions& o) {
  EXPECT_EQ(message.find(o.repository), std::string::npos) << message;
  EXPECT_EQ(message.find("SECRETREPO"), std::string::npos) << message;
  EXPECT_EQ(message.find(kPassword), std::string::npos) << message;
  EXPECT_LE(message.size(), 512u);
  EXPECT_TRUE(std::all_of(message.begin(), message.end(), [](char c) {
    return c >= 0x20 && c < 0x7f;
  })) << message;
}

class VolumeBackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    o_.repository = dir_.file("SECRETREPO-xyzzy-local");
    o_.password_file = dir_.file("password");
    o_.cache_dir = dir_.file("restic-cache");
    ASSERT_TRUE(writeFileAtomic(o_.password_file, kPassword, 0600));
  }

  plfm::testing::TempDir dir_{"vbk"};
  BackupOptions o_;
};

TEST_F(VolumeBackupTest, IncrementalBackupsRestoreToTheSameBytesAndForgetSaysWhichWent) {
  BackupRepository repo(o_);
  ASSERT_TRUE(repo.configured());
  auto init = repo.ensureInitialized();
  ASSERT_TRUE(init) << init.error().toString();
  ASSERT_TRUE(fs::exists(o_.repository + "/config"));
  ASSERT_TRUE(repo.ensureInitialized());  // opens the existing one

  const std::string vol = dir_.file("vol.ext4");
  constexpr uint64_t kSize = 64 * kMiB;
  writeRandom(vol, kSize, 1);
  auto first = repo.backup(vol, kVolA, "snap_a1");
  ASSERT_TRUE(first) << first.error().toString();
  EXPECT_EQ(first->backup_id.size(), 64u);
  EXPECT_GT(first->bytes_added, kSize * 9 / 10);

  // 1% of the file changes: restic stores the few chunks around it.
  scribble(vol, 20 * kMiB, kSize / 100, 2);
  auto sha2 = sha256OfFile(vol);
  ASSERT_TRUE(sha2);
  auto second = repo.backup(vol, kVolA, "snap_a2");
  ASSERT_TRUE(second) << second.error().toString();
  EXPECT_NE(second->backup_id, first->backup_id);
  // The chunker's boundaries are random per repository: chunks average
  // 1 MiB but may reach 8 MiB, so the change costs one to a few chunks.
  EXPECT_LT(second->bytes_added, kSize / 4) << second->bytes_added;
  EXPECT_GT(second->bytes_added, kSize / 100 / 2) << second->bytes_added;

  const std::string back = dir_.file("restored.ext4");
  auto r = repo.restore(second->backup_id, "snap_a2", back);
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(*sha256OfFile(back), *sha2);
  EXPECT_EQ(fs::status(back).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  // Never over an existing file.
  auto again = repo.restore(second->backup_id, "snap_a2", back);
  ASSERT_FALSE(again);
  EXPECT_EQ(*sha256OfFile(back), *sha2);

  scribble(vol, 40 * kMiB, kMiB, 3);
  auto third = repo.backup(vol, kVolA, "snap_a3");
  ASSERT_TRUE(third) << third.error().toString();
  auto other = repo.backup(vol, kVolB, "snap_b1");
  ASSERT_TRUE(other) << other.error().toString();

  auto forgotten = repo.forget(kVolA, 1);
  ASSERT_TRUE(forgotten) << forgotten.error().toString();
  std::sort(forgotten->begin(), forgotten->end());
  EXPECT_EQ(*forgotten, (std::vector<std::string>{"snap_a1", "snap_a2"}));
  auto none = repo.forget(kVolA, 1);
  ASSERT_TRUE(none) << none.error().toString();
  EXPECT_TRUE(none->empty());
  auto pruned = repo.prune();
  ASSERT_TRUE(pruned) << pruned.error().toString();

  // The other volume's backup and the kept one still restore; a forgotten one
  // does not.
  EXPECT_TRUE(repo.restore(other->backup_id, "snap_b1", dir_.file("b1.ext4")));
  EXPECT_TRUE(repo.restore(third->backup_id, "snap_a3", dir_.file("a3.ext4")));
  auto gone = repo.restore(first->backup_id, "snap_a1", dir_.file("a1.ext4"));
  ASSERT_FALSE(gone);
  EXPECT_FALSE(fs::exists(dir_.file("a1.ext4")));
  expectClean(gone.error().message(), o_);
}

TEST_F(VolumeBackupTest, ARestoredImageIsCheckedBySha256AndE2fsck) {
  const std::string vol = dir_.file("fs.ext4");
  std::ofstream(vol).close();
  ASSERT_EQ(::truncate(vol.c_str(), static_cast<off_t>(32 * kMiB)), 0);
  ASSERT_TRUE(runChecked({"mkfs.ext4", "-q", "-F", vol}, {}));
  const std::string sha = *sha256OfFile(vol);
  EXPECT_EQ(sha.size(), 64u);

  BackupRepository repo(o_);
  ASSERT_TRUE(repo.ensureInitialized());
  auto rec = repo.backup(vol, kVolA, "snap_fs");
  ASSERT_TRUE(rec) << rec.error().toString();
  const std::string back = dir_.file("restore-fs");
  ASSERT_TRUE(repo.restore(rec->backup_id, "snap_fs", back));
  auto checked = checkVolumeImage(back, sha);
  EXPECT_TRUE(checked) << checked.error().toString();
  // The restored image is as sparse as the volume: a fresh ext4 of 32 MiB
  // holds a few MiB of metadata.
  struct stat st {};
  ASSERT_EQ(::stat(back.c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), 32 * kMiB);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 8 * kMiB) << st.st_blocks;

  auto mismatch = checkVolumeImage(back, std::string(64, 'a'));
  ASSERT_FALSE(mismatch);
  EXPECT_NE(mismatch.error().message().find("sha256 check failed"), std::string::npos);

  // The right sha256 of bytes that are not a clean filesystem.
  const std::string junk = dir_.file("junk.ext4");
  writeRandom(junk, 4 * kMiB, 9);
  auto fsck = checkVolumeImage(junk, *sha256OfFile(junk));
  ASSERT_FALSE(fsck);
  EXPECT_NE(fsck.error().message().find("e2fsck -fn check failed"), std::string::npos)
      << fsck.error().message();
  EXPECT_FALSE(checkVolumeImage(dir_.file("missing"), sha));
  EXPECT_FALSE(checkVolumeImage(back, "not-a-sha"));
}

TEST_F(VolumeBackupTest, ACorruptedRepositoryIsReportedAndNothingIsRestored) {
  BackupRepository repo(o_);
  ASSERT_TRUE(repo.ensureInitialized());
  const std::string vol = dir_.file("vol.ext4");
  writeRandom(vol, 8 * kMiB, 5);
  auto rec = repo.backup(vol, kVolA, "snap_c1");
  ASSERT_TRUE(rec) << rec.error().toString();
  // Flip bytes in the largest pack file: the volume's data.
  std::string biggest;
  uintmax_t size = 0;
  for (const auto& e : fs::recursive_directory_iterator(o_.repository + "/data")) {
    if (e.is_regular_file() && e.file_size() > size) {
      size = e.file_size();
      biggest = e.path().string();
    }
  }
  ASSERT_GT(size, 4 * kMiB);
  fs::permissions(biggest, fs::perms::owner_write, fs::perm_options::add);
  scribble(biggest, size / 2, 16, 6);

  const std::string back = dir_.file("restored.ext4");
  auto r = repo.restore(rec->backup_id, "snap_c1", back);
  ASSERT_FALSE(r) << "a corrupted backup was restored";
  EXPECT_FALSE(fs::exists(back));
  EXPECT_NE(r.error().message().find("restic dump failed"), std::string::npos)
      << r.error().message();
  expectClean(r.error().message(), o_);
}

TEST_F(VolumeBackupTest, TheLockOfAResticThatWasKilledDoesNotBlockTheNextRun) {
  BackupRepository repo(o_);
  ASSERT_TRUE(repo.ensureInitialized());
  // A backup whose stdin never ends, killed while it holds its lock.
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  UniqueFd read_end(pipe_fds[0]);
  UniqueFd write_end(pipe_fds[1]);
  SpawnOptions so;
  so.stdin_fd = read_end.get();
  so.env = {"RESTIC_REPOSITORY=" + o_.repository, "RESTIC_PASSWORD_FILE=" + o_.password_file,
            "RESTIC_CACHE_DIR=" + o_.cache_dir};
  auto killed = spawn({"restic", "backup", "--stdin", "--stdin-filename", "x"}, so);
  ASSERT_TRUE(killed) << killed.error().toString();
  const std::string locks = o_.repository + "/locks";
  for (int i = 0; i < 200 && fs::is_empty(locks); ++i) std::this_thread::sleep_for(50ms);
  ASSERT_FALSE(fs::is_empty(locks));
  killed->signal(SIGKILL);
  (void)killed->wait();
  ASSERT_FALSE(fs::is_empty(locks));  // left behind

  auto forgotten = repo.forget(kVolA, 1);  // an exclusive lock
  ASSERT_TRUE(forgotten) << forgotten.error().toString();
  const std::string vol = dir_.file("vol.ext4");
  writeRandom(vol, 2 * kMiB, 4);
  auto rec = repo.backup(vol, kVolA, "snap_l1");
  ASSERT_TRUE(rec) << rec.error().toString();
}

TEST_F(VolumeBackupTest, ErrorsNeverShowTheRepositoryOrThePassword) {
  BackupRepository repo(o_);
  ASSERT_TRUE(repo.ensureInitialized());
  // The wrong password for an existing repository: no init over it.
  const std::string wrong = dir_.file("wrong-password");
  ASSERT_TRUE(writeFileAtomic(wrong, "another-password", 0600));
  BackupOptions w = o_;
  w.password_file = wrong;
  auto opened = BackupRepository(w).ensureInitialized();
  ASSERT_FALSE(opened);
  expectClean(opened.error().message(), w);
  EXPECT_EQ(opened.error().message().find(wrong), std::string::npos);

  // An unknown backup id, and a repository that cannot be created.
  auto unknown = repo.restore(std::string(64, 'e'), "snap_x", dir_.file("x"));
  ASSERT_FALSE(unknown);
  expectClean(unknown.error().message(), o_);
  BackupOptions nowhere = o_;
  nowhere.repository = "/proc/SECRETREPO-nowhere/repo";
  auto made = BackupRepository(nowhere).ensureInitialized();
  ASSERT_FALSE(made);
  expectClean(made.error().message(), nowhere);

  EXPECT_EQ(scrubReason("at sftp:u@backup.example:/srv/r: no\nroute\x01",
                        [] {
                          BackupOptions s;
                          s.repository = "sftp:u@backup.example:/srv/r";
                          return s;
                        }()),
            "at <repository>: no; route?");
  BackupOptions rest;
  rest.repository = "rest:https://backup:pa55word@backup.example:8000/plfm";
  const std::string said = scrubReason(
      "Fatal: unable to open config file: Head \"https://backup:***@backup.example:8000/plfm/"
      "config\": dial tcp: lookup backup.example: no such host",
      rest);
  EXPECT_EQ(said.find("backup.example"), std::string::npos) << said;
  EXPECT_EQ(said.find("pa55word"), std::string::npos) << said;
  EXPECT_LE(scrubReason(std::string(4096, 'x'), o_).size(), 512u);
}

// A fake restic records what it was given.
std::string fakeRestic(const plfm::testing::TempDir& dir, const std::string& body = "") {
  std::string path = dir.file("fake-restic");
  std::ofstream(path) << "#!/bin/sh\necho \"$@\" >> " << dir.file("argv") << "\nenv >> "
                      << dir.file("env") << "\n"
                      << body << "\n";
  fs::permissions(path, fs::perms::owner_all);
  return path;
}

TEST_F(VolumeBackupTest, TheRepositoryAndPasswordFileGoThroughTheEnvironmentNeverArgv) {
  BackupOptions o = o_;
  o.restic_binary = fakeRestic(dir_);
  o.sftp_command = "ssh -i /k backup@host -s sftp";
  ::setenv("RESTIC_PASSWORD", "inherited-from-the-operator", 1);
  auto r = BackupRepository(o).prune();
  ::unsetenv("RESTIC_PASSWORD");
  ASSERT_TRUE(r) << r.error().toString();
  const std::string argv = *readFile(dir_.file("argv"));
  const std::string env = *readFile(dir_.file("env"));
  EXPECT_EQ(argv, "-o sftp.command=ssh -i /k backup@host -s sftp prune\n");
  EXPECT_NE(env.find("RESTIC_REPOSITORY=" + o.repository + "\n"), std::string::npos) << env;
  EXPECT_NE(env.find("RESTIC_PASSWORD_FILE=" + o.password_file + "\n"), std::string::npos);
  EXPECT_NE(env.find("RESTIC_CACHE_DIR=" + o.cache_dir + "\n"), std::string::npos);
  EXPECT_EQ(env.find("RESTIC_PASSWORD="), std::string::npos) << env;
  EXPECT_EQ(env.find(kPassword), std::string::npos);
  EXPECT_EQ(argv.find(kPassword), std::string::npos);
}

TEST_F(VolumeBackupTest, HostileIdsNeverReachRestic) {
  BackupOptions o = o_;
  o.restic_binary = fakeRestic(dir_);
  BackupRepository repo(o);
  const std::string vol = dir_.file("vol");
  std::ofstream(vol) << "x";
  for (const std::string& bad :
       std::vector<std::string>{"", "--help", "../../etc/passwd", "snap_a,plfm-volume=x", "A",
                                "snap a", std::string(65, 'a')}) {
    auto b = repo.backup(vol, kVolA, bad);
    ASSERT_FALSE(b) << bad;
    EXPECT_EQ(b.error().code(), errc::kInvalidArgument);
    EXPECT_FALSE(repo.restore(std::string(64, 'a'), bad, dir_.file("t")));
  }
  for (const std::string bad : {"", "vol_x", "--tag=x", "vol_01JD0000000000000000000001",
                                "vol_01jd0000000000000000000001,x"}) {
    EXPECT_FALSE(repo.backup(vol, bad, "snap_1")) << bad;
    EXPECT_FALSE(repo.forget(bad, 3)) << bad;
  }
  for (const std::string& bad :
       std::vector<std::string>{"", "latest", std::string(63, 'a'), std::string(64, 'A'), "--help",
                                std::string(65, 'a')}) {
    EXPECT_FALSE(repo.restore(bad, "snap_1", dir_.file("t"))) << bad;
  }
  EXPECT_FALSE(repo.forget(kVolA, 0));
  EXPECT_FALSE(fs::exists(dir_.file("argv"))) << *readFile(dir_.file("argv"));
  EXPECT_FALSE(fs::exists(dir_.file("t")));
}

TEST_F(VolumeBackupTest, AResticRunThatHangsIsKilledAtTheTimeout) {
  BackupOptions o = o_;
  o.restic_binary = fakeRestic(dir_, "sleep 30");
  o.timeout = 1s;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = BackupRepository(o).prune();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), errc::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
  EXPECT_FALSE(BackupRepository(BackupOptions{}).prune());  // not configured
  BackupOptions no_password = o_;
  no_password.restic_binary = o.restic_binary;
  no_password.password_file.clear();
  EXPECT_FALSE(BackupRepository(no_password).prune());
  EXPECT_NE(BackupRepository(BackupOptions{})
                .prune()
                .error()
                .message()
                .find("no backup repository is configured on this node"),
            std::string::npos);
}

TEST(VolumeBackupConfig, PasswordFilesMustBeOursAndPrivate) {
  plfm::testing::TempDir dir("vbp");
  const std::string good = dir.file("good");
  ASSERT_TRUE(writeFileAtomic(good, "pw", 0600));
  EXPECT_TRUE(checkPasswordFile(good));
  const std::string loose = dir.file("loose");
  ASSERT_TRUE(writeFileAtomic(loose, "pw", 0644));
  auto r = checkPasswordFile(loose);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find(loose + " has mode 0644"), std::string::npos)
      << r.error().message();
  const std::string link = dir.file("link");
  fs::create_symlink(good, link);
  EXPECT_NE(checkPasswordFile(link).error().message().find("is a symlink"), std::string::npos);
  EXPECT_NE(checkPasswordFile(dir.path()).error().message().find("not a regular file"),
            std::string::npos);
  EXPECT_FALSE(checkPasswordFile(dir.file("missing")));
  EXPECT_FALSE(checkPasswordFile(""));
  const std::string empty = dir.file("empty");
  ASSERT_TRUE(writeFileAtomic(empty, "", 0600));
  EXPECT_NE(checkPasswordFile(empty).error().message().find("is empty"), std::string::npos);
  if (::geteuid() == 0) {
    ASSERT_EQ(::chown(good.c_str(), 1234, 1234), 0);
    EXPECT_NE(checkPasswordFile(good).error().message().find("owned by uid 1234"),
              std::string::npos);
  }
}

TEST(VolumeBackupConfig, OnlyTheSchemeOfARepositoryIsShown) {
  EXPECT_EQ(repositoryScheme(""), "none");
  EXPECT_EQ(repositoryScheme("/srv/restic"), "local");
  EXPECT_EQ(repositoryScheme("relative/dir"), "local");
  EXPECT_EQ(repositoryScheme("local:/srv/restic"), "local");
  EXPECT_EQ(repositoryScheme("sftp:user@host:/srv/restic"), "sftp");
  EXPECT_EQ(repositoryScheme("rest:https://u:p@host:8000/"), "rest");
  EXPECT_EQ(repositoryScheme("s3:s3.amazonaws.com/bucket"), "s3");
  EXPECT_EQ(repositoryScheme("secret-host:/x"), "unknown");
}

// --- sftp: a "backup host" in a network namespace of its own ---

bool canConnect(const std::string& ip, int port) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return ::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
}

Result<void> sh(const std::vector<std::string>& argv) {
  SpawnOptions so;
  so.stdout_path = "/dev/null";
  so.timeout = 20s;
  return runChecked(argv, so);
}

// sshd on 192.0.2.2:2222 in a namespace joined to ours by a veth pair; only
// the client key made here gets in, and the client knows only its host key.
class BackupHost {
 public:
  explicit BackupHost(const plfm::testing::TempDir& dir) : dir_(dir) {}
  ~BackupHost() {
    if (sshd_.valid()) {
      sshd_.signal(SIGTERM);
      (void)sshd_.waitOrKill(5s, true);
    }
  }

  Result<void> start() {
    PLFM_ASSIGN_OR_RETURN(holder_, spawn({"unshare", "--net", "sleep", "600"}));
    const std::string ns = "--net=/proc/" + std::to_string(holder_.pid()) + "/ns/net";
    std::this_thread::sleep_for(200ms);  // unshare has run
    PLFM_TRY(sh({"ip", "link", "add", "bk0", "type", "veth", "peer", "name", "bk1", "netns",
                 std::to_string(holder_.pid())}));
    PLFM_TRY(sh({"ip", "addr", "add", "192.0.2.1/24", "dev", "bk0"}));
    PLFM_TRY(sh({"ip", "link", "set", "bk0", "up"}));
    PLFM_TRY(sh({"nsenter", ns, "ip", "addr", "add", "192.0.2.2/24", "dev", "bk1"}));
    PLFM_TRY(sh({"nsenter", ns, "ip", "link", "set", "bk1", "up"}));
    PLFM_TRY(sh({"nsenter", ns, "ip", "link", "set", "lo", "up"}));
    PLFM_TRY(sh({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir_.file("host_key")}));
    PLFM_TRY(sh({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir_.file("client_key")}));
    fs::copy_file(dir_.file("client_key.pub"), dir_.file("authorized_keys"));
    std::ofstream(dir_.file("known_hosts"))
        << "[192.0.2.2]:2222 " << *readFile(dir_.file("host_key.pub"));
    std::ofstream(dir_.file("sshd_config"))
        << "ListenAddress 192.0.2.2:2222\nHostKey " << dir_.file("host_key")
        << "\nAuthorizedKeysFile " << dir_.file("authorized_keys")
        << "\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
           "KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPidFile none\n"
           "Subsystem sftp internal-sftp\n";
    std::error_code ec;
    fs::create_directories("/run/sshd", ec);  // sshd's privilege separation dir
    SpawnOptions so;
    so.stdout_path = dir_.file("sshd.log");
    PLFM_ASSIGN_OR_RETURN(
        sshd_,
        spawn({"nsenter", ns, "/usr/sbin/sshd", "-D", "-e", "-f", dir_.file("sshd_config")}, so));
    for (int i = 0; i < 100 && !canConnect("192.0.2.2", 2222); ++i) {
      std::this_thread::sleep_for(100ms);
    }
    if (!canConnect("192.0.2.2", 2222)) {
      return Error(errc::kUnavailable, "sshd did not start: " + tailFile(dir_.file("sshd.log"), 5));
    }
    return ok();
  }

  [[nodiscard]] std::string sftpCommand() const {
    return "ssh -i " + dir_.file("client_key") +
           " -o UserKnownHostsFile=" + dir_.file("known_hosts") +
           " -o StrictHostKeyChecking=yes -o BatchMode=yes -o IdentitiesOnly=yes -p 2222 "
           "root@192.0.2.2 -s sftp";
  }
  void stop() {
    sshd_.signal(SIGTERM);
    (void)sshd_.waitOrKill(5s, true);
  }

 private:
  const plfm::testing::TempDir& dir_;
  Process holder_;
  Process sshd_;
};

TEST_F(VolumeBackupTest, AnSftpRepositoryOnAnotherHostBacksUpAndRestores) {
  if (::geteuid() != 0) GTEST_SKIP() << "the sftp backup host needs root (network namespaces)";
  if (::unshare(CLONE_NEWNET) != 0) GTEST_SKIP() << "no network namespaces here";
  ASSERT_TRUE(sh({"ip", "link", "set", "lo", "up"}));
  BackupHost host(dir_);
  auto started = host.start();
  ASSERT_TRUE(started) << started.error().toString();

  BackupOptions o = o_;
  o.repository = "sftp:root@192.0.2.2:" + dir_.file("SECRETREPO-sftp");
  o.sftp_command = host.sftpCommand();
  BackupRepository repo(o);
  auto init = repo.ensureInitialized();
  ASSERT_TRUE(init) << init.error().toString();
  EXPECT_TRUE(fs::exists(dir_.file("SECRETREPO-sftp/config")));

  const std::string vol = dir_.file("vol.ext4");
  writeRandom(vol, 16 * kMiB, 7);
  auto rec = repo.backup(vol, kVolA, "snap_s1");
  ASSERT_TRUE(rec) << rec.error().toString();
  scribble(vol, 3 * kMiB, uint64_t{160} * 1024, 8);
  auto rec2 = repo.backup(vol, kVolA, "snap_s2");
  ASSERT_TRUE(rec2) << rec2.error().toString();
  EXPECT_LT(rec2->bytes_added, 12 * kMiB);  // chunks average 1 MiB, up to 8
  const std::string back = dir_.file("restored.ext4");
  auto r = repo.restore(rec2->backup_id, "snap_s2", back);
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ(*sha256OfFile(back), *sha256OfFile(vol));

  // The host goes away: the error names neither it nor the repository.
  host.stop();
  auto down = repo.backup(vol, kVolA, "snap_s3");
  ASSERT_FALSE(down);
  expectClean(down.error().message(), o);
  EXPECT_EQ(down.error().message().find("192.0.2.2"), std::string::npos) << down.error().message();
}

}  // namespace
}  // namespace plfm::agent
