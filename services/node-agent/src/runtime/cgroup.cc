#include "runtime/cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>

#include "plfm/core/process.h"

namespace plfm::runtime {
namespace fs = std::filesystem;
namespace {

bool writeControl(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace

Result<bool> placeVmm(pid_t pid, const std::string& instance_id, int vcpus,
                      const CgroupOptions& options) {
  std::error_code ec;
  std::string parent;
  std::string control;
  std::string value;
  if (readFile(options.root + "/cgroup.controllers").value_or("").find("cpu") !=
      std::string::npos) {
    // cgroup v2: the parent holds no processes, so it may hand cpu down.
    parent = options.root + "/" + options.group;
    fs::create_directories(parent, ec);
    if (ec) return false;  // read-only cgroupfs (a container): not available
    if (readFile(parent + "/cgroup.subtree_control").value_or("").find("cpu") ==
            std::string::npos &&
        !writeControl(parent + "/cgroup.subtree_control", "+cpu")) {
      return false;
    }
    control = "cpu.weight";
    value = std::to_string(std::clamp(100 * vcpus, 1, 10000));
  } else if (fs::exists(options.root + "/cpu/cgroup.procs")) {
    // cgroup v1's cpu hierarchy: shares, 1024 per vCPU.
    parent = options.root + "/cpu/" + options.group;
    fs::create_directories(parent, ec);
    if (ec) return false;
    control = "cpu.shares";
    value = std::to_string(std::clamp(1024 * vcpus, 2, 262144));
  } else {
    return false;
  }
  const std::string group = parent + "/" + instance_id;
  fs::create_directories(group, ec);
  if (ec) return Error(errc::kIo, "creating cgroup " + group + ": " + ec.message());
  if (!writeControl(group + "/" + control, value)) {
    return Error(errc::kIo, "setting " + control + " of " + group);
  }
  if (!writeControl(group + "/cgroup.procs", std::to_string(pid))) {
    return Error(errc::kIo, "moving the VMM into " + group);
  }
  return true;
}

std::string vmmGroupOf(pid_t pid) {
  std::string text = readFile("/proc/" + std::to_string(pid) + "/cgroup").value_or("");
  for (size_t start = 0; start < text.size();) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    // "0::/plfm-vms/ID" (v2) or "4:cpu,cpuacct:/plfm-vms/ID" (v1)
    auto c1 = line.find(':');
    auto c2 = line.find(':', c1 + 1);
    std::string ctrl = line.substr(c1 + 1, c2 - c1 - 1);
    if (ctrl.empty() || ctrl.find("cpu") != std::string::npos) {
      std::string path = line.substr(c2 + 1);
      if (path.find("/plfm-vms/") != std::string::npos) return path;
    }
    start = end + 1;
  }
  return "";
}

void removeVmmGroup(const std::string& instance_id, const CgroupOptions& options) {
  for (const std::string& parent :
       {options.root + "/" + options.group, options.root + "/cpu/" + options.group}) {
    std::string group = parent;
    group += '/';
    group += instance_id;
    ::rmdir(group.c_str());
  }
}

}  // namespace plfm::runtime
