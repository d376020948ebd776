// The InstanceWorker's state machine without a VM: a FakeHost (in memory), a
// FakeRuntime whose guest speaks libs/guest-proto over a Unix socket, and a
// FakeClock for every long wait (boot timeout, shutdown escalation, restart
// backoff, check intervals). Real waits stay in the tens of milliseconds.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include "agent/agent.h"
#include "agent/instance_host.h"
#include "agent/instance_worker.h"
#include "plfm/core/clock.h"
#include "plfm/testing/temp_dir.h"
#include "plfm/testing/wait_for.h"
#include "support/fake_runtime.h"

namespace plfm::agent {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using std::chrono::seconds;
using testing::FakeRuntime;
using Steady = std::chrono::steady_clock;

// The agent as a worker sees it, in memory.
class FakeHost final : public InstanceHost {
 public:
  FakeHost(const std::string& dir, FakeRuntime& rt)
      : dir_(dir), runtime_(rt), volumes_(dir + "/volumes") {
    fs::create_directories(dir + "/logs");
    fs::create_directories(dir + "/vms");
    EXPECT_TRUE(volumes_.open());
    std::ofstream(dir + "/vmlinux") << "not a kernel";
    std::ofstream(dir + "/rootfs.ext4") << "not an ext4";
    std::ofstream(dir + "/scratch.tmpl") << "not an ext4 either";
    options_.state_dir = dir;
    options_.kernel = dir + "/vmlinux";
    options_.initramfs = dir + "/vmlinux";
    options_.manage_network = false;
    options_.shutdown_grace_ms = 1000;
    options_.channel_send_timeout = milliseconds(200);
  }

  AgentOptions& mutableOptions() { return options_; }
  FakeClock& fakeClock() { return clock_; }
  metrics::Registry& registry() { return registry_; }
  void setStopping() { stopping_ = true; }

  [[nodiscard]] std::vector<StatusReport> reports() const {
    std::lock_guard lock(mu_);
    return reports_;
  }
  // The first report of `phase` (and generation, when given) within `timeout`.
  std::optional<StatusReport> waitReport(const std::string& phase, int generation = 0,
                                         milliseconds timeout = milliseconds(10'000)) {
    std::unique_lock lock(mu_);
    std::optional<StatusReport> found;
    cv_.wait_for(lock, timeout, [&] {
      for (const auto& r : reports_) {
        if (r.phase == phase && (generation == 0 || r.generation == generation)) {
          found = r;
          return true;
        }
      }
      return false;
    });
    return found;
  }
  [[nodiscard]] bool reported(const std::string& phase) const {
    std::lock_guard lock(mu_);
    for (const auto& r : reports_) {
      if (r.phase == phase) return true;
    }
    return false;
  }
  [[nodiscard]] int imagesHeld() const { return images_held_.load(); }

  // InstanceHost.
  [[nodiscard]] const AgentOptions& options() const override { return options_; }
  [[nodiscard]] runtime::MicroVmRuntime& runtime() override { return runtime_; }
  [[nodiscard]] VolumeStore& volumes() override { return volumes_; }
  [[nodiscard]] const Clock& clock() const override { return clock_; }
  [[nodiscard]] InstanceMetrics& instanceMetrics() override { return metrics_; }
  [[nodiscard]] bool stopping() const override { return stopping_.load(); }
  [[nodiscard]] Result<void> saveRecord(const InstanceRecord& rec) override {
    std::lock_guard lock(mu_);
    records_[rec.workload.instance_id] = rec;
    return ok();
  }
  [[nodiscard]] Result<void> removeRecord(const std::string& instance_id) override {
    std::lock_guard lock(mu_);
    records_.erase(instance_id);
    return ok();
  }
  [[nodiscard]] std::string runDirFor(const std::string& instance_id) const override {
    return dir_ + "/vms/" + instance_id;
  }
  [[nodiscard]] std::string logPathFor(const std::string& instance_id) const override {
    return dir_ + "/logs/" + instance_id + ".log";
  }
  bool sendReport(const std::string&, const StatusReport& report) override {
    std::lock_guard lock(mu_);
    reports_.push_back(report);
    cv_.notify_all();
    return true;
  }
  [[nodiscard]] Result<std::string> fetchSecrets(const std::string&, const std::string&) override {
    return Error(errc::kUnavailable, "no secrets in unit tests");
  }
  [[nodiscard]] Result<AcquiredImage> acquireImage(const Workload&) override {
    ++images_held_;
    return AcquiredImage{dir_ + "/rootfs.ext4"};
  }
  [[nodiscard]] Result<image::ImageConfig> imageConfig(const std::string&) override {
    image::ImageConfig c;
    c.entrypoint = {"/bin/app"};
    return c;
  }
  void releaseImage(const std::string&, const std::string&) override { --images_held_; }
  [[nodiscard]] Result<std::string> scratchTemplate() override { return dir_ + "/scratch.tmpl"; }
  [[nodiscard]] UserDb userDb(const std::string&, const std::function<UserDb()>& load) override {
    return load();
  }
  [[nodiscard]] Result<void> filterGuest(const std::string&, netdev::GuestFilter) override {
    return ok();
  }
  void unfilterGuest(const std::string&) override {}
  void reportVolume(const std::string& volume_id, const VolumeReport& r) override {
    std::lock_guard lock(mu_);
    volume_reports_.push_back(volume_id + " " + r.state + " " + std::to_string(r.size_bytes));
  }
  [[nodiscard]] std::vector<std::string> volumeReports() const {
    std::lock_guard lock(mu_);
    return volume_reports_;
  }

 private:
  std::vector<std::string> volume_reports_;  // guarded by mu_
  std::string dir_;
  FakeRuntime& runtime_;
  VolumeStore volumes_;
  AgentOptions options_;
  FakeClock clock_;
  metrics::Registry registry_;
  InstanceMetrics metrics_{registry_};
  std::atomic<bool> stopping_{false};
  std::atomic<int> images_held_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<StatusReport> reports_;              // guarded by mu_
  std::map<std::string, InstanceRecord> records_;  // guarded by mu_
};

using plfm::testing::waitFor;

class InstanceWorkerTest : public ::testing::Test {
 protected:
  InstanceWorkerTest() : dir_("iw"), host_(dir_.path(), rt_) {}

