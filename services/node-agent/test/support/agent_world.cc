#include "support/agent_world.h"

#include <sched.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "plfm/core/process.h"
#include "runtime/initramfs.h"
#include "support/test_image.h"

namespace plfm::agent::testing {
namespace {

// Debian's busybox-static (a test dependency), and the applets the image
// links to it.
constexpr const char* kBusybox = "/bin/busybox";
constexpr const char* kBusyboxApplets[] = {
    "sh",   "cat",  "true", "false", "sleep", "stty", "sha256sum", "head", "dd",  "vi",
    "kill", "echo", "env",  "id",    "pwd",   "ls",   "yes",       "wc",   "tail"};

}  // namespace

std::string shellOutput(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  char buf[1024];
  while (p != nullptr && fgets(buf, sizeof buf, p) != nullptr) out += buf;
  if (p != nullptr) ::pclose(p);
  return out;
}

nlohmann::json workloadSpec(const AgentWorld& world, const std::string& id,
                            const std::string& org_id, const std::vector<std::string>& args,
                            const std::string& address, int memory_mb, nlohmann::json checks) {
  using nlohmann::json;
  return {{"instance_id", id},
          {"generation", 1},
          {"desired", "run"},
          {"org_id", org_id},
          {"app_id", "app_0e2e0000000000000000000000"},
          {"env_id", "env_0e2e0000000000000000000000"},
          {"process_type", "web"},
          {"release_id", "rel_0e2e0000000000000000000000"},
          {"deploy_id", nullptr},
          {"image", {{"ref", world.image_ref}, {"digest", world.image_digest}}},
          {"command", json::array()},
          {"args", args},
          {"env", json::object()},
          {"resources", {{"vcpus", 1}, {"memory_mb", memory_mb}}},
          {"network",
           {{"address", address}, {"prefix_len", 128}, {"gateway", "fe80::1"}, {"mtu", 1420}}},
          {"checks", std::move(checks)},
          {"volumes", json::array()},
          {"secrets", {{"version", nullptr}}},
          {"restart", {{"count", 0}, {"not_before", nullptr}}}};
}

Result<void> enterPrivateNetns() {
  if (::geteuid() != 0) {
    return Error(errc::kPermissionDenied, "microVM tests need root (taps, network namespaces)");
  }
  if (::unshare(CLONE_NEWNET) != 0) return errnoError("unshare(CLONE_NEWNET)", errno);
  SpawnOptions o;
  o.stdout_path = "/dev/null";
  return runChecked({"ip", "link", "set", "lo", "up"}, o);
}

Result<std::unique_ptr<AgentWorld>> makeAgentWorld(const std::string& source_dir,
                                                   const std::string& vt_init_bin,
                                                   const std::string& workload_bin) {
  namespace img = image::testing;
  auto w = std::make_unique<AgentWorld>();
  w->dir = std::make_unique<plfm::testing::TempDir>("world");
  std::string kdir = shellOutput(source_dir + "/scripts/fetch-kernel --print-dir 2>" +
                                 w->dir->file("fetch-kernel.log"));
  while (!kdir.empty() && (kdir.back() == '\n' || kdir.back() == ' ')) kdir.pop_back();
  if (kdir.empty()) {
    return Error(errc::kUnavailable,
                 "scripts/fetch-kernel failed: " + tailFile(w->dir->file("fetch-kernel.log"), 10));
  }
  w->kernel = kdir + "/vmlinux";
  runtime::InitramfsInputs in;
  in.init_binary = vt_init_bin;
  in.modules_dir = kdir + "/modules";
  PLFM_ASSIGN_OR_RETURN(w->initramfs, runtime::buildInitramfs(in, w->dir->file("initramfs")));
  PLFM_ASSIGN_OR_RETURN(w->registry, img::Registry::start(w->dir->file("registry")));

  PLFM_ASSIGN_OR_RETURN(std::string bin, readFile(workload_bin));
  const std::string layer = w->dir->file("layer.tar.gz");
  // busybox-static gives exec tests a shell and coreutils (exec-sessions.md).
  PLFM_ASSIGN_OR_RETURN(std::string busybox, readFile(kBusybox));
  std::vector<img::TarEntry> entries = {
      img::dir("bin"),
      img::file("bin/vt-test-workload", bin, 0755),
      img::file("bin/busybox", busybox, 0755),
      img::dir("etc"),
      img::file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
      img::file("etc/group", "root:x:0:\napp:x:1000:\n"),
      img::dir("tmp", 01777)};
  for (const char* applet : kBusyboxApplets) {
    entries.push_back(img::symlink(std::string("bin/") + applet, "busybox"));
  }
  PLFM_TRY(img::writeLayer(layer, entries, img::Compression::kGzip));
  img::ImageSpec spec;
  spec.layer_files = {layer};
  spec.compressions = {img::Compression::kGzip};
  spec.entrypoint = {"/bin/vt-test-workload"};
  spec.cmd = {"sleep"};
  spec.env = {"PATH=/bin"};
  spec.workdir = "/";
  spec.user = "app";
  spec.exposed_ports = {"8080/tcp"};
  PLFM_ASSIGN_OR_RETURN(auto built, img::writeOciImage(w->dir->file("layout"), "v1", spec));
  PLFM_TRY(w->registry->push(w->dir->file("layout"), "v1", "e2e/workload:v1"));
  w->image_ref = w->registry->host() + "/e2e/workload:v1";
  w->image_digest = built.manifest_digest;
  return w;
}

}  // namespace plfm::agent::testing
