// Mesh key rotation on the control plane (docs/specs/networking/mesh.md,
// "Contract for key rotation") on a real server and PostgreSQL: a node stages
// and commits its new key through POST /v1/nodes/{id}/mesh-key, every step
// idempotent; an operator or the key's age asks for a rotation; the NodePlan
// shows each step to the node and its peers, and each event wakes every plan.
#include <gtest/gtest.h>

#include "mesh_api_support.h"

namespace plfm::cp {
namespace {

using testsupport::MeshApiTest;
using testsupport::Reply;

class MeshKeyApiTest : public MeshApiTest {
 protected:
  Reply publish(const Node& n, const json::Json& body, const std::string& idempotency_key = "") {
    http::Headers h;
    if (!idempotency_key.empty()) h.set("Idempotency-Key", idempotency_key);
    return call("POST", "/v1/nodes/" + n.id + "/mesh-key", json::dump(body), n.token, h);
  }
  static json::Json next(const std::string& key, int port) {
    return {{"phase", "next"}, {"public_key", key}, {"listen_port", port}};
  }
  static json::Json current(const std::string& key) {
    return {{"phase", "current"}, {"public_key", key}};
  }
  Reply rotate(const Node& n, const std::optional<std::string>& token = std::nullopt) {
    return call("POST", "/v1/nodes/" + n.id + "/mesh-key/rotate", "{}", token);
  }
  json::Json self(const Node& n) { return plan(n, 0, 0).body["mesh"]["self"]; }
  json::Json peer(const Node& n) { return plan(n, 0, 0).body["mesh"]["peers"][0]; }
};

TEST_F(MeshKeyApiTest, AStagedKeyIsCommittedAndEveryStepIsIdempotent) {
  const Node n1 = enroll("n1.example", 'a', "2001:db8::1");
  const Node n2 = enroll("n2.example", 'b', "2001:db8::2");
  const std::string k1 = keyOf('c');
  const std::string k2 = keyOf('d');
  EXPECT_EQ(self(n1)["public_key"], keyOf('a'));
  EXPECT_EQ(self(n1)["next_public_key"], nullptr);
  EXPECT_EQ(peer(n2)["next"], nullptr);

  // Staging wakes the peers' plans: they add the staged key at the new port.
  Reply staged;
  Reply woke = wokenBy(n2, [&] { staged = publish(n1, next(k1, 51821), "stage-1"); });
  ASSERT_EQ(staged.status, 200) << staged.raw;
  EXPECT_EQ(staged.body["next"], json::Json({{"public_key", k1}, {"listen_port", 51821}}));
  EXPECT_EQ(staged.body["public_key"], keyOf('a'));
  EXPECT_EQ(staged.body["listen_port"], 51820);
  EXPECT_EQ(staged.body["rotation_requested"], false);
  EXPECT_EQ(woke.body["mesh"]["peers"][0]["next"],
            json::Json({{"public_key", k1}, {"endpoint", "[2001:db8::1]:51821"}}));
  EXPECT_EQ(woke.body["mesh"]["peers"][0]["public_key"], keyOf('a'));
  EXPECT_EQ(self(n1)["next_public_key"], k1);
  EXPECT_EQ(self(n1)["next_listen_port"], 51821);
  EXPECT_EQ(countEvents("node.mesh_key_staged"), 1);

  // The same request again: a replay with its key, no event with a new one.
  Reply replay = publish(n1, next(k1, 51821), "stage-1");
  EXPECT_EQ(replay.status, 200) << replay.raw;
  EXPECT_EQ(replay.header("Idempotent-Replayed"), "true");
  Reply again = publish(n1, next(k1, 51821));
  EXPECT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.body, staged.body);
  EXPECT_EQ(countEvents("node.mesh_key_staged"), 1);

  // Another key replaces the staged one (the agent is the authority on its keys).
  Reply replaced = publish(n1, next(k2, 51822));
  ASSERT_EQ(replaced.status, 200) << replaced.raw;
  EXPECT_EQ(replaced.body["next"]["public_key"], k2);
  EXPECT_EQ(countEvents("node.mesh_key_staged"), 2);
  EXPECT_EQ(peer(n2)["next"]["endpoint"], "[2001:db8::1]:51822");