  ~InstanceWorkerTest() override {
    if (worker_) {
      worker_->remove();
      worker_->join();
    }
  }

  Workload workload(int generation = 1) const {
    Workload w;
    w.instance_id = "inst_01jd00000000000000000000uw";
    w.generation = generation;
    w.org_id = "org_01jd0000000000000000000000";
    w.image_ref = "registry.invalid/t/app:v1";
    w.image_digest = "sha256:" + std::string(64, 'a');
    w.vcpus = 1;
    w.memory_mb = 64;
    return w;
  }

  void startWorker(const Workload& w) {
    InstanceRecord rec;
    rec.workload = w;
    worker_ = std::make_unique<InstanceWorker>(host_, std::move(rec));
    worker_->start();
  }

  // A snapshot of `volume_id` into `target` through worker_ (10 s at most).
  Result<SnapshotResult> snapshotThroughWorker(const std::string& volume_id,
                                               const std::string& target) {
    auto job = std::make_shared<SnapshotJob>();
    job->volume_id = volume_id;
    job->target = target;
    auto done = job->done.get_future();
    PLFM_TRY(worker_->enqueueSnapshot(job));
    if (done.wait_for(seconds(10)) != std::future_status::ready) {
      return Error(errc::kDeadlineExceeded, "no snapshot within 10 s");
    }
    return done.get();
  }
  plfm::testing::TempDir dir_;
  FakeRuntime rt_;
  FakeHost host_;
  std::unique_ptr<InstanceWorker> worker_;
};

TEST_F(InstanceWorkerTest, BootsToRunningAndReportsHealthy) {
  startWorker(workload());
  ASSERT_TRUE(host_.waitReport("healthy"));
  auto reports = host_.reports();
  ASSERT_GE(reports.size(), 3u);
  EXPECT_EQ(reports[0].phase, "booting");
  EXPECT_EQ(reports[1].phase, "running");
  EXPECT_EQ(reports[2].phase, "healthy");
  EXPECT_EQ(worker_->status().phase, Phase::kRunning);
  EXPECT_EQ(rt_.starts(), 1);
  EXPECT_EQ(rt_.vm(0)->configs, 1);
  EXPECT_EQ(host_.imagesHeld(), 1);
  EXPECT_NE(host_.registry().render().find("plfm_agent_boot_seconds_count 1"), std::string::npos)
      << host_.registry().render();
}

TEST_F(InstanceWorkerTest, AGuestThatNeverSaysReadyFailsAtTheBootTimeout) {
  rt_.guest().never_ready = true;
  startWorker(workload());
  ASSERT_TRUE(waitFor([&] { return rt_.vm(0) && rt_.vm(0)->configs == 1; }));
  // Real time passes, fake time does not: no timeout yet.
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(host_.reported("failed"));
  host_.fakeClock().advance(host_.options().boot_timeout + seconds(1));
  auto failed = host_.waitReport("failed");
  ASSERT_TRUE(failed);
  EXPECT_NE(failed->reason.find("did not become ready within 90 s"), std::string::npos)
      << failed->reason;
  EXPECT_FALSE(rt_.vm(0)->running);
  EXPECT_TRUE(waitFor([&] { return host_.imagesHeld() == 0; }));
}

TEST_F(InstanceWorkerTest, ABootErrorIsTheFailedReason) {
  rt_.guest().boot_error = "mounting /dev/vda failed";
  startWorker(workload());
  auto failed = host_.waitReport("failed");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->reason, "mounting /dev/vda failed");
}

TEST_F(InstanceWorkerTest, ExitIsReportedWithItsCode) {
  rt_.guest().exit_after = milliseconds(50);
  rt_.guest().exit_code = 3;
  startWorker(workload());
  auto exited = host_.waitReport("exited");
  ASSERT_TRUE(exited);
  EXPECT_EQ(exited->exit_code, 3);
  EXPECT_EQ(exited->reason, "exited with code 3");
  EXPECT_TRUE(host_.reported("running"));
  EXPECT_TRUE(waitFor([&] { return worker_->status().phase == Phase::kStopped; }));
  EXPECT_EQ(host_.imagesHeld(), 0);
}

TEST_F(InstanceWorkerTest, AStopSendsShutdownThenEscalatesOnSchedule) {
  rt_.guest().ignore_shutdown = true;
  rt_.guest().ignore_power_button = true;
  Workload w = workload();
  startWorker(w);
  ASSERT_TRUE(host_.waitReport("running"));
  w.desired = "stop";
  worker_->update(w);
  ASSERT_TRUE(waitFor([&] { return rt_.vm(0)->shutdowns == 1; }));
  const milliseconds grace(host_.options().shutdown_grace_ms);

  // Grace + 2 s: still waiting for the guest.
  host_.fakeClock().advance(grace + seconds(2));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(rt_.requestStops(), 0);
  EXPECT_EQ(rt_.kills(), 0);

  // Past grace + 3 s: the power button.
  host_.fakeClock().advance(seconds(2));
  ASSERT_TRUE(waitFor([&] { return rt_.requestStops() == 1; }));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(rt_.kills(), 0);
  EXPECT_TRUE(rt_.vm(0)->running);

  // Past grace + 8 s: killed, and reported stopped (it was asked to stop).
  host_.fakeClock().advance(seconds(5));
  ASSERT_TRUE(waitFor([&] { return rt_.kills() >= 1; }));
  auto stopped = host_.waitReport("stopped");
  ASSERT_TRUE(stopped);
  EXPECT_EQ(rt_.requestStops(), 1);
  EXPECT_FALSE(rt_.vm(0)->running);
}

TEST_F(InstanceWorkerTest, ANewGenerationReplacesTheVm) {
  startWorker(workload(1));
  ASSERT_TRUE(host_.waitReport("running", 1));
  worker_->update(workload(2));
  auto running = host_.waitReport("running", 2);
  ASSERT_TRUE(running);
  EXPECT_TRUE(host_.waitReport("stopped", 1));
  EXPECT_EQ(rt_.starts(), 2);
  EXPECT_EQ(rt_.vm(0)->shutdowns, 1);
  EXPECT_FALSE(rt_.vm(0)->running);
  EXPECT_TRUE(rt_.vm(1)->running);
  EXPECT_EQ(worker_->status().generation, 2);
  EXPECT_EQ(host_.imagesHeld(), 1);
}

TEST_F(InstanceWorkerTest, AStalledGuestIsKilledAndReportedFailed) {
  rt_.guest().stall_after_ready = true;
  startWorker(workload());
  auto failed = host_.waitReport("failed");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->reason, "channel stalled");
  EXPECT_FALSE(rt_.vm(0)->running);
  EXPECT_NE(host_.registry().render().find("plfm_agent_channel_stalls_total 1"), std::string::npos);
}

