// A hostile guest that floods the host channel and never reads it (issue 14,
// "Guest channel"): the real Agent and InstanceWorker, a fake runtime whose
// "VMM" is a sleeping process and whose "guest" is a thread on the channel
// socket. The worker must kill that VM and report failed("channel stalled")
// within its send deadline, and Agent::stop() must return promptly.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <thread>

#include "agent/agent.h"
#include "image/image_cache.h"
#include "image/image_ref.h"
#include "plfm/core/process.h"
#include "plfm/guest_proto/guest_proto.h"
#include "plfm/testing/temp_dir.h"
#include "runtime/detached.h"
#include "support/test_image.h"

namespace plfm::agent {
namespace {

namespace gp = guest_proto;
namespace it = image::testing;
using nlohmann::json;
using std::chrono::milliseconds;
using Steady = std::chrono::steady_clock;

enum class Guest { kFloodBeforeReady, kFloodAfterReady };

// A runtime with no VM: start() listens on the channel socket and runs a
// guest that says HELLO (and READY), then sends PINGs and never reads.
class FloodingRuntime : public runtime::MicroVmRuntime {
 public:
  explicit FloodingRuntime(Guest mode) : mode_(mode) {}
  ~FloodingRuntime() override { release(); }
  FloodingRuntime(const FloodingRuntime&) = delete;
  FloodingRuntime& operator=(const FloodingRuntime&) = delete;

  [[nodiscard]] std::string_view name() const override { return "flooding-fake"; }

  Result<runtime::VmHandle> start(const runtime::VmSpec& spec) override {
    runtime::VmHandle h;
    h.driver = "fake";
    h.instance_id = spec.instance_id;
    h.channel_socket = spec.run_dir + "/ch.sock";
    h.console_log = spec.run_dir + "/console.log";
    listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", h.channel_socket.c_str());
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(listen_fd_, 4) != 0) {
      return errnoError("listen " + h.channel_socket, errno);
    }
    PLFM_ASSIGN_OR_RETURN(h.pid, runtime::spawnDetached({"sleep", "600"}));
    h.pid_start = runtime::processStartTime(h.pid);
    pid_ = h.pid;
    guest_ = std::thread([this] { runGuest(); });
    return h;
  }

  Result<void> requestStop(const runtime::VmHandle& vm) override { return kill(vm); }

  // Unblocks the guest (and, on a blocking host, the agent's send).
  void release() {
    stop_ = true;
    if (conn_fd_ >= 0) ::shutdown(conn_fd_, SHUT_RDWR);
    if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
    if (guest_.joinable()) guest_.join();
    for (int* fd : {&conn_fd_, &listen_fd_}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
    if (pid_ > 0) ::kill(pid_, SIGKILL);
  }

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] uint64_t pingsSent() const { return pings_; }

 private:
  bool sendAll(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size() && !stop_) {
      ssize_t n = ::send(conn_fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return !stop_;
  }

  void runGuest() {
    conn_fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn_fd_ < 0) return;
    gp::Hello hello;
    hello.init_version = "flooding-guest";
    if (!sendAll(*gp::encode(hello))) return;
    if (mode_ == Guest::kFloodAfterReady && !sendAll(gp::encode(gp::Ready{1, 1, std::nullopt})))
      return;
    // Never read: every PING the agent answers stays in our receive buffer
    // until its send buffer is full as well.
    for (uint64_t nonce = 1; sendAll(gp::encodePing(gp::Ping{nonce})); ++nonce) ++pings_;
  }

  Guest mode_;
  int listen_fd_ = -1;
  int conn_fd_ = -1;
  pid_t pid_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> pings_{0};
  std::thread guest_;
};

class ChannelStall : public ::testing::TestWithParam<Guest> {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<plfm::testing::TempDir>("stall");
    const std::string layer = dir_->file("layer.tar");
    ASSERT_TRUE(it::writeLayer(layer, {it::dir("bin"), it::file("bin/app", "#!/bin/true\n", 0755)},
                               it::Compression::kNone));
    it::ImageSpec spec;
    spec.layer_files = {layer};
    spec.compressions = {it::Compression::kNone};
    spec.user = "";
    auto built = it::writeOciImage(dir_->file("layout"), "v1", spec);
    ASSERT_TRUE(built) << built.error().toString();
    digest_ = built->manifest_digest;
    // The agent finds the image in its cache by digest: no registry needed.
    auto cache = image::ImageCache::open(dir_->file("state/images"));
    ASSERT_TRUE(cache) << cache.error().toString();
    // Pulled for the plan's org, so the cache may serve the digest to it
    // without asking a registry (image-cache.md, "Per-org access").
    image::PullOptions for_org;
    for_org.scope = "org_01jd0000000000000000000000";
    auto pulled =
        cache->pull(*image::parseImageRef("oci:" + dir_->file("layout") + ":v1"), for_org);
    ASSERT_TRUE(pulled) << pulled.error().toString();
    std::ofstream(dir_->file("vmlinux")) << "not a kernel";
    std::ofstream(dir_->file("initrd")) << "not an initramfs";
  }

