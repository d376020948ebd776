// The node-facing side of volumes on a real server and PostgreSQL
// (docs/specs/runtime/volume-mounts.md, "Agent routes" and "NodePlan and
// WorkloadSpec"): the heartbeat's volume capacity, volume status reports
// and the events they append, NodePlan.volumes, and env deletion. The
// scheduler's part (creating and placing volumes) is stood in for by
// appending its events directly.
#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "volumes_agent_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::kGiB;
using testsupport::Reply;
using testsupport::VolumesAgentApiTest;

TEST_F(VolumesAgentApiTest, HeartbeatRecordsTheVolumeCapacity) {
  const auto enrolled = enrollNode("n1.example");
  const std::string& node = enrolled.first;
  const std::string& token = enrolled.second;
  auto capacity = [&] {
    return queryText(
        "SELECT coalesce(volume_capacity_bytes::text, 'null') FROM node_liveness WHERE "
        "node_id = $1",
        {node});
  };
  auto beat = [&](const json::Json& body) {
    return callJson("POST", "/v1/nodes/" + node + "/heartbeat", body, token);
  };
  EXPECT_EQ(capacity(), "null");
  EXPECT_EQ(beat({{"volume_capacity_bytes", 100 * kGiB}}).status, 200);
  EXPECT_EQ(capacity(), std::to_string(100 * kGiB));
  // A heartbeat without it keeps the last value; zero is a value.
  EXPECT_EQ(beat(json::Json::object()).status, 200);
  EXPECT_EQ(capacity(), std::to_string(100 * kGiB));
  EXPECT_EQ(beat({{"volume_capacity_bytes", 0}}).status, 200);
  EXPECT_EQ(capacity(), "0");
  for (const json::Json& bad : {json::Json(-1), json::Json("100"), json::Json(1.5),
                                json::Json(nullptr), json::Json::array()}) {
    auto r = beat({{"volume_capacity_bytes", bad}});
    EXPECT_EQ(r.status, 400) << bad.dump() << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], "volume_capacity_bytes") << r.raw;
  }
  EXPECT_EQ(capacity(), "0");
}

TEST_F(VolumesAgentApiTest, StatusReportsAppendOnlyChanges) {
  const auto enrolled = enrollNode("n1.example");
  const std::string& node = enrolled.first;
  const std::string& token = enrolled.second;
  const Env e = makeEnvIn("acme");
  const std::string vol = volumeOf(e, "uploads", 0, node);
  EXPECT_EQ(viewState(vol), "placed - ");

  auto ready = report(node, token, vol, {{"state", "ready"}, {"size_bytes", kGiB}});
  ASSERT_EQ(ready.status, 200) << ready.raw;
  EXPECT_EQ(ready.body["applied"], true);
  EXPECT_EQ(ready.body["state"], "ready");
  EXPECT_EQ(viewState(vol), "ready 1073741824 ");
  // The same report again (a retry, or the agent's next pass) appends nothing.
  auto again = report(node, token, vol, {{"state", "ready"}, {"size_bytes", kGiB}});
  ASSERT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.body["applied"], false);
  EXPECT_EQ(again.header("X-Event-Seq"), "0");
  EXPECT_EQ(countEvents("volume.status_reported"), 1);
  // A new size is a change.
  EXPECT_EQ(
      report(node, token, vol, {{"state", "ready"}, {"size_bytes", 2 * kGiB}}).body["applied"],
      true);
  auto failed =
      report(node, token, vol, {{"state", "failed"}, {"size_bytes", 0}, {"reason", "no space"}});
  EXPECT_EQ(failed.body["applied"], true) << failed.raw;
  EXPECT_EQ(viewState(vol), "failed 0 no space");
  EXPECT_EQ(countEvents("volume.status_reported"), 3);
  // The event's actor is the node.
  auto conn = connect();
  auto actor =
      conn.exec("SELECT DISTINCT actor FROM events WHERE event_type = 'volume.status_reported'");
  ASSERT_TRUE(actor.has_value());
  ASSERT_EQ(actor->rows(), 1);
  EXPECT_EQ(actor->text(0, 0), node);
}

