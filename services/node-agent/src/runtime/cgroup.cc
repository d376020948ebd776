#include "runtime/cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

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

namespace {

Result<void> setControl(const std::string& group, const std::string& file,
                        const std::string& value) {
  if (!writeControl(group + "/" + file, value)) {
    return Error(errc::kFailedPrecondition,
                 "cannot set " + file + " = " + value + " in cgroup " + group)
        .with("cgroup", group);
  }
  return ok();
}

Result<std::string> makeGroup(const std::string& parent, const std::string& instance_id) {
  std::error_code ec;
  const std::string group = parent + "/" + instance_id;
  fs::create_directories(group, ec);
  if (ec) {
    return Error(errc::kFailedPrecondition, "cannot create cgroup " + group + ": " + ec.message())
        .with("cgroup", group);
  }
  return group;
}

}  // namespace

Result<std::vector<std::string>> prepareVmmGroups(const std::string& instance_id,
                                                  const VmmLimits& limits,
                                                  const CgroupOptions& options) {
  const std::string mem = std::to_string(limits.memory_max_bytes);
  const std::string pids = std::to_string(limits.pids_max);
  const std::string controllers = readFile(options.root + "/cgroup.controllers").value_or("");
  if (!controllers.empty()) {
    // cgroup v2: one group; the parent holds no processes and hands the
    // controllers down.
    for (const char* c : {"memory", "pids"}) {
      if (controllers.find(c) == std::string::npos) {
        return Error(errc::kFailedPrecondition,
                     std::string("cgroup v2 has no ") + c + " controller at " + options.root);
      }
    }
    const bool cpu = controllers.find("cpu") != std::string::npos;
    const std::string parent = options.root + "/" + options.group;
    std::error_code ec;
    fs::create_directories(parent, ec);
    const std::string subtree = readFile(parent + "/cgroup.subtree_control").value_or("");
    for (const std::string c : {"memory", "pids", "cpu"}) {
      if (c == "cpu" && !cpu) continue;
      if (subtree.find(c) == std::string::npos)
        PLFM_TRY(setControl(parent, "cgroup.subtree_control", "+" + c));
    }
    PLFM_ASSIGN_OR_RETURN(const std::string group, makeGroup(parent, instance_id));
    PLFM_TRY(setControl(group, "memory.max", mem));
    PLFM_TRY(setControl(group, "pids.max", pids));
    if (cpu) {
      PLFM_TRY(setControl(group, "cpu.weight",
                          std::to_string(std::clamp(100 * limits.vcpus, 1, 10000))));
    }
    return std::vector<std::string>{group + "/cgroup.procs"};
  }
  // cgroup v1: a group per hierarchy.
  std::vector<std::string> procs;
  for (const char* c : {"memory", "pids"}) {
    if (!fs::exists(options.root + "/" + c + "/cgroup.procs")) {
      return Error(errc::kFailedPrecondition,
                   std::string("no cgroup ") + c + " hierarchy at " + options.root + "/" + c);
    }
  }
  PLFM_ASSIGN_OR_RETURN(std::string group,
                        makeGroup(options.root + "/memory/" + options.group, instance_id));
  PLFM_TRY(setControl(group, "memory.limit_in_bytes", mem));
  if (fs::exists(group + "/memory.memsw.limit_in_bytes")) {
    PLFM_TRY(setControl(group, "memory.memsw.limit_in_bytes", mem));  // no swap beyond it
  }
  procs.push_back(group + "/cgroup.procs");
  PLFM_ASSIGN_OR_RETURN(group, makeGroup(options.root + "/pids/" + options.group, instance_id));
  PLFM_TRY(setControl(group, "pids.max", pids));
  procs.push_back(group + "/cgroup.procs");
  if (fs::exists(options.root + "/cpu/cgroup.procs")) {
    PLFM_ASSIGN_OR_RETURN(group, makeGroup(options.root + "/cpu/" + options.group, instance_id));
    PLFM_TRY(setControl(group, "cpu.shares",
                        std::to_string(std::clamp(1024 * limits.vcpus, 2, 262144))));
    procs.push_back(group + "/cgroup.procs");
  }
  return procs;
}

namespace {

// Every directory the instance's groups may have, under v2 and each v1
// controller we use.
std::vector<std::string> candidateGroups(const std::string& instance_id,
                                         const CgroupOptions& options) {
  std::vector<std::string> out;
  for (const std::string& parent :
       {options.root + "/" + options.group, options.root + "/cpu/" + options.group,
        options.root + "/memory/" + options.group, options.root + "/pids/" + options.group}) {
    std::string group = parent;
    group += '/';
    group += instance_id;
    out.push_back(std::move(group));
  }
  return out;
}

}  // namespace

std::vector<std::string> existingVmmGroups(const std::string& instance_id,
                                           const CgroupOptions& options) {
  std::vector<std::string> out;
  for (auto& group : candidateGroups(instance_id, options)) {
    struct stat st {};
    if (::stat(group.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) out.push_back(std::move(group));
  }
  return out;
}

void removeVmmGroup(const std::string& instance_id, const CgroupOptions& options) {
  for (const std::string& group : candidateGroups(instance_id, options)) {
    // A VMM just sent SIGKILL may still be exiting: its group stays busy
    // (EBUSY) until the last task is gone, so wait a little for it rather
    // than leave the group behind.
    for (int attempt = 0; attempt < 200; ++attempt) {
      if (::rmdir(group.c_str()) == 0 || errno != EBUSY) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

}  // namespace plfm::runtime