  // Refused: the current key as the next one, the current port, committing
  // a key that is not the staged one; another node's route looks missing,
  // and a user cannot publish a node's key.
  Reply same = publish(n1, next(keyOf('a'), 51823));
  EXPECT_EQ(same.status, 409) << same.raw;
  EXPECT_EQ(same.body["error"]["details"]["field"], "public_key");
  Reply taken = publish(n1, next(keyOf('b'), 51823));  // n2's key
  EXPECT_EQ(taken.status, 409) << taken.raw;
  EXPECT_EQ(taken.body["error"]["details"]["field"], "public_key");
  EXPECT_NE(taken.raw.find("another node's key"), std::string::npos) << taken.raw;
  Reply port = publish(n1, next(keyOf('e'), 51820));
  EXPECT_EQ(port.status, 400) << port.raw;
  EXPECT_EQ(port.body["error"]["details"]["field"], "listen_port");
  Reply wrong = publish(n1, current(k1));
  EXPECT_EQ(wrong.status, 409) << wrong.raw;
  EXPECT_EQ(wrong.body["error"]["details"]["field"], "public_key");
  EXPECT_NE(wrong.raw.find("not the staged key"), std::string::npos) << wrong.raw;
  EXPECT_EQ(call("POST", "/v1/nodes/" + n1.id + "/mesh-key", json::dump(next(keyOf('e'), 51823)),
                 n2.token)
                .status,
            404);
  EXPECT_EQ(
      call("POST", "/v1/nodes/" + n1.id + "/mesh-key", json::dump(next(keyOf('e'), 51823))).status,
      403);
  EXPECT_EQ(countEvents("node.mesh_key_staged"), 2);

  // Commit: the staged key and port are the node's now, for it and its peers.
  Reply committed;
  woke = wokenBy(n2, [&] { committed = publish(n1, current(k2)); });
  ASSERT_EQ(committed.status, 200) << committed.raw;
  EXPECT_EQ(committed.body["public_key"], k2);
  EXPECT_EQ(committed.body["listen_port"], 51822);
  EXPECT_EQ(committed.body["next"], nullptr);
  const json::Json& p = woke.body["mesh"]["peers"][0];
  EXPECT_EQ(p["public_key"], k2);
  EXPECT_EQ(p["endpoint"], "[2001:db8::1]:51822");
  EXPECT_EQ(p["next"], nullptr);
  const json::Json s = self(n1);
  EXPECT_EQ(s["public_key"], k2);
  EXPECT_EQ(s["listen_port"], 51822);
  EXPECT_EQ(s["next_public_key"], nullptr);
  EXPECT_EQ(s["next_listen_port"], nullptr);
  EXPECT_EQ(countEvents("node.mesh_key_rotated"), 1);
  auto conn = connect();
  auto prev = conn.exec(
      "SELECT payload->>'previous_public_key' FROM events WHERE event_type = "
      "'node.mesh_key_rotated'");
  ASSERT_TRUE(prev.has_value());
  EXPECT_EQ(prev->text(0, 0), keyOf('a'));

  // A retry after success changes nothing.
  Reply retry = publish(n1, current(k2));
  EXPECT_EQ(retry.status, 200) << retry.raw;
  EXPECT_EQ(retry.body["public_key"], k2);
  EXPECT_EQ(countEvents("node.mesh_key_rotated"), 1);