TEST_F(VolumesAgentApiTest, DeletedOnlyForAVolumeBeingDeleted) {
  const auto enrolled = enrollNode("n1.example");
  const std::string& node = enrolled.first;
  const std::string& token = enrolled.second;
  const Env e = makeEnvIn("acme");
  const std::string vol = volumeOf(e, "uploads", 0, node);
  ASSERT_EQ(report(node, token, vol, {{"state", "ready"}, {"size_bytes", kGiB}}).status, 200);
  // The agent must never delete a file the control plane keeps.
  auto early = report(node, token, vol, {{"state", "deleted"}});
  EXPECT_EQ(early.status, 409) << early.raw;
  EXPECT_EQ(early.body["error"]["details"]["field"], "state");
  EXPECT_EQ(countEvents("volume.deleted"), 0);

  requestDeletion(e, vol, 4);
  // A ready report of a volume on its way out changes nothing.
  auto late = report(node, token, vol, {{"state", "ready"}, {"size_bytes", 2 * kGiB}});
  EXPECT_EQ(late.body["applied"], false) << late.raw;
  EXPECT_EQ(late.body["state"], "deleting");
  auto gone = report(node, token, vol, {{"state", "deleted"}});
  ASSERT_EQ(gone.status, 200) << gone.raw;
  EXPECT_EQ(gone.body["applied"], true);
  EXPECT_EQ(gone.body["state"], "deleted");
  EXPECT_EQ(viewState(vol).substr(0, 7), "deleted");
  auto retry = report(node, token, vol, {{"state", "deleted"}});
  EXPECT_EQ(retry.status, 200) << retry.raw;
  EXPECT_EQ(retry.body["applied"], false);
  EXPECT_EQ(countEvents("volume.deleted"), 1);
}

TEST_F(VolumesAgentApiTest, ReportsReachOnlyTheNodesOwnVolumes) {
  auto [a, token_a] = enrollNode("a.example");
  auto [b, token_b] = enrollNode("b.example");
  const Env e = makeEnvIn("acme");
  const std::string on_b = volumeOf(e, "uploads", 0, b);
  const std::string pending = volumeOf(e, "uploads", 1, "");
  const json::Json body = {{"state", "ready"}, {"size_bytes", kGiB}};
  // Another node's volume, a volume on no node, and no volume at all look missing.
  for (const std::string& vol : {on_b, pending, VolumeId::generate().str()}) {
    auto r = report(a, token_a, vol, body);
    EXPECT_EQ(r.status, 404) << r.raw;
    EXPECT_EQ(r.body["error"]["code"], "not_found");
  }
  // Another node's route looks missing too.
  EXPECT_EQ(report(b, token_a, on_b, body).status, 404);
  // Users cannot report.
  EXPECT_EQ(callJson("POST", "/v1/nodes/" + b + "/volumes/" + on_b + "/status", body).status, 403);
  EXPECT_EQ(countEvents("volume.status_reported"), 0);
  EXPECT_EQ(report(b, token_b, on_b, body).body["applied"], true);
}

TEST_F(VolumesAgentApiTest, BadReportsAreRefusedWithTheFieldNamed) {
  const auto enrolled = enrollNode("n1.example");
  const std::string& node = enrolled.first;
  const std::string& token = enrolled.second;
  const Env e = makeEnvIn("acme");
  const std::string vol = volumeOf(e, "uploads", 0, node);
  const std::vector<std::pair<json::Json, std::string>> bad = {
      {{{"state", "gone"}}, "state"},
      {{{"size_bytes", kGiB}}, "state"},
      {{{"state", "ready"}}, "size_bytes"},
      {{{"state", "ready"}, {"size_bytes", -1}}, "size_bytes"},
      {{{"state", "ready"}, {"size_bytes", "1G"}}, "size_bytes"},
      {{{"state", "ready"}, {"size_bytes", (int64_t{16} << 40) + 1}}, "size_bytes"},
      {{{"state", "ready"}, {"size_bytes", kGiB}, {"reason", "why"}}, "reason"},
      {{{"state", "failed"}, {"reason", std::string(513, 'x')}}, "reason"},
      {{{"state", "failed"}, {"reason", "line\nbreak"}}, "reason"},
      {{{"state", "failed"}, {"reason", 7}}, "reason"},
  };
  for (const auto& [body, field] : bad) {
    auto r = report(node, token, vol, body);
    EXPECT_EQ(r.status, 400) << body.dump() << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << body.dump() << ": " << r.raw;
  }
  auto unknown = report(node, token, vol, {{"state", "ready"}, {"size_bytes", 1}, {"path", "/"}});
  EXPECT_EQ(unknown.status, 400) << unknown.raw;
  auto bad_id = report(node, token, "vol_nope", {{"state", "ready"}, {"size_bytes", 1}});
  EXPECT_EQ(bad_id.status, 400) << bad_id.raw;
  EXPECT_EQ(countEvents("volume.status_reported"), 0);
  // A failure without words gets a reason people can read.
  auto failed = report(node, token, vol, {{"state", "failed"}});
  EXPECT_EQ(failed.body["applied"], true) << failed.raw;
  EXPECT_EQ(viewState(vol), "failed 0 the node could not create the volume");
}

