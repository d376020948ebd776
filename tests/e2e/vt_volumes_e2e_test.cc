// Volumes end to end (docs/specs/runtime/volume-mounts.md): examples/hello
// with a [[volumes]] table, deployed with the real vt on `vt dev up` in a
// private network namespace. A line written into the volume through `vt exec`
// survives what a user does to an app: the workload being killed (restarted
// in place), a redeploy (a new instance for the slot, stop-then-start), a
// rollback, and the whole platform going down and up again. Then the volume
// cannot be removed while attached; scaled to zero, `vt volumes rm` removes it
// and its file on the node.
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

  int manifests_ = 0;
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

  phase("rm is refused while attached; scaled to zero, rm removes the volume");
  VtRun busy = vt({"volumes", "rm", "data-0", "--app", "hello", "--yes"});
  EXPECT_EQ(busy.code, 4) << busy.out << busy.err;
  ASSERT_EQ(vt({"scale", "set", "web=0", "--app", "hello"}, 120s).code, 0);
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