TEST_F(InstanceWorkerTest, HealthCheckFailuresRespectTheThreshold) {
  Workload w = workload();
  w.address = "::1";  // nothing listens on the port
  w.checks = nlohmann::json::array({{{"type", "tcp"},
                                     {"port", plfm::testing::freeTcpPort()},
                                     {"interval_ms", 1000},
                                     {"timeout_ms", 200},
                                     {"failure_threshold", 2}}});
  startWorker(w);
  ASSERT_TRUE(host_.waitReport("running"));
  // One failed check (the first runs at once), and no second until the
  // clock moves: below the threshold, nothing is reported.
  std::this_thread::sleep_for(milliseconds(400));
  EXPECT_FALSE(host_.reported("unhealthy"));
  host_.fakeClock().advance(milliseconds(600));
  auto unhealthy = host_.waitReport("unhealthy");
  ASSERT_TRUE(unhealthy);
  EXPECT_NE(unhealthy->reason.find("tcp check on port"), std::string::npos) << unhealthy->reason;
  EXPECT_FALSE(host_.reported("healthy"));
}

TEST_F(InstanceWorkerTest, ExecCheckFailuresRespectTheThresholdAndQuoteTheLastLine) {
  rt_.guest().exec_revision = guest_proto::kExecRevision;
  rt_.guest().exec_exit_code = 1;
  rt_.guest().exec_output = "checking\ndatabase down\n";
  Workload w = workload();
  w.checks = nlohmann::json::array({{{"type", "exec"},
                                     {"command", {"/bin/check"}},
                                     {"interval_ms", 1000},
                                     {"timeout_ms", 1000},
                                     {"failure_threshold", 2}}});
  startWorker(w);
  ASSERT_TRUE(host_.waitReport("running"));
  ASSERT_TRUE(waitFor([&] { return rt_.vm(0)->execs == 1; }));
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(host_.reported("unhealthy"));
  EXPECT_EQ(rt_.vm(0)->execs, 1);
  host_.fakeClock().advance(milliseconds(600));
  auto unhealthy = host_.waitReport("unhealthy");
  ASSERT_TRUE(unhealthy);
  EXPECT_EQ(unhealthy->reason, "exec check: exited with code 1; last output: database down");
  EXPECT_EQ(rt_.vm(0)->execs, 2);
}

