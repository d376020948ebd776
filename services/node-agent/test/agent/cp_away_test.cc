// The agent with two control-plane replicas (docs/specs/runtime/node-agent.md,
// "Control plane"): the real Agent and InstanceWorker with a fake runtime, and
// two fake node APIs serving the same plan. When the replica it talks to
// goes, plan polls and heartbeats continue on the other; when both are gone,
// the running instance is left alone (no stop, no kill): the agent keeps
// its last plan until a control plane answers again.
// (mkfs.ext4 and debugfs build the test image, as in channel_stall_test.)
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "agent/agent.h"
#include "image/image_cache.h"
#include "image/image_ref.h"
#include "plfm/core/process.h"
#include "plfm/http/http.h"
#include "plfm/testing/temp_dir.h"
#include "support/fake_runtime.h"
#include "support/test_image.h"

namespace plfm::agent {
namespace {

namespace it = image::testing;
using nlohmann::json;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr const char* kNode = "nod_01jd0000000000000000000001";
constexpr const char* kOrg = "org_01jd0000000000000000000000";
constexpr const char* kInstance = "inst_01jd00000000000000000000aw";

// One replica's node API: the plan (version 1, one instance), heartbeats
// and status reports, counted.
class FakeReplica {
 public:
  explicit FakeReplica(json plan) : plan_(std::move(plan)) {
    server_ = std::make_unique<http::Server>(http::ServerOptions{.listen = {"[::1]:0"}},
                                             [this](const http::Request& r) { return serve(r); });
    EXPECT_TRUE(server_->start());
    url_ = "http://" + server_->endpoints().front();
  }
  ~FakeReplica() { server_->stop(0ms); }
  FakeReplica(const FakeReplica&) = delete;
  FakeReplica& operator=(const FakeReplica&) = delete;

  [[nodiscard]] const std::string& url() const { return url_; }
  void kill() { server_->stop(0ms); }
  std::atomic<int> polls{0};
  std::atomic<int> heartbeats{0};
  std::atomic<int> reports{0};
  // Non-zero: plan polls get this status with an empty body, as a proxy or
  // load balancer in front of a replica may answer.
  std::atomic<int> empty_plan_status{0};

 private:
  http::Response serve(const http::Request& r) {
    const std::string prefix = std::string("/v1/nodes/") + kNode;
    if (r.path == prefix + "/plan") {
      ++polls;
      if (const int status = empty_plan_status; status != 0) {
        http::Response empty;
        empty.status = status;
        return empty;
      }
      // A held poll with nothing new answers the whole plan again, as the
      // control plane does.
      if (r.queryParam("after").value_or("0") != "0") std::this_thread::sleep_for(100ms);
      return http::Response::json(200, plan_.dump());
    }
    if (r.path == prefix + "/heartbeat") {
      ++heartbeats;
      return http::Response::json(200, R"({"plan_version":1})");
    }
    if (r.method == "POST" && r.path.ends_with("/status")) {
      ++reports;
      return http::Response::json(200, R"({"applied":true})");
    }
    return http::Response::json(404, R"({"error":{"code":"not_found","message":"none"}})");
  }

