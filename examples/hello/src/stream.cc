#include "stream.h"

#include <sys/socket.h>

#include <cerrno>

namespace plfm::hello {

long PlainStream::read(char* buf, size_t len) {
  for (;;) {
    ssize_t n = ::recv(fd_, buf, len, 0);
    if (n >= 0) return n;
    if (errno != EINTR) return -1;
  }
}

bool PlainStream::writeAll(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace plfm::hello