TEST_F(InstanceWorkerTest, APassingExecCheckMakesItHealthy) {
  rt_.guest().exec_revision = guest_proto::kExecRevision;
  Workload w = workload();
  w.checks = nlohmann::json::array({{{"type", "exec"}, {"command", {"/bin/check"}}}});
  startWorker(w);
  ASSERT_TRUE(host_.waitReport("healthy"));
  EXPECT_EQ(rt_.vm(0)->execs, 1);
  EXPECT_TRUE(worker_->execTarget().mux->attached());
}

TEST_F(InstanceWorkerTest, RestartBackoffWaitsForNotBefore) {
  Workload w = workload();
  w.restart_not_before_ms = std::chrono::duration_cast<milliseconds>(
                                (host_.fakeClock().now() + seconds(10)).time_since_epoch())
                                .count();
  startWorker(w);
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_EQ(rt_.starts(), 0);
  host_.fakeClock().advance(seconds(11));
  EXPECT_TRUE(host_.waitReport("running"));
  EXPECT_EQ(rt_.starts(), 1);
}

TEST_F(InstanceWorkerTest, ReleasingResourcesTwiceReleasesOnce) {
  Workload w = workload();
  InstanceRecord rec;
  rec.workload = w;
  rec.run_dir = host_.runDirFor(w.instance_id);
  rec.scratch = rec.run_dir + "/scratch.ext4";
  fs::create_directories(rec.run_dir);
  ASSERT_TRUE(host_.acquireImage(w));
  rec.image_acquired = true;
  runtime::VmSpec spec;
  spec.instance_id = w.instance_id;
  spec.run_dir = rec.run_dir;
  auto vm = rt_.start(spec);
  ASSERT_TRUE(vm) << vm.error().toString();
  rec.vm = *vm;

  releaseInstanceResources(host_, rec);
  EXPECT_EQ(rt_.kills(), 1);
  EXPECT_FALSE(rt_.alive(*vm));
  EXPECT_EQ(host_.imagesHeld(), 0);
  EXPECT_FALSE(fs::exists(host_.runDirFor(w.instance_id)));
  // The console is kept beside the workload's log.
  EXPECT_TRUE(fs::exists(host_.logPathFor(w.instance_id) + ".console"));
  EXPECT_FALSE(rec.vm);
  EXPECT_TRUE(rec.run_dir.empty());
  EXPECT_TRUE(rec.scratch.empty());
  EXPECT_FALSE(rec.image_acquired);

  releaseInstanceResources(host_, rec);
  EXPECT_EQ(rt_.kills(), 1);
  EXPECT_EQ(host_.imagesHeld(), 0);
}

