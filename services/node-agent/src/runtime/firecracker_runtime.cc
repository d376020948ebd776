#include "runtime/firecracker_runtime.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "plfm/core/process.h"
#include "plfm/http/http.h"
#include "runtime/detached.h"
#include "runtime/errors.h"
#include "runtime/unix_line_client.h"

namespace plfm::runtime {
namespace fs = std::filesystem;
namespace {

std::string bootArgs(const VmSpec& spec) {
  std::string args = "console=ttyS0 reboot=k panic=1 pci=off quiet 8250.nr_uarts=1";
  for (const auto& a : spec.kernel_args) args += " " + a;
  return args;
}

// What Firecracker opens by path beyond its fds: the devices the jailer
// puts in its chroot. The two it needs read-write become its own nodes.
void addDevices(const VmSpec& spec, ConfineRequest& req) {
  std::error_code ec;
  if (fs::exists("/dev/kvm", ec)) req.devices.emplace_back("/dev/kvm");
  if (!spec.tap.empty()) req.devices.emplace_back("/dev/net/tun");
  req.device_dir = spec.run_dir + "/dev";
  if (fs::exists("/dev/urandom", ec)) req.files.push_back({"/dev/urandom", FileGrant::kRead});
}

// The API is up when it accepts a connection: its socket file appears at
// bind(), a moment before listen(), and a connect in between is refused.
bool apiAccepts(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) return false;
  return UnixLineClient::connect(path, std::chrono::milliseconds(0)).has_value();
}

}  // namespace

FirecrackerRuntime::FirecrackerRuntime(FirecrackerOptions options) : options_(std::move(options)) {}

std::vector<std::pair<std::string, std::string>> FirecrackerRuntime::apiCalls(
    const VmSpec& spec) const {
  using nlohmann::json;
  std::vector<std::pair<std::string, std::string>> calls;
  calls.emplace_back(
      "/machine-config",
      json{{"vcpu_count", spec.vcpus}, {"mem_size_mib", spec.memory_mb}, {"smt", false}}.dump());
  json boot = {{"kernel_image_path", spec.kernel}, {"boot_args", bootArgs(spec)}};
  if (!spec.initramfs.empty()) boot["initrd_path"] = spec.initramfs;
  calls.emplace_back("/boot-source", boot.dump());
  for (const auto& d : spec.drives) {
    calls.emplace_back("/drives/" + d.id, json{{"drive_id", d.id},
                                               {"path_on_host", d.path},
                                               {"is_root_device", false},
                                               {"is_read_only", d.read_only}}
                                              .dump());
  }
  if (!spec.tap.empty()) {
    calls.emplace_back(
        "/network-interfaces/eth0",
        json{{"iface_id", "eth0"}, {"host_dev_name", spec.tap}, {"guest_mac", spec.mac}}.dump());
  }
  calls.emplace_back("/vsock",
                     json{{"guest_cid", 3}, {"uds_path", socketDir(spec) + "/v.sock"}}.dump());
  calls.emplace_back("/actions", json{{"action_type", "InstanceStart"}}.dump());
  return calls;
}

std::vector<PassedFile> FirecrackerRuntime::passedFiles(const VmSpec& spec) {
  std::vector<PassedFile> files;
  files.push_back({PassedFile::kRead, spec.kernel});
  if (!spec.initramfs.empty()) files.push_back({PassedFile::kRead, spec.initramfs});
  for (const auto& d : spec.drives) {
    files.push_back({d.read_only ? PassedFile::kRead : PassedFile::kReadWrite, d.path});
  }
  return files;
}

VmSpec FirecrackerRuntime::vmmView(const VmSpec& spec) {
  VmSpec view = spec;
  size_t next = 0;
  view.kernel = passedFdPath(next++);
  if (!view.initramfs.empty()) view.initramfs = passedFdPath(next++);
  for (auto& d : view.drives) d.path = passedFdPath(next++);
  return view;
}

Result<std::string> FirecrackerRuntime::diskSerial(const VmDrive& drive) const {
  struct stat st {};
  if (::stat(drive.path.c_str(), &st) != 0) {
    return Error(errc::kIo, "stat " + drive.path + ": " + std::strerror(errno));
  }
  std::string id =
      std::to_string(st.st_dev) + std::to_string(st.st_rdev) + std::to_string(st.st_ino);
  id.resize(std::min<size_t>(id.size(), 20));  // VIRTIO_BLK_ID_BYTES
  return id;
}

std::string FirecrackerRuntime::socketDir(const VmSpec& spec) { return spec.run_dir + "/api"; }