  auto got = call("GET", "/v1/nodes/" + n1.id);
  EXPECT_EQ(got.body["wireguard_public_key"], k2);
  EXPECT_EQ(got.body["mesh_port"], 51822);
  EXPECT_EQ(got.body["mesh_key"]["rotating"], false);
  EXPECT_EQ(got.body["mesh_key"]["next_public_key"], nullptr);
  EXPECT_EQ(got.body["mesh_key"]["since"], committed.body["key_since"]);
}

TEST_F(MeshKeyApiTest, BadBodiesAreRefusedNamingTheField) {
  const Node n = enroll("n1.example", 'a', "2001:db8::1");
  const std::vector<std::pair<json::Json, std::string>> bad = {
      {next(std::string(43, 'b') + "=", 51821), "public_key"},  // not canonical
      {next(std::string(42, 'c') + "==", 51821), "public_key"},
      {next("short", 51821), "public_key"},
      {next(keyOf('c'), 0), "listen_port"},
      {next(keyOf('c'), 65536), "listen_port"},
      {{{"phase", "next"}, {"public_key", keyOf('c')}}, "listen_port"},
      {{{"phase", "current"}, {"public_key", keyOf('c')}, {"listen_port", 51821}}, "listen_port"},
      {{{"phase", "later"}, {"public_key", keyOf('c')}}, "phase"},
      {{{"public_key", keyOf('c')}}, "phase"},
      {{{"phase", "next"}, {"listen_port", 51821}}, "public_key"},
  };
  for (const auto& [body, field] : bad) {
    Reply r = publish(n, body);
    EXPECT_EQ(r.status, 400) << body.dump() << ": " << r.raw;
    EXPECT_EQ(r.body["error"]["details"]["field"], field) << body.dump() << ": " << r.raw;
  }
  Reply extra = publish(n, {{"phase", "next"}, {"private_key", keyOf('c')}});
  EXPECT_EQ(extra.status, 400) << extra.raw;
  EXPECT_EQ(countEvents("node.mesh_key_staged"), 0);
}

TEST_F(MeshKeyApiTest, AnOperatorRequestIsIdempotentAndEndsWithTheCommit) {
  const Node n1 = enroll("n1.example", 'a', "2001:db8::1");
  const Node n2 = enroll("n2.example", 'b', "2001:db8::2");
  Reply asked;
  // The request wakes the node's own plan: rotate is true.
  Reply woke = wokenBy(n1, [&] { asked = rotate(n1); });
  ASSERT_EQ(asked.status, 200) << asked.raw;
  EXPECT_EQ(asked.body["rotation_requested"], true);
  EXPECT_EQ(woke.body["mesh"]["self"]["rotate"], true);
  EXPECT_EQ(self(n2)["rotate"], false);
  EXPECT_EQ(call("GET", "/v1/nodes/" + n1.id).body["mesh_key"]["rotating"], true);
  // Pending: no second event.
  EXPECT_EQ(rotate(n1).status, 200);
  EXPECT_EQ(countEvents("node.mesh_key_rotation_requested"), 1);
  // Only platform admins; a node cannot ask for itself.
  EXPECT_EQ(rotate(n1, n1.token).status, 403);

  ASSERT_EQ(publish(n1, next(keyOf('c'), 51821)).status, 200);
  auto got = call("GET", "/v1/nodes/" + n1.id);
  EXPECT_EQ(got.body["mesh_key"]["rotating"], true);
  EXPECT_EQ(got.body["mesh_key"]["next_public_key"], keyOf('c'));
  ASSERT_EQ(publish(n1, current(keyOf('c'))).status, 200);
  EXPECT_EQ(self(n1)["rotate"], false);
  got = call("GET", "/v1/nodes/" + n1.id);
  EXPECT_EQ(got.body["mesh_key"]["rotating"], false);

  // A staged key (the agent already rotating) takes no request either.
  ASSERT_EQ(publish(n2, next(keyOf('d'), 51821)).status, 200);
  Reply during = rotate(n2);
  EXPECT_EQ(during.status, 200) << during.raw;
  EXPECT_EQ(during.body["rotation_requested"], false);
  EXPECT_EQ(countEvents("node.mesh_key_rotation_requested"), 1);
  EXPECT_EQ(call("POST", "/v1/nodes/node_00000000000000000000000000/mesh-key/rotate", "{}").status,
            404);
}

TEST_F(MeshKeyApiTest, TheSweepAsksNodesWithAnOldKeyOnce) {
  const Node old_key = enroll("n1.example", 'a', "2001:db8::1");
  const Node fresh = enroll("n2.example", 'b', "2001:db8::2");
  auto conn = connect();
  // mesh_key_max_age_days is 30 by default: n1's key is 31 days old.
  ASSERT_TRUE(conn.exec("UPDATE nodes_view SET mesh_key_since = $2::timestamptz - interval "
                        "'31 days' WHERE node_id = $1",
                        {old_key.id, toRfc3339(fake_.now())})
                  .has_value());
  ASSERT_TRUE(eventually([&] { return self(old_key)["rotate"] == true; }));
  auto reason = conn.exec(
      "SELECT aggregate_id, payload->>'reason' FROM events WHERE event_type = "
      "'node.mesh_key_rotation_requested'");
  ASSERT_TRUE(reason.has_value());
  ASSERT_EQ(reason->rows(), 1);
  EXPECT_EQ(reason->text(0, 0), old_key.id);
  EXPECT_EQ(reason->text(0, 1), "age");
  // Later sweeps leave a pending request alone, and the fresh key.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(countEvents("node.mesh_key_rotation_requested"), 1);
  EXPECT_EQ(self(fresh)["rotate"], false);

  // The commit dates the new key from now: no further request.
  ASSERT_EQ(publish(old_key, next(keyOf('c'), 51821)).status, 200);
  ASSERT_EQ(publish(old_key, current(keyOf('c'))).status, 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(countEvents("node.mesh_key_rotation_requested"), 1);
  EXPECT_EQ(self(old_key)["rotate"], false);
}

}  // namespace
}  // namespace plfm::cp
