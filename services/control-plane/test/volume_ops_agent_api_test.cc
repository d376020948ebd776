// The node-facing side of volume snapshots, backups, restore and verify on a real server and
// PostgreSQL (docs/specs/runtime/volume-mounts.md, "Contracts for snapshots, backups, restore
// and verify": NodePlan, Agent routes): the backup policy and volume_ops of the node plan, the
// snapshot and op report routes with the events they append, and hostile reports (another
// node's volume, bad ids, bad hex, oversized reasons, impossible transitions). The user API's
// part (requesting snapshots and ops) is stood in for by appending its events directly.
#include <gtest/gtest.h>

#include <future>

#include "volumes_agent_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::kGiB;
using testsupport::Reply;

const std::string kSha(64, 'a');
const std::string kBackup(64, 'b');

class VolumeOpsAgentApiTest : public testsupport::VolumesAgentApiTest {
 protected:
  // Appends `ev` on its volume's aggregate (the next version) and waits until the views have it.
  template <class T>
  void appendOnVolume(const Env& e, const T& ev) {
    auto conn = connect();
    int next = 0;
    {
      auto tx = pg::Transaction::begin(conn);
      ASSERT_TRUE(tx.has_value());
      auto seqs = EventStore::aggregateSeqs(*tx, {ev.volume_id});
      ASSERT_TRUE(seqs.has_value());
      next = (*seqs)[ev.volume_id] + 1;
    }
    appendOk(conn, {events::toNewEvent(ev, next, e.org)});
    waitForView(conn, "SELECT 1 FROM volumes_view WHERE volume_id = '" + ev.volume_id +
                          "' AND version = " + std::to_string(next));
  }
  // What POST /v1/volumes/{id}/snapshots appends; returns the snapshot id.
  std::string requestSnapshot(const Env& e, const std::string& volume, const std::string& node) {
    std::string id = SnapshotId::generate().str();
    appendOnVolume(e, events::VolumeSnapshotRequested{.snapshot_id = id,
                                                      .volume_id = volume,
                                                      .env_id = e.env,
                                                      .node_id = node,
                                                      .freeze = true});
    return id;
  }
  Reply snap(const std::string& node, const std::string& token, const std::string& volume,
             const std::string& snapshot, const json::Json& body) {
    return callJson("POST", "/v1/nodes/" + node + "/volumes/" + volume + "/snapshots/" + snapshot,
                    body, token);
  }
  Reply opReport(const std::string& node, const std::string& token, const std::string& op,
                 const json::Json& body) {
    return callJson("POST", "/v1/nodes/" + node + "/volume-ops/" + op, body, token);
  }
  static json::Json taken(const std::string& origin) {
    return {{"state", "taken"},    {"origin", origin},
            {"method", "reflink"}, {"consistent", true},
            {"freeze_ms", 12},     {"size_bytes", kGiB},
            {"sha256", kSha},      {"taken_at", "2026-12-06T10:00:00.123456Z"}};
  }
  static json::Json backedUp() {
    return {{"state", "backed_up"},
            {"backup_id", kBackup},
            {"bytes_added", 4096},
            {"duration_ms", 800}};
  }
  std::string snapState(const std::string& snapshot) {
    return queryText(
        "SELECT state || ' ' || origin || ' ' || local || ' ' || backup_expired || "
        "' ' || reason FROM volume_snapshots_view WHERE snapshot_id = $1",
        {snapshot});
  }
  std::string opState(const std::string& op) {
    return queryText(
        "SELECT kind || ' ' || state || ' ' || origin || ' ' || reason FROM "
        "volume_ops_view WHERE op_id = $1",
        {op});
  }
  json::Json plan(const std::string& node, const std::string& token) {
    auto r = call("GET", "/v1/nodes/" + node + "/plan?wait=0", "", token);
    EXPECT_EQ(r.status, 200) << r.raw;
    EXPECT_EQ(testsupport::validateAgainstSchemaFile("node-plan.json", r.body), std::nullopt)
        << r.raw;
    return r.body;
  }
};