TEST_F(InstanceWorkerTest, VolumesAreAttachedBySerialAndHaveOneWriter) {
  const std::string vol = "vol_01jd0000000000000000000001";
  Workload w = workload();
  w.volumes = {{vol, "uploads-0", "/data", uint64_t{16} << 20}};
  startWorker(w);
  ASSERT_TRUE(host_.waitReport("running"));
  const auto first = rt_.vm(0);
  ASSERT_EQ(first->drives.size(), 3u);
  EXPECT_EQ(first->drives[2].id, "vol-0");
  EXPECT_EQ(first->drives[2].path, host_.volumes().pathFor(vol));
  EXPECT_FALSE(first->drives[2].read_only);
  EXPECT_EQ(first->config_volumes.load(), 1u);
  EXPECT_EQ(first->first_volume, "/data vol-0");
  EXPECT_EQ(host_.volumes().size(vol), uint64_t{16} << 20);

  // A second instance on the same volume (a redeploy's replacement) waits,
  // saying why, until the first is gone.
  Workload w2 = w;
  w2.instance_id = "inst_01jd00000000000000000000u2";
  InstanceRecord rec;
  rec.workload = w2;
  InstanceWorker second(host_, std::move(rec));
  second.start();
  ASSERT_TRUE(waitFor([&] {
    return second.status().reason == "volume uploads-0 is in use by instance " + w.instance_id;
  })) << second.status().reason;
  EXPECT_EQ(rt_.starts(), 1);
  EXPECT_EQ(second.status().phase, Phase::kAllocated);

  worker_->remove();
  worker_->join();
  worker_.reset();
  ASSERT_TRUE(waitFor([&] { return second.status().phase == Phase::kRunning; }));
  EXPECT_EQ(rt_.starts(), 2);
  EXPECT_EQ(host_.volumes().holder(vol), w2.instance_id);
  EXPECT_TRUE(host_.volumes().size(vol)) << "a volume file outlives its instances";
  second.remove();
  second.join();
  EXPECT_FALSE(host_.volumes().holder(vol));
  EXPECT_TRUE(host_.volumes().size(vol));
}

// volume-mounts.md §Node side "Extend": the plan grows a running instance's
// volume; the worker grows the file, tells the VMM, asks the guest, and
// reports the new size only once the guest answered.
TEST_F(InstanceWorkerTest, ARunningVolumeGrowsOnlineWhenItsGuestServesResize) {
  const std::string vol = "vol_01jd0000000000000000000004";
  const uint64_t small = uint64_t{16} << 20;
  const uint64_t big = uint64_t{32} << 20;
  rt_.guest().volume_revision = guest_proto::kVolumeRevision;
  Workload w = workload();
  w.volumes = {{vol, "uploads-0", "/data", small}};
  startWorker(w);
  ASSERT_TRUE(host_.waitReport("running"));
  ASSERT_TRUE(waitFor([&] { return !host_.volumeReports().empty(); }));
  EXPECT_EQ(host_.volumeReports().front(), vol + " ready " + std::to_string(small));

  w.volumes[0].size_bytes = big;
  worker_->update(w);
  ASSERT_TRUE(waitFor([&] { return host_.volumeReports().size() == 2; }));
  EXPECT_EQ(host_.volumeReports().back(), vol + " ready " + std::to_string(big));
  EXPECT_EQ(host_.volumes().size(vol), big);
  EXPECT_EQ(rt_.driveResizes(), std::vector<std::string>{"vol-0 " + std::to_string(big)});
  EXPECT_EQ(rt_.vm(0)->resizes, std::vector<std::string>{"vol-0 " + std::to_string(big)});
  EXPECT_EQ(rt_.starts(), 1) << "no restart";
  // The same plan again asks nothing more.
  worker_->update(w);
  std::this_thread::sleep_for(milliseconds(500));
  EXPECT_EQ(rt_.driveResizes().size(), 1u);
}

TEST_F(InstanceWorkerTest, AGuestThatCannotGrowOnlineKeepsItsSizeUntilItsNextStart) {
  const std::string vol = "vol_01jd0000000000000000000005";
  const uint64_t small = uint64_t{16} << 20;
  Workload w = workload();
  w.volumes = {{vol, "uploads-0", "/data", small}};
  startWorker(w);  // the fake guest's HELLO has no volume_revision
  ASSERT_TRUE(host_.waitReport("running"));
  w.volumes[0].size_bytes = small * 2;
  worker_->update(w);
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_TRUE(rt_.driveResizes().empty());
  EXPECT_EQ(host_.volumes().size(vol), small) << "the file waits for the next start";
  EXPECT_EQ(host_.volumeReports(),
            std::vector<std::string>{vol + " ready " + std::to_string(small)});
}

