// FirecrackerRuntime against a fake Firecracker API server: a Unix-socket HTTP
// server that records every request and checks each against Firecracker's
// published API (firecracker_contract.h: method, path and body schema). The
// "firecracker" binary is a script that only sleeps, so the test needs no KVM.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"
#include "runtime/firecracker_contract.h"
#include "runtime/firecracker_runtime.h"
#include "runtime/qemu_runtime.h"

namespace plfm::runtime {
namespace {

using nlohmann::json;

struct Recorded {
  std::string method;
  std::string path;
  json body;
};

class FakeFirecracker {
 public:
  explicit FakeFirecracker(const std::string& socket) {
    http::ServerOptions o;
    o.listen = {"unix:" + socket};
    server_ = std::make_unique<http::Server>(o, [this](http::Request& req) {
      std::lock_guard lock(mu_);
      auto body = json::parse(req.body, nullptr, false);
      calls_.push_back({req.method, req.path, body});
      // Every request is checked against Firecracker's published API.
      std::string problem =
          testing::checkFirecrackerRequest(req.method, req.path, req.body).value_or("");
      if (req.path == fail_path_) problem = "injected failure";
      if (!problem.empty()) {
        return http::Response::json(400, json{{"fault_message", problem}}.dump());
      }
      return http::Response{204, {}, ""};
    });
  }
  Result<void> start() { return server_->start(); }
  std::vector<Recorded> calls() {
    std::lock_guard lock(mu_);
    return calls_;
  }
  void failOn(std::string path) {
    std::lock_guard lock(mu_);
    fail_path_ = std::move(path);
  }

 private:
  std::mutex mu_;
  std::vector<Recorded> calls_;
  std::string fail_path_;
  std::unique_ptr<http::Server> server_;
};

class FirecrackerRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    bin_ = dir_.file("firecracker");
    std::ofstream(bin_) << "#!/bin/sh\nexec sleep 30\n";
    ::chmod(bin_.c_str(), 0755);
    run_dir_ = dir_.file("vm");
    spec_.instance_id = "inst_0000000000000000000000test";
    spec_.run_dir = run_dir_;
    // start() opens each file to pass it as an fd.
    for (const char* f : {"vmlinux", "initrd", "root.ext4", "scratch.ext4"}) {
      std::ofstream(dir_.file(f)) << f;
    }
    spec_.kernel = dir_.file("vmlinux");
    spec_.initramfs = dir_.file("initrd");
    spec_.drives = {{"rootfs", dir_.file("root.ext4"), true},
                    {"scratch", dir_.file("scratch.ext4"), false}};
    spec_.vcpus = 2;
    spec_.memory_mb = 512;
    spec_.tap = "vt-abc";
    spec_.mac = "02:00:00:00:00:01";
  }

  // Starts the fake API on the socket path the driver will use, as the
  // script "firecracker" would.
  std::unique_ptr<FakeFirecracker> fakeApi() {
    std::filesystem::create_directories(run_dir_ + "/api");
    auto fake = std::make_unique<FakeFirecracker>(run_dir_ + "/api/fc.sock");
    EXPECT_TRUE(fake->start());
    return fake;
  }

