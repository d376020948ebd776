// Files a confined VMM gets from the agent as open fds rather than by path
// (confine.h): the agent, as root, opens each one (a drive, the console, a
// listening socket, the tap) and the VMM inherits them as fds 3, 4, ... in
// order, reopening a file through /proc/self/fd/N when it needs a path. Both
// drivers use it; what each passes is in its passedFiles().
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plfm/core/result.h"
#include "runtime/confine.h"
#include "runtime/microvm_runtime.h"

namespace plfm::runtime {

struct PassedFile {
  enum Kind { kRead, kReadWrite, kConsole, kListen, kTap };
  Kind kind;
  std::string path;  // kTap: the device name
};

// The fds opened for a list of PassedFile, in the same order.
struct OpenFiles {
  std::vector<int> fds;
  void closeAll();
};

// Opens every file as root; files the VMM writes (kReadWrite, kConsole) are
// handed to `uid` (0: left as they are) so that it may reopen them through
// /proc/self/fd/N. Nothing is followed through a symlink the VMM could plant.
[[nodiscard]] Result<OpenFiles> openPassedFiles(const std::vector<PassedFile>& files, uint32_t uid);

// The Landlock grants for `files`: read for kRead, read and write for
// kReadWrite and kConsole (sockets and the tap need none, being fds).
[[nodiscard]] std::vector<FileGrant> grantsFor(const std::vector<PassedFile>& files);

// The confinement request for `spec`'s VMM given `files`: its instance,
// vCPUs, memory and grantsFor(files); drivers add what else they need.
[[nodiscard]] ConfineRequest confineRequestFor(const VmSpec& spec,
                                               const std::vector<PassedFile>& files);

// "/proc/self/fd/N" for the file passed at `index` (fd 3 + index).
[[nodiscard]] std::string passedFdPath(size_t index);

// Makes the persistent tap `name` usable by `uid` without CAP_NET_ADMIN
// (TUNSETOWNER and TUNSETGROUP), for a VMM that attaches by name.
[[nodiscard]] Result<void> setTapOwner(const std::string& name, uint32_t uid);

}  // namespace plfm::runtime