TEST_F(InstanceWorkerTest, AGuestThatFailsTheResizeIsNotAskedAgainAndStaysUp) {
  const std::string vol = "vol_01jd0000000000000000000006";
  const uint64_t small = uint64_t{16} << 20;
  rt_.guest().volume_revision = guest_proto::kVolumeRevision;
  rt_.guest().resize_error = "EXT4_IOC_RESIZE_FS: Operation not permitted";
  Workload w = workload();
  w.volumes = {{vol, "uploads-0", "/data", small}};
  startWorker(w);
  ASSERT_TRUE(host_.waitReport("running"));
  w.volumes[0].size_bytes = small * 2;
  worker_->update(w);
  ASSERT_TRUE(waitFor([&] { return rt_.driveResizes().size() == 1; }));
  std::this_thread::sleep_for(milliseconds(600));
  EXPECT_EQ(rt_.driveResizes().size(), 1u);
  EXPECT_EQ(host_.volumeReports(),
            std::vector<std::string>{vol + " ready " + std::to_string(small)});
  EXPECT_EQ(worker_->status().phase, Phase::kRunning);
}

// volume-mounts.md §Snapshots, the worker's part: FREEZE, the copy, THAW,
// through the thread that owns the channel; a guest that cannot freeze is
// refused with the reason.
TEST_F(InstanceWorkerTest, ASnapshotFreezesCopiesAndThawsThroughTheWorker) {
  const std::string vol = "vol_01jd0000000000000000000007";
  rt_.guest().volume_revision = guest_proto::kVolumeRevision;
  Workload w = workload();
  w.volumes = {{vol, "uploads-0", "/data", uint64_t{16} << 20}};
  startWorker(w);
  ASSERT_TRUE(host_.waitReport("running"));
  auto snap = snapshotThroughWorker(vol, dir_.file("snap.ext4"));
  ASSERT_TRUE(snap) << snap.error().toString();
  EXPECT_TRUE(snap->method == "copy" || snap->method == "reflink") << snap->method;
  EXPECT_TRUE(snap->consistent);
  EXPECT_GE(snap->freeze_ms, 0);
  EXPECT_EQ(rt_.vm(0)->freezes.load(), 1);
  EXPECT_EQ(readFile(dir_.file("snap.ext4")).value_or("a"),
            readFile(host_.volumes().pathFor(vol)).value_or("b"));

  EXPECT_FALSE(snapshotThroughWorker("vol_01jd0000000000000000000008", dir_.file("other.ext4")))
      << "not this instance's volume";
}

TEST_F(InstanceWorkerTest, AGuestThatCannotFreezeGetsNoSnapshot) {
  const std::string vol = "vol_01jd0000000000000000000009";
  Workload w = workload();
  w.volumes = {{vol, "uploads-0", "/data", uint64_t{16} << 20}};
  startWorker(w);  // no volume_revision in its HELLO
  ASSERT_TRUE(host_.waitReport("running"));
  auto snap = snapshotThroughWorker(vol, dir_.file("snap.ext4"));
  ASSERT_FALSE(snap);
  EXPECT_EQ(snap.error().code(), "agent.snapshot_unsupported");
  EXPECT_EQ(rt_.vm(0)->freezes.load(), 0);
}

TEST_F(InstanceWorkerTest, AVolumeThatCannotBeMadeFailsTheInstanceNamingIt) {
  const std::string vol = "vol_01jd0000000000000000000003";
  // Something that is not a volume file where the file should be.
  fs::create_directories(host_.volumes().pathFor(vol));
  Workload w = workload();
  w.volumes = {{vol, "uploads-0", "/data", uint64_t{16} << 20}};
  startWorker(w);
  auto failed = host_.waitReport("failed");
  ASSERT_TRUE(failed);
  EXPECT_TRUE(failed->reason.starts_with("volume uploads-0: ")) << failed->reason;
  EXPECT_EQ(rt_.starts(), 0);
  EXPECT_FALSE(host_.volumes().holder(vol)) << "the claim goes with the failed start";
}

}  // namespace
}  // namespace plfm::agent