  // Runs fc.start() while a thread plays Firecracker: once the VMM process
  // has been spawned (its log appears) it brings the fake API up on the
  // socket the driver waits for, as Firecracker does shortly after it starts.
  std::pair<Result<VmHandle>, std::unique_ptr<FakeFirecracker>> startWithFakeApi(
      FirecrackerRuntime& fc, const std::string& fail_path = "") {
    std::unique_ptr<FakeFirecracker> fake;
    std::thread serve([&] {
      for (int i = 0; i < 500 && !std::filesystem::exists(run_dir_ + "/vmm.log"); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      fake = fakeApi();
      if (!fail_path.empty()) fake->failOn(fail_path);
    });
    auto vm = fc.start(spec_);
    serve.join();
    return {std::move(vm), std::move(fake)};
  }

  // Confinement (uid, Landlock, cgroups) is vmm_confinement_test's.
  static FirecrackerOptions unconfined() {
    FirecrackerOptions o;
    o.confine.enabled = false;
    return o;
  }

  plfm::testing::TempDir dir_{"fc"};
  std::string bin_;
  std::string run_dir_;
  VmSpec spec_;
};

TEST_F(FirecrackerRuntimeTest, ConfiguresTheVmInTheDocumentedOrderThenStarts) {
  FirecrackerOptions o = unconfined();
  o.binary = bin_;
  FirecrackerRuntime fc(o);
  auto [vm, fake] = startWithFakeApi(fc);
  ASSERT_TRUE(vm) << vm.error().toString();
  EXPECT_EQ(vm->driver, "firecracker");
  EXPECT_TRUE(fc.alive(*vm));
  EXPECT_EQ(vm->channel_socket, run_dir_ + "/api/v.sock");
  EXPECT_EQ(vm->channel_vsock_port, 1024U);

  auto calls = fake->calls();
  std::vector<std::string> paths;
  paths.reserve(calls.size());
  for (const auto& c : calls) paths.push_back(c.method + " " + c.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"PUT /machine-config", "PUT /boot-source",
                                             "PUT /drives/rootfs", "PUT /drives/scratch",
                                             "PUT /network-interfaces/eth0", "PUT /vsock",
                                             "PUT /actions"}));
  ASSERT_EQ(calls.size(), 7U);
  EXPECT_EQ(calls[0].body["vcpu_count"], 2);
  EXPECT_EQ(calls[0].body["mem_size_mib"], 512);
  // Files arrive as fds 3, 4, ... (kernel, initramfs, drives).
  EXPECT_EQ(calls[1].body["kernel_image_path"], "/proc/self/fd/3");
  EXPECT_EQ(calls[1].body["initrd_path"], "/proc/self/fd/4");
  EXPECT_EQ(calls[2].body["path_on_host"], "/proc/self/fd/5");
  EXPECT_EQ(calls[3].body["path_on_host"], "/proc/self/fd/6");
  EXPECT_NE(calls[1].body["boot_args"].get<std::string>().find("console=ttyS0"), std::string::npos);
  EXPECT_EQ(calls[2].body["is_read_only"], true);
  EXPECT_EQ(calls[2].body["is_root_device"], false);
  EXPECT_EQ(calls[3].body["is_read_only"], false);
  EXPECT_EQ(calls[4].body["host_dev_name"], "vt-abc");
  EXPECT_EQ(calls[4].body["guest_mac"], "02:00:00:00:00:01");
  EXPECT_EQ(calls[5].body["guest_cid"], 3);
  EXPECT_EQ(calls[5].body["uds_path"], run_dir_ + "/api/v.sock");
  EXPECT_EQ(calls[6].body["action_type"], "InstanceStart");

  // A grown volume (volume-mounts.md §Node side "Extend"): PATCH /drives/<id>
  // with the path the VMM opened it by, checked against Firecracker's API.
  EXPECT_EQ(vm->drive_paths.at("scratch"), "/proc/self/fd/6");
  EXPECT_EQ(vm->drive_paths.count("rootfs"), 0U);  // read-only: never grown
  ASSERT_TRUE(fc.resizeDrive(*vm, {"scratch", spec_.drives[1].path, false}, 64 << 20));
  EXPECT_EQ(fake->calls().back().method, "PATCH");
  EXPECT_EQ(fake->calls().back().path, "/drives/scratch");
  EXPECT_EQ(fake->calls().back().body["path_on_host"], "/proc/self/fd/6");
  EXPECT_FALSE(fc.resizeDrive(*vm, {"vol-9", "/x", false}, 64 << 20));

  ASSERT_TRUE(fc.requestStop(*vm));
  EXPECT_EQ(fake->calls().back().body["action_type"], "SendCtrlAltDel");
  ASSERT_TRUE(fc.kill(*vm));
  EXPECT_FALSE(fc.alive(*vm));
}

TEST_F(FirecrackerRuntimeTest, ARefusedCallFailsNamingItAndLeavesNoProcess) {
  FirecrackerOptions o = unconfined();
  o.binary = bin_;
  FirecrackerRuntime fc(o);
  auto [vm, fake] = startWithFakeApi(fc, "/boot-source");
  ASSERT_FALSE(vm);
  EXPECT_EQ(vm.error().code(), "runtime.vmm_config_failed");
  EXPECT_NE(vm.error().message().find("/boot-source"), std::string::npos);
  EXPECT_NE(vm.error().message().find("injected failure"), std::string::npos);
  // Only the two calls up to the failure were made.
  EXPECT_EQ(fake->calls().size(), 2U);
}

