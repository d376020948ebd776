#include "runtime/microvm_runtime.h"

#include <algorithm>
#include <csignal>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "plfm/core/process.h"
#include "runtime/errors.h"

namespace plfm::runtime {

nlohmann::json VmHandle::toJson() const {
  return {{"driver", driver},
          {"instance_id", instance_id},
          {"pid", pid},
          {"pid_start", pid_start},
          {"control_socket", control_socket},
          {"channel_socket", channel_socket},
          {"channel_vsock_port", channel_vsock_port},
          {"console_log", console_log},
          {"drive_paths", drive_paths}};
}

Result<VmHandle> VmHandle::fromJson(const nlohmann::json& j) {
  try {
    VmHandle h;
    h.driver = j.at("driver").get<std::string>();
    h.instance_id = j.at("instance_id").get<std::string>();
    h.pid = j.at("pid").get<pid_t>();
    h.pid_start = j.at("pid_start").get<uint64_t>();
    h.control_socket = j.at("control_socket").get<std::string>();
    h.channel_socket = j.at("channel_socket").get<std::string>();
    h.channel_vsock_port = j.value("channel_vsock_port", uint32_t{0});
    h.console_log = j.value("console_log", "");
    if (auto it = j.find("drive_paths"); it != j.end() && it->is_object()) {
      h.drive_paths = it->get<std::map<std::string, std::string>>();
    }
    return h;
  } catch (const nlohmann::json::exception& e) {
    return Error(errc::kInvalidArgument, std::string("bad VM handle: ") + e.what());
  }
}

Result<void> MicroVmRuntime::resizeDrive(const VmHandle& vm, const VmDrive& drive,
                                         uint64_t /*size_bytes*/) {
  return Error(errc::kUnsupported, std::string(name()) + " cannot resize a running drive")
      .with("instance_id", vm.instance_id)
      .with("drive", drive.id);
}

Result<std::string> MicroVmRuntime::startBackup(const VmHandle& vm, const VmDrive& drive,
                                                int /*target_fd*/) {
  return Error(errc::kUnsupported, std::string(name()) + " has no backup job")
      .with("instance_id", vm.instance_id)
      .with("drive", drive.id);
}

Result<void> MicroVmRuntime::finishBackup(const VmHandle& vm, const std::string& /*job*/,
                                          std::chrono::milliseconds /*timeout*/) {
  return Error(errc::kUnsupported, std::string(name()) + " has no backup job")
      .with("instance_id", vm.instance_id);
}

namespace {

bool optionSafe(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u >= 0x20 && u != 0x7f && c != ',';
  });
}

bool plainName(std::string_view v) {
  return !v.empty() && v.size() <= 64 && std::all_of(v.begin(), v.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == ':';
  });
}

}  // namespace

Result<void> checkVmSpec(const VmSpec& spec) {
  auto bad = [](std::string_view what) {
    return Error(errc::kInvalidArgument,
                 std::string(what) +
                     " would change the meaning of a VMM option: it may hold no "
                     "',' and no control character");
  };
  if (!plainName(spec.instance_id)) return bad("the instance id");
  if (spec.run_dir.empty() || !optionSafe(spec.run_dir)) return bad("the run directory");
  if (!optionSafe(spec.kernel)) return bad("the kernel path");
  if (!optionSafe(spec.initramfs)) return bad("the initramfs path");
  for (const auto& d : spec.drives) {
    if (!plainName(d.id)) return bad("a drive id");
    if (d.path.empty() || !optionSafe(d.path)) return bad("the path of drive " + d.id);
  }
  if (!spec.tap.empty() && !plainName(spec.tap)) return bad("the tap name");
  if (!spec.mac.empty() && !plainName(spec.mac)) return bad("the MAC address");
  for (const auto& a : spec.kernel_args) {
    if (!optionSafe(a)) return bad("a kernel argument");
  }
  return ok();
}

bool processMatches(pid_t pid, uint64_t start) {
  uint64_t actual = processStartTime(pid);
  return actual != 0 && (start == 0 || actual == start);
}

bool MicroVmRuntime::alive(const VmHandle& vm) const {
  return processMatches(vm.pid, vm.pid_start);
}

Result<void> MicroVmRuntime::kill(const VmHandle& vm) {
  if (alive(vm)) ::kill(vm.pid, SIGKILL);
  if (!waitExit(vm, std::chrono::seconds(5))) {
    return Error(errc::kInternal, "VMM did not exit after SIGKILL")
        .with("instance_id", vm.instance_id)
        .with("pid", std::to_string(vm.pid));
  }
  return ok();
}

bool MicroVmRuntime::waitExit(const VmHandle& vm, std::chrono::milliseconds timeout) const {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (alive(vm)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

}  // namespace plfm::runtime
