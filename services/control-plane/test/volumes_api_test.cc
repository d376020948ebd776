// The volume API (docs/specs/api/v1.md "Volumes", docs/specs/runtime/volume-mounts.md
// "API, events and CLI") on a real server and a real PostgreSQL: each route,
// idempotent replays, every refusal naming its field, deletes refused while
// an instance should run with the volume, and 404 for members of other orgs
// (docs/security.md, "Control plane: volumes").
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "volume_tenant_test_support.h"

namespace plfm::cp {
namespace {

using testsupport::Reply;
using testsupport::VolumeTenantTest;

using testsupport::kGiB;

class VolumesApiTest : public VolumeTenantTest {
 protected:
  Reply create(const Tenant& t, const json::Json& body) {
    return callJson("POST", "/v1/envs/" + t.env + "/volumes", body, t.token);
  }
  Reply extend(const Tenant& t, const std::string& id, const json::Json& body) {
    return callJson("POST", "/v1/volumes/" + id + "/extend", body, t.token);
  }
  Reply remove(const Tenant& t, const std::string& id) {
    return call("DELETE", "/v1/volumes/" + id, "", t.token);
  }
  Reply list(const Tenant& t, const std::string& query = "") {
    return call("GET", "/v1/envs/" + t.env + "/volumes" + query, "", t.token);
  }
  // What the scheduler appends when it places a volume (volume.placed),
  // then waits until the API shows it.
  void place(const Tenant& t, const std::string& id, const std::string& node) {
    auto conn = connect();
    appendOk(
        conn,
        {events::toNewEvent(events::VolumePlaced{.volume_id = id, .env_id = t.env, .node_id = node},
                            2, t.org)},
        {"system:scheduler", ""});
    for (int i = 0; i < 100; ++i) {
      auto g = call("GET", "/v1/volumes/" + id, "", t.token);
      if (g.body["node_id"] == node) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "volume " << id << " never showed node " << node;
  }
};

TEST_F(VolumesApiTest, CreateListGetExtendAndDeleteAVolume) {
  const Tenant alice = tenant("alice");
  http::Headers key;
  key.set("Idempotency-Key", "volume-create-1");
  const std::string body = R"({"process":"web","name":"uploads","size":"10GiB"})";
  auto made = call("POST", "/v1/envs/" + alice.env + "/volumes", body, alice.token, key);
  ASSERT_EQ(made.status, 201) << made.raw;
  const std::string id = made.body["volume_id"];
  EXPECT_EQ(made.body["full_name"], "uploads-0");
  EXPECT_EQ(made.body["slot"], 0);
  EXPECT_EQ(made.body["size_bytes"], 10 * kGiB);
  EXPECT_EQ(made.body["state"], "pending");
  EXPECT_TRUE(made.body["node_id"].is_null());
  EXPECT_TRUE(made.body["reported_size_bytes"].is_null());
  EXPECT_EQ(made.body["app_id"], alice.app);
  auto replay = call("POST", "/v1/envs/" + alice.env + "/volumes", body, alice.token, key);
  EXPECT_EQ(replay.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(replay.body["volume_id"], id);
  EXPECT_EQ(countEvents("volume.created"), 1);
  {
    auto conn = connect();
    auto rs =
        conn.exec("SELECT payload->>'origin' FROM events WHERE event_type = 'volume.created'");
    ASSERT_TRUE(rs.has_value());
    EXPECT_EQ(rs->text(0, 0), "api");
  }

  // More, out of order: the list is by process, name and slot.
  ASSERT_EQ(
      create(alice, {{"process", "web"}, {"name", "uploads"}, {"slot", 1}, {"size_bytes", kGiB}})
          .status,
      201);
  ASSERT_EQ(create(alice, {{"process", "web"}, {"name", "cache"}, {"size", "512MiB"}}).status, 201);
  ASSERT_EQ(create(alice, {{"process", "api"}, {"name", "data"}, {"size", "1TiB"}}).status, 201);
  auto all = list(alice);
  ASSERT_EQ(all.status, 200) << all.raw;
  std::vector<std::string> names;
  for (const auto& v : all.body["items"]) names.push_back(v["full_name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"data-0", "cache-0", "uploads-0", "uploads-1"}));
  EXPECT_TRUE(all.body["next_cursor"].is_null());
  // Pages of one follow the same order.
  std::vector<std::string> paged;
  std::string cursor;
  for (int i = 0; i < 6; ++i) {
    auto p = list(alice, "?limit=1" + (cursor.empty() ? "" : "&cursor=" + cursor));
    ASSERT_EQ(p.status, 200) << p.raw;
    for (const auto& v : p.body["items"]) paged.push_back(v["full_name"]);
    if (p.body["next_cursor"].is_null()) break;
    cursor = p.body["next_cursor"];
  }
  EXPECT_EQ(paged, names);
  EXPECT_EQ(code(list(alice, "?cursor=route_01jdq3v7k2m9x4c8r6t0w5y1zb")), "invalid_query");

  auto got = call("GET", "/v1/volumes/" + id, "", alice.token);
  ASSERT_EQ(got.status, 200) << got.raw;
  EXPECT_EQ(got.body["full_name"], "uploads-0");
  EXPECT_EQ(got.body["process"], "web");

  // Extend: larger only, replay-safe.
  http::Headers ekey;
  ekey.set("Idempotency-Key", "volume-extend-1");
  auto grown =
      call("POST", "/v1/volumes/" + id + "/extend", R"({"size":"20GiB"})", alice.token, ekey);
  ASSERT_EQ(grown.status, 200) << grown.raw;
  EXPECT_EQ(grown.body["size_bytes"], 20 * kGiB);
  auto again =
      call("POST", "/v1/volumes/" + id + "/extend", R"({"size":"20GiB"})", alice.token, ekey);
  EXPECT_EQ(again.header("Idempotent-Replayed"), "true");
  EXPECT_EQ(countEvents("volume.extend_requested"), 1);
  EXPECT_EQ(call("GET", "/v1/volumes/" + id, "", alice.token).body["size_bytes"], 20 * kGiB);
  auto same = extend(alice, id, {{"size", "20GiB"}});
  EXPECT_EQ(same.status, 422) << same.raw;
  EXPECT_EQ(code(same), "volume_not_grown");
  EXPECT_EQ(field(same), "size");
  EXPECT_EQ(same.body["error"]["details"]["size_bytes"], std::to_string(20 * kGiB));
  EXPECT_NE(same.raw.find("20GiB"), std::string::npos) << same.raw;
  auto smaller = extend(alice, id, {{"size_bytes", kGiB}});
  EXPECT_EQ(code(smaller), "volume_not_grown");
  EXPECT_EQ(field(smaller), "size_bytes");

  // A volume no node holds is deleted at once; then it is hidden from the
  // list, shown by id, cannot grow, and its name is free again.
  http::Headers dkey;
  dkey.set("Idempotency-Key", "volume-delete-1");
  auto gone = call("DELETE", "/v1/volumes/" + id, "", alice.token, dkey);
  ASSERT_EQ(gone.status, 200) << gone.raw;
  EXPECT_EQ(gone.body["state"], "deleted");
  EXPECT_EQ(
      call("DELETE", "/v1/volumes/" + id, "", alice.token, dkey).header("Idempotent-Replayed"),
      "true");
  EXPECT_EQ(remove(alice, id).status, 200);  // a new key: nothing more to do
  EXPECT_EQ(countEvents("volume.deleted"), 1);
  EXPECT_EQ(countEvents("volume.delete_requested"), 0);
  EXPECT_EQ(list(alice).body["items"].size(), 3U);
  EXPECT_EQ(call("GET", "/v1/volumes/" + id, "", alice.token).body["state"], "deleted");
  auto late = extend(alice, id, {{"size", "40GiB"}});
  EXPECT_EQ(late.status, 409) << late.raw;
  EXPECT_EQ(code(late), "failed_precondition");
  EXPECT_EQ(create(alice, {{"process", "web"}, {"name", "uploads"}, {"size", "1GiB"}}).status, 201);
}

TEST_F(VolumesApiTest, EveryRefusalNamesItsField) {
  const Tenant alice = tenant("alice");
  const json::Json good = {{"process", "web"}, {"name", "uploads"}, {"size", "1GiB"}};
  auto with = [&](const std::string& key, const json::Json& value) {
    json::Json b = good;
    if (value.is_null()) {
      b.erase(key);
    } else {
      b[key] = value;
    }
    return create(alice, b);
  };
  const std::vector<std::tuple<std::string, json::Json, std::string>> cases = {
      {"name", "Uploads", "name"},
      {"name", "up_loads", "name"},
      {"name", "uploads-", "name"},
      {"name", std::string(62, 'a'), "name"},  // uploads...-0 is longer than 63
      {"name", nullptr, "name"},
      {"process", "Web", "process"},
      {"process", std::string(31, 'w'), "process"},
      {"process", nullptr, "process"},
      {"slot", -1, "slot"},
      {"slot", 1000, "slot"},
      {"slot", "1", "slot"},
      {"size", "10GB", "size"},
      {"size", "1MiB", "size"},
      {"size", "17TiB", "size"},
      {"size", 10, "size"},
      {"size", nullptr, "size"},
      {"size_bytes", kGiB, "size"},  // both
  };
  for (const auto& [key, value, want] : cases) {
    auto r = with(key, value);
    EXPECT_EQ(r.status, 400) << key << "=" << value.dump() << " " << r.raw;
    EXPECT_EQ(field(r), want) << key << "=" << value.dump() << " " << r.raw;
  }
  auto too_big = create(alice, {{"process", "web"}, {"name", "a"}, {"size_bytes", kGiB << 15}});
  EXPECT_EQ(field(too_big), "size_bytes") << too_big.raw;
  auto negative = create(alice, {{"process", "web"}, {"name", "a"}, {"size_bytes", -1}});
  EXPECT_EQ(field(negative), "size_bytes") << negative.raw;
  auto unknown = create(alice, {{"process", "web"}, {"name", "a"}, {"size", "1GiB"}, {"x", 1}});
  EXPECT_EQ(code(unknown), "unknown_field");
  EXPECT_EQ(call("GET", "/v1/volumes/vol_nope", "", alice.token).status, 400);

  // A live volume with that full name: 409 naming it.
  auto first = create(alice, good);
  ASSERT_EQ(first.status, 201) << first.raw;
  auto taken = create(alice, good);
  EXPECT_EQ(taken.status, 409) << taken.raw;
  EXPECT_EQ(code(taken), "already_exists");
  EXPECT_EQ(field(taken), "name");
  EXPECT_EQ(taken.body["error"]["details"]["volume_id"], first.body["volume_id"]);
  EXPECT_NE(taken.raw.find("uploads-0"), std::string::npos);
  // Another process may not take the name either: full names are per env.
  EXPECT_EQ(code(create(alice, {{"process", "worker"}, {"name", "uploads"}, {"size", "1GiB"}})),
            "already_exists");
  EXPECT_EQ(countEvents("volume.created"), 1);

  const std::string id = first.body["volume_id"];
  EXPECT_EQ(field(extend(alice, id, json::Json::object())), "size");
  EXPECT_EQ(field(extend(alice, id, {{"size", "lots"}})), "size");
  EXPECT_EQ(code(extend(alice, id, {{"size", "1GiB"}, {"mount", "/x"}})), "unknown_field");
  EXPECT_EQ(countEvents("volume.extend_requested"), 0);
}

// Another org's volumes and envs are 404, exactly like missing ones, for
// every route; a member (not only an owner) may manage the org's volumes.
TEST_F(VolumesApiTest, AnotherOrgsVolumeIsNotFoundAndMembersMayManage) {
  const Tenant alice = tenant("alice");
  Tenant mallory = tenant("mallory");
  auto made = create(alice, {{"process", "web"}, {"name", "uploads"}, {"size", "1GiB"}});
  ASSERT_EQ(made.status, 201) << made.raw;
  const std::string id = made.body["volume_id"];
  const std::string missing = "vol_01jdq3v7k2m9x4c8r6t0w5y1zb";
  for (const std::string& v : {id, missing}) {
    auto g = call("GET", "/v1/volumes/" + v, "", mallory.token);
    EXPECT_EQ(g.status, 404) << g.raw;
    EXPECT_EQ(g.body["error"]["message"], "volume " + v + " not found");
    EXPECT_EQ(extend(mallory, v, {{"size", "2GiB"}}).status, 404);
    EXPECT_EQ(remove(mallory, v).status, 404);
  }
  mallory.env = alice.env;  // aim at alice's env
  EXPECT_EQ(list(mallory).status, 404);
  EXPECT_EQ(create(mallory, {{"process", "web"}, {"name", "x"}, {"size", "1GiB"}}).status, 404);
  EXPECT_EQ(countEvents("volume.created"), 1);
  EXPECT_EQ(countEvents("volume.extend_requested"), 0);
  EXPECT_EQ(countEvents("volume.deleted"), 0);
  EXPECT_EQ(call("GET", "/v1/volumes/" + id, "", alice.token).body["size_bytes"], kGiB);

  // Bob, a member of alice's org, manages its volumes.
  auto [bob_id, bob_token] = makeUser("bob");
  ASSERT_EQ(callJson("POST", "/v1/orgs/" + alice.org + "/members",
                     {{"user_id", bob_id}, {"role", "member"}}, alice.token)
                .status,
            201);
  Tenant bob = alice;
  bob.token = bob_token;
  EXPECT_EQ(list(bob).body["items"].size(), 1U);
  EXPECT_EQ(extend(bob, id, {{"size", "2GiB"}}).status, 200);
  EXPECT_EQ(create(bob, {{"process", "web"}, {"name", "logs"}, {"size", "1GiB"}}).status, 201);
  EXPECT_EQ(remove(bob, id).status, 200);
  // Without a token: 401.
  EXPECT_EQ(call("GET", "/v1/volumes/" + id, "", "").status, 401);
}

TEST_F(VolumesApiTest, APlacedVolumeIsDeletingUntilItsNodeRemovesIt) {
  const Tenant alice = tenant("alice");
  const auto node = enrollNode("n1.example").first;
  auto made = create(alice, {{"process", "web"}, {"name", "uploads"}, {"size", "1GiB"}});
  ASSERT_EQ(made.status, 201) << made.raw;
  const std::string id = made.body["volume_id"];
  ASSERT_NO_FATAL_FAILURE(place(alice, id, node));
  EXPECT_EQ(list(alice).body["items"][0]["state"], "placed");

  auto del = remove(alice, id);
  ASSERT_EQ(del.status, 200) << del.raw;
  EXPECT_EQ(del.body["state"], "deleting");
  EXPECT_EQ(del.body["node_id"], node);
  EXPECT_EQ(countEvents("volume.delete_requested"), 1);
  EXPECT_EQ(countEvents("volume.deleted"), 0);
  {
    auto conn = connect();
    auto rs = conn.exec(
        "SELECT payload->>'reason' FROM events WHERE event_type = 'volume.delete_requested'");
    ASSERT_TRUE(rs.has_value());
    EXPECT_EQ(rs->text(0, 0), "api");
  }
  // Still listed (its node has not removed it), asked once only.
  EXPECT_EQ(list(alice).body["items"][0]["state"], "deleting");
  EXPECT_EQ(remove(alice, id).body["state"], "deleting");
  EXPECT_EQ(countEvents("volume.delete_requested"), 1);
  EXPECT_EQ(code(extend(alice, id, {{"size", "2GiB"}})), "failed_precondition");
  // Its name stays taken until the node reports it deleted.
  EXPECT_EQ(code(create(alice, {{"process", "web"}, {"name", "uploads"}, {"size", "1GiB"}})),
            "already_exists");
}

// Concurrent creates of one full name (different keys, different
// processes): the org's lock orders them, so exactly one volume exists.
TEST_F(VolumesApiTest, ConcurrentCreatesOfOneNameMakeOneVolume) {
  const Tenant alice = tenant("alice");
  for (int round = 0; round < 3; ++round) {
    const std::string name = "data" + std::to_string(round);
    std::vector<std::future<Reply>> calls;
    calls.reserve(6);
    for (int i = 0; i < 6; ++i) {
      calls.push_back(std::async(std::launch::async, [&, i] {
        return create(
            alice, {{"process", i % 2 == 0 ? "web" : "worker"}, {"name", name}, {"size", "1GiB"}});
      }));
    }
    int made = 0;
    int taken = 0;
    for (auto& c : calls) {
      Reply r = c.get();
      made += r.status == 201 ? 1 : 0;
      taken += code(r) == "already_exists" ? 1 : 0;
    }
    EXPECT_EQ(made, 1) << "round " << round;
    EXPECT_EQ(taken, 5) << "round " << round;
  }
  EXPECT_EQ(countEvents("volume.created"), 3);
  EXPECT_EQ(list(alice).body["items"].size(), 3U);
}

// The env's deletion takes its volumes with it: a placed one to deleting
// (its node removes the file), a pending one straight to deleted.
TEST_F(VolumesApiTest, DeletingTheEnvDeletesItsVolumes) {
  const Tenant alice = tenant("alice");
  const auto node = enrollNode("n1.example").first;
  auto placed = create(alice, {{"process", "web"}, {"name", "uploads"}, {"size", "1GiB"}});
  auto pending = create(alice, {{"process", "web"}, {"name", "cache"}, {"size", "1GiB"}});
  ASSERT_EQ(pending.status, 201) << pending.raw;
  ASSERT_NO_FATAL_FAILURE(place(alice, placed.body["volume_id"], node));
  auto gone = call("DELETE", "/v1/envs/" + alice.env, "", alice.token);
  ASSERT_EQ(gone.status, 200) << gone.raw;
  auto p =
      call("GET", "/v1/volumes/" + placed.body["volume_id"].get<std::string>(), "", alice.token);
  EXPECT_EQ(p.body["state"], "deleting") << p.raw;
  auto q =
      call("GET", "/v1/volumes/" + pending.body["volume_id"].get<std::string>(), "", alice.token);
  EXPECT_EQ(q.body["state"], "deleted") << q.raw;
  auto conn = connect();
  auto rs = conn.exec(
      "SELECT payload->>'reason' FROM events WHERE event_type = 'volume.delete_requested'");
  ASSERT_TRUE(rs.has_value());
  ASSERT_EQ(rs->rows(), 1);
  EXPECT_EQ(rs->text(0, 0), "env_deleted");
  EXPECT_EQ(countEvents("volume.deleted"), 1);
}

// While the slot's instance should run with the volume (its release
// declares it), the volume cannot be deleted; scaled below the slot, it can.
TEST_F(VolumesApiTest, ADeleteIsRefusedWhileTheSlotsInstanceShouldRun) {
  Tenant t;
  t.token = admin_token_;
  auto [node, node_token] = enrollNode("n1.example", 4, 4096);
  // The node has room for volumes (the scheduler places a slot with volumes
  // only on such a node).
  ASSERT_EQ(callJson("POST", "/v1/nodes/" + node + "/heartbeat",
                     {{"volume_capacity_bytes", 100 * kGiB}}, node_token)
                .status,
            200);
  t.org = makeOrg("acme");
  t.app = makeApp(t.org, "web");
  t.env = makeEnv(t.app, "prod");
  json::Json manifest = webManifest();
  manifest["volumes"] = json::Json::array(
      {{{"name", "uploads"}, {"mount", "/data"}, {"process", "web"}, {"size_bytes", kGiB}}});
  const std::string release = makeReleaseWith(t.app, manifest);
  ASSERT_FALSE(release.empty());
  ASSERT_EQ(callJson("POST", "/v1/envs/" + t.env + "/deploys", {{"release_id", release}}).status,
            201);
  ASSERT_EQ(callJson("PUT", "/v1/envs/" + t.env + "/scale", {{"processes", {{"web", 1}}}}).status,
            200);
  auto insts = call("GET", "/v1/envs/" + t.env + "/instances");
  ASSERT_EQ(insts.body["items"].size(), 1U) << insts.raw;
  const std::string inst = insts.body["items"][0]["id"];
  ASSERT_EQ(insts.body["items"][0]["slot"], 0);

  // The scheduler creates uploads-0 with the allocation (its view may lag
  // the instance's by a moment).
  std::string id;
  for (int i = 0; i < 100 && id.empty(); ++i) {
    const auto listed = list(t);
    for (const auto& v : listed.body["items"]) {
      if (v["full_name"] == "uploads-0") id = v["volume_id"];
    }
    if (id.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_FALSE(id.empty()) << list(t).raw;
  // Another process's slot 0, and another name, are not in use.
  auto other = create(t, {{"process", "worker"}, {"name", "scratch"}, {"size", "1GiB"}});
  EXPECT_EQ(remove(t, other.body["volume_id"]).status, 200);

  auto refused = remove(t, id);
  EXPECT_EQ(refused.status, 409) << refused.raw;
  EXPECT_EQ(code(refused), "failed_precondition");
  EXPECT_EQ(refused.body["error"]["details"]["instance_id"], inst);
  EXPECT_NE(refused.raw.find("vt scale set web=0"), std::string::npos) << refused.raw;
  EXPECT_NE(refused.raw.find("remove the volume from vt.toml and deploy"), std::string::npos);
  EXPECT_EQ(call("GET", "/v1/volumes/" + id).body["state"] != "deleting", true);

  // Scaled below the slot: the instance is to stop, and the volume may go.
  ASSERT_EQ(callJson("PUT", "/v1/envs/" + t.env + "/scale", {{"processes", {{"web", 0}}}}).status,
            200);
  auto ok = remove(t, id);
  EXPECT_EQ(ok.status, 200) << ok.raw;
  EXPECT_TRUE(ok.body["state"] == "deleting" || ok.body["state"] == "deleted") << ok.raw;
}

}  // namespace
}  // namespace plfm::cp