TEST_F(FirecrackerRuntimeTest, AMissingBinaryIsAClearError) {
  FirecrackerOptions o = unconfined();
  o.binary = dir_.file("no-such-firecracker");
  FirecrackerRuntime fc(o);
  auto vm = fc.start(spec_);
  ASSERT_FALSE(vm);
  EXPECT_NE(vm.error().message().find("no-such-firecracker"), std::string::npos);
}

// Firecracker cannot set a disk's serial; it derives one from the file
// (kvmtool's scheme), and the guest finds a volume by that.
TEST_F(FirecrackerRuntimeTest, ADisksSerialIsDerivedFromItsFileAsFirecrackerDoes) {
  FirecrackerRuntime fc({});
  const VmDrive drive{"vol-0", dir_.file("scratch.ext4"), false};
  struct stat st {};
  ASSERT_EQ(::stat(drive.path.c_str(), &st), 0);
  std::string want =
      std::to_string(st.st_dev) + std::to_string(st.st_rdev) + std::to_string(st.st_ino);
  want.resize(std::min<size_t>(want.size(), 20));
  auto serial = fc.diskSerial(drive);
  ASSERT_TRUE(serial) << serial.error().toString();
  EXPECT_EQ(*serial, want);
  EXPECT_FALSE(fc.diskSerial({"vol-1", dir_.file("absent.ext4"), false}));
  // QEMU sets serial=<id>.
  EXPECT_EQ(QemuRuntime({}).diskSerial(drive).value(), "vol-0");
}

TEST_F(FirecrackerRuntimeTest, ApiCallBodiesMatchFirecrackersPublishedApi) {
  FirecrackerRuntime fc({});
  // A volume is one more drive (volume-mounts.md §Node side): PUT /drives/vol-0.
  spec_.drives.push_back({"vol-0", dir_.file("vol.ext4"), false});
  const auto calls = fc.apiCalls(spec_);
  ASSERT_FALSE(calls.empty());
  bool volume = false;
  for (const auto& [path, body] : calls) {
    EXPECT_EQ(testing::checkFirecrackerRequest("PUT", path, body), std::nullopt)
        << path << " " << body;
    volume = volume || path == "/drives/vol-0";
  }
  EXPECT_TRUE(volume);
  EXPECT_EQ(
      testing::checkFirecrackerRequest("PATCH", "/drives/vol-0",
                                       FirecrackerRuntime::resizeBody("vol-0", "/proc/self/fd/7")),
      std::nullopt);
}

// The contract check itself: it must refuse what Firecracker refuses, or the
// tests above prove nothing.
TEST(FirecrackerContractTest, RefusesWhatFirecrackerRefuses) {
  using testing::checkFirecrackerRequest;
  EXPECT_EQ(checkFirecrackerRequest("PUT", "/machine-config",
                                    R"({"vcpu_count": 2, "mem_size_mib": 256})"),
            std::nullopt);
  // A missing required field, a wrong type, an unknown field (Firecracker's
  // types deny them), an undocumented path and method, and a missing body.
  for (const auto& [method, path, body] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"PUT", "/machine-config", R"({"vcpu_count": 2})"},
           {"PUT", "/machine-config", R"({"vcpu_count": "2", "mem_size_mib": 256})"},
           {"PUT", "/machine-config", R"({"vcpu_count": 2, "mem_size_mib": 256, "gpu": 1})"},
           {"PUT", "/drives/rootfs", R"({"drive_id": "rootfs"})"},
           {"PUT", "/no-such-thing", "{}"},
           {"DELETE", "/machine-config", ""},
           {"PUT", "/actions", ""},
           {"PUT", "/actions", R"({"action_type": "Reboot"})"},
       }) {
    EXPECT_NE(checkFirecrackerRequest(method, path, body), std::nullopt)
        << method << " " << path << " " << body;
  }
  EXPECT_EQ(checkFirecrackerRequest("PUT", "/actions", R"({"action_type": "SendCtrlAltDel"})"),
            std::nullopt);
  EXPECT_EQ(checkFirecrackerRequest("GET", "/", ""), std::nullopt);
}

}  // namespace
}  // namespace plfm::runtime
