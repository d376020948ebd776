#include "plfm/testing/temp_dir.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "plfm/core/assert.h"
#include "plfm/core/process.h"
#include "plfm/core/strings.h"

namespace plfm::testing {

TempDir::TempDir(std::string_view prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string tmpl = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" +
                     std::string(prefix) + "-XXXXXX";
  PLFM_ASSERT(::mkdtemp(tmpl.data()) != nullptr, "mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  if (path_.empty() || keep_) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::file(std::string_view name) const { return path_ + "/" + std::string(name); }

namespace {
int kernelFreeTcpPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  PLFM_ASSERT(fd >= 0, "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  PLFM_ASSERT(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0, "bind");
  socklen_t len = sizeof(addr);
  PLFM_ASSERT(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0, "getsockname");
  ::close(fd);
  return ntohs(addr.sin_port);
}
}  // namespace

int freeTcpPort() {
  // The kernel may hand the same released port out twice in a row; a test
  // that asks for several ports (vt dev's six) must get distinct ones.
  static std::mutex mu;
  static std::set<int> given;
  const std::lock_guard lock(mu);
  for (int attempt = 0;; ++attempt) {
    const int port = kernelFreeTcpPort();
    if (given.insert(port).second || attempt >= 100) return port;
  }
}

void expectGolden(const std::string& path, std::string_view actual) {
  const char* update = std::getenv("PLFM_UPDATE_GOLDEN");
  if (update != nullptr && std::string_view(update) == "1") {
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << actual;
    return;
  }
  auto expected = readFile(path);
  if (!expected) {
    ADD_FAILURE() << "golden file " << path
                  << " is missing; run with PLFM_UPDATE_GOLDEN=1 to create it. Actual:\n"
                  << actual;
    return;
  }
  if (*expected == actual) return;
  auto want = splitLines(*expected);
  auto got = splitLines(actual);
  size_t line = 0;
  while (line < want.size() && line < got.size() && want[line] == got[line]) ++line;
  ADD_FAILURE() << "output differs from golden file " << path << " at line " << (line + 1)
                << "\n  expected: "
                << (line < want.size() ? std::string(want[line]) : "<end of file>")
                << "\n  actual:   " << (line < got.size() ? std::string(got[line]) : "<end>")
                << "\n(PLFM_UPDATE_GOLDEN=1 rewrites the file)\nFull actual output:\n"
                << actual;
}

}  // namespace plfm::testing
