// The snapshot, restore, fork and verify routes of the volume API
// (docs/specs/api/v1.md "Volumes", docs/specs/runtime/volume-mounts.md
// "Contracts for snapshots, backups, restore and verify") on a real server
// and a real PostgreSQL. The node agent's side (snapshot taken, backed up)
// is played by appending its events. Covers idempotent replays, the volume
// object's new fields, the choice of node and source, and the refusals: a
// volume not ready, no backup yet, a name taken, in place while the slot's
// instance should run, and another org's volume (404, docs/security.md).
#include <gtest/gtest.h>

#include <thread>

#include "volume_tenant_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::Reply;
using testsupport::VolumeTenantTest;

using testsupport::kGiB;
const std::string kSha(64, 'a');
const std::string kBackup(64, 'b');

class VolumeSnapshotsApiTest : public VolumeTenantTest {
 protected:
  // A ready node with room for volumes.
  std::string roomyNode(const std::string& hostname) {
    auto [node, token] = enrollNode(hostname);
    EXPECT_EQ(callJson("POST", "/v1/nodes/" + node + "/heartbeat",
                       {{"volume_capacity_bytes", 100 * kGiB}}, token)
                  .status,
              200);
    return node;
  }
  Reply post(const Tenant& t, const std::string& id, const std::string& what,
             const json::Json& body) {
    return callJson("POST", "/v1/volumes/" + id + "/" + what, body, t.token);
  }
  Reply get(const Tenant& t, const std::string& path) { return call("GET", path, "", t.token); }
  // Appends an event of the volume's aggregate as its node's agent (or the
  // scheduler) would, then waits until `shown` holds.
  template <class Event>
  void append(const Tenant& t, const std::string& volume, Event ev,
              const std::function<bool()>& shown) {
    auto conn = connect();
    auto rs = conn.exec(
        "SELECT coalesce(max(aggregate_seq), 0) + 1 FROM events WHERE aggregate_id = $1", {volume});
    ASSERT_TRUE(rs.has_value());
    const int next = static_cast<int>(rs->int64(0, 0).value_or(0));
    appendOk(conn, {events::toNewEvent(ev, next, t.org)}, {"system:test", ""});
    for (int i = 0; i < 100; ++i) {
      if (shown()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << Event::kType << " never showed for " << volume;
  }
  // A volume of `t` placed on `node` and reported ready there.
  std::string readyVolume(const Tenant& t, const std::string& name, const std::string& node) {
    auto made = callJson("POST", "/v1/envs/" + t.env + "/volumes",
                         {{"process", "web"}, {"name", name}, {"size", "1GiB"}}, t.token);
    EXPECT_EQ(made.status, 201) << made.raw;
    std::string id = made.body.value("volume_id", "");
    auto state = [&] { return get(t, "/v1/volumes/" + id).body.value("state", ""); };
    append(t, id, events::VolumePlaced{.volume_id = id, .env_id = t.env, .node_id = node},
           [&] { return state() == "placed"; });
    append(
        t, id,
        events::VolumeStatusReported{
            .volume_id = id, .node_id = node, .state = "ready", .size_bytes = kGiB, .reason = ""},
        [&] { return state() == "ready"; });
    return id;
  }
  void taken(const Tenant& t, const std::string& id, const std::string& snap,
             const std::string& node) {
    append(t, id,
           events::VolumeSnapshotTaken{.snapshot_id = snap,
                                       .volume_id = id,
                                       .env_id = t.env,
                                       .node_id = node,
                                       .origin = "api",
                                       .method = "reflink",
                                       .consistent = true,
                                       .freeze_ms = 12,
                                       .size_bytes = kGiB,
                                       .sha256 = kSha,
                                       .taken_at = "2026-12-01T10:00:00Z"},
           [&] { return snapshot(t, id, snap).value("state", "") == "taken"; });
  }
  void backedUp(const Tenant& t, const std::string& id, const std::string& snap,
                const std::string& node) {
    append(t, id,
           events::VolumeBackedUp{.snapshot_id = snap,
                                  .volume_id = id,
                                  .node_id = node,
                                  .backup_id = kBackup,
                                  .bytes_added = 4096,
                                  .duration_ms = 300},
           [&] { return snapshot(t, id, snap).value("state", "") == "backed_up"; });
  }
  json::Json snapshot(const Tenant& t, const std::string& id, const std::string& snap) {
    return get(t, "/v1/volumes/" + id + "/snapshots/" + snap).body;
  }
};

TEST_F(VolumeSnapshotsApiTest, SnapshotRestoreForkAndVerifyAReadyVolume) {
  const Tenant alice = tenant("alice");
  const std::string n1 = roomyNode("n1.example");
  const std::string n2 = roomyNode("n2.example");
  const std::string id = readyVolume(alice, "uploads", n1);

  // The volume object's backup fields, before any snapshot.
  auto v = get(alice, "/v1/volumes/" + id);
  ASSERT_EQ(v.status, 200) << v.raw;
  EXPECT_TRUE(v.body["last_snapshot_at"].is_null());
  EXPECT_TRUE(v.body["last_backup_at"].is_null());
  EXPECT_TRUE(v.body["rpo_seconds"].is_null());
  EXPECT_TRUE(v.body["last_verify_ok"].is_null());
  EXPECT_EQ(v.body["backup_every_seconds"], 900);
  EXPECT_EQ(v.body["backup_keep"], 96);

  // A snapshot: requested on the volume's node, replay-safe.
  http::Headers key;
  key.set("Idempotency-Key", "snapshot-1");
  auto snap = call("POST", "/v1/volumes/" + id + "/snapshots", "{}", alice.token, key);
  ASSERT_EQ(snap.status, 201) << snap.raw;
  const std::string s1 = snap.body["snapshot_id"];
  EXPECT_EQ(s1.rfind("snap_", 0), 0U);
  EXPECT_EQ(snap.body["state"], "requested");
  EXPECT_EQ(snap.body["node_id"], n1);
  EXPECT_EQ(snap.body["origin"], "api");
  auto replay = call("POST", "/v1/volumes/" + id + "/snapshots", "{}", alice.token, key);
  EXPECT_EQ(replay.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(replay.body["snapshot_id"], s1);
  EXPECT_EQ(countEvents("volume.snapshot_requested"), 1);
  auto crash = post(alice, id, "snapshots", {{"freeze", false}});
  ASSERT_EQ(crash.status, 201) << crash.raw;
  const std::string s2 = crash.body["snapshot_id"];
  {
    auto conn = connect();
    auto rs = conn.exec(
        "SELECT payload->>'freeze' FROM events WHERE event_type = "
        "'volume.snapshot_requested' ORDER BY seq");
    ASSERT_TRUE(rs.has_value());
    ASSERT_EQ(rs->rows(), 2);
    EXPECT_EQ(rs->text(0, 0), "true");
    EXPECT_EQ(rs->text(1, 0), "false");
  }
  // Read your writes: the list shows both, newest first.
  auto listed = get(alice, "/v1/volumes/" + id + "/snapshots");
  ASSERT_EQ(listed.status, 200) << listed.raw;
  ASSERT_EQ(listed.body["items"].size(), 2U);
  EXPECT_EQ(listed.body["items"][0]["snapshot_id"], s2);
  EXPECT_EQ(listed.body["items"][1]["snapshot_id"], s1);
  EXPECT_EQ(snapshot(alice, id, s1)["state"], "requested");
  EXPECT_EQ(get(alice, "/v1/volumes/" + id + "/snapshots/snap_01jdq3v7k2m9x4c8r6t0w5y1zb").status,
            404);

  // Nothing is backed up yet: no verify, no fork; a requested snapshot
  // cannot be restored.
  auto verify = post(alice, id, "verify", json::Json::object());
  EXPECT_EQ(verify.status, 409) << verify.raw;
  EXPECT_NE(verify.raw.find("no backup of uploads-0 yet"), std::string::npos) << verify.raw;
  auto fork = post(alice, id, "fork", {{"node_id", n2}});
  EXPECT_EQ(fork.status, 409) << fork.raw;
  EXPECT_NE(fork.raw.find("no backup of uploads-0 yet"), std::string::npos) << fork.raw;
  auto early = post(alice, id, "restore", {{"snapshot_id", s1}});
  EXPECT_EQ(early.status, 409) << early.raw;
  EXPECT_EQ(early.body["error"]["details"]["state"], "requested");

  // Taken on n1: a restore into a new volume reads n1's copy.
  ASSERT_NO_FATAL_FAILURE(taken(alice, id, s1, n1));
  EXPECT_FALSE(get(alice, "/v1/volumes/" + id).body["last_snapshot_at"].is_null());
  auto restored = post(alice, id, "restore", {{"snapshot_id", s1}});
  ASSERT_EQ(restored.status, 201) << restored.raw;
  const json::Json op = restored.body["op"];
  const json::Json nv = restored.body["volume"];
  EXPECT_EQ(op["kind"], "restore");
  EXPECT_EQ(op["source"], "local");
  EXPECT_EQ(op["node_id"], n1);
  EXPECT_EQ(op["source_volume_id"], id);
  EXPECT_EQ(op["volume_id"], nv["volume_id"]);
  EXPECT_EQ(op["in_place"], false);
  EXPECT_EQ(nv["full_name"], "uploads-restore-0");
  EXPECT_EQ(nv["state"], "restoring");
  EXPECT_EQ(nv["node_id"], n1);
  EXPECT_EQ(nv["size_bytes"], kGiB);
  const std::string nid = nv["volume_id"];
  auto got_op = get(alice, "/v1/volumes/" + nid + "/ops/" + op["op_id"].get<std::string>());
  ASSERT_EQ(got_op.status, 200) << got_op.raw;
  EXPECT_EQ(got_op.body["state"], "requested");
  EXPECT_EQ(get(alice, "/v1/volumes/" + nid).body["state"], "restoring");
  {
    auto conn = connect();
    auto rs = conn.exec(
        "SELECT event_type, aggregate_seq FROM events WHERE aggregate_id = $1 ORDER BY seq", {nid});
    ASSERT_TRUE(rs.has_value());
    ASSERT_EQ(rs->rows(), 3);
    EXPECT_EQ(rs->text(0, 0), "volume.created");
    EXPECT_EQ(rs->text(1, 0), "volume.placed");
    EXPECT_EQ(rs->text(2, 0), "volume.restore_requested");
    auto origin = conn.exec(
        "SELECT payload->>'origin' FROM events WHERE event_type = 'volume.created' AND "
        "aggregate_id = $1",
        {nid});
    ASSERT_TRUE(origin.has_value());
    EXPECT_EQ(origin->text(0, 0), "restore");
  }
  // The same name again is taken; another node has no copy of s1 yet.
  auto again = post(alice, id, "restore", {{"snapshot_id", s1}});
  EXPECT_EQ(again.status, 409) << again.raw;
  EXPECT_EQ(code(again), "already_exists");
  EXPECT_EQ(field(again), "to");
  auto elsewhere = post(alice, id, "restore", {{"snapshot_id", s1}, {"to", "b"}, {"node_id", n2}});
  EXPECT_EQ(elsewhere.status, 409) << elsewhere.raw;
  EXPECT_NE(elsewhere.raw.find("no backup yet"), std::string::npos) << elsewhere.raw;

  // Backed up: the RPO shows, a fork to n2 and a verify read the backup.
  ASSERT_NO_FATAL_FAILURE(backedUp(alice, id, s1, n1));
  auto after = get(alice, "/v1/volumes/" + id);
  EXPECT_FALSE(after.body["last_backup_at"].is_null()) << after.raw;
  EXPECT_GE(after.body["rpo_seconds"].get<int64_t>(), 0);
  auto forked = post(alice, id, "fork", {{"node_id", n2}});
  ASSERT_EQ(forked.status, 201) << forked.raw;
  EXPECT_EQ(forked.body["op"]["source"], "backup");
  EXPECT_EQ(forked.body["op"]["snapshot_id"], s1);
  EXPECT_EQ(forked.body["volume"]["full_name"], "uploads-fork-0");
  EXPECT_EQ(forked.body["volume"]["node_id"], n2);
  auto checked = post(alice, id, "verify", json::Json::object());
  ASSERT_EQ(checked.status, 201) << checked.raw;
  EXPECT_EQ(checked.body["kind"], "verify");
  EXPECT_EQ(checked.body["source"], "backup");
  EXPECT_EQ(checked.body["snapshot_id"], s1);
  EXPECT_EQ(checked.body["node_id"], n1);
  EXPECT_EQ(countEvents("volume.verify_requested"), 1);

  // In place (no instance runs with it): the volume itself restores.
  auto in_place = post(alice, id, "restore", {{"snapshot_id", s1}, {"in_place", true}});
  ASSERT_EQ(in_place.status, 201) << in_place.raw;
  EXPECT_EQ(in_place.body["op"]["in_place"], true);
  EXPECT_EQ(in_place.body["op"]["source"], "local");
  EXPECT_EQ(in_place.body["volume"]["volume_id"], id);
  EXPECT_EQ(in_place.body["volume"]["state"], "restoring");
  // Restoring: no snapshot, no second in-place restore.
  EXPECT_EQ(code(post(alice, id, "snapshots", json::Json::object())), "failed_precondition");
  EXPECT_EQ(code(post(alice, id, "restore", {{"snapshot_id", s1}, {"in_place", true}})),
            "failed_precondition");
}

TEST_F(VolumeSnapshotsApiTest, RefusalsNameTheirFieldOrState) {
  const Tenant alice = tenant("alice");
  auto made = callJson("POST", "/v1/envs/" + alice.env + "/volumes",
                       {{"process", "web"}, {"name", "uploads"}, {"size", "1GiB"}}, alice.token);
  ASSERT_EQ(made.status, 201) << made.raw;
  const std::string id = made.body["volume_id"];
  // Pending: no node holds it, so there is nothing to snapshot or verify.
  auto pending = post(alice, id, "snapshots", json::Json::object());
  EXPECT_EQ(pending.status, 409) << pending.raw;
  EXPECT_EQ(pending.body["error"]["details"]["state"], "pending");
  EXPECT_EQ(code(post(alice, id, "verify", json::Json::object())), "failed_precondition");
  const std::string snap = "snap_01jdq3v7k2m9x4c8r6t0w5y1zb";
  const std::vector<std::tuple<std::string, json::Json, std::string>> cases = {
      {"snapshots", {{"freeze", "yes"}}, "freeze"},
      {"restore", json::Json::object(), "snapshot_id"},
      {"restore", {{"snapshot_id", "vol_01jdq3v7k2m9x4c8r6t0w5y1zb"}}, "snapshot_id"},
      {"restore", {{"snapshot_id", snap}, {"to", "Bad_Name"}}, "to"},
      {"restore", {{"snapshot_id", snap}, {"to", std::string(60, 'a')}}, "to"},
      {"restore", {{"snapshot_id", snap}, {"to", "b"}, {"in_place", true}}, "to"},
      {"restore", {{"snapshot_id", snap}, {"in_place", "yes"}}, "in_place"},
      {"restore", {{"snapshot_id", snap}, {"node_id", "n1"}}, "node_id"},
      {"fork", json::Json::object(), "node_id"},
      {"verify", {{"snapshot_id", 7}}, "snapshot_id"},
  };
  for (const auto& [what, body, want] : cases) {
    auto r = post(alice, id, what, body);
    EXPECT_EQ(r.status, 400) << what << " " << body.dump() << " " << r.raw;
    EXPECT_EQ(field(r), want) << what << " " << body.dump() << " " << r.raw;
  }
  EXPECT_EQ(code(post(alice, id, "verify", {{"x", 1}})), "unknown_field");
  // A snapshot of no volume of this one: 404 naming it.
  auto unknown = post(alice, id, "restore", {{"snapshot_id", snap}});
  EXPECT_EQ(unknown.status, 404) << unknown.raw;
  EXPECT_EQ(field(unknown), "snapshot_id");
  EXPECT_EQ(countEvents("volume.snapshot_requested"), 0);
  EXPECT_EQ(countEvents("volume.restore_requested"), 0);
  EXPECT_EQ(countEvents("volume.verify_requested"), 0);
}

// Another org's volume is 404 on every snapshot route, like a missing one.
TEST_F(VolumeSnapshotsApiTest, AnotherOrgsVolumeIsNotFound) {
  const Tenant alice = tenant("alice");
  const Tenant mallory = tenant("mallory");
  const std::string n1 = roomyNode("n1.example");
  const std::string id = readyVolume(alice, "uploads", n1);
  auto snap = post(alice, id, "snapshots", json::Json::object());
  ASSERT_EQ(snap.status, 201) << snap.raw;
  const std::string s1 = snap.body["snapshot_id"];
  ASSERT_NO_FATAL_FAILURE(taken(alice, id, s1, n1));
  ASSERT_NO_FATAL_FAILURE(backedUp(alice, id, s1, n1));
  for (const std::string& v : {id, std::string("vol_01jdq3v7k2m9x4c8r6t0w5y1zb")}) {
    EXPECT_EQ(post(mallory, v, "snapshots", json::Json::object()).status, 404);
    EXPECT_EQ(get(mallory, "/v1/volumes/" + v + "/snapshots").status, 404);
    const std::string snapshot_path = std::string("/v1/volumes/").append(v).append("/snapshots/");
    EXPECT_EQ(get(mallory, snapshot_path + s1).status, 404);
    EXPECT_EQ(post(mallory, v, "restore", {{"snapshot_id", s1}}).status, 404);
    EXPECT_EQ(post(mallory, v, "fork", {{"node_id", n1}}).status, 404);
    EXPECT_EQ(post(mallory, v, "verify", json::Json::object()).status, 404);
    EXPECT_EQ(get(mallory, "/v1/volumes/" + v + "/ops/vop_01jdq3v7k2m9x4c8r6t0w5y1zb").status, 404);
  }
  EXPECT_EQ(countEvents("volume.snapshot_requested"), 1);
  EXPECT_EQ(countEvents("volume.restore_requested"), 0);
  EXPECT_EQ(countEvents("volume.verify_requested"), 0);
  // A volume being deleted is no source for a new one any more.
  ASSERT_EQ(call("DELETE", "/v1/volumes/" + id, "", alice.token).body["state"], "deleting");
  auto late = post(alice, id, "restore", {{"snapshot_id", s1}});
  EXPECT_EQ(late.status, 409) << late.raw;
  EXPECT_EQ(late.body["error"]["details"]["state"], "deleting");
  EXPECT_EQ(code(post(alice, id, "fork", {{"node_id", n1}})), "failed_precondition");
  EXPECT_EQ(code(post(alice, id, "verify", json::Json::object())), "failed_precondition");
  EXPECT_EQ(countEvents("volume.restore_requested"), 0);
}

// In place is refused while the slot's instance should run with the volume
// (as a delete is); a restore into a new volume is not.
TEST_F(VolumeSnapshotsApiTest, InPlaceIsRefusedWhileTheSlotsInstanceShouldRun) {
  // The admin's org deploys a release whose web process declares uploads
  // (with its own backup policy) and runs one instance of it.
  Tenant t;
  t.token = admin_token_;
  t.org = makeOrg("acme");
  t.app = makeApp(t.org, "web");
  t.env = makeEnv(t.app, "prod");
  const std::string node = roomyNode("n1.example");
  json::Json manifest = webManifest();
  manifest["volumes"].push_back({{"name", "uploads"},
                                 {"mount", "/data"},
                                 {"process", "web"},
                                 {"size_bytes", kGiB},
                                 {"backup_every_seconds", 3600},
                                 {"backup_keep", 7}});
  const std::string release = makeReleaseWith(t.app, manifest);
  ASSERT_FALSE(release.empty());
  const std::vector<std::tuple<std::string, std::string, json::Json, int>> steps = {
      {"POST", "/deploys", {{"release_id", release}}, 201},
      {"PUT", "/scale", {{"processes", {{"web", 1}}}}, 200}};
  for (const auto& [method, path, body, status] : steps) {
    ASSERT_EQ(callJson(method, "/v1/envs/" + t.env + path, body).status, status) << path;
  }
  std::string id;
  for (int i = 0; i < 100 && id.empty(); ++i) {
    const auto listed = get(t, "/v1/envs/" + t.env + "/volumes");
    for (const auto& v : listed.body["items"]) {
      if (v["full_name"] == "uploads-0" && v["state"] == "placed") id = v["volume_id"];
    }
    if (id.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(id.empty()) << get(t, "/v1/envs/" + t.env + "/volumes").raw;
  // The release's backup policy shows on the volume.
  auto v = get(t, "/v1/volumes/" + id);
  EXPECT_EQ(v.body["backup_every_seconds"], 3600) << v.raw;
  EXPECT_EQ(v.body["backup_keep"], 7) << v.raw;
  append(t, id,
         events::VolumeStatusReported{
             .volume_id = id, .node_id = node, .state = "ready", .size_bytes = kGiB, .reason = ""},
         [&] { return get(t, "/v1/volumes/" + id).body.value("state", "") == "ready"; });
  auto snap = post(t, id, "snapshots", json::Json::object());
  ASSERT_EQ(snap.status, 201) << snap.raw;
  const std::string s1 = snap.body["snapshot_id"];
  ASSERT_NO_FATAL_FAILURE(taken(t, id, s1, node));

  auto refused = post(t, id, "restore", {{"snapshot_id", s1}, {"in_place", true}});
  EXPECT_EQ(refused.status, 409) << refused.raw;
  EXPECT_EQ(code(refused), "failed_precondition");
  EXPECT_FALSE(refused.body["error"]["details"].value("instance_id", "").empty()) << refused.raw;
  EXPECT_NE(refused.raw.find("vt scale set web=0"), std::string::npos) << refused.raw;
  auto copy = post(t, id, "restore", {{"snapshot_id", s1}, {"to", "old"}});
  ASSERT_EQ(copy.status, 201) << copy.raw;
  EXPECT_EQ(copy.body["volume"]["full_name"], "old-0");
  EXPECT_EQ(countEvents("volume.restore_requested"), 1);
}

// The snapshot's node is out of scheduling (cordoned here, as a lost node
// is): a restore reads the backup, on another node with room, and cannot
// before there is one.
TEST_F(VolumeSnapshotsApiTest, WhenTheSnapshotsNodeIsNotReadyARestoreReadsTheBackupElsewhere) {
  const Tenant alice = tenant("alice");
  const std::string n1 = roomyNode("n1.example");
  const std::string n2 = roomyNode("n2.example");
  const std::string id = readyVolume(alice, "uploads", n1);
  auto snap = post(alice, id, "snapshots", json::Json::object());
  ASSERT_EQ(snap.status, 201) << snap.raw;
  const std::string s1 = snap.body["snapshot_id"];
  ASSERT_NO_FATAL_FAILURE(taken(alice, id, s1, n1));
  auto cordon = callJson("PUT", "/v1/nodes/" + n1 + "/scheduling", {{"cordoned", true}});
  ASSERT_EQ(cordon.status, 200) << cordon.raw;
  auto early = post(alice, id, "restore", {{"snapshot_id", s1}});
  EXPECT_EQ(early.status, 409) << early.raw;
  EXPECT_NE(early.raw.find("no backup yet"), std::string::npos) << early.raw;
  ASSERT_NO_FATAL_FAILURE(backedUp(alice, id, s1, n1));
  auto restored = post(alice, id, "restore", {{"snapshot_id", s1}});
  ASSERT_EQ(restored.status, 201) << restored.raw;
  EXPECT_EQ(restored.body["op"]["source"], "backup");
  EXPECT_EQ(restored.body["op"]["node_id"], n2);
  EXPECT_EQ(restored.body["volume"]["node_id"], n2);
  EXPECT_EQ(restored.body["volume"]["full_name"], "uploads-restore-0");
}

}  // namespace
}  // namespace plfm::cp
