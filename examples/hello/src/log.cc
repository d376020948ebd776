#include "log.h"

#include <cstdio>
#include <mutex>

namespace plfm::hello {

void logLine(std::string_view line) {
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace plfm::hello
