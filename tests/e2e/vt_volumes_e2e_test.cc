// Volumes end to end (docs/specs/runtime/volume-mounts.md): examples/hello
// with a [[volumes]] table, deployed with the real vt on `vt dev up` in a
// private network namespace. A line written into the volume through `vt exec`
// survives what a user does to an app: the workload being killed (restarted
// in place), a redeploy (a new instance for the slot, stop-then-start), a
// rollback, and the whole platform going down and up again. Then a snapshot
// is backed up to the dev node's restic repository and drilled (`vt volumes
// verify`); a restore into a new volume holds the snapshot's lines (read on
// the host with debugfs, the agent never mounts a volume), and a restore in
// place while the slot is scaled to zero rolls the data back. The volume
// cannot be removed while attached; scaled to zero, `vt volumes rm` removes
// it and its file on the node.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "netns_environment.h"
#include "plfm/core/process.h"
#include "plfm/testing/failure_summary.h"
#include "plfm/testing/temp_dir.h"
#include "vt_dev_driver.h"

namespace plfm {
namespace {

const void* const kFailureSummary = plfm::testing::installFailureSummary();

using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using e2e::VtRun;

const auto* const kEnv = e2e::addPrivateNetworkEnvironment("volumes e2e");

class VtVolumes : public ::testing::Test, public e2e::VtDevDriver {
 protected:
  void TearDown() override { (void)vt({"dev", "down", "--state-dir", state_->path()}, 180s); }

  // examples/hello's manifest with a volume for web, and `greeting` as its
  // GREETING (a different value makes a new release).
  std::string writeManifest(const std::string& greeting) {
    std::string text =
        readFile(std::string(PLFM_SOURCE_DIR) + "/examples/hello/vt.toml").value_or("");
    const std::string from = "GREETING = \"Hello from plfm-vt\"";
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos);
    if (at != std::string::npos) text.replace(at, from.size(), "GREETING = \"" + greeting + "\"");
    text +=
        "\n[[volumes]]\n"
        "name = \"data\"\n"
        "mount = \"/data\"\n"
        "size = \"64MiB\"\n"
        "process = \"web\"\n";
    std::string path = io_->file("vt-" + std::to_string(++manifests_) + ".toml");
    std::ofstream(path) << text;
    return path;
  }

  VtRun exec(const std::string& script, bool echo = true) {
    return vt({"exec", "--app", "hello", "--", "sh", "-c", script}, 60s, {}, echo);
  }

  // The volume's log once exec works again (the instance may be restarting).
  std::string readLog(std::chrono::seconds timeout = 240s) {
    for (auto deadline = Clock::now() + timeout; Clock::now() < deadline;) {
      // A missing file reads as empty; exec fails only while the
      // instance restarts.
      VtRun r = exec("cat /data/log 2>/dev/null; true", false);
      if (r.code == 0) return r.out;
      std::this_thread::sleep_for(1s);
    }
    ADD_FAILURE() << "vt exec never read /data/log";
    return "";
  }

  void append(const std::string& word) {
    VtRun r = exec("echo " + word + " >> /data/log && sync");
    ASSERT_EQ(r.code, 0) << r.err;
  }

  json volumes() {
    VtRun r = vt({"volumes", "list", "--app", "hello", "--format", "json"});
    json j = json::parse(r.out, nullptr, false);
    if (j.is_object() && j.contains("items")) j = j["items"];
    return j.is_array() ? j : json::array();
  }

  std::string webInstance() {
    VtRun r = vt({"instances", "list", "--app", "hello", "--format", "json"}, 60s, {}, false);
    json j = json::parse(r.out, nullptr, false);
    if (!j.is_object() || !j["items"].is_array()) return "";
    for (const auto& i : j["items"]) {
      if (i.value("process_type", "") == "web" && i.value("desired_state", "") == "run") {
        return i.value("id", "");
      }
    }
    return "";
  }

  json volume(const std::string& name) {
    VtRun r = vt({"volumes", "get", name, "--app", "hello", "--format", "json"}, 60s, {}, false);
    return json::parse(r.out, nullptr, false);
  }