  AgentOptions options() const {
    AgentOptions o;
    o.state_dir = dir_->file("state");
    o.plan_file = dir_->file("plan.json");
    o.kernel = dir_->file("vmlinux");
    o.initramfs = dir_->file("initrd");
    o.scratch_mb = 8;
    o.manage_network = false;
    o.channel_send_timeout = milliseconds(500);
    o.shutdown_grace_ms = 500;
    o.stop_instances_on_exit = true;
    return o;
  }

  void writePlan(const std::string& instance_id) const {
    json spec = {{"instance_id", instance_id},
                 {"generation", 1},
                 {"desired", "run"},
                 {"org_id", "org_01jd0000000000000000000000"},
                 {"app_id", "app_01jd0000000000000000000000"},
                 {"env_id", "env_01jd0000000000000000000000"},
                 {"process_type", "web"},
                 {"release_id", "rel_01jd0000000000000000000000"},
                 {"deploy_id", nullptr},
                 {"image", {{"ref", "registry.invalid/t/app:v1"}, {"digest", digest_}}},
                 {"command", json::array()},
                 {"args", json::array()},
                 {"env", json::object()},
                 {"resources", {{"vcpus", 1}, {"memory_mb", 64}}},
                 {"network", json::object()},
                 {"checks", json::array()},
                 {"volumes", json::array()},
                 {"secrets", {{"version", nullptr}}},
                 {"restart", {{"count", 0}, {"not_before", nullptr}}}};
    ASSERT_TRUE(writeFileAtomic(dir_->file("plan.json"),
                                json{{"version", 1}, {"instances", {spec}}}.dump()));
  }

  std::unique_ptr<plfm::testing::TempDir> dir_;
  std::string digest_;
};

TEST_P(ChannelStall, TheVmIsKilledAndReportedFailed) {
  auto owned = std::make_unique<FloodingRuntime>(GetParam());
  FloodingRuntime* rt = owned.get();
  auto agent = std::make_unique<Agent>(options(), std::move(owned));
  ASSERT_TRUE(agent->start());
  const std::string id = "inst_01jd00000000000000000000st";
  writePlan(id);

  std::optional<InstanceStatus> seen;
  const auto deadline = Steady::now() + std::chrono::seconds(20);
  while (Steady::now() < deadline) {
    for (const auto& s : agent->instances()) {
      // The phase is saved before the report goes out: wait for both.
      if (s.instance_id == id && isTerminal(s.phase) &&
          (s.last_reported == "failed" || s.last_reported == "stopped")) {
        seen = s;
      }
    }
    if (seen) break;
    std::this_thread::sleep_for(milliseconds(50));
  }
  if (!seen) {
    // A blocking send: the worker hangs in it. Cut the guest loose so the
    // agent (and this test) can end, then fail.
    rt->release();
    agent->stop();
    FAIL() << "the worker never gave up on a guest that does not read (" << rt->pingsSent()
           << " PINGs sent)";
  }
  EXPECT_EQ(seen->phase, Phase::kFailed);
  EXPECT_EQ(seen->reason, "channel stalled");
  EXPECT_EQ(seen->last_reported, "failed");
  EXPECT_FALSE(runtime::processMatches(rt->pid(), 0)) << "the flooding VM still runs";

  auto stopped = std::async(std::launch::async, [&] { agent->stop(); });
  const bool prompt = stopped.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  if (!prompt) rt->release();
  stopped.wait();
  EXPECT_TRUE(prompt) << "Agent::stop() hung on a guest";
}

INSTANTIATE_TEST_SUITE_P(Guests, ChannelStall,
                         ::testing::Values(Guest::kFloodBeforeReady, Guest::kFloodAfterReady),
                         [](const ::testing::TestParamInfo<Guest>& p) {
                           return p.param == Guest::kFloodBeforeReady ? "BeforeReady"
                                                                      : "AfterReady";
                         });

}  // namespace
}  // namespace plfm::agent