Result<VmHandle> FirecrackerRuntime::start(const VmSpec& spec) {
  PLFM_TRY(checkVmSpec(spec));
  std::error_code ec;
  fs::create_directories(spec.run_dir, ec);
  if (ec) return Error(errc::kIo, "creating " + spec.run_dir + ": " + ec.message());
  // The run dir stays root's; the VMM may only pass through it to RUN/api,
  // which is its own and where Landlock lets it create sockets and nothing
  // else (so it cannot plant a symlink for the agent to follow).
  ::chmod(spec.run_dir.c_str(), 0711);
  const std::string sock_dir = socketDir(spec);
  fs::remove_all(sock_dir, ec);
  if (::mkdir(sock_dir.c_str(), 0700) != 0) return errnoError("creating " + sock_dir, errno);
  const std::string api = sock_dir + "/fc.sock";

  const std::vector<PassedFile> files = passedFiles(spec);
  std::optional<Confinement> jail;
  if (options_.confine.enabled) {
    ConfineRequest req = confineRequestFor(spec, files);
    req.files.push_back({sock_dir, FileGrant::kSocketDir});
    if (options_.binary.find('/') != std::string::npos) {
      req.files.push_back({options_.binary, FileGrant::kExecute});
    }
    addDevices(spec, req);
    auto prepared = Confinement::prepare(options_.confine, req);
    if (!prepared) return prepared.error().with("instance_id", spec.instance_id);
    jail = std::move(*prepared);
    if (::chown(sock_dir.c_str(), jail->uid(), jail->uid()) != 0) {
      return errnoError("handing " + sock_dir + " to the VMM's uid", errno);
    }
    if (!spec.tap.empty()) {
      auto owned = setTapOwner(spec.tap, jail->uid());
      if (!owned) return owned.error().with("instance_id", spec.instance_id);
    }
  }
  PLFM_ASSIGN_OR_RETURN(OpenFiles opened, openPassedFiles(files, jail ? jail->uid() : 0));

  std::vector<std::string> argv = {options_.binary, "--api-sock", api, "--id", spec.instance_id};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  DetachedOptions opts;
  opts.log_path = spec.run_dir + "/vmm.log";
  opts.cwd = jail ? sock_dir : spec.run_dir;
  opts.inherit_fds = opened.fds;
  if (jail) {
    opts.pre_exec = &enterConfinementHook;
    opts.pre_exec_arg = &*jail;
  }
  auto spawned = spawnDetached(argv, opts);
  opened.closeAll();  // the VMM holds its own copies now
  PLFM_ASSIGN_OR_RETURN(pid_t pid, std::move(spawned));
  // Like QEMU's -pidfile: lets a restarted agent find a VMM whose handle it
  // never saved.
  (void)writeFileAtomic(spec.run_dir + "/vmm.pid", std::to_string(pid) + "\n");
  VmHandle h;
  h.driver = "firecracker";
  h.instance_id = spec.instance_id;
  h.pid = pid;
  h.pid_start = processStartTime(pid);
  h.control_socket = api;
  h.channel_socket = sock_dir + "/v.sock";
  h.channel_vsock_port = options_.channel_port;
  h.console_log = opts.log_path;
  for (const auto& d : vmmView(spec).drives) {
    if (!d.read_only) h.drive_paths[d.id] = d.path;
  }

  auto fail = [&](Error e) -> Result<VmHandle> {
    (void)MicroVmRuntime::kill(h);
    return std::move(e).with("instance_id", spec.instance_id);
  };
  auto deadline = std::chrono::steady_clock::now() + options_.api_timeout;
  while (!apiAccepts(api)) {
    if (!alive(h)) {
      return fail(Error(errc::kVmmExited, "firecracker exited before its API came up: " +
                                              tailFile(h.console_log, 5)));
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return fail(
          Error(errc::kVmmStartFailed, "firecracker API socket did not accept connections"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  http::Client client("unix:" + api);
  for (const auto& [path, body] : apiCalls(vmmView(spec))) {
    http::Headers headers;
    headers.set("Content-Type", "application/json");
    headers.set("Accept", "application/json");
    auto resp = client.send("PUT", path, headers, body, options_.api_timeout);
    if (!resp) return fail(std::move(resp).error().context("firecracker PUT " + path));
    if (resp->status / 100 != 2) {
      std::string fault = resp->body;
      auto j = nlohmann::json::parse(resp->body, nullptr, false);
      if (j.is_object() && j.contains("fault_message"))
        fault = j["fault_message"].get<std::string>();
      std::string message = "firecracker PUT ";
      message += path;
      message += " answered ";
      message += std::to_string(resp->status);
      message += ": ";
      message += fault;
      return fail(Error(errc::kVmmConfigFailed, message).with("path", path));
    }
  }
  return h;
}

std::string FirecrackerRuntime::resizeBody(const std::string& drive_id,
                                           const std::string& vmm_path) {
  return nlohmann::json{{"drive_id", drive_id}, {"path_on_host", vmm_path}}.dump();
}

Result<void> FirecrackerRuntime::resizeDrive(const VmHandle& vm, const VmDrive& drive,
                                             uint64_t /*size_bytes*/) {
  auto path = vm.drive_paths.find(drive.id);
  if (path == vm.drive_paths.end()) {
    return Error(errc::kUnsupported, "the VM handle has no path for drive " + drive.id)
        .with("instance_id", vm.instance_id);
  }
  http::Client client("unix:" + vm.control_socket);
  http::Headers headers;
  headers.set("Content-Type", "application/json");
  headers.set("Accept", "application/json");
  PLFM_ASSIGN_OR_RETURN(auto resp,
                        client.send("PATCH", "/drives/" + drive.id, headers,
                                    resizeBody(drive.id, path->second), options_.api_timeout));
  if (resp.status / 100 != 2) {
    return Error(errc::kVmmConfigFailed, "firecracker PATCH /drives/" + drive.id + " answered " +
                                             std::to_string(resp.status))
        .with("instance_id", vm.instance_id);
  }
  return ok();
}

Result<void> FirecrackerRuntime::requestStop(const VmHandle& vm) {
  if (!alive(vm)) return ok();
  http::Client client("unix:" + vm.control_socket);
  http::Headers headers;
  headers.set("Content-Type", "application/json");
  PLFM_ASSIGN_OR_RETURN(
      auto resp, client.send("PUT", "/actions", headers, R"({"action_type":"SendCtrlAltDel"})",
                             options_.api_timeout));
  if (resp.status / 100 != 2) {
    return Error(errc::kVmmStopFailed,
                 "firecracker SendCtrlAltDel answered " + std::to_string(resp.status));
  }
  return ok();
}

}  // namespace plfm::runtime