  // The snapshot once it reaches `state` (or failed), as `vt volumes
  // snapshots` shows it.
  json waitForSnapshot(const std::string& snapshot_id, const std::string& state) {
    json last;
    for (auto deadline = Clock::now() + 240s; Clock::now() < deadline;) {
      VtRun r = vt({"volumes", "snapshots", "data-0", "--app", "hello", "--format", "json"}, 60s,
                   {}, false);
      json j = json::parse(r.out, nullptr, false);
      if (j.is_object() && j["items"].is_array()) {
        for (const auto& s : j["items"]) {
          if (s.value("snapshot_id", "") != snapshot_id) continue;
          last = s;
          if (s.value("state", "") == state || s.value("state", "") == "failed") {
            EXPECT_EQ(s.value("state", ""), state) << s.dump();
            return s;
          }
        }
      }
      std::this_thread::sleep_for(1s);
    }
    ADD_FAILURE() << "snapshot " << snapshot_id << " never became " << state << ": " << last;
    return last;
  }

  struct Output {
    int code = -1;
    std::string out;
  };
  // Runs argv (no shell) and returns its exit code and stdout.
  Output runOutput(const std::vector<std::string>& argv) {
    Output o;
    const std::string out = io_->file("run-" + std::to_string(++runs_) + ".out");
    SpawnOptions so;
    so.stdout_path = out;
    so.stderr_path = out + ".err";
    auto p = spawn(argv, so);
    if (!p) return o;
    o.code = exitCodeOf(p->wait());
    o.out = readFile(out).value_or("");
    return o;
  }

