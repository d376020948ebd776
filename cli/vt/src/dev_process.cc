#include "dev_process.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <thread>

#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::vt::dev {
namespace fs = std::filesystem;

namespace {

struct PgUser {
  bool as_postgres = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

PgUser pgUser() {
  PgUser u;
  if (::geteuid() != 0) return u;
  if (const passwd* pw = ::getpwnam("postgres")) {
    u.as_postgres = true;
    u.uid = pw->pw_uid;
    u.gid = pw->pw_gid;
  }
  return u;
}

// The fields after "(comm)" in /proc/PID/stat, starting at field 3.
std::vector<std::string> statFields(pid_t pid) {
  auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return {};
  const size_t paren = stat->rfind(')');
  if (paren == std::string::npos || paren + 2 > stat->size()) return {};
  std::istringstream in(stat->substr(paren + 2));
  std::vector<std::string> fields;
  for (std::string f; in >> f;) fields.push_back(f);
  return fields;
}

}  // namespace

Result<void> writePidFile(const std::string& path, pid_t pid) {
  return writeFileAtomic(path,
                         std::to_string(pid) + " " + std::to_string(processStartTime(pid)) + "\n");
}

pid_t readPidFile(const std::string& path) {
  auto text = readFile(path);
  if (!text) return -1;
  std::istringstream in(*text);
  pid_t pid = -1;
  std::string started;
  in >> pid >> started;
  if (!isRunning(pid) || std::to_string(processStartTime(pid)) != started) return -1;
  return pid;
}

pid_t recordedPid(const std::string& path) {
  auto text = readFile(path);
  if (!text) return -1;
  std::istringstream in(*text);
  pid_t pid = -1;
  in >> pid;
  return pid > 1 ? pid : -1;
}

std::vector<pid_t> processesInSession(pid_t sid) {
  std::vector<pid_t> out;
  if (sid <= 1) return out;
  std::error_code ec;
  for (const auto& d : fs::directory_iterator("/proc", ec)) {
    const std::string name = d.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::atoi(name.c_str()));
    const auto f = statFields(pid);
    // Field 6, the session id; a zombie (state Z) is not running.
    if (f.size() > 3 && f[0] != "Z" && std::atoi(f[3].c_str()) == sid) out.push_back(pid);
  }
  return out;
}

bool isAncestor(pid_t pid) {
  for (pid_t p = ::getpid(); p > 1;) {
    if (p == pid) return true;
    auto f = statFields(p);
    if (f.size() < 2) return false;
    p = static_cast<pid_t>(std::atoi(f[1].c_str()));  // field 4: ppid
  }
  return false;
}

std::vector<std::string> socketsUnder(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
      out.push_back(it->path().string());
    }
  }
  return out;
}

std::vector<std::string> mountsUnder(const std::string& dir) {
  std::vector<std::string> out;
  auto info = readFile("/proc/self/mountinfo");
  if (!info) return out;
  std::istringstream in(*info);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    if (mount_point == dir || mount_point.rfind(dir + "/", 0) == 0) out.push_back(mount_point);
  }
  return out;
}

bool tcpPortFree(const std::string& ip, int port) {
  const bool v6 = ip.find(':') != std::string::npos;
  const int fd = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;  // cannot tell; let the component report it
  int on = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  int rc = -1;
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET6, ip.c_str(), &a.sin6_addr);
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    rc = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  }
  const int err = errno;
  ::close(fd);
  return rc == 0 || err != EADDRINUSE;
}

std::vector<std::string> vtTaps() {
  std::vector<std::string> out;
  struct if_nameindex* names = ::if_nameindex();
  if (names == nullptr) return out;
  for (struct if_nameindex* n = names; n->if_index != 0; ++n) {
    if (std::string_view(n->if_name).rfind("vt-", 0) == 0) out.emplace_back(n->if_name);
  }
  ::if_freenameindex(names);
  return out;
}

std::string onPath(const std::string& name) {
  const char* env = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe)
  const std::string path = env != nullptr ? env : "";
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string candidate = path.substr(start, end - start);
    candidate += '/';
    candidate += name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

bool runsPostgresAsPostgres() { return pgUser().as_postgres; }

std::vector<std::string> asPostgres(std::vector<std::string> argv) {
  if (!pgUser().as_postgres) return argv;
  std::vector<std::string> out = {
      "setpriv",        "--reuid",    "postgres",         "--regid",        "postgres",
      "--clear-groups", "--inh-caps", "+dac_read_search", "--ambient-caps", "+dac_read_search"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

Result<void> mkdirOwned(const std::string& dir, mode_t mode, bool for_postgres) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Error(errc::kIo, "creating " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), mode);
  const PgUser u = pgUser();
  if (for_postgres && u.as_postgres && ::chown(dir.c_str(), u.uid, u.gid) != 0) {
    return errnoError("chown " + dir, errno);
  }
  return ok();
}

}  // namespace plfm::vt::dev