TEST_F(VolumesAgentApiTest, NodePlanListsTheNodesLiveVolumesAndWakes) {
  const auto enrolled = enrollNode("n1.example");
  const std::string& node = enrolled.first;
  const std::string& token = enrolled.second;
  auto [other, other_token] = enrollNode("n2.example");
  const Env e = makeEnvIn("acme");
  auto plan = [&](int64_t after, int wait) {
    return call("GET",
                "/v1/nodes/" + node + "/plan?after=" + std::to_string(after) +
                    "&wait=" + std::to_string(wait),
                "", token);
  };
  auto first = plan(0, 0);
  ASSERT_EQ(first.status, 200) << first.raw;
  EXPECT_EQ(first.body["volumes"], json::Json::array());
  const int64_t v0 = first.body["version"];
  // A placement wakes the node's long poll.
  auto waiting = std::async(std::launch::async, [&] { return plan(v0, 10); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string vol = volumeOf(e, "uploads", 0, node);
  volumeOf(e, "uploads", 1, other);  // another node's
  volumeOf(e, "uploads", 2, "");     // on no node yet
  auto woke = waiting.get();
  ASSERT_EQ(woke.status, 200) << woke.raw;
  EXPECT_GT(woke.body["version"].get<int64_t>(), v0);
  auto now = plan(0, 0);
  EXPECT_EQ(now.body["volumes"], json::Json::array({{{"volume_id", vol},
                                                     {"size_bytes", kGiB},
                                                     {"state", "ready"},
                                                     {"backup_every_seconds", 900},
                                                     {"backup_keep", 96}}}))
      << now.raw;
  EXPECT_EQ(testsupport::validateAgainstSchemaFile("node-plan.json", now.body), std::nullopt);
  const int64_t v1 = now.body["version"];
  // A failed volume is still one the agent should have; a report changes no plan.
  ASSERT_EQ(report(node, token, vol, {{"state", "failed"}, {"reason", "mkfs failed"}}).status, 200);
  EXPECT_EQ(plan(0, 0).body["version"], v1);
  EXPECT_EQ(plan(0, 0).body["volumes"][0]["state"], "ready");
  // Deleting: in the plan as deleting, with a new version; deleted: gone, and a new version.
  requestDeletion(e, vol, 4);
  auto deleting = plan(0, 0);
  EXPECT_EQ(deleting.body["volumes"][0]["state"], "deleting");
  const int64_t v2 = deleting.body["version"];
  EXPECT_GT(v2, v1);
  ASSERT_EQ(report(node, token, vol, {{"state", "deleted"}}).status, 200);
  auto after = plan(0, 0);
  EXPECT_EQ(after.body["volumes"], json::Json::array());
  EXPECT_GT(after.body["version"].get<int64_t>(), v2);
}

TEST_F(VolumesAgentApiTest, EnvDeletionDeletesItsVolumes) {
  const auto enrolled = enrollNode("n1.example");
  const std::string& node = enrolled.first;
  const std::string& token = enrolled.second;
  const Env e = makeEnvIn("acme");
  const Env keep = makeEnvIn("other");
  const std::string placed = volumeOf(e, "uploads", 0, node);
  const std::string pending = volumeOf(e, "uploads", 1, "");
  const std::string elsewhere = volumeOf(keep, "uploads", 0, node);
  auto del = call("DELETE", "/v1/envs/" + e.env);
  ASSERT_EQ(del.status, 200) << del.raw;
  // The placed one waits for its node; the pending one had no file anywhere.
  EXPECT_EQ(viewState(placed).substr(0, 8), "deleting");
  EXPECT_EQ(viewState(pending).substr(0, 7), "deleted");
  EXPECT_EQ(viewState(elsewhere).substr(0, 6), "placed");
  auto conn = connect();
  auto rs = conn.exec(
      "SELECT string_agg(event_type || ':' || coalesce(payload->>'reason', '-'), ',' ORDER BY "
      "seq) FROM events WHERE event_type IN ('volume.delete_requested', 'volume.deleted')");
  ASSERT_TRUE(rs.has_value());
  const std::string types(rs->text(0, 0));
  EXPECT_NE(types.find("volume.delete_requested:env_deleted"), std::string::npos) << types;
  EXPECT_NE(types.find("volume.deleted:-"), std::string::npos) << types;
  EXPECT_EQ(countEvents("volume.delete_requested") + countEvents("volume.deleted"), 2);
  // The node then reports the file gone.
  EXPECT_EQ(report(node, token, placed, {{"state", "deleted"}}).body["applied"], true);
}

TEST_F(VolumesAgentApiTest, WorkloadSpecCarriesTheVolumesOfTheInstancesSlot) {
  const auto enrolled = enrollNode("n1.example");
  const std::string& node = enrolled.first;
  const std::string& token = enrolled.second;
  auto [other, other_token] = enrollNode("n2.example");
  const Env e = makeEnvIn("acme");
  json::Json manifest = webManifest();
  manifest["volumes"] = {
      {{"name", "uploads"}, {"mount", "/data"}, {"process", "web"}, {"size_bytes", kGiB}},
      {{"name", "cache"}, {"mount", "/var/cache"}, {"process", "web"}, {"size_bytes", kGiB}}};
  const std::string release = makeReleaseWith(e.app, manifest);
  auto specs = [&] { return call("GET", "/v1/nodes/" + node + "/plan?wait=0", "", token); };
  // Slot 0 placed before its volumes exist: left out, not started without its data.
  const std::string inst = allocate(e, release, node, 0);
  auto before = specs();
  ASSERT_EQ(before.status, 200) << before.raw;
  EXPECT_EQ(before.body["instances"], json::Json::array()) << before.raw;
  // Created in the other order: the spec keeps the manifest's.
  const std::string cache = volumeOf(e, "cache", 0, node);
  const std::string uploads = volumeOf(e, "uploads", 0, node);
  // Slot 1's uploads volume is on another node: slot 1 is left out too.
  allocate(e, release, node, 1);
  volumeOf(e, "uploads", 1, other);
  volumeOf(e, "cache", 1, node);
  auto now = specs();
  ASSERT_EQ(now.body["instances"].size(), 1U) << now.raw;
  EXPECT_EQ(now.body["instances"][0]["instance_id"], inst);
  EXPECT_EQ(now.body["instances"][0]["volumes"], json::Json::array({{{"volume_id", uploads},
                                                                     {"name", "uploads-0"},
                                                                     {"mount", "/data"},
                                                                     {"size_bytes", kGiB}},
                                                                    {{"volume_id", cache},
                                                                     {"name", "cache-0"},
                                                                     {"mount", "/var/cache"},
                                                                     {"size_bytes", kGiB}}}))
      << now.raw;
  EXPECT_EQ(testsupport::validateAgainstSchemaFile("node-plan.json", now.body), std::nullopt);
  EXPECT_EQ(now.body["volumes"].size(), 3U);  // uploads-0, cache-0, cache-1
  // An extend reaches the spec's size.
  auto conn = connect();
  appendOk(conn, {events::toNewEvent(
                     events::VolumeExtendRequested{
                         .volume_id = uploads, .env_id = e.env, .size_bytes = 2 * kGiB},
                     3, e.org)});
  waitForView(conn, "SELECT 1 FROM volumes_view WHERE size_bytes = " + std::to_string(2 * kGiB));
  EXPECT_EQ(specs().body["instances"][0]["volumes"][0]["size_bytes"], 2 * kGiB);
}

}  // namespace
}  // namespace plfm::cp