  int manifests_ = 0;
  int runs_ = 0;
};

TEST_F(VtVolumes, DataSurvivesRestartRedeployRollbackAndPlatformRestart) {
  phase("vt dev up, deploy examples/hello with a volume at /data");
  ASSERT_EQ(vt(upArgs(), 240s).code, 0);
  const std::string ref = pushHello();
  ASSERT_NE(ref.find("@sha256:"), std::string::npos) << ref;
  VtRun d1 =
      vt({"deploy", "--manifest", writeManifest("one"), "--image", ref, "--timeout", "4m"}, 300s);
  ASSERT_EQ(d1.code, 0) << d1.err;
  json vols = volumes();
  ASSERT_EQ(vols.size(), 1U) << vols.dump();
  EXPECT_EQ(vols[0].value("full_name", ""), "data-0") << vols.dump();
  EXPECT_EQ(vols[0].value("process", ""), "web");
  EXPECT_TRUE(vols[0]["node_id"].is_string()) << vols.dump();
  const std::string volume_id = vols[0].value("volume_id", "");
  ASSERT_FALSE(volume_id.empty());

  phase("the workload writes to the volume");
  EXPECT_EQ(readLog(), "");
  append("first");
  VtRun df = exec("df -k /data | tail -n 1");
  EXPECT_NE(df.out.find("/data"), std::string::npos) << df.out;

  phase("the workload is killed: restarted in place, the data is there");
  const std::string inst1 = webInstance();
  (void)exec("kill -KILL $(pidof hello)");
  EXPECT_EQ(readLog(), "first\n");
  append("second");

  phase("a redeploy: a new instance for slot 0 gets the volume back");
  VtRun d2 =
      vt({"deploy", "--manifest", writeManifest("two"), "--image", ref, "--timeout", "4m"}, 300s);
  ASSERT_EQ(d2.code, 0) << d2.err;
  const std::string inst2 = webInstance();
  EXPECT_NE(inst2, inst1);
  EXPECT_EQ(readLog(), "first\nsecond\n");
  append("third");

  phase("a rollback");
  VtRun rb = vt({"rollback", "--app", "hello", "--timeout", "4m"}, 300s);
  ASSERT_EQ(rb.code, 0) << rb.err;
  EXPECT_EQ(readLog(), "first\nsecond\nthird\n");
  append("fourth");

  phase("the platform goes down and up again");
  ASSERT_EQ(vt({"dev", "down", "--state-dir", state_->path()}, 180s).code, 0);
  ASSERT_EQ(vt(upArgs(), 240s).code, 0);
  EXPECT_EQ(readLog(), "first\nsecond\nthird\nfourth\n");

  phase("a snapshot, backed up to the dev node's restic repository, and a restore drill");
  VtRun snap =
      vt({"volumes", "snapshot", "data-0", "--app", "hello", "--wait", "--format", "json"}, 180s);
  ASSERT_EQ(snap.code, 0) << snap.out << snap.err;
  const json receipt = json::parse(snap.out, nullptr, false);
  const std::string snapshot_id = receipt.is_object() && receipt["result"].is_object()
                                      ? receipt["result"].value("snapshot_id", "")
                                      : "";
  ASSERT_EQ(snapshot_id.rfind("snap_", 0), 0U) << snap.out;
  const json taken = waitForSnapshot(snapshot_id, "backed_up");
  EXPECT_TRUE(taken.value("consistent", false)) << taken.dump();
  EXPECT_EQ(taken.value("local", false), true) << taken.dump();
  json got = volume("data-0");
  EXPECT_TRUE(got["rpo_seconds"].is_number()) << got.dump();
  VtRun verify = vt({"volumes", "verify", "data-0", "--app", "hello", "--wait"}, 300s);
  EXPECT_EQ(verify.code, 0) << verify.out << verify.err;
  EXPECT_EQ(volume("data-0").value("last_verify_ok", false), true) << volume("data-0").dump();

  phase("a restore into a new volume holds the snapshot's lines");
  VtRun restore = vt({"volumes", "restore", "data-0", "--app", "hello", "--from", snapshot_id,
                      "--to", "copy", "--wait"},
                     300s);
  ASSERT_EQ(restore.code, 0) << restore.out << restore.err;
  const json copy = volume("copy-0");
  EXPECT_EQ(copy.value("state", ""), "ready") << copy.dump();
  const std::string copy_file =
      state_->file("node-agent/volumes/" + copy.value("volume_id", "") + ".ext4");
  EXPECT_EQ(runOutput({"e2fsck", "-fn", copy_file}).code, 0);
  EXPECT_EQ(runOutput({"debugfs", "-R", "cat /log", copy_file}).out,
            "first\nsecond\nthird\nfourth\n");

  phase("a restore in place, while the slot is scaled to zero, rolls the data back");
  append("fifth");
  VtRun busy = vt({"volumes", "rm", "data-0", "--app", "hello", "--yes"});
  EXPECT_EQ(busy.code, 4) << busy.out << busy.err;
  VtRun refused =
      vt({"volumes", "restore", "data-0", "--app", "hello", "--from", snapshot_id, "--in-place"});
  EXPECT_NE(refused.code, 0) << refused.out;
  ASSERT_EQ(vt({"scale", "set", "web=0", "--app", "hello"}, 120s).code, 0);
  bool restored = false;
  for (auto deadline = Clock::now() + 180s; !restored && Clock::now() < deadline;) {
    VtRun r = vt({"volumes", "restore", "data-0", "--app", "hello", "--from", snapshot_id,
                  "--in-place", "--wait"},
                 300s, {}, false);
    restored = r.code == 0;
    if (!restored) std::this_thread::sleep_for(2s);
  }
  ASSERT_TRUE(restored);
  ASSERT_EQ(vt({"scale", "set", "web=1", "--app", "hello"}, 120s).code, 0);
  EXPECT_EQ(readLog(), "first\nsecond\nthird\nfourth\n");

  phase("rm is refused while attached; scaled to zero, rm removes the volumes");
  ASSERT_EQ(vt({"scale", "set", "web=0", "--app", "hello"}, 120s).code, 0);
  ASSERT_EQ(vt({"volumes", "rm", "copy-0", "--app", "hello", "--yes"}).code, 0);
  bool removed = false;
  for (auto deadline = Clock::now() + 180s; !removed && Clock::now() < deadline;) {
    VtRun rm = vt({"volumes", "rm", "data-0", "--app", "hello", "--yes"}, 60s, {}, false);
    removed = rm.code == 0;
    if (!removed) std::this_thread::sleep_for(2s);
  }
  if (!removed) {
    (void)vt({"volumes", "rm", "data-0", "--app", "hello", "--yes"});
    (void)vt({"instances", "list", "--app", "hello", "--format", "json"});
  }
  ASSERT_TRUE(removed);
  const std::string file = state_->file("node-agent/volumes/" + volume_id + ".ext4");
  bool gone = false;
  for (auto deadline = Clock::now() + 120s; !gone && Clock::now() < deadline;) {
    gone = volumes().empty() && !std::filesystem::exists(file);
    if (!gone) std::this_thread::sleep_for(1s);
  }
  EXPECT_TRUE(gone) << volumes().dump();
  std::printf("volumes e2e wall time: %.1fs\n", elapsed());
}

}  // namespace
}  // namespace plfm