  json plan_;
  std::string url_;
  std::unique_ptr<http::Server> server_;
};

bool waitFor(const std::function<bool()>& pred, std::chrono::milliseconds limit = 20s) {
  const auto deadline = Steady::now() + limit;
  while (!pred()) {
    if (Steady::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

class ControlPlaneAway : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string layer = dir_.file("layer.tar");
    ASSERT_TRUE(it::writeLayer(layer, {it::dir("bin"), it::file("bin/app", "#!/bin/true\n", 0755)},
                               it::Compression::kNone));
    it::ImageSpec spec;
    spec.layer_files = {layer};
    spec.compressions = {it::Compression::kNone};
    spec.user = "";
    auto built = it::writeOciImage(dir_.file("layout"), "v1", spec);
    ASSERT_TRUE(built) << built.error().toString();
    // In the cache by digest, pulled for the org: no registry asked.
    auto cache = image::ImageCache::open(dir_.file("state/images"));
    ASSERT_TRUE(cache) << cache.error().toString();
    image::PullOptions for_org;
    for_org.scope = kOrg;
    auto pulled = cache->pull(*image::parseImageRef("oci:" + dir_.file("layout") + ":v1"), for_org);
    ASSERT_TRUE(pulled) << pulled.error().toString();
    std::ofstream(dir_.file("vmlinux")) << "not a kernel";
    std::ofstream(dir_.file("initrd")) << "not an initramfs";

    const json instance = {
        {"instance_id", kInstance},
        {"generation", 1},
        {"desired", "run"},
        {"org_id", kOrg},
        {"app_id", "app_01jd0000000000000000000000"},
        {"env_id", "env_01jd0000000000000000000000"},
        {"process_type", "web"},
        {"release_id", "rel_01jd0000000000000000000000"},
        {"deploy_id", nullptr},
        {"image", {{"ref", "registry.invalid/t/app:v1"}, {"digest", built->manifest_digest}}},
        {"command", json::array()},
        {"args", json::array()},
        {"env", json::object()},
        {"resources", {{"vcpus", 1}, {"memory_mb", 64}}},
        {"network", json::object()},
        {"checks", json::array()},
        {"volumes", json::array()},
        {"secrets", {{"version", nullptr}}},
        {"restart", {{"count", 0}, {"not_before", nullptr}}}};
    const json plan = {{"version", 1}, {"instances", {instance}}};
    a_ = std::make_unique<FakeReplica>(plan);
    b_ = std::make_unique<FakeReplica>(plan);
    // A credential from before replicas (one "control_plane"); the flag's
    // list replaces it.
    const json credential = {{"control_plane", a_->url()},
                             {"node_id", kNode},
                             {"token", "nt_test"},
                             {"ipv6_prefix", ""},
                             {"heartbeat_interval_seconds", 1}};
    ASSERT_TRUE(writeFileAtomic(dir_.file("state/node.json"), credential.dump(), 0600));
  }

  AgentOptions options() const {
    AgentOptions o;
    o.state_dir = dir_.file("state");
    o.control_planes = {a_->url(), b_->url()};
    o.kernel = dir_.file("vmlinux");
    o.initramfs = dir_.file("initrd");
    o.scratch_mb = 8;
    o.manage_network = false;
    o.plan_wait = std::chrono::seconds(1);
    return o;
  }

  plfm::testing::TempDir dir_{"cpaway"};
  std::unique_ptr<FakeReplica> a_;
  std::unique_ptr<FakeReplica> b_;
};

TEST_F(ControlPlaneAway, TheAgentMovesToTheOtherReplicaAndNeverStopsItsInstance) {
  auto owned = std::make_unique<testing::FakeRuntime>();
  testing::FakeRuntime* rt = owned.get();
  Agent agent(options(), std::move(owned));
  ASSERT_TRUE(agent.start());
  ASSERT_TRUE(waitFor([&] { return rt->vm(0) != nullptr && rt->vm(0)->ready_sent; }));
  ASSERT_TRUE(waitFor([&] { return a_->reports > 0 && a_->heartbeats > 0; }));
  EXPECT_EQ(b_->polls.load(), 0);  // sticky: A answers, B is not asked

  // The replica it talks to goes: polls and heartbeats continue on B.
  a_->kill();
  const int b_polls = b_->polls;
  EXPECT_TRUE(waitFor([&] { return b_->polls > b_polls + 2 && b_->heartbeats > 0; }));

  // Both go: the agent keeps its last plan, and the instance runs on.
  b_->kill();
  std::this_thread::sleep_for(4s);  // failed polls and heartbeats, with backoff
  auto vm = rt->vm(0);
  ASSERT_NE(vm, nullptr);
  EXPECT_TRUE(vm->running);
  EXPECT_EQ(vm->shutdowns.load(), 0);
  EXPECT_EQ(rt->requestStops(), 0);
  EXPECT_EQ(rt->kills(), 0);
  EXPECT_EQ(rt->starts(), 1);
  agent.stop();  // leaves VMs running (no --stop-instances-on-exit)
  EXPECT_TRUE(vm->running);
}

// A plan poll answered without a plan (an empty 200, 204 or 503 from
// something in front of the replicas) is a failed poll, never an empty plan:
// the instance runs on.
TEST_F(ControlPlaneAway, AnAnswerWithoutAPlanNeverStopsTheInstance) {
  auto owned = std::make_unique<testing::FakeRuntime>();
  testing::FakeRuntime* rt = owned.get();
  Agent agent(options(), std::move(owned));
  ASSERT_TRUE(agent.start());
  ASSERT_TRUE(waitFor([&] { return rt->vm(0) != nullptr && rt->vm(0)->ready_sent; }));
  a_->empty_plan_status = 200;
  b_->empty_plan_status = 503;
  const int polls = a_->polls + b_->polls;
  EXPECT_TRUE(waitFor([&] { return a_->polls + b_->polls > polls + 3; }));
  a_->empty_plan_status = 204;
  std::this_thread::sleep_for(2s);
  auto vm = rt->vm(0);
  ASSERT_NE(vm, nullptr);
  EXPECT_TRUE(vm->running);
  EXPECT_EQ(vm->shutdowns.load(), 0);
  EXPECT_EQ(rt->requestStops(), 0);
  EXPECT_EQ(rt->kills(), 0);
  agent.stop();
}

}  // namespace
}  // namespace plfm::agent
