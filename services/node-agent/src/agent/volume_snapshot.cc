#include "agent/volume_snapshot.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "image/fs_util.h"

namespace plfm::agent {

bool validSnapshotId(std::string_view id) {
  return !id.empty() && id.size() <= 64 && id.front() != '-' &&
         std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
         });
}

Result<bool> tryClone(const std::string& from, const std::string& to) {
  const int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Error(errc::kIo, "open " + from + ": " + std::strerror(errno));
  const int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) {
    const int err = errno;
    ::close(in);
    return Error(errc::kIo, "create " + to + ": " + std::strerror(err));
  }
  const bool cloned = ::ioctl(out, FICLONE, in) == 0;
  ::close(out);
  ::close(in);
  return cloned;
}

Result<std::string> cloneOrCopy(const std::string& from, const std::string& to) {
  PLFM_ASSIGN_OR_RETURN(bool cloned, tryClone(from, to));
  if (cloned) return std::string("reflink");
  // copySparseFile replaces the empty file tryClone made.
  if (auto r = image::copySparseFile(from, to, 0600); !r) {
    ::unlink(to.c_str());
    return std::move(r).error();
  }
  return std::string("copy");
}

}  // namespace plfm::agent