TEST_F(VolumeOpsAgentApiTest, NodePlanCarriesTheBackupPolicyAndTheRequestedOps) {
  // Not a structured binding: the long poll's lambda captures these.
  const auto enrolled = enrollNode("n1.example");
  const std::string& node = enrolled.first;
  const std::string& token = enrolled.second;
  auto [other, other_token] = enrollNode("n2.example");
  const Env e = makeEnvIn("acme");
  // The env's target release declares uploads with its own policy; nothing runs (scale 0).
  json::Json manifest = webManifest();
  manifest["volumes"] = {{{"name", "uploads"},
                          {"mount", "/data"},
                          {"process", "web"},
                          {"size_bytes", kGiB},
                          {"backup_every_seconds", 3600},
                          {"backup_keep", 10}}};
  const std::string release = makeReleaseWith(e.app, manifest);
  ASSERT_EQ(callJson("PUT", "/v1/envs/" + e.env + "/scale", {{"processes", {{"web", 0}}}}).status,
            200);
  auto deploy = callJson("POST", "/v1/envs/" + e.env + "/deploys", {{"release_id", release}});
  ASSERT_EQ(deploy.status, 201) << deploy.raw;
  const std::string uploads = volumeOf(e, "uploads", 0, node);
  const std::string scratch = volumeOf(e, "scratch", 0, node);  // not in the manifest
  const std::string theirs = volumeOf(e, "uploads", 1, other);
  json::Json p = plan(node, token);
  ASSERT_EQ(p["volumes"].size(), 2U) << p.dump();
  for (const auto& v : p["volumes"]) {
    const bool declared = v["volume_id"] == uploads;
    EXPECT_EQ(v["backup_every_seconds"], declared ? 3600 : 900) << v.dump();
    EXPECT_EQ(v["backup_keep"], declared ? 10 : 96) << v.dump();
  }
  EXPECT_EQ(p["volume_ops"], json::Json::array());
  const int64_t v0 = p["version"];

  // A requested snapshot enters the plan and wakes its long poll; another node's does not.
  auto waiting = std::async(std::launch::async, [&] {
    return call("GET", "/v1/nodes/" + node + "/plan?wait=10&after=" + std::to_string(v0), "",
                token);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string s1 = requestSnapshot(e, uploads, node);
  auto woke = waiting.get();
  ASSERT_EQ(woke.status, 200) << woke.raw;
  EXPECT_GT(woke.body["version"].get<int64_t>(), v0);
  requestSnapshot(e, theirs, other);
  ASSERT_EQ(snap(node, token, uploads, s1, taken("api")).status, 200);
  ASSERT_EQ(snap(node, token, uploads, s1, backedUp()).status, 200);
  const std::string s2 = requestSnapshot(e, scratch, node);
  // A verify of s1 and a restore of it into scratch, in place.
  const std::string verify = VolumeOpId::generate().str();
  appendOnVolume(e, events::VolumeVerifyRequested{
                        .op_id = verify, .volume_id = uploads, .snapshot_id = s1, .node_id = node});
  const std::string restore = VolumeOpId::generate().str();
  appendOnVolume(e, events::VolumeRestoreRequested{.op_id = restore,
                                                   .volume_id = uploads,
                                                   .source_volume_id = uploads,
                                                   .snapshot_id = s1,
                                                   .node_id = node,
                                                   .source = "local",
                                                   .in_place = true});
  p = plan(node, token);
  const json::Json expected = json::Json::array(
      {{{"op_id", s2}, {"kind", "snapshot"}, {"volume_id", scratch}, {"freeze", true}},
       {{"op_id", verify},
        {"kind", "verify"},
        {"volume_id", uploads},
        {"snapshot_id", s1},
        {"backup_id", kBackup},
        {"sha256", kSha}},
       {{"op_id", restore},
        {"kind", "restore"},
        {"volume_id", uploads},
        {"source_volume_id", uploads},
        {"snapshot_id", s1},
        {"source", "local"},
        {"backup_id", nullptr},
        {"sha256", kSha},
        {"size_bytes", kGiB},
        {"in_place", true}}});
  EXPECT_EQ(p["volume_ops"], expected) << p.dump();
  EXPECT_EQ(p["volumes"][uploads < scratch ? 0 : 1]["state"], "restoring") << p.dump();
  const int64_t v1 = p["version"];
  // Ending an op takes it out of the plan with a new version.
  auto done = opReport(node, token, restore,
                       {{"kind", "restore"},
                        {"volume_id", uploads},
                        {"snapshot_id", s1},
                        {"ok", true},
                        {"sha256", kSha}});
  ASSERT_EQ(done.status, 200) << done.raw;
  p = plan(node, token);
  EXPECT_EQ(p["volume_ops"].size(), 2U) << p.dump();
  EXPECT_GT(p["version"].get<int64_t>(), v1);
  EXPECT_EQ(viewState(uploads).substr(0, 6), "ready ");
}

TEST_F(VolumeOpsAgentApiTest, SnapshotReportsMoveTheSnapshotOnceEach) {
  auto [node, token] = enrollNode("n1.example");
  const Env e = makeEnvIn("acme");
  const std::string vol = volumeOf(e, "uploads", 0, node);
  const std::string s1 = requestSnapshot(e, vol, node);

  auto first = snap(node, token, vol, s1, taken("api"));
  ASSERT_EQ(first.status, 200) << first.raw;
  EXPECT_EQ(first.body, json::Json({{"snapshot_id", s1}, {"state", "taken"}, {"applied", true}}));
  auto again = snap(node, token, vol, s1, taken("api"));
  EXPECT_EQ(again.body["applied"], false) << again.raw;
  EXPECT_EQ(again.header("X-Event-Seq"), "0");
  EXPECT_EQ(snapState(s1), "taken api true false ");
  EXPECT_EQ(queryText("SELECT (last_snapshot_at = '2026-12-06T10:00:00.123456Z')::text FROM "
                      "volumes_view WHERE volume_id = $1",
                      {vol}),
            "true");
  // The same id with another hash is another snapshot: refused.
  json::Json other = taken("api");
  other["sha256"] = std::string(64, 'c');
  EXPECT_EQ(snap(node, token, vol, s1, other).status, 409);
  // Failing a taken snapshot cannot happen.
  EXPECT_EQ(snap(node, token, vol, s1, {{"state", "failed"}, {"reason", "x"}}).status, 409);

  ASSERT_EQ(snap(node, token, vol, s1, backedUp()).body["applied"], true);
  EXPECT_EQ(snap(node, token, vol, s1, backedUp()).body["applied"], false);
  json::Json rebacked = backedUp();
  rebacked["backup_id"] = std::string(64, 'd');
  EXPECT_EQ(snap(node, token, vol, s1, rebacked).status, 409);
  EXPECT_EQ(snapState(s1), "backed_up api true false ");

  auto gone =
      snap(node, token, vol, s1, {{"state", "expired"}, {"local", true}, {"backup", false}});
  EXPECT_EQ(gone.body["applied"], true) << gone.raw;
  EXPECT_EQ(snap(node, token, vol, s1, {{"state", "expired"}, {"local", true}, {"backup", false}})
                .body["applied"],
            false);
  EXPECT_EQ(snap(node, token, vol, s1, {{"state", "expired"}, {"local", true}, {"backup", true}})
                .body["applied"],
            true);
  EXPECT_EQ(snapState(s1), "backed_up api false true ");

  // A scheduled snapshot the control plane never asked for makes its row.
  const std::string sched = SnapshotId::generate().str();
  auto own = snap(node, token, vol, sched, taken("schedule"));
  EXPECT_EQ(own.status, 200) << own.raw;
  EXPECT_EQ(snapState(sched), "taken schedule true false ");
  // An expired backup of a snapshot never backed up cannot happen.
  EXPECT_EQ(
      snap(node, token, vol, sched, {{"state", "expired"}, {"local", false}, {"backup", true}})
          .status,
      409);

  // A requested snapshot that fails keeps its reason, and is never taken after.
  const std::string s2 = requestSnapshot(e, vol, node);
  auto failed = snap(node, token, vol, s2, {{"state", "failed"}, {"reason", "no space left"}});
  EXPECT_EQ(failed.body["state"], "failed") << failed.raw;
  EXPECT_EQ(snap(node, token, vol, s2, {{"state", "failed"}}).body["applied"], false);
  EXPECT_EQ(snap(node, token, vol, s2, taken("api")).status, 409);
  EXPECT_EQ(snap(node, token, vol, s2, backedUp()).status, 409);
  EXPECT_EQ(snapState(s2), "failed api false false no space left");
  EXPECT_EQ(countEvents("volume.snapshot_taken"), 2);
  EXPECT_EQ(countEvents("volume.snapshot_failed"), 1);
  EXPECT_EQ(countEvents("volume.backed_up"), 1);
  EXPECT_EQ(countEvents("volume.snapshot_expired"), 2);
}

TEST_F(VolumeOpsAgentApiTest, OpReportsEndEachOpOnce) {
  auto [node, token] = enrollNode("n1.example");
  const Env e = makeEnvIn("acme");
  const std::string vol = volumeOf(e, "uploads", 0, node);
  const std::string s1 = requestSnapshot(e, vol, node);
  ASSERT_EQ(snap(node, token, vol, s1, taken("api")).status, 200);
  ASSERT_EQ(snap(node, token, vol, s1, backedUp()).status, 200);

  // A restore into a new volume that fails: the new volume is failed with the reason.
  const std::string target = volumeOf(e, "uploads-restore", 0, node);
  const std::string restore = VolumeOpId::generate().str();
  appendOnVolume(e, events::VolumeRestoreRequested{.op_id = restore,
                                                   .volume_id = target,
                                                   .source_volume_id = vol,
                                                   .snapshot_id = s1,
                                                   .node_id = node,
                                                   .source = "backup",
                                                   .in_place = false});
  // While it restores, the status route does not take the volume out of restoring.
  EXPECT_EQ(report(node, token, target, {{"state", "ready"}, {"size_bytes", kGiB}}).body["state"],
            "restoring");
  const json::Json failed = {{"kind", "restore"},
                             {"volume_id", target},
                             {"snapshot_id", s1},
                             {"ok", false},
                             {"reason", "sha256 mismatch"}};
  auto r = opReport(node, token, restore, failed);
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body, json::Json({{"op_id", restore}, {"state", "failed"}, {"applied", true}}));
  EXPECT_EQ(opReport(node, token, restore, failed).body["applied"], false);
  json::Json ok = failed;
  ok["ok"] = true;
  ok["sha256"] = kSha;
  ok.erase("reason");
  EXPECT_EQ(opReport(node, token, restore, ok).status, 409);
  EXPECT_EQ(opState(restore), "restore failed api sha256 mismatch");
  EXPECT_EQ(viewState(target), "failed 1073741824 sha256 mismatch");

  // A requested verify, then the node's own daily drill (an op id it made).
  const std::string verify = VolumeOpId::generate().str();
  appendOnVolume(e, events::VolumeVerifyRequested{
                        .op_id = verify, .volume_id = vol, .snapshot_id = s1, .node_id = node});
  const json::Json verified = {{"kind", "verify"}, {"volume_id", vol}, {"snapshot_id", s1},
                               {"ok", true},       {"reason", ""},     {"duration_ms", 1500}};
  EXPECT_EQ(opReport(node, token, verify, verified).body["applied"], true);
  EXPECT_EQ(opState(verify), "verify done api ");
  const std::string drill = VolumeOpId::generate().str();
  json::Json drilled = verified;
  drilled["ok"] = false;
  drilled["reason"] = "e2fsck found errors";
  EXPECT_EQ(opReport(node, token, drill, drilled).body["applied"], true);
  EXPECT_EQ(opState(drill), "verify failed schedule e2fsck found errors");
  EXPECT_EQ(queryText("SELECT last_verify_ok || ' ' || last_verify_reason FROM volumes_view "
                      "WHERE volume_id = $1",
                      {vol}),
            "false e2fsck found errors");
  // An unknown restore op, and a drill of a snapshot the volume does not have, are 404.
  EXPECT_EQ(opReport(node, token, VolumeOpId::generate().str(), ok).status, 404);
  json::Json stray = verified;
  stray["snapshot_id"] = SnapshotId::generate().str();
  EXPECT_EQ(opReport(node, token, VolumeOpId::generate().str(), stray).status, 404);
  // The op's kind and snapshot are its own.
  json::Json wrong_kind = verified;
  wrong_kind["volume_id"] = target;
  EXPECT_EQ(opReport(node, token, restore, wrong_kind).status, 409);
  EXPECT_EQ(countEvents("volume.restored"), 1);
  EXPECT_EQ(countEvents("volume.verified"), 2);
}

TEST_F(VolumeOpsAgentApiTest, ReportsReachOnlyTheNodesOwnVolumesSnapshotsAndOps) {
  auto [a, token_a] = enrollNode("a.example");
  auto [b, token_b] = enrollNode("b.example");
  const Env e = makeEnvIn("acme");
  const std::string on_a = volumeOf(e, "uploads", 0, a);
  const std::string on_b = volumeOf(e, "uploads", 1, b);
  const std::string snap_b = requestSnapshot(e, on_b, b);
  const std::string snap_a = requestSnapshot(e, on_a, a);
  const std::string verify_b = VolumeOpId::generate().str();
  appendOnVolume(e, events::VolumeVerifyRequested{
                        .op_id = verify_b, .volume_id = on_b, .snapshot_id = snap_b, .node_id = b});
  // Another node's volume, its snapshot under our volume, a new "scheduled" snapshot of its
  // volume: all look missing.
  EXPECT_EQ(snap(a, token_a, on_b, snap_b, taken("api")).status, 404);
  EXPECT_EQ(snap(a, token_a, on_a, snap_b, taken("api")).status, 404);
  EXPECT_EQ(snap(a, token_a, on_b, SnapshotId::generate().str(), taken("schedule")).status, 404);
  // An unknown snapshot that claims the API asked for it.
  EXPECT_EQ(snap(a, token_a, on_a, SnapshotId::generate().str(), taken("api")).status, 404);
  // Another node's op, through our volume or its own.
  json::Json body = {{"kind", "verify"},
                     {"volume_id", on_b},
                     {"snapshot_id", snap_b},
                     {"ok", true},
                     {"duration_ms", 1}};
  EXPECT_EQ(opReport(a, token_a, verify_b, body).status, 404);
  body["volume_id"] = on_a;
  EXPECT_EQ(opReport(a, token_a, verify_b, body).status, 404);
  // Another node's route, and a user token.
  EXPECT_EQ(snap(b, token_a, on_b, snap_b, taken("api")).status, 404);
  EXPECT_EQ(
      callJson("POST", "/v1/nodes/" + a + "/volumes/" + on_a + "/snapshots/" + snap_a, taken("api"))
          .status,
      403);
  EXPECT_EQ(countEvents("volume.snapshot_taken") + countEvents("volume.verified"), 0);
  EXPECT_EQ(snap(b, token_b, on_b, snap_b, taken("api")).body["applied"], true);
}

TEST_F(VolumeOpsAgentApiTest, BadReportsAreRefusedWithTheFieldNamed) {
  auto [node, token] = enrollNode("n1.example");
  const Env e = makeEnvIn("acme");
  const std::string vol = volumeOf(e, "uploads", 0, node);
  const std::string s1 = requestSnapshot(e, vol, node);
  auto with = [](json::Json j, const std::string& k, json::Json v) {
    j[k] = std::move(v);
    return j;
  };
  auto without = [](json::Json j, const std::string& k) {
    j.erase(k);
    return j;
  };
  const json::Json t = taken("api");
  const std::vector<std::pair<json::Json, std::string>> bad_snapshots = {
      {{{"state", "lost"}}, "state"},
      {without(t, "state"), "state"},
      {with(t, "origin", "cli"), "origin"},
      {with(t, "method", "dd"), "method"},
      {with(t, "consistent", "yes"), "consistent"},
      {with(t, "freeze_ms", -2), "freeze_ms"},
      {with(t, "freeze_ms", 1.5), "freeze_ms"},
      {with(t, "size_bytes", (int64_t{16} << 40) + 1), "size_bytes"},
      {with(t, "sha256", std::string(64, 'A')), "sha256"},
      {with(t, "sha256", std::string(63, 'a')), "sha256"},
      {with(t, "sha256", std::string(63, 'a') + "g"), "sha256"},
      {without(t, "sha256"), "sha256"},
      {with(t, "taken_at", "2026-12-06 10:00:00Z"), "taken_at"},
      {with(t, "taken_at", "2026-02-30T10:00:00Z"), "taken_at"},
      {with(t, "taken_at", "2026-12-06T10:00:00+01:00"), "taken_at"},
      {with(t, "taken_at", "2026-12-06T24:00:00Z"), "taken_at"},
      {with(t, "taken_at", "2026-12-06T10:00:00.Z"), "taken_at"},
      {with(t, "reason", "not for taken"), "reason"},
      {with(t, "backup_id", kBackup), "backup_id"},
      {{{"state", "failed"}, {"reason", std::string(513, 'x')}}, "reason"},
      {{{"state", "failed"}, {"reason", "line\nbreak"}}, "reason"},
      {{{"state", "failed"}, {"reason", "\x1b[31mred"}}, "reason"},
      {{{"state", "failed"}, {"reason", 7}}, "reason"},
      {with(backedUp(), "backup_id", "latest"), "backup_id"},
      {with(backedUp(), "backup_id", std::string(65, 'b')), "backup_id"},
      {with(backedUp(), "bytes_added", -1), "bytes_added"},
      {with(backedUp(), "duration_ms", 86'400'001), "duration_ms"},
      {{{"state", "expired"}, {"local", true}}, "backup"},
      {{{"state", "expired"}, {"local", 1}, {"backup", false}}, "local"},
  };
  for (const auto& [body, field] : bad_snapshots) {
    auto r = snap(node, token, vol, s1, body);
    EXPECT_EQ(r.status, 400) << body.dump() << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << body.dump() << ": " << r.raw;
  }
  // Ids in the path by their grammar.
  for (const std::string& bad : {std::string("snap_nope"), VolumeOpId::generate().str(),
                                 std::string("..%2f..%2fetc"), std::string(200, 's')}) {
    EXPECT_EQ(snap(node, token, vol, bad, t).status, 400) << bad;
  }
  EXPECT_EQ(snap(node, token, "vol_nope", s1, t).status, 400);
  EXPECT_EQ(snap(node, token, vol, s1, with(t, "path", "/etc/passwd")).status, 400);

  const json::Json v = {{"kind", "verify"}, {"volume_id", vol}, {"snapshot_id", s1},
                        {"ok", true},       {"reason", ""},     {"duration_ms", 10}};
  const json::Json rs = {
      {"kind", "restore"}, {"volume_id", vol}, {"snapshot_id", s1}, {"ok", true}, {"sha256", kSha}};
  const std::vector<std::pair<json::Json, std::string>> bad_ops = {
      {with(v, "kind", "fork"), "kind"},
      {with(v, "volume_id", s1), "volume_id"},
      {with(v, "snapshot_id", vol), "snapshot_id"},
      {without(v, "snapshot_id"), "snapshot_id"},
      {with(v, "ok", "true"), "ok"},
      {with(v, "reason", std::string(513, 'r')), "reason"},
      {with(v, "reason", std::string("nul\0byte", 8)), "reason"},
      {without(v, "duration_ms"), "duration_ms"},
      {with(v, "sha256", kSha), "sha256"},
      {without(rs, "sha256"), "sha256"},
      {with(rs, "sha256", "sha256:" + kSha), "sha256"},
      {with(rs, "duration_ms", 5), "duration_ms"},
  };
  const std::string op = VolumeOpId::generate().str();
  for (const auto& [body, field] : bad_ops) {
    auto r = opReport(node, token, op, body);
    EXPECT_EQ(r.status, 400) << body.dump() << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << body.dump() << ": " << r.raw;
  }
  EXPECT_EQ(opReport(node, token, s1, v).status, 400);  // a snapshot id is no op id
  EXPECT_EQ(countEvents("volume.snapshot_taken") + countEvents("volume.snapshot_failed") +
                countEvents("volume.backed_up") + countEvents("volume.snapshot_expired") +
                countEvents("volume.verified") + countEvents("volume.restored"),
            0);
}

}  // namespace
}  // namespace plfm::cp
